"""The first screen is the product's, not its libraries' (issue 10): the commands that load asyncssh
print no `CryptographyDeprecationWarning: DSA is deprecated` blocks — and the filter that keeps them
out is narrow, so every other warning still shows.

Each command runs as a real process (a warning is printed once per process at import time, so an
in-process test would see whatever earlier tests already imported). `-X importtime` proves the
process really loaded asyncssh: a command that merely stopped importing it would pass vacuously.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.clientcli import isolated_env
from tests.support.servers import free_port

IMPORT_TIME = "import time:"


def run_py(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -X importtime ARGS...` to completion, output captured as text."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def split_stderr(stderr: str) -> tuple[set[str], str]:
    """(modules imported, everything else on stderr) from a `-X importtime` run's stderr."""
    modules: set[str] = set()
    rest: list[str] = []
    for line in stderr.splitlines(keepends=True):
        if line.startswith(IMPORT_TIME):
            modules.add(line.rsplit("|", 1)[-1].strip())
        else:
            rest.append(line)
    return modules, "".join(rest)


def assert_quiet(stderr: str, *, loads_asyncssh: bool) -> None:
    modules, rest = split_stderr(stderr)
    if loads_asyncssh:
        assert "asyncssh" in modules, "the command no longer loads asyncssh: this test proves nothing"
    assert "Warning" not in rest, rest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Home, config and state under tmp_path; no keyring (a quick, deterministic failure for doctor),
    and the interpreter's default warning filters (no PYTHONWARNINGS from the caller)."""
    e = isolated_env(tmp_path)
    e.pop("PYTHONWARNINGS", None)
    e["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    (tmp_path / "home").mkdir()
    return e


@pytest.fixture
def profile(env: dict[str, str]) -> str:
    """A profile whose SSH server port is closed: everything fails fast, nothing hangs."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "clawd_client",
            "profile",
            "add",
            "x",
            "--ssh",
            f"me@127.0.0.1:{free_port()}",
            "--local-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return "x"


def test_asyncssh_still_warns_without_our_import(env):
    """The premise: importing asyncssh directly prints the DSA warnings with this venv's
    cryptography. When a future asyncssh stops touching DSA this skips — and the filter in
    clawd_client._asyncssh can go."""
    r = subprocess.run(
        [sys.executable, "-c", "import asyncssh"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    if "CryptographyDeprecationWarning" not in r.stderr:
        pytest.skip("asyncssh no longer triggers CryptographyDeprecationWarning here")


def test_demo_once_is_quiet(env):
    r = run_py(["-m", "clawd_client", "demo", "--once", "--port", str(free_port())], env)
    assert r.returncode == 0, r.stderr
    assert "reaches the gateway through SSH" in r.stdout
    assert_quiet(r.stderr, loads_asyncssh=True)


def test_doctor_is_quiet(env, profile):
    r = run_py(["-m", "clawd_client", "doctor", profile], env)
    assert r.returncode == 4, r.stdout + r.stderr  # the first broken hop: no keyring for the secret
    assert "first broken hop" in r.stdout
    assert_quiet(r.stderr, loads_asyncssh=True)


def test_connect_and_the_agent_are_quiet(env, profile):
    """`clawd connect` up to its first failed SSH attempt (the port is closed), then SIGTERM. The
    agent it talks to is where asyncssh loads now, so the agent runs in the foreground here, under
    `-X importtime`, and both screens are checked."""
    agent = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "clawd_client", "agent", "--foreground"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clawd_client", "connect", profile],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        seen = ""
        for line in proc.stdout:
            seen += line
            if "backoff" in line or time.monotonic() > deadline:
                break
        assert "backoff" in seen, seen
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        stop = run_py(["-m", "clawd_client", "agent", "--stop"], env)
        assert stop.returncode == 0, stop.stderr
        _agent_out, agent_err = agent.communicate(timeout=30)
    finally:
        for p in (proc, agent):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
    assert "Traceback" not in err and "Warning" not in err, err
    assert "Traceback" not in agent_err
    assert_quiet(agent_err, loads_asyncssh=True)


@pytest.mark.parametrize("args", [["--help"], ["audit"]], ids=["help", "audit"])
def test_gateway_cli_is_quiet(env, args):
    r = run_py(["-m", "clawd_gateway", *args], env)
    assert r.returncode == 0, r.stderr
    assert_quiet(r.stderr, loads_asyncssh=False)


def test_every_module_gets_asyncssh_through_the_filtering_module():
    """The filter must be in place before asyncssh's first import, whichever command runs first:
    so no package module imports asyncssh at its top level except clawd_client._asyncssh."""
    root = Path(__file__).resolve().parent.parent
    offenders = [
        f"{path.relative_to(root)}:{n}: {line}"
        for pkg in ("client", "gateway")
        for path in sorted((root / pkg).rglob("*.py"))
        if path.name != "_asyncssh.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.startswith(("import asyncssh", "from asyncssh"))
    ]
    assert not offenders, "import it as `from clawd_client._asyncssh import asyncssh`:\n" + "\n".join(
        offenders
    )


SNIPPET = r"""
import warnings
from cryptography.utils import CryptographyDeprecationWarning
from clawd_client._asyncssh import asyncssh

warnings.warn("ours-still-warns", DeprecationWarning)
warnings.warn("crypto-outside-asyncssh-still-warns", CryptographyDeprecationWarning)
warnings.warn_explicit("lookalike-module-still-warns", CryptographyDeprecationWarning, "x.py", 1,
                       module="asyncssh_lookalike")
warnings.warn_explicit("other-category-from-asyncssh-still-warns", DeprecationWarning, "x.py", 2,
                       module="asyncssh.connection")
warnings.warn_explicit("SILENCED", CryptographyDeprecationWarning, "x.py", 3, module="asyncssh.crypto.dsa")
warnings.warn_explicit("SILENCED", CryptographyDeprecationWarning, "x.py", 4, module="asyncssh")
"""


def test_only_that_category_from_asyncssh_is_silenced(env):
    """With every warning shown (`-W default`), importing our module silences exactly
    CryptographyDeprecationWarning attributed to asyncssh or its submodules: not our own
    DeprecationWarnings, not cryptography's warnings elsewhere, not other categories from asyncssh."""
    r = subprocess.run(
        [sys.executable, "-W", "default", "-c", SNIPPET],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=os.getcwd(),
    )
    assert r.returncode == 0, r.stderr
    for shown in (
        "DeprecationWarning: ours-still-warns",
        "CryptographyDeprecationWarning: crypto-outside-asyncssh-still-warns",
        "CryptographyDeprecationWarning: lookalike-module-still-warns",
        "DeprecationWarning: other-category-from-asyncssh-still-warns",
    ):
        assert shown in r.stderr, r.stderr
    assert "SILENCED" not in r.stderr and "DSA" not in r.stderr, r.stderr
