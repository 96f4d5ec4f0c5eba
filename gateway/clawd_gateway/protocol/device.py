"""Ed25519 device identity: the signed connect payload, both directions.

A device proves possession of its key by signing the challenge nonce together with the
parameters it connects with, so a captured signature cannot be replayed on another socket
or with wider scopes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .constants import DEVICE_SIGNATURE_SKEW_MS, DetailCode
from .frames import ConnectParams

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# cryptography is imported where a signature is made or checked, not at module import: most
# connects carry no device block, and `clawd-gateway run` reaches /readyz ~12 ms sooner.


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def device_id_for(raw_public_key: bytes) -> str:
    return hashlib.sha256(raw_public_key).hexdigest()


def _norm(value: str | None) -> str:
    """Trim and lower ASCII letters only, as the reference implementation does."""
    if not value:
        return ""
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in value.strip())


def signed_payload(
    version: int,
    *,
    device_id: str,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: list[str] | tuple[str, ...],
    signed_at: int,
    token: str,
    nonce: str,
    platform: str | None = None,
    device_family: str | None = None,
) -> bytes:
    parts = [
        f"v{version}",
        device_id,
        client_id,
        client_mode,
        role,
        ",".join(scopes),
        str(signed_at),
        token,
        nonce,
    ]
    if version >= 3:
        parts += [_norm(platform), _norm(device_family)]
    return "|".join(parts).encode("utf-8")


def _token_for_signature(auth: dict[str, str]) -> str:
    for key in ("token", "deviceToken", "bootstrapToken"):
        if auth.get(key):
            return auth[key]
    return ""


@dataclass(frozen=True)
class DeviceRejection:
    detail_code: str
    message: str


def verify_device(params: ConnectParams, nonce: str, now_ms: int) -> DeviceRejection | None:
    """Check a connect's device block; None means the signature is good."""
    dev = params.device
    if dev is None:
        return None
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = b64url_decode(dev.public_key)
        if len(raw) != 32:
            raise ValueError("wrong length")
        key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return DeviceRejection(DetailCode.DEVICE_AUTH_PUBLIC_KEY_INVALID, "device public key invalid")
    if device_id_for(raw) != dev.id.lower():
        return DeviceRejection(DetailCode.DEVICE_AUTH_DEVICE_ID_MISMATCH, "device id mismatch")
    if abs(now_ms - dev.signed_at) > DEVICE_SIGNATURE_SKEW_MS:
        return DeviceRejection(DetailCode.DEVICE_AUTH_SIGNATURE_EXPIRED, "device signature expired")
    if not dev.nonce:
        return DeviceRejection(DetailCode.DEVICE_AUTH_NONCE_REQUIRED, "device nonce required")
    if dev.nonce != nonce:
        return DeviceRejection(DetailCode.DEVICE_AUTH_NONCE_MISMATCH, "device nonce mismatch")
    try:
        signature = b64url_decode(dev.signature)
    except ValueError:
        return DeviceRejection(DetailCode.DEVICE_AUTH_SIGNATURE_INVALID, "device signature invalid")
    common: dict[str, Any] = {
        "device_id": dev.id,
        "client_id": params.client.id,
        "client_mode": params.client.mode,
        "role": params.role,
        "scopes": params.scopes,
        "signed_at": dev.signed_at,
        "token": _token_for_signature(params.auth),
        "nonce": dev.nonce,
        "platform": params.client.platform,
        "device_family": params.client.device_family,
    }
    for version in (3, 2):
        try:
            key.verify(signature, signed_payload(version, **common))
            return None
        except InvalidSignature:
            continue
    return DeviceRejection(DetailCode.DEVICE_AUTH_SIGNATURE_INVALID, "device signature invalid")


class DeviceKey:
    """A client-side Ed25519 identity that signs connect requests (v3 payload)."""

    def __init__(self, private_key: Ed25519PrivateKey | None = None) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._key = private_key or Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = b64url(raw)
        self.device_id = device_id_for(raw)

    def sign_connect(self, nonce: str, signed_at: int, params: dict[str, Any]) -> dict[str, Any]:
        client = params.get("client", {})
        payload = signed_payload(
            3,
            device_id=self.device_id,
            client_id=client.get("id", ""),
            client_mode=client.get("mode", ""),
            role=params.get("role", "operator"),
            scopes=params.get("scopes", []),
            signed_at=signed_at,
            token=_token_for_signature(params.get("auth", {})),
            nonce=nonce,
            platform=client.get("platform"),
            device_family=client.get("deviceFamily"),
        )
        return {
            "id": self.device_id,
            "publicKey": self.public_key,
            "signature": b64url(self._key.sign(payload)),
            "signedAt": signed_at,
            "nonce": nonce,
        }
