"""Pure pieces: rate limiter, device signatures, secrets, frame helpers."""

from __future__ import annotations

from clawd_gateway.protocol.device import DeviceKey, signed_payload, verify_device
from clawd_gateway.protocol.frames import close_reason, negotiate_protocol, parse_connect_params
from clawd_gateway.ratelimit import AuthRateLimiter
from clawd_gateway.secret import Secret


def test_rate_limiter_window_lockout_and_reset():
    rl = AuthRateLimiter(max_attempts=3, window_s=10, lockout_s=5)
    assert rl.record_failure("a", 0) is None
    assert rl.record_failure("a", 1) is None
    assert rl.retry_after("a", 1) is None
    assert rl.record_failure("a", 2) == 5
    assert rl.retry_after("a", 3) == 4
    assert rl.retry_after("a", 7.5) is None  # finite lockout
    assert rl.retry_after("b", 3) is None  # per address
    rl.record_failure("c", 0)
    rl.record_failure("c", 20)  # the first failure fell out of the window
    assert rl.record_failure("c", 21) is None
    rl.reset("c")
    assert rl.retry_after("c", 21) is None and len(rl) == 1


def test_negotiation():
    assert negotiate_protocol(3, 4) == 4
    assert negotiate_protocol(1, 3) == 3
    assert negotiate_protocol(4, 9) == 4
    assert negotiate_protocol(5, 6) is None


def test_close_reason_budget():
    assert close_reason("short") == "short"
    assert len(close_reason("x" * 500).encode()) == 120


def test_secret_compare_and_mask():
    s = Secret("correct-token-value", "test")
    assert s.matches("correct-token-value") and not s.matches("correct-token-valuX") and not s.matches("")
    assert "correct" not in repr(s) and "correct" not in str(s)


def _params(device, scopes=("operator.read",)):
    return parse_connect_params(
        {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {
                "id": "cli",
                "version": "1",
                "platform": "Linux",
                "mode": "cli",
                "deviceFamily": "Mac",
            },
            "role": "operator",
            "scopes": list(scopes),
            "auth": {"token": "T"},
            "device": device,
        }
    )


def test_device_v3_and_v2_signatures():
    key = DeviceKey()
    raw = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "role": "operator",
        "scopes": ["operator.read"],
        "auth": {"token": "T"},
        "client": {"id": "cli", "version": "1", "platform": "Linux", "mode": "cli", "deviceFamily": "Mac"},
    }
    dev = key.sign_connect("nonce-1", 1000, raw)
    assert verify_device(_params(dev), "nonce-1", 1000) is None
    assert verify_device(_params(dev), "nonce-2", 1000).detail_code == "DEVICE_AUTH_NONCE_MISMATCH"
    assert (
        verify_device(_params(dev), "nonce-1", 1000 + 3 * 60_000).detail_code
        == "DEVICE_AUTH_SIGNATURE_EXPIRED"
    )
    assert (
        verify_device(_params(dev, ("operator.admin",)), "nonce-1", 1000).detail_code
        == "DEVICE_AUTH_SIGNATURE_INVALID"
    )
    # A v2 signature (no platform/family) from an older client is still accepted.
    v2 = signed_payload(
        2,
        device_id=key.device_id,
        client_id="cli",
        client_mode="cli",
        role="operator",
        scopes=["operator.read"],
        signed_at=1000,
        token="T",
        nonce="nonce-1",
    )
    from clawd_gateway.protocol.device import b64url

    dev2 = dict(dev, signature=b64url(key._key.sign(v2)))
    assert verify_device(_params(dev2), "nonce-1", 1000) is None
    bad_key = dict(dev, publicKey="AAAA")
    assert verify_device(_params(bad_key), "nonce-1", 1000).detail_code == "DEVICE_AUTH_PUBLIC_KEY_INVALID"
