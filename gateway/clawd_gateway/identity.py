"""The gateway's own Ed25519 identity, for `gateway.identity.get`; created once, kept 0600."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from .paths import atomic_write
from .protocol.device import b64url, device_id_for

IDENTITY_FILE = "identity.json"


def load_or_create_identity(state_dir: Path) -> dict[str, str]:
    path = state_dir / IDENTITY_FILE
    key: Ed25519PrivateKey | None = None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        loaded = load_pem_private_key(data["privateKeyPem"].encode("ascii"), password=None)
        if isinstance(loaded, Ed25519PrivateKey):
            key = loaded
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        key = None
    if key is None:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode("ascii")
        atomic_write(path, json.dumps({"version": 1, "privateKeyPem": pem}) + "\n")
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"deviceId": device_id_for(raw), "publicKey": b64url(raw)}
