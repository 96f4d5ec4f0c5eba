"""A real Secret Service keyring for a test: private D-Bus session bus + unlocked gnome-keyring.

Why real: the keyring library's failure modes (no bus, locked collection, plaintext fallback)
are exactly what clawd has to explain, so tests talk to the same daemon a Linux desktop runs.

Recipe (ci-recipes.md section 5): a fresh bus, a fresh data dir (a new login keyring each time,
so a password from an earlier run can never lock us out), `gnome-keyring-daemon --unlock` with
the password on stdin, and nothing D-Bus-activatable on the bus, so a second, locked daemon can
never be started behind our back ("Prompt dismissed"). Both processes are our children, run in
the foreground, and are stopped by PID afterwards.

Usage in a test module:  `from tests.support.keyring_session import secret_service  # noqa: F401`
then take `secret_service` as a fixture argument; `secret_service.env` is the environment for
subprocesses (it carries the bus address and PYTHON_KEYRING_BACKEND).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.support.servers import require

SECRET_SERVICE_BACKEND = "keyring.backends.SecretService.Keyring"
INSTALL_HINT = "apt-get install -y --no-install-recommends gnome-keyring dbus"

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={run}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@dataclass
class KeyringSession:
    address: str
    runtime_dir: Path
    env: dict[
        str, str
    ]  # for client subprocesses: os.environ + DBUS_SESSION_BUS_ADDRESS + PYTHON_KEYRING_BACKEND
    pids: list[int] = field(default_factory=list)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _name_has_owner(address: str, name: str) -> bool:
    from jeepney import DBus
    from jeepney.io.blocking import open_dbus_connection

    with open_dbus_connection(bus=address) as conn:
        reply = conn.send_and_get_reply(DBus().NameHasOwner(name), timeout=2)
        return bool(reply.body[0])


def start_unlocked_keyring(
    address: str, run: Path, log: Any, env: dict[str, str], password: str = "clawd-test-keyring"
) -> subprocess.Popen[bytes]:
    """gnome-keyring-daemon (secrets only, unlocked) on the bus at `address`, once it owns
    org.freedesktop.secrets; `run` is a private dir for its control socket."""
    gnome_keyring = shutil.which("gnome-keyring-daemon")
    require(gnome_keyring is not None, f"a real Secret Service needs gnome-keyring-daemon ({INSTALL_HINT})")
    assert gnome_keyring is not None
    daemon = subprocess.Popen(
        [gnome_keyring, "--foreground", "--unlock", "--components=secrets", f"--control-directory={run}/keyring"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=dict(env, DBUS_SESSION_BUS_ADDRESS=address),
    )
    assert daemon.stdin is not None
    daemon.stdin.write(password.encode())
    daemon.stdin.close()
    deadline = time.monotonic() + 10
    while not _name_has_owner(address, "org.freedesktop.secrets"):
        if daemon.poll() is not None or time.monotonic() > deadline:
            _stop(daemon)
            pytest.fail(f"gnome-keyring-daemon did not come up on the bus {address} (exit {daemon.poll()})")
        time.sleep(0.02)
    return daemon


@contextlib.contextmanager
def secret_service_session(password: str = "clawd-test-keyring") -> Iterator[KeyringSession]:
    """Start the bus and the unlocked keyring daemon; yield; stop both. Fails loudly on timeouts."""
    dbus_daemon = shutil.which("dbus-daemon")
    gnome_keyring = shutil.which("gnome-keyring-daemon")
    require(
        dbus_daemon is not None and gnome_keyring is not None,
        f"a real Secret Service needs dbus-daemon and gnome-keyring-daemon ({INSTALL_HINT})",
    )
    try:
        import secretstorage  # noqa: F401  (keyring's SecretService backend needs it)
    except ImportError:
        require(False, "the secretstorage package is missing (pip install secretstorage)")
    assert dbus_daemon is not None and gnome_keyring is not None
    # Short path: AF_UNIX socket paths are limited to ~108 bytes, pytest's tmp_path can be longer.
    root = Path(tempfile.mkdtemp(prefix="clawd-kr-"))
    run = root / "run"
    run.mkdir(mode=0o700)
    (root / "bus.conf").write_text(_BUS_CONFIG.format(run=run))
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "GNOME_KEYRING", "PYTHON_KEYRING"))
    }
    base_env.update(
        HOME=str(root / "home"),
        XDG_RUNTIME_DIR=str(run),
        XDG_DATA_HOME=str(root / "data"),
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_CACHE_HOME=str(root / "cache"),
    )
    bus: subprocess.Popen[bytes] | None = None
    daemon: subprocess.Popen[bytes] | None = None
    log = (root / "daemons.log").open("wb")
    try:
        bus = subprocess.Popen(
            [
                dbus_daemon,
                f"--config-file={root / 'bus.conf'}",
                "--print-address=1",
                "--nofork",
                "--nopidfile",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            env=base_env,
        )
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        if not address:
            pytest.fail(f"dbus-daemon printed no address (log: {(root / 'daemons.log').read_text()[-500:]})")
        env = dict(base_env, DBUS_SESSION_BUS_ADDRESS=address)
        daemon = start_unlocked_keyring(address, run, log, env, password)
        # For clients: the caller's environment (its HOME etc.) plus the bus and the backend choice.
        client_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DBUS_", "GNOME_KEYRING", "PYTHON_KEYRING"))
        }
        client_env.update(DBUS_SESSION_BUS_ADDRESS=address, PYTHON_KEYRING_BACKEND=SECRET_SERVICE_BACKEND)
        yield KeyringSession(address=address, runtime_dir=run, env=client_env, pids=[bus.pid, daemon.pid])
    finally:
        _stop(daemon)
        _stop(bus)
        if bus is not None and bus.stdout is not None:
            bus.stdout.close()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def secret_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyringSession]:
    """This test (and its subprocesses) use a fresh, unlocked, real Secret Service keyring."""
    import keyring
    from keyring.backends import SecretService

    previous = keyring.get_keyring()
    with secret_service_session() as session:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session.address)
        monkeypatch.setenv("PYTHON_KEYRING_BACKEND", SECRET_SERVICE_BACKEND)
        monkeypatch.delenv("CLAWD_ALLOW_PLAINTEXT_KEYRING", raising=False)
        keyring.set_keyring(SecretService.Keyring())
        try:
            yield session
        finally:
            keyring.set_keyring(previous)


@pytest.fixture
def isolated_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No keyring at all (keyring's fail backend) and no D-Bus: a test can never reach the developer's
    real keyring. `secret_service` layered on top swaps in the private Secret Service."""
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("CLAWD_ALLOW_PLAINTEXT_KEYRING", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)
