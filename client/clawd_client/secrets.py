"""Gateway secrets (token or password) per profile, kept in the OS keyring and nowhere else.

Why the keyring: the profile file is plain JSON that people copy, back up and paste into bug
reports, so it must never hold a secret. The keyring library reaches the platform's encrypted
store (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows).

Why so strict about backends: keyring silently degrades to `fail.Keyring` on headless Linux,
and with `keyrings.alt` installed it silently picks a *plaintext* file. Both are refused here
with a message that names what was found and how to fix it; plaintext only with an explicit
`CLAWD_ALLOW_PLAINTEXT_KEYRING=1`, and then with a warning.

Environment overrides (`OPENCLAW_GATEWAY_TOKEN` / `_PASSWORD`, and the seeds'
`CLAWDBOT_GATEWAY_*`) win over the keyring, as in OpenClaw, and need no keyring at all, which
is what headless CI and one-off shells want. Which variable wins among them is
`clawd_gateway.secret_sources`' order (OPENCLAW_* before CLAWDBOT_*), the one the gateway uses.

Secret values never reach logs, argv, exception messages or the profile file.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends.chainer import ChainerBackend

from clawd_gateway.errors import UserError
from clawd_gateway.secret import Secret
from clawd_gateway.secret_sources import env_vars, from_env, secret_from_env

from .profiles import AUTH_MODES, Profile

SERVICE = "clawd"
KINDS: tuple[str, ...] = AUTH_MODES  # ("token", "password")
ALLOW_PLAINTEXT_ENV = "CLAWD_ALLOW_PLAINTEXT_KEYRING"
MAX_SECRET_CHARS = 1024  # Windows Credential Manager caps a blob at 2560 bytes (~1280 UTF-16 chars)

# Most specific first (OpenClaw's names, then the seeds'): derived, so it cannot drift.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {kind: env_vars(kind) for kind in KINDS}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PLAINTEXT_MARKERS = ("alt.file", "plaintext")

log = logging.getLogger("clawd.secrets")

LINUX_FIX = (
    "Linux: install and unlock a Secret Service provider (gnome-keyring or KWallet; in a desktop "
    "session it is unlocked at login), make sure a D-Bus session bus is running "
    "(DBUS_SESSION_BUS_ADDRESS is set) and `pip install secretstorage`; on a headless box: "
    'dbus-run-session -- sh -c \'printf %s "$PASS" | gnome-keyring-daemon --unlock '
    "--components=secrets; clawd ...'"
)
MACOS_FIX = "macOS: the login Keychain is normally always there; unlock it (Keychain Access) and retry"
WINDOWS_FIX = (
    "Windows: Credential Manager is built in; `pip install pywin32-ctypes` if keyring cannot load it"
)
ENV_FIX = "or skip the keyring: export OPENCLAW_GATEWAY_TOKEN (or OPENCLAW_GATEWAY_PASSWORD) for this shell"


_FIX_SEPARATOR = "\n       "  # one platform per line, aligned under UserError.render()'s "  fix: "


class NoKeyringBackend(UserError):
    """No usable keyring backend: the message says which one was found and how to get a real one."""


class KeyringUnavailable(UserError):
    """The backend exists but failed (locked collection, D-Bus error, ...): clear words, no traceback."""


def _platform_fix() -> str:
    if sys.platform == "darwin":
        return MACOS_FIX
    if sys.platform.startswith("win"):
        return WINDOWS_FIX
    return LINUX_FIX


def _all_fixes() -> str:
    first = _platform_fix()
    others = [f for f in (LINUX_FIX, MACOS_FIX, WINDOWS_FIX) if f != first]
    return _FIX_SEPARATOR.join([first, *others, ENV_FIX])


# --- backend classification ---------------------------------------------------------------------


def backend_id(backend: KeyringBackend) -> str:
    """Fully qualified class name, e.g. `keyring.backends.SecretService.Keyring`."""
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def backend_label(backend: KeyringBackend) -> str:
    """A short human name for messages: `SecretService`, `macOS`, `Windows`, `PlaintextKeyring`."""
    cls = type(backend)
    module_last = cls.__module__.rsplit(".", 1)[-1]
    if cls.__name__ in ("Keyring", "WinVaultKeyring"):
        return module_last
    if cls.__name__.startswith("DBusKeyring"):
        return "KWallet"
    return cls.__name__


def is_plaintext(backend: KeyringBackend) -> bool:
    """keyrings.alt's file backends (and anything calling itself plaintext) store secrets readably."""
    ident = backend_id(backend).lower()
    return any(marker in ident for marker in _PLAINTEXT_MARKERS)


def _priority(backend: KeyringBackend) -> tuple[float | None, str | None]:
    try:
        return float(type(backend).priority), None
    except Exception as exc:  # keyring signals "not viable" by raising from the priority property
        return None, f"{type(exc).__name__}: {exc}"


def _plaintext_allowed(env: Mapping[str, str]) -> bool:
    return env.get(ALLOW_PLAINTEXT_ENV, "").strip().lower() in ("1", "true", "yes")


def _classify(backend: KeyringBackend, env: Mapping[str, str]) -> tuple[bool, str]:
    """(usable, why) for one concrete backend."""
    ident = backend_id(backend)
    if ident == "keyring.backends.fail.Keyring":
        return False, "keyring found no recommended backend (keyring.backends.fail.Keyring)"
    if ident == "keyring.backends.null.Keyring":
        return False, "the keyring is disabled (keyring.backends.null.Keyring stores nothing)"
    if is_plaintext(backend):
        if _plaintext_allowed(env):
            return (
                True,
                f"plaintext file backend allowed by {ALLOW_PLAINTEXT_ENV}=1 (secrets are NOT encrypted)",
            )
        return False, (
            f"{ident} stores secrets in a plaintext file; clawd refuses it unless {ALLOW_PLAINTEXT_ENV}=1"
        )
    priority, problem = _priority(backend)
    if problem:
        return False, f"{ident} is not viable here ({problem})"
    if priority is not None and priority <= 0:
        return False, f"{ident} has priority {priority:g} (not a recommended backend)"
    return True, f"{ident} is available"


def _members(backend: KeyringBackend) -> list[KeyringBackend]:
    """The concrete backends behind keyring's ChainerBackend, or the backend itself."""
    if isinstance(backend, ChainerBackend):
        return list(backend.backends)
    return [backend]


def _platform_probe() -> str | None:
    """Why the platform's own backend is not viable, for the error message (None if it is)."""
    try:
        if sys.platform == "darwin":
            from keyring.backends import macOS

            cls: Any = macOS.Keyring
        elif sys.platform.startswith("win"):
            from keyring.backends import Windows

            cls = Windows.WinVaultKeyring
        else:
            from keyring.backends import SecretService

            cls = SecretService.Keyring
        cls.priority  # noqa: B018 - raises when the backend is not viable, with the reason
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _current_keyring(env: Mapping[str, str]) -> KeyringBackend:
    try:
        return keyring.get_keyring()
    except Exception as exc:  # a bad PYTHON_KEYRING_BACKEND / keyringrc.cfg raises while loading
        chosen = env.get("PYTHON_KEYRING_BACKEND")
        where = f"PYTHON_KEYRING_BACKEND={chosen}" if chosen else "the keyring configuration (keyringrc.cfg)"
        raise NoKeyringBackend(
            f"the OS keyring could not be loaded from {where}: {type(exc).__name__}: {exc}",
            fix=(
                "unset PYTHON_KEYRING_BACKEND or point it at a real backend" + _FIX_SEPARATOR
                if chosen
                else ""
            )
            + _all_fixes(),
        ) from None


def backend_info(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Which keyring backend clawd would use, its priority, whether it is usable and why.

    Safe to call anywhere (never raises): `clawd profile list` and `doctor` show it.
    """
    env = os.environ if env is None else env
    try:
        found = _current_keyring(env)
    except NoKeyringBackend as exc:
        return {
            "backend": None,
            "label": None,
            "priority": None,
            "usable": False,
            "plaintext": False,
            "reason": str(exc),
            "chain": [],
        }
    chain = []
    chosen: KeyringBackend | None = None
    chosen_reason = ""
    for member in _members(found):
        usable, why = _classify(member, env)
        priority, _ = _priority(member)
        chain.append({"backend": backend_id(member), "priority": priority, "usable": usable, "reason": why})
        if usable and chosen is None:
            chosen, chosen_reason = member, why
    if chosen is None:
        reasons = "; ".join(str(entry["reason"]) for entry in chain) or "keyring offered no backend"
        probe = _platform_probe()
        if probe and backend_id(found) != "keyring.backends.null.Keyring":
            reasons += f"; the platform backend says: {probe}"
        top = _members(found)[0] if _members(found) else found
        priority, _ = _priority(top)
        return {
            "backend": backend_id(top),
            "label": backend_label(top),
            "priority": priority,
            "usable": False,
            "plaintext": is_plaintext(top),
            "reason": reasons,
            "chain": chain,
        }
    priority, _ = _priority(chosen)
    return {
        "backend": backend_id(chosen),
        "label": backend_label(chosen),
        "priority": priority,
        "usable": True,
        "plaintext": is_plaintext(chosen),
        "reason": chosen_reason,
        "chain": chain,
    }


def usable_backend(env: Mapping[str, str] | None = None) -> KeyringBackend:
    """The concrete backend to talk to, or NoKeyringBackend saying what was found and how to fix it.

    Members of keyring's chainer are used directly so a plaintext file further down the chain
    can never receive a secret behind our back.
    """
    env = os.environ if env is None else env
    found = _current_keyring(env)
    reasons: list[str] = []
    for member in _members(found):
        usable, why = _classify(member, env)
        if usable:
            if is_plaintext(member):
                log.warning(
                    "using the plaintext keyring %s because %s=1: gateway secrets are stored unencrypted",
                    backend_id(member),
                    ALLOW_PLAINTEXT_ENV,
                )
            return member
        reasons.append(why)
    members = _members(found)
    if any(is_plaintext(m) for m in members):
        raise NoKeyringBackend(
            "no secure keyring backend: " + "; ".join(reasons),
            fix=(
                "set up a real keyring — "
                + _platform_fix()
                + _FIX_SEPARATOR
                + f"or, knowingly accepting an unencrypted file, export {ALLOW_PLAINTEXT_ENV}=1"
                + _FIX_SEPARATOR
                + ENV_FIX
            ),
        )
    message = "no usable OS keyring to store gateway secrets in: " + (
        "; ".join(reasons) or f"keyring offered {backend_id(found)} and nothing else"
    )
    probe = _platform_probe()
    if probe and backend_id(found) != "keyring.backends.null.Keyring":
        message += f" (the platform backend says: {probe})"
    raise NoKeyringBackend(message, fix=_all_fixes())


def _keyring_failure(exc: Exception, backend: KeyringBackend, action: str) -> UserError:
    """Turn a backend exception into a UserError; the exception text never contains the secret."""
    label = backend_label(backend)
    if isinstance(exc, keyring.errors.KeyringLocked):
        return KeyringUnavailable(
            f"the keyring ({label}) is locked, so clawd could not {action}",
            fix=(
                "unlock it (log in to the desktop session, or on a headless box run gnome-keyring-daemon "
                "--unlock with the keyring password on stdin), then retry" + _FIX_SEPARATOR + ENV_FIX
            ),
        )
    if isinstance(exc, keyring.errors.NoKeyringError):
        return NoKeyringBackend(f"no usable OS keyring ({backend_id(backend)}): {exc}", fix=_all_fixes())
    detail = str(exc).strip() or type(exc).__name__
    return KeyringUnavailable(
        f"the keyring ({label}) failed to {action}: {type(exc).__name__}: {detail}",
        fix=_platform_fix() + _FIX_SEPARATOR + ENV_FIX,
    )


def _username(name: str, kind: str) -> str:
    if not _NAME.match(name):
        raise UserError(f"{name!r} is not a valid profile name (letters, digits, . _ -; up to 64)")
    if kind not in KINDS:
        raise UserError(f"secret kind {kind!r} is not one of {', '.join(KINDS)}")
    return f"{name}:{kind}"


# --- the API ------------------------------------------------------------------------------------


def env_override(kind: str, env: Mapping[str, str] | None = None) -> Secret | None:
    """The environment's secret for this auth kind, if any (empty values count as unset)."""
    if kind not in ENV_OVERRIDES:
        return None
    return from_env(kind, os.environ if env is None else env)


def stored_secret(name: str, kind: str, env: Mapping[str, str] | None = None) -> Secret | None:
    """Only the keyring's copy (no env override): for `profile list` and `secret set` notes."""
    username = _username(name, kind)
    backend = usable_backend(env)
    try:
        value = backend.get_password(SERVICE, username)
    except Exception as exc:  # backends raise KeyringError, D-Bus and OS errors alike
        raise _keyring_failure(exc, backend, f"read the {kind} of profile {name!r}") from None
    if not value:
        return None
    return Secret(value, f"keyring ({backend_label(backend)})")


def get_secret(profile: Profile, env: Mapping[str, str] | None = None) -> Secret | None:
    """The secret for the profile's auth kind: environment override first, then the keyring.

    None when neither has one; NoKeyringBackend when the keyring would be needed but none is usable.
    """
    override = env_override(profile.auth, env)
    if override is not None:
        return override
    return stored_secret(profile.name, profile.auth, env)


def set_secret(name: str, kind: str, value: str, env: Mapping[str, str] | None = None) -> str:
    """Store a secret; returns where it went (e.g. "keyring (SecretService)") for the user."""
    username = _username(name, kind)
    if not value or not value.strip():
        raise UserError(f"refusing to store an empty {kind} for profile {name!r}")
    if len(value) > MAX_SECRET_CHARS:
        raise UserError(
            f"the {kind} for profile {name!r} is {len(value)} characters; the limit is {MAX_SECRET_CHARS}",
            fix="a gateway token is normally 32-64 characters: check what was pasted",
        )
    if any(c in value for c in "\r\n\x00"):
        raise UserError(
            f"the {kind} for profile {name!r} contains a line break or NUL character",
            fix="paste the secret on a single line",
        )
    backend = usable_backend(env)
    try:
        backend.set_password(SERVICE, username, value)
    except Exception as exc:
        raise _keyring_failure(exc, backend, f"store the {kind} of profile {name!r}") from None
    return f"keyring ({backend_label(backend)})"


def clear_secret(name: str, kind: str | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """Delete the profile's stored secret(s) (both kinds when kind is None); returns the kinds removed."""
    kinds = KINDS if kind is None else (kind,)
    usernames = [(k, _username(name, k)) for k in kinds]
    backend = usable_backend(env)
    removed: list[str] = []
    for k, username in usernames:
        try:
            if backend.get_password(SERVICE, username) is None:
                continue
            backend.delete_password(SERVICE, username)
        except keyring.errors.PasswordDeleteError:
            continue  # raced with another delete: already gone is what we wanted
        except Exception as exc:
            raise _keyring_failure(exc, backend, f"delete the {k} of profile {name!r}") from None
        removed.append(k)
    return removed


__all__ = [
    "ALLOW_PLAINTEXT_ENV",
    "ENV_OVERRIDES",
    "KINDS",
    "SERVICE",
    "KeyringUnavailable",
    "NoKeyringBackend",
    "backend_info",
    "backend_label",
    "clear_secret",
    "env_override",
    "get_secret",
    "is_plaintext",
    "secret_from_env",
    "set_secret",
    "stored_secret",
    "usable_backend",
]
