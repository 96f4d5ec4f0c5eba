from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.support import skip_policy
from tests.support.clientcli import isolated_env, reap_agents, stop_agent
from tests.support.keyring_session import secret_service  # noqa: F401  (the real keyring, shared)
from tests.support.openclaw_peer import Peer, require_peer
from tests.support.servers import (
    GatewayProcess,
    RunningGateway,
    gateway_in_thread,
    gateway_process,
    make_settings,
)
from tests.support.sshd import sshd  # noqa: F401  (the real-sshd fixture, shared)


def pytest_configure(config: pytest.Config) -> None:
    """The skip policy (tests/support/skip_policy.py) applies to the whole suite: under
    CLAWD_REQUIRE_SERVERS=1 any skip but an allowlisted platform skip fails the run."""
    if not config.pluginmanager.is_registered(skip_policy):
        config.pluginmanager.register(skip_policy, "clawd-skip-policy")


@pytest.fixture(scope="session", autouse=True)
def _no_agent_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Agents are detached on purpose (they outlive the command that started them); the tests'
    ones must not outlive the test run."""
    yield
    reap_agents(str(tmp_path_factory.getbasetemp()))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may read the developer's real config, tokens or state."""
    for var in list(os.environ):
        if var.startswith(("OPENCLAW_", "CLAWDBOT_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLAWD_STATE_DIR", str(tmp_path / "state"))
    # The checkout under test may itself live under /tmp (CI clones anywhere); autostart's
    # refusal of temporary interpreters is tested with explicit temp roots instead.
    monkeypatch.setenv("CLAWD_AUTOSTART_ALLOW_TEMP", "1")


@pytest.fixture
def client_env(tmp_path: Path, secret_service) -> Iterator[dict[str, str]]:  # noqa: F811
    """The environment for running `clawd`: a real keyring, home/config/state under tmp_path.
    An agent that the test started (any `clawd up`/`connect` starts one) is stopped after it."""
    env = isolated_env(tmp_path, secret_service.env)
    yield env
    stop_agent(env)


@pytest.fixture(scope="session")
def peer() -> Peer:
    """The real OpenClaw CLI and gateway from npm, installed once (see tests/support/openclaw_peer)."""
    return require_peer()


@pytest.fixture(scope="module")
def ours(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """clawd-gateway as a process for the npm compatibility tier, shared by a module's tests;
    its token is the requesting module's TOKEN (which those tests pass to both CLIs)."""
    token: str = request.module.TOKEN
    with gateway_process(
        tmp_path_factory.mktemp("clawd-gw"), args=["--log-level", "warning"], token=token
    ) as gw:
        yield gw


@pytest.fixture
def gateway(tmp_path: Path):
    settings = make_settings(tmp_path, token="s3cret-token-for-tests-0123456789")
    with gateway_in_thread(settings) as gw:
        yield gw


@pytest.fixture
def make_gateway(tmp_path: Path):
    """Start a gateway with custom config/overrides: make_gateway(config_text, **overrides)."""
    started: list[RunningGateway] = []
    import contextlib

    stack = contextlib.ExitStack()

    def factory(config_text: str = "{}", env: dict[str, str] | None = None, **overrides):
        sub = tmp_path / f"gw{len(started)}"
        sub.mkdir()
        settings = make_settings(sub, config_text, env, **overrides)
        gw = stack.enter_context(gateway_in_thread(settings))
        started.append(gw)
        return gw

    with stack:
        yield factory
