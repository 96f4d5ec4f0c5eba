"""What only the user can fix about a tunnel, and what a waiting CLI exits with: derived from the
supervisor's state and the cause of its last failure, for the published TunnelStatus."""

from __future__ import annotations

from clawd_gateway.errors import UserError

from . import machine as m


def needs_user(profile: str, s: m.Snapshot, cause: BaseException | None) -> tuple[str | None, ...]:
    """(kind, fingerprint, fix) when only the user can move this tunnel on, else Nones."""
    from .hostkeys import HostKeyChanged, HostKeyUnknown, fingerprint

    if s.state is m.State.DEGRADED and s.degraded is m.Degraded.AUTH:
        return "gateway-auth", None, f"store the gateway's current secret: clawd secret set {profile}"
    if s.state is not m.State.FATAL:
        return None, None, None
    if isinstance(cause, HostKeyUnknown):
        fix = (
            "compare it with the server's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then "
            f"trust it: clawd up {profile} --accept-new"
        )
        return "host-key-unknown", fingerprint(cause.key), fix
    if isinstance(cause, HostKeyChanged):
        return "host-key-changed", fingerprint(cause.key), cause.fix
    message = s.last_error or str(cause or "")
    if "authentication" in message and "refused" in message:
        return "ssh-auth", None, "check the profile's --identity and the server's authorized_keys"
    return "setup", None, getattr(cause, "fix", None) or f"run: clawd doctor {profile}"


def exit_code(cause: BaseException | None) -> int:
    return int(cause.exit_code) if isinstance(cause, UserError) else 4


__all__ = ["exit_code", "needs_user"]
