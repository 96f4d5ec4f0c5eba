"""The tray's link to the agent, without a desktop: a real detached agent (started by the link),
a real sshd and gateway, a real keyring. The link starts the agent when none runs, follows a
tunnel through the agent's state stream, sends commands (and reports the ones the agent
refuses), comes back to a crashed agent by starting a new one, and never stops the agent itself.

Waits are on the link's own change callbacks, with deadlines."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import psutil
import pytest
from tests.support.clientcli import add_ssh_profile, agent_pid, clawd

from clawd_client.tray.agentlink import AgentLink, LinkView


class Watch:
    """Every view the link announced, and a way to wait for one (a deadline, not a sleep)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.views: list[LinkView] = []
        self.errors: list[tuple[str, str]] = []
        self.link: AgentLink | None = None

    def changed(self) -> None:
        assert self.link is not None
        with self.cond:
            self.views.append(self.link.view())
            self.cond.notify_all()

    def error(self, title: str, text: str) -> None:
        with self.cond:
            self.errors.append((title, text))
            self.cond.notify_all()

    def wait(self, pred: Callable[[LinkView], bool], what: str, timeout: float = 30.0) -> LinkView:
        assert self.link is not None
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                view = self.link.view()
                if pred(view):
                    return view
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; last view: {view}")
                self.cond.wait(left)


@pytest.fixture
def env(client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The link runs in this process and starts the agent from it: same config and state as the
    `clawd` commands the test runs (client_env stops the agent afterwards)."""
    for key in ("CLAWD_CONFIG_DIR", "CLAWD_STATE_DIR", "HOME"):
        monkeypatch.setenv(key, client_env[key])
    return client_env


@pytest.fixture
def watch(env: dict[str, str]):
    w = Watch()
    yield w
    if w.link is not None:
        assert w.link.stop(15), "the link did not stop"


def start_link(watch: Watch, **kw: object) -> AgentLink:
    link = AgentLink(watch.changed, on_error=watch.error, **kw)  # type: ignore[arg-type]
    watch.link = link
    link.start()
    return link


def add_profile(env: dict[str, str], sshd, remote_port: int, name: str, token: str) -> int:
    return add_ssh_profile(env, sshd, remote_port, name, token=token)

def test_the_link_starts_the_agent_comes_back_after_a_crash_and_never_stops_it(env, watch):
    assert agent_pid(env) is None
    start_link(watch, idle_s=0.2)
    first = watch.wait(lambda v: v.agent.attached, "the link to start the agent and attach")
    pid = agent_pid(env)
    assert pid is not None and first.agent.pid == pid and pid != os.getpid()
    assert first.profiles == () and dict(first.tunnels) == {}

    # A profile added on disk shows up without a restart (the link rereads the store when it changed).
    r = clawd(["profile", "add", "later", "--ssh", "me@127.0.0.1:2"], env)
    assert r.returncode == 0, r.stderr
    watch.wait(lambda v: v.profiles == ("later",), "the new profile in the link's view", timeout=10)

    os.kill(pid, signal.SIGKILL)  # the agent crashes
    psutil.Process(pid).wait(10) if psutil.pid_exists(pid) else None
    again = watch.wait(
        lambda v: v.agent.attached and v.agent.pid not in (None, pid), "the link to attach to a new agent"
    )
    assert again.agent.pid == agent_pid(env)
    phases = [v.agent.phase for v in watch.views]
    assert "reconnecting" in phases[phases.index("attached") :], phases  # said so meanwhile

    assert watch.link is not None and watch.link.stop(15)
    watch.link = None
    assert psutil.pid_exists(again.agent.pid)  # the tray leaves the agent (and its tunnels) running


def test_commands_go_to_the_agent_and_the_stream_shows_their_effect(env, watch, sshd, gateway):
    port = add_profile(env, sshd, gateway.port, "vps", gateway.token)
    link = start_link(watch)
    watch.wait(lambda v: v.agent.attached and v.profiles == ("vps",), "attached, with the profile")

    link.send("up", profiles=["vps"], wait=False)
    healthy = watch.wait(
        lambda v: "vps" in v.tunnels and v.tunnels["vps"].state == "healthy", "vps healthy", timeout=40
    )
    st = healthy.tunnels["vps"]
    assert st.local_url == f"ws://127.0.0.1:{port}" and st.pid == agent_pid(env) and st.active_path == "ssh"

    report = link.diagnose("vps")
    assert report["profile"] == "vps" and report["ok"] is True, report

    link.send("down", profiles=["vps"]).result(30)
    watch.wait(lambda v: "vps" not in v.tunnels, "vps gone from the view after down")
    assert not watch.errors

    refused = link.send("up", profiles=["nope"], wait=False)
    with pytest.raises(Exception, match="nope"):
        refused.result(30)
    assert watch.errors and "up nope failed" in watch.errors[-1][0] and "nope" in watch.errors[-1][1]
