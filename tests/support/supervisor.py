"""Run the real tunnel Supervisor in a background event loop and wait on its published states."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from clawd_client.engine import Supervisor, TunnelStatus, make_port_guard
from clawd_client.profiles import Profile, SshTarget
from clawd_gateway.secret import Secret


def ssh_profile(sshd: Any, remote_port: int, local_port: int, name: str = "t") -> Profile:
    """A profile for the test sshd fixture, with its client key and pinned host key."""
    target = SshTarget(
        host="127.0.0.1",
        user=sshd.user,
        port=sshd.port,
        identity=str(sshd.client_key_path),
        known_hosts=str(sshd.known_hosts),
    )
    return Profile(name=name, ssh=target, remote_port=remote_port, local_port=local_port)


class Watched:
    def __init__(self, sup: Supervisor, loop: asyncio.AbstractEventLoop) -> None:
        self.sup = sup
        self.loop = loop
        self.history: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def record(self, st: TunnelStatus) -> None:
        with self._cond:
            self.history.append({**st.to_json(), "t": time.monotonic()})
            self._cond.notify_all()

    @property
    def state(self) -> dict[str, Any]:
        with self._cond:
            return self.history[-1] if self.history else {}

    def wait(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float, what: str = "state"
    ) -> dict[str, Any]:
        """Block until any published status (from the first one on) satisfies `pred`."""
        return self.wait_from(0, pred, timeout, what)

    def wait_state(self, state: str, timeout: float = 15.0, after: int | None = None) -> dict[str, Any]:
        start = len(self.history) if after is None else after
        return self.wait_from(start, lambda st: st["state"] == state, timeout, what=state)

    def wait_from(
        self, start: int, pred: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = start
            while True:
                for st in self.history[seen:]:
                    if pred(st):
                        return st
                seen = len(self.history)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    states = [s["state"] for s in self.history[-12:]]
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; recent: {states}; "
                        f"last: {self.history[-1] if self.history else None}"
                    )
                self._cond.wait(remaining)

    def mark(self) -> int:
        with self._cond:
            return len(self.history)

    def call(self, fn: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(fn)


@contextlib.contextmanager
def supervised(
    profile: Profile, secret: str | None, *, accept_new: bool = False, guard: bool = True, **kwargs: Any
) -> Iterator[Watched]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="supervisor-loop", daemon=True)
    thread.start()
    sec = Secret(secret, "test") if secret else None
    sup = Supervisor(
        profile,
        lambda: sec,
        accept_new=accept_new,
        port_guard=make_port_guard(lambda: sec) if guard else None,
        **kwargs,
    )
    watched = Watched(sup, loop)
    sup.add_listener(watched.record)
    future = asyncio.run_coroutine_threadsafe(sup.run(), loop)
    try:
        yield watched
    finally:
        loop.call_soon_threadsafe(sup.quit)
        with contextlib.suppress(Exception):
            future.result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
