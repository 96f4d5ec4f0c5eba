"""`clawd setup-remote`: from plain SSH access to a healthy, autostarting tunnel in one command.

The modules: `remote` (the logged-in VPS account: run, read, replace files; --dry-run records
changes instead of making them), `plan` (the step list as data: pure), `login`, `tunnelkey`,
`discover` (which gateway listens on the VPS and its secret), `install` / `audit` (clawd-gateway on
the VPS), `local` (profile, keyring, autostart, agent), `state` (what a setup did, so `--undo`
removes exactly that), `progress` (step list with a spinner, plain lines, or JSON events) and
`flow` (runs the steps in order and stops at the first failure, naming what was done).

Nothing is imported here, so `clawd --help` does not pay for asyncssh.
"""
