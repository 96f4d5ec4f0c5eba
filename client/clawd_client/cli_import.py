"""`clawd profile import`: profiles from ~/.ssh/config LocalForward hosts and OpenClaw's config.

Registered under `clawd profile` by cli_profiles.register (`register(profile_subparsers)`).
Secrets found in OpenClaw's config go to the keyring only, never into profiles.json or output.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .cli_common import EXIT_OK, handled
from .lazy import lazy_module
from .profiles import ProfileStore, describe_target

secrets = lazy_module("clawd_client.secrets")
importers = lazy_module("clawd_client.importers")


@handled
def cmd_profile_import(args: argparse.Namespace) -> int:
    explicit = args.ssh_config is not None or args.openclaw_config is not None
    result = importers.import_all(
        args.ssh_config,
        args.openclaw_config,
        use_ssh=args.ssh_config is not None or not explicit,
        use_openclaw=args.openclaw_config is not None or not explicit,
    )
    store = ProfileStore()
    existing = store.load()
    todo = []
    skipped: list[dict[str, str | None]] = [{"name": None, "reason": reason} for reason in result.skipped]
    for item in result.profiles:
        if item.profile.name in existing and not args.replace:
            skipped.append(
                {
                    "name": item.profile.name,
                    "reason": f"profile exists (from {item.origin}); --replace overwrites it",
                }
            )
            continue
        todo.append(item)

    destination = None
    if todo and any(item.secrets for item in todo):
        if args.dry_run:
            info = secrets.backend_info()
            destination = f"keyring ({info['label']})" if info["usable"] else None
        else:
            # Fail before writing anything: half an import (profiles without their secret) is worse.
            try:
                backend = secrets.usable_backend()
            except secrets.NoKeyringBackend as exc:
                exc.fix = (exc.fix or "") + (
                    "\n       or import only the SSH config (it carries no secret): "
                    "clawd profile import --ssh-config ~/.ssh/config"
                )
                raise
            destination = f"keyring ({secrets.backend_label(backend)})"

    imported: list[dict[str, Any]] = []
    for item in todo:
        stored: dict[str, str | None] = {}
        if not args.dry_run:
            store.add(item.profile, replace_existing=args.replace)
            for kind, secret in item.secrets.items():
                stored[kind] = secrets.set_secret(item.profile.name, kind, secret.value)
        else:
            stored = dict.fromkeys(item.secrets, destination)
        imported.append(
            {
                "name": item.profile.name,
                "method": item.profile.method,
                "target": describe_target(item.profile),
                "local_url": item.profile.local_url if item.profile.method == "ssh" else item.profile.url,
                "auth": item.profile.auth,
                "origin": item.origin,
                "secrets": [
                    {"kind": kind, "from": item.secrets[kind].source, "to": where}
                    for kind, where in stored.items()
                ],
                "notes": item.notes,
            }
        )

    out = sys.stdout
    if args.json:
        body = {
            "dry_run": args.dry_run,
            "profiles_file": str(store.path),
            "sources": result.sources,
            "imported": imported,
            "skipped": skipped,
        }
        json.dump(body, out, indent=2)
        out.write("\n")
        return EXIT_OK
    verb = "would import" if args.dry_run else "imported"
    for entry in imported:
        out.write(
            f"{verb} {entry['name']}: {entry['method']} {entry['target']} -> {entry['local_url']} "
            f"(from {entry['origin']})\n"
        )
        for s in entry["secrets"]:
            where = s["to"] or "nowhere yet: no usable keyring"
            out.write(f"  {s['kind']} ({s['from']}) -> {where}\n")
        for note in entry["notes"]:
            out.write(f"  note: {note}\n")
    for gone in skipped:
        who = f"{gone['name']}: " if gone["name"] else ""
        out.write(f"skipped {who}{gone['reason']}\n")
    if not imported:
        out.write("nothing imported\n")
    elif not args.dry_run:
        out.write(f"profiles saved in {store.path}; secrets only in the keyring\n")
    return EXIT_OK


def register(psub: Any) -> None:
    """Add `import` to the `clawd profile` parser's `add_subparsers()` object."""
    imp = psub.add_parser(
        "import",
        help="import ~/.ssh/config LocalForward hosts and OpenClaw's gateway.remote",
        description=(
            "Without options, reads both ~/.ssh/config and OpenClaw's config. Naming one file "
            "imports from that source only (name both to read both). SSH hosts are resolved as "
            "`ssh ALIAS` resolves them; what only a command or DNS could decide (Match exec, "
            "CanonicalizeHostname) stops the import with the file and line (exit 78)."
        ),
    )
    imp.add_argument(
        "--ssh-config",
        metavar="FILE",
        help="an ssh_config file, read alone like ssh -F (default: ~/.ssh/config, then /etc/ssh/ssh_config)",
    )
    imp.add_argument(
        "--openclaw-config", metavar="FILE", help="OpenClaw config (default ~/.openclaw/openclaw.json)"
    )
    imp.add_argument("--dry-run", action="store_true", help="show what would be imported; change nothing")
    imp.add_argument("--replace", action="store_true", help="overwrite profiles that already exist")
    imp.add_argument("--json", action="store_true", help="machine-readable output")
    imp.set_defaults(func=cmd_profile_import)


__all__ = ["cmd_profile_import", "register"]
