"""When the tray notifies, as a pure function of one tunnel's look over time (`notify_step`).

Why a policy, and why pure: a flapping link must not spam the desktop, and the rules below must
be checkable with a made-up clock. The adapter feeds each profile's look on every change and at
the time `notify_step` asks for, one `NotifyState` per profile:
- a drop that the agent heals within `grace_s` (20 s) is never announced: it reconnects in a few
  seconds after sleep or a network change, and that is not news;
- "lost" at most once per `lost_every_s` (10 min); drops in between are counted and mentioned
  in the next "lost" notice; "restored" only follows a "lost" that was actually shown;
- "needs attention" (auth refused, host key unknown or changed, a setup error) at once, but the
  same cause at most once per `attention_every_s` (10 min);
- nothing for what the user did (Disconnect, Quit) or for a first connection that just works.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine import TunnelStatus
from .icons import IconKind
from .tunnel import attention, short

__all__ = ["Notice", "NotifyPolicy", "NotifyState", "notify_step"]


@dataclass(frozen=True)
class Notice:
    kind: str  # lost | restored | attention | error | diagnosis
    title: str
    message: str


@dataclass(frozen=True)
class NotifyPolicy:
    grace_s: float = 20.0
    lost_every_s: float = 600.0
    attention_every_s: float = 600.0


@dataclass(frozen=True)
class NotifyState:
    down_since: float | None = None  # when the link stopped being healthy while it was wanted
    drop_handled: bool = False  # this drop was announced or counted as suppressed
    lost_shown: bool = False  # a "lost" notice is out; "restored" will follow it
    last_lost_at: float | None = None
    suppressed: int = 0  # drops not announced since the last "lost" notice
    ever_up: bool = False
    attention_key: str | None = None
    last_attention_at: float | None = None


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def notify_step(
    st: NotifyState,
    kind: IconKind,
    status: TunnelStatus | None,
    now: float,
    *,
    profile: str = "clawd",
    policy: NotifyPolicy | None = None,
) -> tuple[NotifyState, list[Notice], float | None]:
    """Feed one tunnel's current look and the time; get the new state, the notices to show now,
    and when to call again (the end of the grace period of an ongoing drop) or None.

    Call it on every status change and at the returned time; `now` is any monotonic clock.
    """
    pol = policy or NotifyPolicy()
    notices: list[Notice] = []
    error = (status.last_error if status is not None else None) or ""

    if kind is IconKind.HEALTHY:
        if st.lost_shown and st.down_since is not None:
            verb = "restored" if st.ever_up else "established"
            notices.append(
                Notice(
                    "restored",
                    f"clawd: {profile} connected",
                    f"Connection {verb} after {_duration(now - st.down_since)}.",
                )
            )
        return (
            replace(st, down_since=None, drop_handled=False, lost_shown=False, ever_up=True),
            notices,
            None,
        )

    if kind is IconKind.STOPPED:  # the user's own doing: nothing to say, and no "restored" later
        return replace(st, down_since=None, drop_handled=False, lost_shown=False), notices, None

    if kind is IconKind.NEEDS_USER:
        why = attention(status)
        message = why.message if why else error or "the connection needs your attention"
        key = f"{why.kind if why else 'state'}|{message}"
        due = st.last_attention_at is None or now - st.last_attention_at >= pol.attention_every_s
        new = st
        if key != st.attention_key or due:
            fix = f"\nFix: {why.fix}" if why and why.fix else ""
            notices.append(Notice("attention", f"clawd: {profile} needs your attention", message + fix))
            new = replace(st, attention_key=key, last_attention_at=now)
        # Not a drop that heals by itself: no "lost" timer runs meanwhile. If a "lost" notice is
        # out, keep its start so the "restored" after the user's fix says how long it was down.
        if new.lost_shown:
            return replace(new, drop_handled=True), notices, None
        return replace(new, down_since=None, drop_handled=False), notices, None

    # CONNECTING or DEGRADED: the agent is trying; wait out the grace period before saying so.
    down_since = st.down_since if st.down_since is not None else now
    new = replace(st, down_since=down_since)
    if new.drop_handled:
        return new, notices, None
    if now - down_since < pol.grace_s:
        return new, notices, down_since + pol.grace_s
    if new.last_lost_at is not None and now - new.last_lost_at < pol.lost_every_s:
        return replace(new, drop_handled=True, suppressed=new.suppressed + 1), notices, None
    more = f" ({new.suppressed} more drop{'s' if new.suppressed != 1 else ''} since the last notice)"
    if new.ever_up:
        title = f"clawd: {profile} connection lost"
        body = "Reconnecting automatically."
    else:
        title = f"clawd: cannot connect to {profile} yet"
        body = "Still trying."
    if error:
        body += f" Last error: {short(error, 160)}"
    if new.suppressed:
        body += more
    notices.append(Notice("lost", title, body))
    return (
        replace(new, drop_handled=True, lost_shown=True, last_lost_at=now, suppressed=0),
        notices,
        None,
    )
