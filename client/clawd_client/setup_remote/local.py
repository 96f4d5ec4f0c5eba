"""The laptop side of `clawd setup-remote`: the profile, the secret in the keyring, the login
autostart mark and the tunnel in the agent — and undoing each.

Why these go through the same code as `clawd profile add`, `clawd secret set`, `clawd autostart
enable` and `clawd up`: a setup-made profile must behave exactly like a hand-made one. Each
function says whether it changed anything, so a re-run can say "nothing to do". Autostart writes
only under the user's own config dirs (HOME / XDG_CONFIG_HOME), which tests point at a temp dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clawd_gateway.errors import UserError

from .. import api
from ..profiles import Profile, ProfileStore, SshTarget
from ..secrets import clear_secret, set_secret, stored_secret

UP_TIMEOUT_S = 30.0


def write_profile(profile: Profile, *, ours: bool) -> bool:
    """Add or update the profile; False when it already is exactly this. A profile of the same
    name that setup did not make is never overwritten."""
    store = ProfileStore()
    existing = store.load().get(profile.name)
    if existing == profile:
        return False
    if existing is not None and not ours:
        raise UserError(
            f"a profile named {profile.name!r} already exists and was not made by setup-remote",
            fix=f"pass --name OTHER, or remove it first: clawd profile remove {profile.name}",
        )
    store.add(profile, replace_existing=True)
    return True


def store_secret(name: str, kind: str, value: str) -> bool:
    """Put the secret in the keyring; False when the keyring already holds exactly this."""
    current = stored_secret(name, kind)
    if current is not None and current.value == value:
        return False
    set_secret(name, kind, value)
    return True


def enable_autostart(name: str) -> tuple[bool, bool, list[str]]:
    """(changed, entry newly created, lines): the agent's login entry, with NAME in its up-set."""
    from ..autostart import Autostart, detect_launcher, enable_login

    auto = Autostart()
    had_entry = auto.mechanism("agent").read("agent") is not None
    out = enable_login(auto, detect_launcher(), profiles=[name])
    if not out.ok:
        raise UserError(
            "could not turn on start at login: " + "; ".join(out.lines), fix="clawd autostart enable"
        )
    return out.changed, not had_entry and out.changed, [line.strip() for line in out.lines if line.strip()]


@dataclass
class UpResult:
    local_url: str
    latency_ms: float | None
    note: str | None


def bring_up(name: str) -> UpResult:
    """`clawd up NAME` through the agent (started on demand), waiting until healthy."""
    client = api.ensure_agent()
    with client:
        reply = client.request(
            "up", profiles=[name], wait=True, timeout=UP_TIMEOUT_S, reply_within=UP_TIMEOUT_S + 10
        )
    results: list[dict[str, Any]] = reply.get("results") or []
    first = results[0] if results else {}
    tunnel: dict[str, Any] = first.get("tunnel") or {}
    if first.get("exit", 1) != 0:
        raise UserError(
            f"the tunnel did not become healthy: {tunnel.get('state', '?')}"
            + (f": {tunnel['last_error']}" if tunnel.get("last_error") else ""),
            fix=tunnel.get("fix") or f"clawd doctor {name}",
        )
    return UpResult(str(tunnel.get("local_url") or ""), tunnel.get("latency_ms"), tunnel.get("note"))


def bring_down(name: str) -> bool:
    """Down in a running agent (which drops it from its remembered set); else edit that set."""
    client = api.running()
    if client is not None:
        with client:
            try:
                reply = client.request("down", profiles=[name])
            except UserError:
                reply = {}
        if name in (reply.get("down") or []):
            return True
    return forget_up(name)


def forget_up(name: str) -> bool:
    """Drop NAME from the agent's remembered up-set (agent/host.py writes that file)."""
    from ..agent.host import forget_up as forget

    return forget(name)


def remove_local(name: str, *, secret_kind: str | None, entry_created: bool) -> list[str]:
    """Profile, keyring entry, autostart mark (and the login entry when setup made it and nothing
    else is left for it to start); returns what was removed."""
    done: list[str] = []
    store = ProfileStore()
    if name in store.load():
        store.remove(name)
        done.append(f"profile {name}")
    try:
        cleared = clear_secret(name, secret_kind)
    except UserError:
        cleared = []
    done += [f"keyring entry {name}:{k}" for k in cleared]
    if forget_up(name):
        done.append(f"{name} from the agent's up-set")
    if entry_created and not store.load():
        from ..autostart import Autostart, disable_login

        disable_login(Autostart())
        done.append("the login entry setup-remote had created")
    return done


def tunnel_target(login: SshTarget, key_path: str, known_hosts: str | None) -> SshTarget:
    """The profile's SSH target: where the user logged in, but with the tunnel-only key."""
    return SshTarget(
        host=login.host,
        user=login.user,
        port=login.port,
        identity=key_path,
        jump=login.jump,
        known_hosts=known_hosts,
    )


__all__ = [
    "UpResult",
    "bring_down",
    "bring_up",
    "enable_autostart",
    "forget_up",
    "remove_local",
    "store_secret",
    "tunnel_target",
    "write_profile",
]
