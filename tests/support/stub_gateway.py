"""A stand-in gateway for setup-remote tests that only need *something* at the remote port:
stdlib only, so it runs under the VPS account's system Python (its source is passed with -c).

It answers what clawd asks of a gateway and nothing more: `GET /health` (discovery) and, on a
WebSocket upgrade, the protocol's handshake (challenge -> connect with the token from
OPENCLAW_GATEWAY_TOKEN -> hello-ok) and `health`. Without the handshake, `clawd up` would wait
its full 30 s for a healthy tunnel on every run against it. The real gateways are tested
elsewhere (the OpenClaw one through setup-remote itself)."""

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import threading

TOKEN = os.environ.get("OPENCLAW_GATEWAY_TOKEN", "")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        chunk = c.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def send_json(c, obj):
    data = json.dumps(obj).encode()
    n = len(data)
    head = bytes([0x81, n]) if n < 126 else bytes([0x81, 126]) + struct.pack("!H", n)
    c.sendall(head + data)


def read_frame(c):
    b0, b1 = recv_exact(c, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(c, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(c, 8))[0]
    mask = recv_exact(c, 4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(recv_exact(c, n)))
    return b0 & 0x0F, data


def websocket(c, head):
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()  # noqa: S324 - RFC 6455
    c.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )
    send_json(c, {"type": "event", "event": "connect.challenge", "payload": {"nonce": "stub", "ts": 0}})
    while True:
        op, data = read_frame(c)
        if op == 0x8:
            c.sendall(b"\x88\x02\x03\xe8")
            return
        if op != 0x1:
            continue
        req = json.loads(data)
        if req.get("method") == "connect":
            offered = ((req.get("params") or {}).get("auth") or {}).get("token")
            if offered != TOKEN:
                err = {"code": "INVALID_REQUEST", "message": "unauthorized: token mismatch"}
                send_json(c, {"type": "res", "id": req["id"], "ok": False, "error": err})
                return
            hello = {
                "type": "hello-ok",
                "protocol": 3,
                "server": {"version": "stub", "connId": "stub"},
                "features": {"methods": ["health"], "events": []},
                "snapshot": {},
                "policy": {"maxPayload": 1048576, "maxBufferedBytes": 1048576, "tickIntervalMs": 30000},
            }
            send_json(c, {"type": "res", "id": req["id"], "ok": True, "payload": hello})
        else:
            send_json(c, {"type": "res", "id": req.get("id"), "ok": True, "payload": {"ok": True}})


def serve(c):
    with c:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = c.recv(4096)
                if not chunk:
                    return
                head += chunk
            if b"upgrade: websocket" in head.lower():
                websocket(c, head)
            else:  # one write: the discovery probe reads the answer with a single read
                c.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}')
        except (ConnectionError, OSError, ValueError):
            pass


def main():
    server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    while True:
        c, _ = server.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


main()
