"""Gateway secrets through a real Secret Service (gnome-keyring on a private D-Bus), env overrides,
and the refusals: no backend, the null backend, plaintext backends, a locked keyring."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from tests.support import keyring_session

from clawd_client import secrets
from clawd_client.profiles import Profile, SshTarget
from clawd_client.secrets import KeyringUnavailable, NoKeyringBackend
from clawd_gateway.errors import UserError

# Fixtures from the shared helper, bound here so pytest finds them in this module.
isolated_keyring = keyring_session.isolated_keyring
secret_service = keyring_session.secret_service

TOKEN = "tok-4f9c2e7a1b3d5f60718293a4b5c6d7e8"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _no_real_keyring(isolated_keyring: None) -> None:
    """Every test starts with no keyring at all; `secret_service` layers a real one on top."""


def profile(name: str = "home", auth: str = "token") -> Profile:
    return Profile(name=name, ssh=SshTarget(host="vps.example"), auth=auth)


# --- real Secret Service ---------------------------------------------------------------------------


def test_roundtrip_through_real_secret_service(secret_service) -> None:
    where = secrets.set_secret("home", "token", TOKEN)
    assert where == "keyring (SecretService)"
    # It is really in the daemon, under service "clawd" and username "home:token".
    assert keyring.get_password("clawd", "home:token") == TOKEN
    got = secrets.get_secret(profile())
    assert got is not None
    assert got.value == TOKEN
    assert got.source == "keyring (SecretService)"
    assert TOKEN not in repr(got)

    # A separate process on the same bus reads the same item: not an in-memory fake.
    code = "import keyring; print(keyring.get_password('clawd', 'home:token'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=secret_service.env, capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() == TOKEN, out.stderr

    secrets.set_secret("home", "password", PASSWORD)
    assert secrets.get_secret(profile(auth="password")).value == PASSWORD
    assert secrets.clear_secret("home", "password") == ["password"]
    assert secrets.get_secret(profile(auth="password")) is None
    assert secrets.get_secret(profile()).value == TOKEN  # the other kind is untouched

    assert secrets.clear_secret("home") == ["token"]
    assert secrets.get_secret(profile()) is None
    assert keyring.get_password("clawd", "home:token") is None
    assert secrets.clear_secret("home") == []  # idempotent


def test_overwrite_and_profiles_are_separate(secret_service) -> None:
    secrets.set_secret("a", "token", "first-token-value")
    secrets.set_secret("a", "token", "second-token-value")
    secrets.set_secret("b", "token", "other-profile-value")
    assert secrets.get_secret(profile("a")).value == "second-token-value"
    assert secrets.get_secret(profile("b")).value == "other-profile-value"


def test_backend_info_real_secret_service(secret_service) -> None:
    info = secrets.backend_info()
    assert info["usable"] is True
    assert info["backend"] == "keyring.backends.SecretService.Keyring"
    assert info["label"] == "SecretService"
    assert info["priority"] == 5
    assert info["plaintext"] is False


def test_locked_keyring_is_a_clear_user_error(secret_service) -> None:
    import secretstorage

    secrets.set_secret("home", "token", TOKEN)
    conn = secretstorage.dbus_init()
    try:
        secretstorage.get_default_collection(conn).lock()
    finally:
        conn.close()
    with pytest.raises(KeyringUnavailable) as exc:
        secrets.get_secret(profile())
    text = exc.value.render()
    assert "locked" in text
    assert "SecretService" in text
    assert "gnome-keyring-daemon --unlock" in text
    assert TOKEN not in text


# --- environment overrides -------------------------------------------------------------------------


def test_env_overrides_win_in_order(secret_service, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets.set_secret("home", "token", TOKEN)
    secrets.set_secret("home", "password", PASSWORD)
    monkeypatch.setenv("CLAWDBOT_GATEWAY_TOKEN", "seed-token")
    got = secrets.get_secret(profile())
    assert (got.value, got.source) == ("seed-token", "env CLAWDBOT_GATEWAY_TOKEN")
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", "openclaw-token")
    got = secrets.get_secret(profile())
    assert (got.value, got.source) == ("openclaw-token", "env OPENCLAW_GATEWAY_TOKEN")
    # The override matches the profile's auth kind: a token in env does not shadow a password.
    got = secrets.get_secret(profile(auth="password"))
    assert (got.value, got.source) == (PASSWORD, "keyring (SecretService)")
    monkeypatch.setenv("OPENCLAW_GATEWAY_PASSWORD", "env-password")
    assert secrets.get_secret(profile(auth="password")).source == "env OPENCLAW_GATEWAY_PASSWORD"
    # Empty values count as unset.
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", "")
    assert secrets.get_secret(profile()).source == "env CLAWDBOT_GATEWAY_TOKEN"


def test_env_override_needs_no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", TOKEN)
    got = secrets.get_secret(profile())
    assert got.value == TOKEN
    assert got.source == "env OPENCLAW_GATEWAY_TOKEN"
    monkeypatch.delenv("OPENCLAW_GATEWAY_TOKEN")
    with pytest.raises(NoKeyringBackend):
        secrets.get_secret(profile())


# --- no usable backend -----------------------------------------------------------------------------


def test_no_backend_names_what_was_found_and_how_to_fix() -> None:
    with pytest.raises(NoKeyringBackend) as exc:
        secrets.set_secret("home", "token", TOKEN)
    text = exc.value.render()
    assert "keyring.backends.fail.Keyring" in text
    assert "no usable OS keyring" in text
    for hint in ("gnome-keyring", "KWallet", "secretstorage", "D-Bus", "macOS", "Keychain", "Windows"):
        assert hint in text, hint
    assert "OPENCLAW_GATEWAY_TOKEN" in text
    assert TOKEN not in text
    info = secrets.backend_info()
    assert info["usable"] is False
    assert "fail.Keyring" in info["reason"]


def test_null_backend_refused() -> None:
    keyring.set_keyring(null.Keyring())
    with pytest.raises(NoKeyringBackend) as exc:
        secrets.set_secret("home", "token", TOKEN)
    assert "keyring.backends.null.Keyring" in str(exc.value)
    assert "disabled" in str(exc.value)
    assert secrets.backend_info()["usable"] is False


_NO_BACKEND_SCRIPT = """
import sys
from clawd_client import secrets
from clawd_gateway.errors import UserError
try:
    secrets.set_secret("home", "token", sys.stdin.readline().strip())
except UserError as exc:
    print("clawd: " + exc.render(), file=sys.stderr)
    sys.exit(exc.exit_code)
"""


@pytest.mark.parametrize(
    ("backend", "expect"),
    [
        ("keyring.backends.fail.Keyring", "keyring.backends.fail.Keyring"),
        # Forcing SecretService without a session bus: keyring raises while loading it.
        (
            "keyring.backends.SecretService.Keyring",
            "PYTHON_KEYRING_BACKEND=keyring.backends.SecretService.Keyring",
        ),
    ],
)
def test_no_backend_in_a_fresh_process_without_dbus(backend: str, expect: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "OPENCLAW_", "CLAWDBOT_"))}
    env["PYTHON_KEYRING_BACKEND"] = backend
    out = subprocess.run(
        [sys.executable, "-c", _NO_BACKEND_SCRIPT],
        input=TOKEN + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("clawd: "), out.stderr
    assert expect in out.stderr
    assert "fix:" in out.stderr
    assert "Traceback" not in out.stderr
    assert TOKEN not in out.stderr + out.stdout


# --- plaintext backends ----------------------------------------------------------------------------


class PlaintextKeyring(KeyringBackend):
    """Stands in for keyrings.alt.file.PlaintextKeyring (not installed here): same name, dict storage."""

    priority = 0.5  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


class VaultKeyring(PlaintextKeyring):
    """A non-plaintext backend double (the name is what matters to the classifier)."""

    priority = 1  # type: ignore[assignment]


VaultKeyring.__module__ = "tests.vault"


class TwoBackends(chainer.ChainerBackend):
    """keyring's chainer with a fixed list: plaintext first, then a real one."""

    def __init__(self, members: list[KeyringBackend]) -> None:
        super().__init__()
        self._members = members

    @property
    def backends(self) -> list[KeyringBackend]:  # type: ignore[override]
        return self._members


def test_plaintext_backend_refused_without_opt_in() -> None:
    plain = PlaintextKeyring()
    keyring.set_keyring(plain)
    assert secrets.is_plaintext(plain)
    with pytest.raises(NoKeyringBackend) as exc:
        secrets.set_secret("home", "token", TOKEN)
    text = exc.value.render()
    assert "plaintext" in text
    assert "CLAWD_ALLOW_PLAINTEXT_KEYRING=1" in text
    assert "PlaintextKeyring" in text
    assert plain.items == {}  # nothing was written
    info = secrets.backend_info()
    assert info["usable"] is False
    assert info["plaintext"] is True


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_plaintext_backend_with_explicit_opt_in_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = PlaintextKeyring()
    keyring.set_keyring(plain)
    monkeypatch.setenv("CLAWD_ALLOW_PLAINTEXT_KEYRING", "1")
    # Our own handler: the gateway's setup_logging() (used by other tests) stops "clawd" propagating.
    records = _Records()
    logger = logging.getLogger("clawd.secrets")
    logger.addHandler(records)
    try:
        where = secrets.set_secret("home", "token", TOKEN)
    finally:
        logger.removeHandler(records)
    assert where == "keyring (PlaintextKeyring)"
    assert plain.items == {("clawd", "home:token"): TOKEN}
    assert any("plaintext" in m and "unencrypted" in m for m in records.messages)
    assert all(TOKEN not in m for m in records.messages)
    assert secrets.backend_info()["plaintext"] is True


def test_chain_skips_plaintext_member_and_uses_the_secure_one() -> None:
    plain, vault = PlaintextKeyring(), VaultKeyring()
    keyring.set_keyring(TwoBackends([plain, vault]))
    assert secrets.set_secret("home", "token", TOKEN) == "keyring (VaultKeyring)"
    assert plain.items == {}
    assert vault.items == {("clawd", "home:token"): TOKEN}
    assert secrets.get_secret(profile()).value == TOKEN
    info = secrets.backend_info()
    assert info["usable"] and info["label"] == "VaultKeyring"
    assert [m["usable"] for m in info["chain"]] == [False, True]


def test_chain_of_only_plaintext_is_refused() -> None:
    keyring.set_keyring(TwoBackends([PlaintextKeyring()]))
    with pytest.raises(NoKeyringBackend, match="plaintext"):
        secrets.set_secret("home", "token", TOKEN)


def test_fail_backend_class_is_what_keyring_reports_headless() -> None:
    # The premise of the "no backend" tests: our isolation really is keyring's fail backend.
    assert isinstance(keyring.get_keyring(), fail.Keyring)


# --- input checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "   ", "two\nlines", "nul\x00byte", "x" * 2000])
def test_bad_secret_values_refused(value: str) -> None:
    keyring.set_keyring(VaultKeyring())
    with pytest.raises(UserError) as exc:
        secrets.set_secret("home", "token", value)
    if value.strip():
        assert value not in str(exc.value)


@pytest.mark.parametrize(("name", "kind"), [("bad name", "token"), ("-x", "token"), ("ok", "apikey")])
def test_bad_names_and_kinds_refused(name: str, kind: str) -> None:
    keyring.set_keyring(VaultKeyring())
    with pytest.raises(UserError):
        secrets.set_secret(name, kind, TOKEN)
