#!/usr/bin/env python3
"""clawd's SSH tunnel vs OpenSSH `ssh -N -L`, side by side, in one run (loopback only).

    python bench/tunnel_bench.py [--mib 256] [--runs 7] [--rtt-count 2000] [--skip-tuned]

One real OpenSSH sshd (tests/support/sshd.py, cipher forced to aes128-gcm@openssh.com on the
server, and on the `ssh` client with -c), one sink/echo server process, one load-generator process,
one clawd-gateway process. Measured:
  (1) bulk throughput, 256 MiB per run, upload (sender -> forward -> sink) and download
      (source -> forward -> reader), through: the clawd forward (`open_tunnel` in its own
      process), the same with the prototype patches of this file ("clawd tuned", see TUNINGS:
      asyncssh monkeypatched in that process only), `ssh -N -L`, and direct TCP; MB/s medians
      over --runs (interleaved) and the CPU of the forwarding process per GiB;
  (2) round trip of a 64-byte echo, --rtt-count times through each (4 interleaved rounds, one
      connection per round, each echo checked byte for byte);
  (3) start to healthy: `clawd connect` as a process (profile in a temp CLAWD_CONFIG_DIR, token in a
      private Secret Service) until it prints `healthy`, vs `ssh -f -N -L` followed by an
      authenticated `health` call; also the in-process Supervisor alone;
  (4) detection of a silent drop (a frozen relay in front of sshd; keepalive 1 s x 3 on both sides):
      time until the supervisor leaves `healthy`, and until `ssh` (ServerAliveInterval=1,
      ServerAliveCountMax=3) exits;
  (5) reconnect: sshd stopped and its sessions killed, down for --downtime s, started again; time
      from sshd's readiness ("Server listening") to `healthy`, for the stock supervisor and with a
      prototype reachability poll (TCP connect to the SSH port during backoff);
  (6) idle CPU over --idle-seconds of the clawd agent holding the tunnel and of an `ssh -f -N -L`.

Everything listens on 127.0.0.1 only; every process started here is stopped in a finally block.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import asyncssh  # noqa: E402
import psutil  # noqa: E402
from tests.support.keyring_session import secret_service_session  # noqa: E402
from tests.support.relay import relay as relay_ctx  # noqa: E402
from tests.support.sshd import SSHD, SshdServer  # noqa: E402
from tests.support.supervisor import Watched, supervised  # noqa: E402

from clawd_client.engine import machine as m  # noqa: E402
from clawd_client.engine.runner import Supervisor  # noqa: E402
from clawd_client.profiles import Profile, ProfileStore, SshTarget  # noqa: E402
from clawd_gateway.client import open_session  # noqa: E402

CIPHER = "aes128-gcm@openssh.com"
TOKEN = "bench-token-0123456789abcdef0123456789"
HOST = "127.0.0.1"
BLOCK = 1 << 20
TARGET_THROUGHPUT_X = 0.8
TARGET_RTT_X = 1.2
TARGET_CPU_X = 1.3  # forwarder CPU per GiB vs OpenSSH's
TARGET_DETECT_S = 4.0
TARGET_RECONNECT_S = 0.5
TARGET_IDLE_CPU_PCT = 1.0  # "~0": below 1 % of one core
KEEPALIVE_S = 1.0
KEEPALIVE_COUNT = 3
REACHABILITY_POLL_S = 0.2  # the prototype's TCP-connect poll of the SSH port during backoff
RTT_ROUNDS = 4
# The forwarder columns. All but "ssh" and "direct" run the same clawd forwarder (the agent's data
# path, unchanged code) in its own process: "patched" with a patched copy of asyncssh first on its
# sys.path (--asyncssh-patch), "uvloop" on uvloop's event loop, "patched-uvloop" both, "tuned"
# with the monkeypatch prototypes of TUNINGS (--tune).
FORWARDER_COLUMNS = ("clawd", "patched", "uvloop", "patched-uvloop", "tuned")
COLUMNS = (*FORWARDER_COLUMNS, "ssh", "direct")
DEFAULT_COLUMNS = ("clawd", "patched", "uvloop", "ssh", "direct")
COLUMN_LABELS = {
    "clawd": "clawd",
    "patched": "clawd+patched asyncssh",
    "uvloop": "clawd uvloop",
    "patched-uvloop": "clawd+patched, uvloop",
    "tuned": "clawd tuned*",
    "ssh": "OpenSSH ssh -L",
    "direct": "direct TCP",
}
COLUMN_SHORT = {
    "clawd": "clawd",
    "patched": "patched",
    "uvloop": "uvloop",
    "patched-uvloop": "patched+uv",
    "tuned": "tuned",
}
ASYNCSSH_PATCH_VERSION = "2.24.1"  # the asyncssh release the bench/*.patch files are made against
DATAPATH_PATCH = Path(__file__).resolve().parent / "asyncssh-2.24.1-datapath.patch"


# -- small utilities ------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {port} not open after {timeout:g}s")
        time.sleep(0.002)


def cpu_s(pid: int) -> float:
    """CPU seconds of one process (0 when it is gone): the run time of its threads from
    /proc/PID/task/*/schedstat (ns resolution; cpu_times() counts 10 ms ticks, which is 0.16 s/GiB
    for a 64 MiB run), else user+system from psutil."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    total = 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread just ended
    if total:
        return total / 1e9
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def pids_cpu(pids: list[int]) -> float:
    return sum(cpu_s(p) for p in pids)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for child processes: no agent, no user config, no stray gateway secrets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENCLAW_", "CLAWDBOT_", "CLAWD_", "SSH_AUTH_SOCK", "SSH_AGENT"))
    }
    env.update({"HOME": str(home), "PYTHONUNBUFFERED": "1", **extra})
    return env


def stop_popen(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    """SIGTERM by pid, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


def stop_pid(pid: int, grace: float = 5.0) -> None:
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(grace)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    except psutil.Error:
        pass


# -- work done in helper processes (spawned; module-level so they can be pickled) -----------------
#
# One protocol for the server side: the client sends a 9-byte header, mode + size (big endian):
#   U: sink. Read until EOF, answer the byte count (8 bytes).
#   D: source. Send `size` bytes, then close.
#   E: echo until EOF.


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _send_bytes(sock: socket.socket, size: int, block: bytes) -> None:
    view = memoryview(block)
    left = size
    while left > 0:
        n = min(left, len(block))
        sock.sendall(view[:n])
        left -= n


def _serve_one(sock: socket.socket, block: bytes) -> None:
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            header = _recv_exact(sock, 9)
        except (ConnectionError, OSError):
            return  # a readiness check: connected and closed
        mode, size = header[:1], int.from_bytes(header[1:], "big")
        if mode == b"U":
            buf = memoryview(bytearray(BLOCK))
            total = 0
            while n := sock.recv_into(buf):
                total += n
            sock.sendall(total.to_bytes(8, "big"))
        elif mode == b"D":
            _send_bytes(sock, size, block)
        elif mode == b"E":
            while data := sock.recv(65536):
                sock.sendall(data)


def _serve_forever(listener: socket.socket, block: bytes) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve_one, args=(sock, block), daemon=True).start()


def work_serve() -> dict[str, Any]:
    """Start the sink/source/echo server in this (worker) process; it serves from daemon threads."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(64)
    block = os.urandom(BLOCK)
    threading.Thread(target=_serve_forever, args=(listener, block), daemon=True).start()
    return {"port": listener.getsockname()[1]}


def work_bulk(port: int, size: int, direction: str) -> dict[str, Any]:
    block = os.urandom(BLOCK)
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=120) as s:
        if direction == "up":
            s.sendall(b"U" + size.to_bytes(8, "big"))
            _send_bytes(s, size, block)
            s.shutdown(socket.SHUT_WR)
            got = int.from_bytes(_recv_exact(s, 8), "big")
        else:
            s.sendall(b"D" + size.to_bytes(8, "big"))
            buf = memoryview(bytearray(BLOCK))
            got = 0
            while n := s.recv_into(buf):
                got += n
    seconds = time.perf_counter() - t0
    if got != size:
        raise RuntimeError(f"{direction}: {got} of {size} bytes arrived")
    return {"seconds": seconds, "bytes": got}


def work_rtt(port: int, count: int, size: int, warmup: int = 50) -> dict[str, Any]:
    payload = os.urandom(size)
    samples: list[float] = []
    with socket.create_connection((HOST, port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"E" + size.to_bytes(8, "big"))
        for i in range(warmup + count):
            t0 = time.perf_counter()
            s.sendall(payload)
            echoed = _recv_exact(s, size)
            if echoed != payload:
                raise RuntimeError("echo came back different")
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    return {
        "p50_us": pct(samples, 50) * 1e6,
        "p99_us": pct(samples, 99) * 1e6,
        "mean_us": statistics.fmean(samples) * 1e6,
        "samples_us": [x * 1e6 for x in samples],
    }


WORK: dict[str, Callable[..., dict[str, Any]]] = {"serve": work_serve, "bulk": work_bulk, "rtt": work_rtt}


def _worker_main(conn: Connection) -> None:
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        name, kwargs = msg
        try:
            conn.send(("ok", WORK[name](**kwargs)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Worker:
    """A spawned helper process that runs WORK functions on request."""

    def __init__(self, name: str) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name=name)
        self.proc.start()
        self.name = name

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def call(self, name: str, timeout: float = 300.0, **kwargs: Any) -> dict[str, Any]:
        self._conn.send((name, kwargs))
        deadline = time.monotonic() + timeout
        while not self._conn.poll(0.2):
            if not self.proc.is_alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.exitcode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {name} took more than {timeout:g}s")
        kind, payload = self._conn.recv()
        if kind != "ok":
            raise RuntimeError(f"{self.name}: {name}: {payload}")
        return dict(payload)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(None)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# -- the prototype tuning ("clawd tuned") ---------------------------------------------------------
#
# Each entry patches asyncssh or the engine *inside the forwarder process only*; nothing in
# client/ is changed. The report names the entries applied; bench/README.md gives the numbers.


def _tune_no_pktlog() -> None:
    """asyncssh formats a log line for every packet sent/received (f-strings, plural(), a logger
    call) even when packet logging is off; skip it unless debug level >= 3."""
    from asyncssh.logging import SSHLogger
    from asyncssh.packet import SSHPacketLogger

    orig = SSHPacketLogger._log_packet

    def _log_packet(self: Any, msg: str, pkttype: int, pktid: Any, packet: Any, note: str) -> None:
        if SSHLogger._debug_level >= 3:
            orig(self, msg, pkttype, pktid, packet, note)

    SSHPacketLogger._log_packet = _log_packet  # type: ignore[method-assign]


def _cached_aead(cipher: Any) -> Any:
    """One AESGCM per key, kept on asyncssh's GCMCipher (asyncssh builds one per packet)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = cipher.__dict__.get("_bench_aead")
    if aead is None:
        aead = cipher.__dict__["_bench_aead"] = AESGCM(cipher._key)
    return aead


def _tune_gcm() -> None:
    """AES-GCM without per-packet key setup and with fewer copies: one AESGCM object per key
    (asyncssh builds a new one per packet), ciphertext+tag returned as one buffer (asyncssh slices
    it apart and joins it again), one join instead of two on decrypt."""
    from asyncssh import encryption as enc
    from asyncssh.crypto import cipher as cmod
    from cryptography.exceptions import InvalidTag

    _aead = _cached_aead

    def _next_iv(self: Any) -> None:
        iv = self._iv
        inv = (int.from_bytes(iv[4:], "big") + 1) & 0xFFFFFFFFFFFFFFFF
        self._iv = iv[:4] + inv.to_bytes(8, "big")

    def encrypt_and_sign(self: Any, header: bytes, data: bytes) -> tuple[bytes, bytes]:
        ct = _aead(self).encrypt(self._iv, data, header)
        _next_iv(self)
        return header + ct, b""  # send_packet does packet + mac: b"" makes that free

    def verify_and_decrypt(self: Any, header: bytes, data: bytes, mac: bytes) -> bytes | None:
        try:
            out: bytes | None = _aead(self).decrypt(self._iv, data + mac, header)
        except InvalidTag:
            out = None
        _next_iv(self)
        return out

    def decrypt_packet(self: Any, seq: int, first: bytes, rest: bytes, header_len: int, mac: bytes) -> Any:
        cipher = self._cipher
        try:
            out = _aead(cipher).decrypt(
                cipher._iv, b"".join((first[header_len:], rest, mac)), first[:header_len]
            )
        except InvalidTag:
            out = None
        _next_iv(cipher)
        return out

    cmod.GCMCipher.encrypt_and_sign = encrypt_and_sign  # type: ignore[method-assign]
    cmod.GCMCipher.verify_and_decrypt = verify_and_decrypt  # type: ignore[method-assign]
    enc.GCMEncryption.decrypt_packet = decrypt_packet  # type: ignore[method-assign]


def _tune_no_ignore() -> None:
    """asyncssh puts an encrypted empty MSG_IGNORE before *every* packet after the key exchange
    (RFC 4253 11.2 traffic-analysis padding, which matters for CBC modes); OpenSSH sends none. With
    an AEAD cipher it costs an extra encrypt and, without `coalesce`, an extra send() per packet."""
    from asyncssh.connection import SSHConnection
    from asyncssh.constants import MSG_IGNORE

    orig = SSHConnection.send_packet
    empty = (b"\0\0\0\0",)

    def send_packet(self: Any, pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype == MSG_IGNORE and args == empty and self._send_encryption is not None:
            cipher = getattr(self, "_enc_alg_cs" if self.is_client() else "_enc_alg_sc", b"")
            if cipher.endswith((b"-gcm@openssh.com", b"chacha20-poly1305@openssh.com")):
                return
        orig(self, pkttype, *args, handler=handler)

    SSHConnection.send_packet = send_packet  # type: ignore[method-assign]


class _Batch:
    """Collects the writes for one transport and hands them over in one write: when the protocol
    callback that produced them (data_received of the SSH connection or of a forwarded socket)
    returns, or at the end of the loop iteration for writes made elsewhere (timers). asyncio's
    selector transport otherwise makes one send() syscall per write while its buffer is empty,
    i.e. one per SSH packet, plus one for the MSG_IGNORE asyncssh puts before each."""

    __slots__ = ("chunks", "transport")

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport
        self.chunks: list[bytes] = []

    def add(self, data: bytes) -> None:
        if not self.chunks:
            if _IN_CALLBACK[0]:
                _DIRTY.append(self)
            else:
                asyncio.get_running_loop().call_soon(self.flush)
        self.chunks.append(data)

    def flush(self) -> None:
        if not self.chunks:
            return
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        if not self.transport.is_closing():
            self.transport.write(data)


_IN_CALLBACK = [0]  # nesting depth of wrapped protocol callbacks (one event loop per process)
_DIRTY: list[_Batch] = []


def _flush_on_return(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _IN_CALLBACK[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            _IN_CALLBACK[0] -= 1
            if not _IN_CALLBACK[0] and _DIRTY:
                dirty = _DIRTY[:]
                _DIRTY.clear()
                for batch in dirty:
                    batch.flush()

    return wrapper


def _batch_for(owner: Any, transport: asyncio.WriteTransport) -> _Batch:
    batch: _Batch | None = owner.__dict__.get("_bench_batch")
    if batch is None or batch.transport is not transport:
        if batch is not None:
            batch.flush()
        batch = owner._bench_batch = _Batch(transport)
    return batch


def _tune_coalesce() -> None:
    """One write per protocol callback on the SSH socket and on the forwarded local socket."""
    from asyncssh.connection import SSHConnection
    from asyncssh.forward import SSHForwarder

    def _send(self: Any, data: bytes) -> None:
        if self._transport:
            _batch_for(self, self._transport).add(data)

    def write(self: Any, data: bytes) -> None:
        if self._transport:
            _batch_for(self, self._transport).add(data)

    orig_eof, orig_close = SSHForwarder.write_eof, SSHForwarder.close

    def _flush(self: Any) -> None:
        batch = self.__dict__.get("_bench_batch")
        if batch is not None:
            batch.flush()

    def write_eof(self: Any) -> None:
        _flush(self)
        orig_eof(self)

    def close(self: Any) -> None:
        _flush(self)
        orig_close(self)

    SSHConnection._send = _send  # type: ignore[method-assign]
    SSHConnection._recv_data = _flush_on_return(SSHConnection._recv_data)  # type: ignore[method-assign]
    SSHForwarder.data_received = _flush_on_return(SSHForwarder.data_received)  # type: ignore[method-assign]
    SSHForwarder.write = write  # type: ignore[method-assign]
    SSHForwarder.write_eof = write_eof  # type: ignore[method-assign]
    SSHForwarder.close = close  # type: ignore[method-assign]


def _tune_fastpath() -> None:
    """Channel data with AES-GCM in one buffer: asyncssh copies every payload byte about 12 times
    on its way out (bytearray, slice, String(), UInt32()+join in the channel, Byte()+join,
    +padding, ciphertext slice, header+, +mac); this builds the plaintext packet once and encrypts
    into the output buffer (cryptography's AESGCM.encrypt_into). Used only when the connection is
    past kex and auth, uncompressed, AES-GCM, and no rekey is due; otherwise asyncssh's own path.
    Implies no-ignore for data packets and no packet log (asyncssh logs packets at level 3 only)."""
    from asyncssh.channel import SSHChannel
    from asyncssh.constants import MSG_CHANNEL_DATA
    from asyncssh.encryption import GCMEncryption

    orig_flush = SSHChannel._flush_send_buf

    def fast_send(conn: Any, chan: int, data: bytearray) -> bool:
        enc = conn._send_encryption
        if not (
            type(enc) is GCMEncryption
            and conn._kex_complete
            and conn._auth_complete
            and conn._compressor is None
            and conn._transport is not None
            and conn._rekey_bytes_sent < conn._rekey_bytes
            and not (conn._rekey_seconds and time.monotonic() >= conn._rekey_time)
        ):
            return False
        n = len(data)
        plen = 9 + n  # type + recipient channel + string length + data
        padlen = -(conn._send_enchdrlen + plen) % conn._send_blocksize
        if padlen < 4:
            padlen += conn._send_blocksize
        pktlen = 1 + plen + padlen
        pt = bytearray(pktlen)
        pt[0] = padlen
        pt[1] = MSG_CHANNEL_DATA
        pt[2:6] = chan.to_bytes(4, "big")
        pt[6:10] = n.to_bytes(4, "big")
        pt[10 : 10 + n] = data
        pt[10 + n :] = os.urandom(padlen)
        hdr = pktlen.to_bytes(4, "big")
        out = bytearray(4 + pktlen + 16)
        out[:4] = hdr
        cipher = enc._cipher
        aead = _cached_aead(cipher)
        aead.encrypt_into(cipher._iv, pt, hdr, memoryview(out)[4:])
        iv = cipher._iv
        cipher._iv = iv[:4] + ((int.from_bytes(iv[4:], "big") + 1) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
        conn._send(out)
        conn._send_seq = (conn._send_seq + 1) & 0xFFFFFFFF
        conn._rekey_bytes_sent += pktlen
        return True

    def _flush_send_buf(self: Any) -> None:
        conn = self._conn
        while conn is not None and self._send_buf and self._send_window:
            buf, datatype = self._send_buf[0]
            if datatype is not None:
                break
            pktsize = min(self._send_window, self._send_pktsize)
            data = buf[:pktsize]
            if not fast_send(conn, self._send_chan, data):
                break
            if len(buf) > pktsize:
                del buf[:pktsize]
            else:
                del self._send_buf[0]
            self._send_buf_len -= len(data)
            self._send_window -= len(data)
        orig_flush(self)  # the rest (extended data, no fast path), pause/resume, EOF/close

    SSHChannel._flush_send_buf = _flush_send_buf  # type: ignore[method-assign]


def _tune_recv_view() -> None:
    """Receive without re-slicing the input buffer: asyncssh keeps unread bytes in a `bytes`
    and, for every packet, slices off the header and then the packet, copying everything that is
    still unread each time (quadratic in the packets per read: ~7 copies of each byte for 32 KiB
    packets in a 256 KiB read). With AES-GCM the buffer becomes a memoryview, so those slices are
    free; the decrypt joins header, body and tag once (needs the `gcm` decrypt, applied here)."""
    from asyncssh.connection import SSHConnection
    from asyncssh.encryption import GCMEncryption

    _tune_gcm()
    orig = SSHConnection.data_received

    def data_received(self: Any, data: bytes, datatype: Any = None) -> None:
        buf = self._inpbuf
        if type(self._recv_encryption) is GCMEncryption and self._decompressor is None:
            self._inpbuf = memoryview(b"".join((buf, data)) if buf else data)
            self._recv_data()
            return
        if isinstance(buf, memoryview):
            self._inpbuf = bytes(buf)
        orig(self, data, datatype)

    SSHConnection.data_received = data_received  # type: ignore[method-assign]


class _Plain:
    """Stands in for the receive cipher for one packet that was already decrypted."""

    def __init__(self, plaintext: bytes | None) -> None:
        self.plaintext = plaintext

    def decrypt_packet(self, seq: int, first: Any, rest: Any, header_len: int, mac: Any) -> bytes | None:
        return self.plaintext


def _tune_recv_fastpath() -> None:
    """Channel data with AES-GCM straight to the forwarded socket: decrypt once and hand the
    forwarder a memoryview of the data, skipping asyncssh's payload slice, SSHPacket parsing,
    get_string copy and generic dispatch. Any other packet (or channel) takes asyncssh's path
    with the plaintext already computed (the cipher is stood in for one call)."""
    from asyncssh.channel import SSHTCPChannel
    from asyncssh.connection import SSHConnection
    from asyncssh.constants import MSG_CHANNEL_DATA
    from asyncssh.encryption import GCMEncryption
    from asyncssh.forward import SSHForwarder
    from cryptography.exceptions import InvalidTag

    orig = SSHConnection._recv_packet

    def _recv_packet(self: Any) -> bool:
        enc = self._recv_encryption
        if not (
            type(enc) is GCMEncryption
            and self._kex_complete
            and self._auth_complete
            and self._decompressor is None
        ):
            return bool(orig(self))
        rem = 4 + self._pktlen + self._recv_macsize - self._recv_blocksize
        if len(self._inpbuf) < rem:
            return False
        first = self._packet
        cipher = enc._cipher
        aead = _cached_aead(cipher)
        try:
            pt: bytes | None = aead.decrypt(cipher._iv, b"".join((first[4:], self._inpbuf[:rem])), first[:4])
        except InvalidTag:
            pt = None
        iv = cipher._iv
        cipher._iv = iv[:4] + ((int.from_bytes(iv[4:], "big") + 1) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
        if pt is not None and pt[1] == MSG_CHANNEL_DATA and len(pt) >= 10:
            chan = self._channels.get(int.from_bytes(pt[2:6], "big"))
            n = int.from_bytes(pt[6:10], "big")
            if (
                type(chan) is SSHTCPChannel
                and isinstance(chan._session, SSHForwarder)
                and chan._encoding is None
                and chan._recv_state == "open"
                and 10 + n == len(pt) - pt[0]
                and n <= chan._recv_window
            ):
                seq = self._recv_seq
                self._inpbuf = self._inpbuf[rem:]
                self._packet = b""
                chan._accept_data(memoryview(pt)[10 : 10 + n])
                self._finish_recv_packet(MSG_CHANNEL_DATA, seq)
                return True
        self._recv_encryption = _Plain(pt)  # asyncssh's own path for everything else
        try:
            return bool(orig(self))
        finally:
            if isinstance(self._recv_encryption, _Plain):
                self._recv_encryption = enc

    SSHConnection._recv_packet = _recv_packet  # type: ignore[method-assign]


def _tune_lazy_keepalive() -> None:
    """asyncssh cancels and re-creates its keepalive timer for every received read; instead note
    the time and, when the timer fires early, re-arm it for the remainder (same deadlines)."""
    from asyncssh.connection import SSHConnection

    orig_fire = SSHConnection._keepalive_timer_callback

    def _reset_keepalive_timer(self: Any) -> None:
        if self._auth_complete and self._keepalive_interval:
            self._bench_last_rx = self._loop.time()
            if self._keepalive_timer is None:
                self._set_keepalive_timer()

    def _keepalive_timer_callback(self: Any) -> None:
        due = self.__dict__.get("_bench_last_rx", 0.0) + self._keepalive_interval
        if self._loop.time() < due - 0.001:
            self._keepalive_timer = self._loop.call_at(due, self._keepalive_timer_callback)
            return
        orig_fire(self)

    SSHConnection._reset_keepalive_timer = _reset_keepalive_timer  # type: ignore[method-assign]
    SSHConnection._keepalive_timer_callback = _keepalive_timer_callback  # type: ignore[method-assign]


def _tune_eager_window() -> None:
    """Window adjust like OpenSSH (channel_check_window): as soon as 3 packets' worth was
    consumed, not only when half the window is gone (asyncssh), so sshd never stalls on a
    1 MiB-wide step."""
    from asyncssh.channel import SSHChannel
    from asyncssh.constants import MSG_CHANNEL_WINDOW_ADJUST
    from asyncssh.packet import UInt32

    orig = SSHChannel._deliver_data

    def _deliver_data(self: Any, data: bytes, datatype: Any) -> None:
        consumed = self._init_recv_window - self._recv_window
        if consumed > 3 * self._recv_pktsize and self._recv_window >= self._init_recv_window / 2:
            self.send_packet(MSG_CHANNEL_WINDOW_ADJUST, UInt32(consumed))
            self._recv_window = self._init_recv_window
        orig(self, data, datatype)

    SSHChannel._deliver_data = _deliver_data  # type: ignore[method-assign]


def _tune_cipher_pref() -> None:
    """AES-GCM before chacha20-poly1305 in the client's list (asyncssh, like OpenSSH, puts
    chacha20 first, and in asyncssh it costs far more CPU than AES-GCM with AES-NI)."""
    from asyncssh.encryption import get_default_encryption_algs

    from clawd_client.engine import ssh as engine_ssh

    gcm = [b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com"]
    algs = [a.decode() for a in gcm + [a for a in get_default_encryption_algs() if a not in gcm]]
    orig = engine_ssh.connect_options

    def connect_options(profile: Profile, policy: Any) -> dict[str, Any]:
        opts = orig(profile, policy)
        opts.setdefault("encryption_algs", algs)
        return opts

    engine_ssh.connect_options = connect_options


def _tune_chan(window: int, pktsize: int) -> Callable[[], None]:
    def apply() -> None:
        """The forward's channel window/max packet (asyncssh's forward_local_port always uses
        2 MiB / 32 KiB: the connection options `window`/`max_pktsize` only reach sessions)."""
        orig = asyncssh.SSHClientConnection.create_connection

        @functools.wraps(orig)
        async def create_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("window", window)
            kwargs.setdefault("max_pktsize", pktsize)
            return await orig(self, *args, **kwargs)

        asyncssh.SSHClientConnection.create_connection = create_connection  # type: ignore[method-assign]

    return apply


def _tune_stream_splice() -> None:
    """The data path before the callback splice: each client channel as an asyncssh
    SSHReader/SSHWriter pair (`open_connection`, asyncssh's default 2 MiB window / 32 KiB
    packets), copied by two `pump` tasks. For A/B against the shipped path in the same run."""
    from clawd_client.engine import ssh as engine_ssh

    async def open_stream(self: Any) -> Any:
        return await self.conn.open_connection(*self.remote)

    engine_ssh.Tunnel.open_stream = open_stream  # type: ignore[method-assign]


def _tune_engine_chan(window: int, pktsize: int) -> Callable[[], None]:
    def apply() -> None:
        """The shipped splice with other channel window / max packet sizes (engine constants)."""
        from clawd_client.engine import ssh as engine_ssh

        engine_ssh.CHANNEL_WINDOW, engine_ssh.CHANNEL_MAX_PKTSIZE = window, pktsize

    return apply


TUNINGS: dict[str, Callable[[], None]] = {
    "stream-splice": _tune_stream_splice,
    "engine-chan-2m-32k": _tune_engine_chan(2 << 20, 32 << 10),
    "engine-chan-8m-32k": _tune_engine_chan(8 << 20, 32 << 10),
    "engine-chan-8m-256k": _tune_engine_chan(8 << 20, 256 << 10),
    "no-pktlog": _tune_no_pktlog,
    "gcm": _tune_gcm,
    "no-ignore": _tune_no_ignore,
    "coalesce": _tune_coalesce,
    "fastpath": _tune_fastpath,
    "recv-view": _tune_recv_view,
    "recv-fastpath": _tune_recv_fastpath,
    "lazy-keepalive": _tune_lazy_keepalive,
    "chan-256k": _tune_chan(8 << 20, 256 << 10),
    "chan-8m": _tune_chan(8 << 20, 32 << 10),
    "eager-window": _tune_eager_window,
    "cipher-pref": _tune_cipher_pref,
}
DEFAULT_TUNED = (
    "fastpath",
    "recv-view",
    "recv-fastpath",
    "no-ignore",
    "no-pktlog",
    "coalesce",
    "lazy-keepalive",
    "eager-window",
    "cipher-pref",
)


def _clawd_forwarder_main(
    conn: Connection, profile_json: dict[str, Any], home: str, tunings: list[str], loop: str = "asyncio"
) -> None:
    """Child process: open_tunnel (the real engine code), report the port, forward until told to stop.
    `loop` "uvloop" runs it on uvloop's event loop instead of asyncio's."""
    os.environ["HOME"] = home  # no ~/.ssh/config of the machine; same as ssh -F /dev/null
    os.environ.pop("SSH_AUTH_SOCK", None)
    try:
        for name in tunings:
            TUNINGS[name]()
        if loop == "uvloop":
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(_forward_until_told(conn, Profile.from_json(profile_json)))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _forward_until_told(conn: Connection, profile: Profile) -> None:
    """The product's data path, wired the way the Supervisor wires it: the agent's HeldListener
    bound on a local port, its opener the SshPath's `open_stream` (one asyncssh direct-tcpip
    channel per accepted client), spliced by `listener.pump`. (The Supervisor itself is not run
    here because its health probe would hit the sink server, not a gateway; row (3) runs it.)"""
    from clawd_client.engine.listener import HeldListener
    from clawd_client.engine.paths import SshPath

    lost: list[str] = []
    listener = HeldListener(profile.hold)
    port = await listener.bind(0)
    opened = await SshPath(profile).open(lost.append, False)
    listener.set_opener(opened.open_stream, opened.dials)
    try:
        cipher = opened.extra.get("cipher")
        info = {
            "port": port,
            "send_cipher": cipher,
            "recv_cipher": cipher,
            "asyncssh": f"{asyncssh.__version__} {Path(asyncssh.__file__).parent}",
            "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        }
        conn.send(("ready", info))
        await asyncio.to_thread(conn.recv)
    finally:
        await listener.close()
        await opened.close()
    conn.send(("done", {"lost": lost}))


@dataclass
class Forwarder:
    name: str
    port: int
    pid: int | None  # the forwarding process (None: direct TCP)
    cipher: str
    runtime: str = ""  # clawd: "asyncssh VERSION DIR, LOOP" as the forwarder process reported it


@contextlib.contextmanager
def clawd_forwarder(
    name: str,
    profile: Profile,
    home: Path,
    tunings: list[str],
    *,
    pythonpath: Path | None = None,
    loop: str = "asyncio",
) -> Iterator[Forwarder]:
    """The clawd forwarder in a spawned process. `pythonpath`: a directory put first on that
    process's sys.path, e.g. a patched copy of asyncssh; the process must then report that it
    imported asyncssh from there. `loop`: "asyncio" or "uvloop"."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_clawd_forwarder_main,
        args=(child, profile.to_json(), str(home), tunings, loop),
        daemon=True,
        name=f"bench-{name}",
    )
    # spawn hands the child this process's sys.path (as of start()), and the child imports asyncssh
    # (with this module) before the target runs: so the copy goes first on sys.path just for start()
    saved = list(sys.path)
    if pythonpath is not None:
        sys.path.insert(0, str(pythonpath))
    try:
        proc.start()
    finally:
        sys.path[:] = saved
    try:
        if not parent.poll(30):
            raise TimeoutError(f"{name}: no tunnel after 30 s")
        kind, info = parent.recv()
        if kind != "ready":
            raise RuntimeError(f"{name}: {info}")
        if pythonpath is not None and str(pythonpath) not in info["asyncssh"]:
            raise RuntimeError(f"{name}: asyncssh came from {info['asyncssh']}, not {pythonpath}")
        if info["loop"] != loop:
            raise RuntimeError(f"{name}: runs on {info['loop']}, not {loop}")
        cipher = f"{info['send_cipher']}/{info['recv_cipher']}"
        assert proc.pid is not None
        yield Forwarder(
            name, int(info["port"]), proc.pid, cipher, f"asyncssh {info['asyncssh']}, {info['loop']}"
        )
    finally:
        with contextlib.suppress(OSError, ValueError):
            parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def ssh_base_cmd(
    sshd: SshdServer, cipher: str, *, port: int | None = None, known_hosts: Path | None = None
) -> list[str]:
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-N",
        "-p",
        str(port or sshd.port),
        "-i",
        str(sshd.client_key_path),
        "-c",
        cipher,
        "-o",
        "Compression=no",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "BatchMode=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts or sshd.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ServerAliveInterval={KEEPALIVE_S:g}",
        "-o",
        f"ServerAliveCountMax={KEEPALIVE_COUNT}",
    ]


@contextlib.contextmanager
def ssh_forwarder(
    sshd: SshdServer,
    cipher: str,
    target_port: int,
    log: Path,
    *,
    ssh_port: int | None = None,
    known: Path | None = None,
    ssh_host: str = HOST,
) -> Iterator[tuple[Forwarder, subprocess.Popen[bytes]]]:
    """`ssh -N -L` in the foreground; yields once its local port accepts."""
    lport = free_port()
    cmd = [
        *ssh_base_cmd(sshd, cipher, port=ssh_port, known_hosts=known),
        "-v",
        "-L",
        f"{HOST}:{lport}:{HOST}:{target_port}",
        f"{sshd.user}@{ssh_host}",
    ]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
    try:
        wait_port(lport, 20, proc)
        text = log.read_text(errors="replace")
        found = re.findall(r"kex: (?:server->client|client->server) cipher: (\S+)", text)
        yield Forwarder("ssh", lport, proc.pid, "/".join(found) or "?"), proc
    finally:
        stop_popen(proc)


# -- (1) + (2): throughput and round trip ---------------------------------------------------------


@dataclass
class Mode:
    name: str
    label: str
    up: list[float] = field(default_factory=list)  # MB/s
    down: list[float] = field(default_factory=list)
    cpu_up: list[float] = field(default_factory=list)  # forwarder CPU seconds per run
    cpu_down: list[float] = field(default_factory=list)
    secs_up: list[float] = field(default_factory=list)
    secs_down: list[float] = field(default_factory=list)
    sshd_cpu_up: list[float] = field(default_factory=list)  # sshd session processes, per run
    sshd_cpu_down: list[float] = field(default_factory=list)
    rtt: dict[str, Any] | None = None
    cipher: str = ""
    runtime: str = ""  # the clawd forwarders: asyncssh version and directory, event loop
    error: str | None = None


def measure_transfer(
    modes: list[Mode],
    fwd: dict[str, Forwarder],
    loadgen: Worker,
    sshd: SshdServer,
    args: argparse.Namespace,
) -> None:
    size = args.mib << 20
    for m_ in modes:
        f = fwd.get(m_.name)
        if f is not None:
            m_.cipher, m_.runtime = f.cipher, f.runtime
    for rep in range(args.runs):
        for direction in ("up", "down"):
            for mode in modes:
                f = fwd.get(mode.name)
                if f is None:
                    continue
                sessions = sshd.sessions()
                c0, s0 = (cpu_s(f.pid) if f.pid else 0.0), pids_cpu(sessions)
                try:
                    r = loadgen.call("bulk", port=f.port, size=size, direction=direction, timeout=300)
                except (RuntimeError, TimeoutError) as exc:
                    mode.error = str(exc)
                    continue
                c1, s1 = (cpu_s(f.pid) if f.pid else 0.0), pids_cpu(sessions)
                mbps = r["bytes"] / r["seconds"] / 1e6
                getattr(mode, direction).append(mbps)
                getattr(mode, f"secs_{direction}").append(r["seconds"])
                if f.pid:
                    getattr(mode, f"cpu_{direction}").append(c1 - c0)
                if f.pid:
                    getattr(mode, f"sshd_cpu_{direction}").append(s1 - s0)
                say(f"{direction:>4} {mode.label:<22} run {rep + 1}/{args.runs}: {mbps:7.0f} MB/s")
    # The echoes too take turns (RTT_ROUNDS rounds), so a burst of other load hits every mode.
    samples: dict[str, list[float]] = {mode.name: [] for mode in modes}
    per_round = -(-args.rtt_count // RTT_ROUNDS)
    for _ in range(RTT_ROUNDS):
        for mode in modes:
            f = fwd.get(mode.name)
            if f is not None:
                r = loadgen.call(
                    "rtt", port=f.port, count=per_round, size=args.rtt_size, warmup=20, timeout=120
                )
                samples[mode.name] += r["samples_us"]
    for mode in modes:
        if samples[mode.name]:
            got = samples[mode.name]
            mode.rtt = {"p50_us": pct(got, 50), "p99_us": pct(got, 99), "mean_us": statistics.fmean(got)}
            say(f"rtt  {mode.label:<22} p50 {mode.rtt['p50_us']:.0f} us, p99 {mode.rtt['p99_us']:.0f} us")


# -- (3) + (6): start to healthy, idle CPU --------------------------------------------------------


@dataclass
class StartResult:
    clawd_cli: list[float] = field(default_factory=list)
    supervisor: list[float] = field(default_factory=list)
    ssh: list[float] = field(default_factory=list)
    idle_clawd_pct: float | None = None
    idle_ssh_pct: float | None = None
    idle_seconds: float = 0.0
    cli_rss_mib: float | None = None
    error: str | None = None


async def _health(url: str) -> None:
    session = await open_session(url, token=TOKEN, timeout=10)
    try:
        res = await session.call("health", {}, timeout=10)
    finally:
        await session.close()
    if not (isinstance(res, dict) and res.get("ok") is True):
        raise RuntimeError(f"health: {res!r}")


def clawd_cmd() -> list[str]:
    exe = shutil.which("clawd")
    return [exe] if exe else [sys.executable, "-m", "clawd_client"]


@contextlib.contextmanager
def clawd_connect(
    profile: Profile, work: Path, tag: str, keyring_env: dict[str, str]
) -> Iterator[tuple[int, float]]:
    """`clawd connect NAME` as a real process (it starts the agent, which hosts the tunnel);
    yields the agent's pid and start -> `healthy` seconds; stops both. The gateway token is put
    in the Secret Service of `keyring_env` with `clawd secret set` first (the agent reads
    secrets from the OS keyring only, not from its environment)."""
    cfg, state, home = work / f"cfg-{tag}", work / f"state-{tag}", work / "home"
    for d in (cfg, state, home):
        d.mkdir(parents=True, exist_ok=True)
    ProfileStore(cfg / "profiles.json").add(profile, replace_existing=True)
    env = clean_env(home, CLAWD_CONFIG_DIR=str(cfg), CLAWD_STATE_DIR=str(state))
    env.update({k: v for k, v in keyring_env.items() if k.startswith(("DBUS_", "PYTHON_KEYRING", "XDG_"))})
    done = subprocess.run(
        [*clawd_cmd(), "secret", "set", profile.name],
        env=env,
        cwd=work,
        input=TOKEN + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clawd secret set exited {done.returncode}: {done.stdout}{done.stderr}")
    lines: list[tuple[float, str]] = []
    healthy = threading.Event()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*clawd_cmd(), "connect", profile.name],
        env=env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic(), line.rstrip()))
            parts = line.split()
            if len(parts) > 1 and parts[1] == "healthy":
                healthy.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not healthy.wait(30):
            raise RuntimeError("clawd connect not healthy in 30 s: " + " | ".join(x for _, x in lines[-6:]))
        t_healthy = next(t for t, x in lines if len(x.split()) > 1 and x.split()[1] == "healthy")
        lock = json.loads((state / "run" / "agent.lock").read_text().split("\0")[0])
        yield int(lock["pid"]), t_healthy - t0
    finally:
        stop_popen(proc, grace=10)
        reader.join(5)
        subprocess.run([*clawd_cmd(), "agent", "--stop"], env=env, capture_output=True, timeout=30)


@contextlib.contextmanager
def ssh_background(sshd: SshdServer, gw_port: int, cipher: str) -> Iterator[tuple[int, float]]:
    """`ssh -f -N -L` + one authenticated health call; yields the daemon's pid and the time."""
    lport = free_port()
    marker = f"{HOST}:{lport}:{HOST}:{gw_port}"
    cmd = [*ssh_base_cmd(sshd, cipher), "-f", "-L", marker, f"{sshd.user}@{HOST}"]
    pid: int | None = None
    t0 = time.monotonic()
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=30)
        asyncio.run(_health(f"ws://{HOST}:{lport}"))
        elapsed = time.monotonic() - t0
        for p in psutil.process_iter(["name", "cmdline"]):
            if p.info["name"] == "ssh" and marker in (p.info["cmdline"] or []):
                pid = p.pid
        if pid is None:
            raise RuntimeError("the backgrounded ssh was not found")
        yield pid, elapsed
    finally:
        if pid is None:  # failed before we found it: look once more, by its unique -L argument
            for p in psutil.process_iter(["name", "cmdline"]):
                if p.info["name"] == "ssh" and marker in (p.info["cmdline"] or []):
                    pid = p.pid
        if pid is not None:
            stop_pid(pid)


def measure_start(
    res: StartResult, sshd: SshdServer, gw_port: int, work: Path, args: argparse.Namespace
) -> None:
    base = bench_profile(sshd, gw_port)
    keyring = secret_service_session()  # a private D-Bus + unlocked gnome-keyring for the agent
    with keyring as kr:
        measure_start_runs(res, sshd, gw_port, work, args, base, kr.env)


def measure_start_runs(
    res: StartResult,
    sshd: SshdServer,
    gw_port: int,
    work: Path,
    args: argparse.Namespace,
    base: Profile,
    keyring_env: dict[str, str],
) -> None:
    for i in range(args.starts):
        with ssh_background(sshd, gw_port, args.cipher) as (_, elapsed):
            res.ssh.append(elapsed)
        say(f"start {i + 1}/{args.starts}: ssh -f -N -L + health {elapsed:.3f} s")
        t0 = time.monotonic()
        with supervised(replace(base, local_port=free_port()), TOKEN) as w:
            st = w.wait_state("healthy", 20)
            res.supervisor.append(st["t"] - t0)
        say(f"start {i + 1}/{args.starts}: Supervisor (in-process) {res.supervisor[-1]:.3f} s")
        last = i == args.starts - 1
        profile = replace(base, name=f"bench{i}", local_port=free_port())
        with clawd_connect(profile, work, str(i), keyring_env) as (agent_pid, elapsed):
            res.clawd_cli.append(elapsed)
            say(f"start {i + 1}/{args.starts}: clawd connect (process) {elapsed:.3f} s")
            if last and args.idle_seconds > 0:
                with ssh_background(sshd, gw_port, args.cipher) as (ssh_pid, _):
                    measure_idle(res, agent_pid, ssh_pid, args.idle_seconds)


def measure_idle(res: StartResult, clawd_pid: int, ssh_pid: int, seconds: float) -> None:
    time.sleep(1.0)  # let the first probe and the port guard settle
    say(f"idle CPU of the clawd agent holding the tunnel and ssh -N -L over {seconds:g} s ...")
    c0, s0, t0 = cpu_s(clawd_pid), cpu_s(ssh_pid), time.monotonic()
    time.sleep(seconds)
    c1, s1, t1 = cpu_s(clawd_pid), cpu_s(ssh_pid), time.monotonic()
    res.idle_seconds = t1 - t0
    res.idle_clawd_pct = (c1 - c0) / (t1 - t0) * 100
    res.idle_ssh_pct = (s1 - s0) / (t1 - t0) * 100
    with contextlib.suppress(psutil.Error):
        res.cli_rss_mib = psutil.Process(clawd_pid).memory_info().rss / 2**20


# -- (4) detection of a silent drop ---------------------------------------------------------------


@dataclass
class DetectResult:
    clawd: list[float] = field(default_factory=list)
    ssh: list[float] = field(default_factory=list)
    clawd_reason: str = ""
    ssh_reason: str = ""
    error: str | None = None


def measure_detection(
    res: DetectResult, sshd: SshdServer, gw_port: int, work: Path, args: argparse.Namespace
) -> None:
    with relay_ctx(sshd.port) as relay:
        known = sshd.write_known_hosts(port=relay.port)
        p = bench_profile(sshd, gw_port)
        assert p.ssh is not None
        p = replace(p, ssh=replace(p.ssh, port=relay.port, known_hosts=str(known)), local_port=free_port())
        with supervised(p, TOKEN) as w:
            w.wait_state("healthy", 20)
            for i in range(args.detect_runs):
                log = work / f"ssh-detect-{i}.log"
                with ssh_forwarder(sshd, args.cipher, gw_port, log, ssh_port=relay.port, known=known) as (
                    _,
                    proc,
                ):
                    time.sleep(1.0 + 0.37 * i)  # a different keepalive phase each run
                    mark = w.mark()
                    relay.freeze()
                    t0 = time.monotonic()
                    t_clawd = t_ssh = None
                    while time.monotonic() - t0 < 15 and (t_clawd is None or t_ssh is None):
                        if t_clawd is None:
                            for st in history_since(w, mark):
                                if st["state"] != "healthy":
                                    t_clawd = st["t"] - t0
                                    res.clawd_reason = st.get("lastError") or st["state"]
                                    break
                        if t_ssh is None and proc.poll() is not None:
                            t_ssh = time.monotonic() - t0
                        time.sleep(0.005)
                    relay.thaw()
                    relay.cut()
                    if t_clawd is not None:
                        res.clawd.append(t_clawd)
                    if t_ssh is not None:
                        res.ssh.append(t_ssh)
                        tail = log.read_text(errors="replace").strip().splitlines()
                        res.ssh_reason = next(
                            (x for x in reversed(tail) if "Timeout" in x), tail[-1] if tail else ""
                        )
                    say(f"detect {i + 1}/{args.detect_runs}: clawd {t_clawd} s, ssh {t_ssh} s")
                w.wait_from(mark, lambda s: s["state"] == "healthy", 40, "healthy after thaw")


def history_since(w: Watched, mark: int) -> list[dict[str, Any]]:
    """Published states from `mark` on (Watched keeps them under its condition's lock)."""
    with w._cond:
        return list(w.history[mark:])


# -- (5) reconnect after the server returns -------------------------------------------------------


@dataclass
class ReconnectResult:
    stock: list[float] = field(default_factory=list)
    tuned: list[float] = field(default_factory=list)
    stock_waits: list[str] = field(default_factory=list)
    error: str | None = None


async def reachability_poll(sup: Supervisor, host: str, port: int, interval: float) -> None:
    """Prototype: during backoff, TCP-connect to the SSH port every `interval`; on the transition
    unreachable -> reachable, post Wake (which the machine maps to "reconnect now")."""
    was_unreachable = False
    while True:
        await asyncio.sleep(interval)
        if sup.snapshot.state is not m.State.BACKOFF:
            was_unreachable = False
            continue
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), interval)
        except (OSError, asyncio.TimeoutError):
            was_unreachable = True
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        if was_unreachable:
            was_unreachable = False
            sup.post(m.Wake(sup.now(), "SSH port reachable again"))


def measure_reconnect(res: ReconnectResult, sshd: SshdServer, gw_port: int, args: argparse.Namespace) -> None:
    variants = [("stock", res.stock)] + ([] if args.skip_tuned else [("tuned", res.tuned)])
    for i in range(args.reconnect_runs):
        for name, out in variants:
            p = replace(bench_profile(sshd, gw_port), local_port=free_port())
            with supervised(p, TOKEN) as w:
                w.wait_state("healthy", 20)
                poll = None
                if name == "tuned":
                    poll = asyncio.run_coroutine_threadsafe(
                        reachability_poll(w.sup, HOST, sshd.port, REACHABILITY_POLL_S), w.loop
                    )
                try:
                    mark = w.mark()
                    sshd.stop()
                    sshd.kill_sessions()
                    w.wait_from(mark, lambda s: s["state"] == "backoff", 10, "backoff")
                    time.sleep(args.downtime)
                    before = w.state
                    sshd.start()
                    t_ready = time.monotonic()
                    mark2 = w.mark()
                    st = w.wait_from(mark2, lambda s: s["state"] == "healthy", 60, "healthy after restart")
                    dt = st["t"] - t_ready
                    out.append(dt)
                    if name == "stock" and before.get("nextAttemptInS") is not None:
                        # nextAttemptInS was computed when that state was published (time "t")
                        left = before["t"] + before["nextAttemptInS"] - t_ready
                        res.stock_waits.append(
                            f"attempts {before.get('attempts')}, next try due {left:+.1f} s from readiness"
                        )
                    say(f"reconnect {i + 1}/{args.reconnect_runs} {name}: {dt:.3f} s after sshd ready")
                finally:
                    if poll is not None:
                        poll.cancel()
                    if not sshd.running:
                        sshd.start()


# -- (7) WAN: the same forwards over a shaped link (netns + netem) --------------------------------
#
# A network namespace of our own holds the far end: an sshd (same config, listening on the
# namespace's veth address) and the sink/source/echo server on the namespace's own loopback. The
# forwarders and the load generator stay here; only the SSH connection crosses the veth pair,
# which has netem on both ends (half the RTT each way, and the rate). Nothing else is routed.

WAN_NS_PREFIX = "clawdbench"
WAN_HOST, WAN_PEER = "10.213.77.1", "10.213.77.2"
WAN_SHAPING = ["netem"]


def delay_line_main(listen_port: int, target: str, delay_s: float) -> None:
    """`--delay-line PORT HOST:PORT DELAY_S`: for kernels without sch_netem. A TCP relay (run in
    the namespace, in front of its sshd) that hands each chunk on `delay_s` after it arrived, in
    both directions, so the round trip gains 2 x delay_s; the rate comes from tbf on the veth."""
    host, port = target.rsplit(":", 1)

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=256)

        async def out() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                w.write(data)
                await w.drain()
            with contextlib.suppress(OSError):
                w.write_eof()

        task = asyncio.create_task(out())
        try:
            while data := await r.read(65536):
                await queue.put((loop.time() + delay_s, data))
        except OSError:
            pass
        await queue.put((0.0, b""))
        with contextlib.suppress(OSError):
            await task

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(host, int(port))
        for s in (w, uw):
            s.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(r, uw), pipe(ur, w))
        w.close()
        uw.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, WAN_PEER, listen_port)
        await server.serve_forever()

    asyncio.run(main())


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def wan_namespace(rtt_ms: float, mbit: int) -> Iterator[str]:
    ns = f"{WAN_NS_PREFIX}{os.getpid()}"
    host_if, peer_if = f"cb{os.getpid() % 100000}h", f"cb{os.getpid() % 100000}n"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", ns)
        _ip("addr", "add", f"{WAN_HOST}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{WAN_PEER}/30", "dev", peer_if)
        _ip("-n", ns, "link", "set", peer_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        half = f"{rtt_ms / 2:g}ms"
        for prefix, dev in ((["tc"], host_if), (["ip", "netns", "exec", ns, "tc"], peer_if)):
            probe = subprocess.run(
                [
                    *prefix,
                    "qdisc",
                    "add",
                    "dev",
                    dev,
                    "root",
                    "netem",
                    "delay",
                    half,
                    "rate",
                    f"{mbit}mbit",
                    "limit",
                    "100000",
                ],
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                continue
            if "unknown" not in probe.stderr:
                raise subprocess.CalledProcessError(probe.returncode, probe.args, probe.stdout, probe.stderr)
            WAN_SHAPING[0] = "tbf+delay-line"  # this kernel has no sch_netem
            subprocess.run(
                [
                    *prefix,
                    "qdisc",
                    "add",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    f"{mbit}mbit",
                    "burst",
                    "64kb",
                    "latency",
                    "100ms",
                ],
                check=True,
                capture_output=True,
            )
        yield ns
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_if)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", ns)


class NsSshd(SshdServer):
    """tests/support's sshd, started inside a network namespace (`ip netns exec`)."""

    def __init__(self, ns: str, directory: Path, **kwargs: Any) -> None:
        self.ns = ns
        super().__init__(directory, **kwargs)

    def _start_once(self, timeout: float) -> bool:
        self._log_offset = len(self.log_text())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, str(SSHD), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Server listening on" in self._log_since_start():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.005)
        self._kill_master()
        return False


def serve_in_ns_main(port: int) -> None:
    """`--serve-in-ns PORT`: the sink/source/echo server on 127.0.0.1:PORT until killed."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(64)
    _serve_forever(listener, os.urandom(BLOCK))


@dataclass
class WanResult:
    modes: dict[str, Mode] = field(default_factory=dict)
    error: str | None = None


def measure_wan(res: WanResult, work: Path, loadgen: Worker, args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(wan_namespace(args.wan_rtt_ms, args.wan_mbit))
        sshd = NsSshd(ns, work / "sshd-wan", host=WAN_PEER, port=2222, extra_config=f"Ciphers {args.cipher}")
        stack.callback(sshd.close)
        sshd.start()
        ssh_port = sshd.port
        if WAN_SHAPING[0] != "netem":
            ssh_port = 2223
            line = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    sys.executable,
                    __file__,
                    "--delay-line",
                    str(ssh_port),
                    f"{WAN_PEER}:{sshd.port}",
                    str(args.wan_rtt_ms / 2000),
                ],
                stdin=subprocess.DEVNULL,
            )
            stack.callback(stop_popen, line)
            time.sleep(1.0)
        known = sshd.write_known_hosts(work / "known_hosts.wan", port=ssh_port, host=WAN_PEER)
        sink_port = 7000
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "--serve-in-ns", str(sink_port)],
            stdin=subprocess.DEVNULL,
        )
        stack.callback(stop_popen, server)
        time.sleep(1.0)  # the server binds inside the namespace; readiness is proven by the runs
        p = bench_profile(sshd, sink_port, host=WAN_PEER, known=known)
        p = replace(p, ssh=replace(p.ssh, port=ssh_port)) if p.ssh else p
        fwd = {
            "clawd": stack.enter_context(clawd_forwarder("clawd-wan", p, work / "home", [])),
            "ssh": stack.enter_context(
                ssh_forwarder(
                    sshd,
                    args.cipher,
                    sink_port,
                    work / "ssh-wan.log",
                    known=known,
                    ssh_host=WAN_PEER,
                    ssh_port=ssh_port,
                )
            )[0],
        }
        res.modes = {"ssh": Mode("ssh", "OpenSSH ssh -L (WAN)"), "clawd": Mode("clawd", "clawd (WAN)")}
        wargs = argparse.Namespace(
            runs=args.wan_runs, mib=args.wan_mib, rtt_count=args.wan_rtt_count, rtt_size=64
        )
        measure_transfer(list(res.modes.values()), fwd, loadgen, sshd, wargs)


# -- profile, gateway ------------------------------------------------------------------------------


def bench_profile(
    sshd: SshdServer, remote_port: int, *, host: str = HOST, known: Path | None = None
) -> Profile:
    return Profile(
        name="bench",
        ssh=SshTarget(
            host=host,
            user=sshd.user,
            port=sshd.port,
            identity=str(sshd.client_key_path),
            known_hosts=str(known or sshd.known_hosts),
        ),
        remote_host=HOST,
        remote_port=remote_port,
        local_port=free_port(),
        keepalive_interval=KEEPALIVE_S,
        keepalive_count=KEEPALIVE_COUNT,
    )


@contextlib.contextmanager
def gateway_process(work: Path) -> Iterator[int]:
    home = work / "gw"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = clean_env(home, CLAWD_STATE_DIR=str(home / "state"), OPENCLAW_GATEWAY_TOKEN=TOKEN)
    cmd = [sys.executable, "-m", "clawd_gateway", "run", "--port", str(port), "--bind", "loopback"]
    with open(home / "gateway.log", "wb") as fh:
        proc = subprocess.Popen(
            [*cmd, "--log-level", "warning"],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
        )
    try:
        wait_port(port, 30, proc)
        asyncio.run(_health(f"ws://{HOST}:{port}"))
        yield port
    finally:
        stop_popen(proc, grace=10)


# -- report ---------------------------------------------------------------------------------------


def _f(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + unit


def _spread(values: list[float], spec: str) -> str:
    if not values:
        return "n/a"
    mid = statistics.median(values)
    if len(values) == 1:
        return format(mid, spec)
    return f"{format(mid, spec)} ({format(min(values), spec)}-{format(max(values), spec)})"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def report(
    modes: dict[str, Mode],
    start: StartResult,
    detect: DetectResult,
    rec: ReconnectResult,
    args: argparse.Namespace,
    notes: list[str],
    wan: WanResult | None = None,
) -> str:
    """One row per metric; a column per forwarder in args.columns (the clawd variants, then
    OpenSSH and direct TCP), then each clawd variant's ratio to OpenSSH, the target, and a
    PASS/FAIL per clawd variant."""
    cols = [c for c in args.columns if c in FORWARDER_COLUMNS]  # the clawd variants, in order
    header = (
        "metric",
        *(COLUMN_LABELS[c] for c in cols),
        "OpenSSH",
        "direct",
        *(f"{COLUMN_SHORT[c]}/ssh" for c in cols),
        "target",
        "result",
    )
    rows: list[tuple[str, ...]] = []

    def xr(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}x"

    def row(
        metric: str,
        cells: dict[str, str],
        ssh: str,
        direct: str,
        ratios: dict[str, float | None],
        target: str,
        ok: Callable[[float], bool] | None,
    ) -> None:
        verdicts = [
            f"{COLUMN_SHORT[c]} {_verdict(ok(r) if (r := ratios.get(c)) is not None else None)}"
            for c in cols
            if ok is not None
        ]
        rows.append(
            (
                metric,
                *(cells.get(c, "") for c in cols),
                ssh,
                direct,
                *((xr(ratios.get(c)) if c in ratios else "") for c in cols),
                target,
                ", ".join(verdicts),
            )
        )

    bulk = "throughput" in args.phases
    for direction, label in (("up", "upload"), ("down", "download")) if bulk else ():
        vals = {k: median(getattr(v, direction)) for k, v in modes.items()}
        row(
            f"(1) {label} {args.mib} MiB [MB/s]",
            {c: _spread(getattr(modes[c], direction), ".0f") for c in cols},
            _spread(getattr(modes["ssh"], direction), ".0f"),
            _spread(getattr(modes["direct"], direction), ".0f"),
            {c: _ratio(vals[c], vals["ssh"]) for c in cols},
            f">= {TARGET_THROUGHPUT_X:g}x",
            lambda r: r >= TARGET_THROUGHPUT_X,
        )
        cpu: dict[str, str] = {}
        per_gib: dict[str, float] = {}
        for k, v in modes.items():
            c, secs = getattr(v, f"cpu_{direction}"), getattr(v, f"secs_{direction}")
            if c and secs:
                per_gib[k] = statistics.median(c) / (args.mib / 1024)
                core = statistics.median([a / b for a, b in zip(c, secs, strict=True)]) * 100
                cpu[k] = f"{per_gib[k]:.2f} s/GiB, {core:.0f}%"
        row(
            "    forwarder CPU (per GiB, % of a core)",
            {c: cpu.get(c, "n/a") for c in cols},
            cpu.get("ssh", "n/a"),
            "-",
            {c: _ratio(per_gib.get(c), per_gib.get("ssh")) for c in cols},
            f"<= {TARGET_CPU_X:g}x",
            lambda r: r <= TARGET_CPU_X,
        )
        sshd_cpu = {
            k: f"{statistics.median(v) / (args.mib / 1024):.2f} s/GiB"
            for k, mo in modes.items()
            if (v := getattr(mo, f"sshd_cpu_{direction}"))
        }
        row(
            "    sshd session CPU (per GiB)",
            {c: sshd_cpu.get(c, "n/a") for c in cols},
            sshd_cpu.get("ssh", "n/a"),
            "-",
            {},
            "",
            None,
        )
    for key, label in (("p50_us", "p50"), ("p99_us", "p99")) if bulk else ():
        us = {k: (mo.rtt or {}).get(key) for k, mo in modes.items()}
        is_p50 = key == "p50_us"
        row(
            f"(2) echo {args.rtt_size} B x {args.rtt_count} {label} [us]",
            {c: _f(us[c], ".0f") for c in cols},
            _f(us["ssh"], ".0f"),
            _f(us["direct"], ".0f"),
            {c: _ratio(us[c], us["ssh"]) for c in cols},
            f"<= {TARGET_RTT_X:g}x" if is_p50 else "",
            (lambda r: r <= TARGET_RTT_X) if is_p50 else None,
        )

    def other(metric: str, clawd: str, tuned: str, ssh: str, ratio: str, target: str, result: str) -> None:
        cells = {"clawd": clawd, "tuned": tuned}
        rows.append(
            (
                metric,
                *(cells.get(c, "") for c in cols),
                ssh,
                "-",
                *((ratio if c == "clawd" else "") for c in cols),
                target,
                result,
            )
        )

    if "start" in args.phases:
        mc, ms = median(start.clawd_cli), median(start.ssh)
        other(
            "(3) start -> healthy [s] (median)",
            _spread(start.clawd_cli, ".3f") + " CLI",
            _spread(start.supervisor, ".3f") + " in-proc",
            _spread(start.ssh, ".3f"),
            xr(_ratio(mc, ms)),
            "report",
            "",
        )
    if "detect" in args.phases:
        dc = max(detect.clawd) if detect.clawd else None
        ds = max(detect.ssh) if detect.ssh else None
        other(
            "(4) silent drop detected [s] (med; max)",
            f"{_spread(detect.clawd, '.2f')}; {_f(dc, '.2f')}",
            "",
            f"{_spread(detect.ssh, '.2f')}; {_f(ds, '.2f')}",
            xr(_ratio(median(detect.clawd), median(detect.ssh))),
            f"<= {TARGET_DETECT_S:g} s (max)",
            _verdict(dc <= TARGET_DETECT_S if dc is not None else None),
        )
    if "reconnect" in args.phases:
        rs, rtu = (max(rec.stock) if rec.stock else None), (max(rec.tuned) if rec.tuned else None)
        result = _verdict(rs <= TARGET_RECONNECT_S if rs is not None else None)
        if rtu is not None and "tuned" in cols:
            result += f" (tuned {_verdict(rtu <= TARGET_RECONNECT_S)})"
        other(
            "(5) sshd ready -> healthy [s] (med; max)",
            f"{_spread(rec.stock, '.2f')}; {_f(rs, '.2f')}",
            f"{_spread(rec.tuned, '.2f')}; {_f(rtu, '.2f')}" if rec.tuned else "n/a",
            "n/a (no retry)",
            "",
            f"<= {TARGET_RECONNECT_S:g} s (max)",
            result,
        )
    if "start" in args.phases:
        other(
            f"(6) idle CPU over {start.idle_seconds:.0f} s [% of a core]",
            _f(start.idle_clawd_pct, ".2f", "%") + " agent",
            "",
            _f(start.idle_ssh_pct, ".2f", "%"),
            "",
            f"~0 (< {TARGET_IDLE_CPU_PCT:g}%)",
            _verdict(
                start.idle_clawd_pct < TARGET_IDLE_CPU_PCT if start.idle_clawd_pct is not None else None
            ),
        )
    if wan is not None and wan.modes:
        wc, ws = wan.modes["clawd"], wan.modes["ssh"]
        tag = f"{args.wan_rtt_ms:g} ms/{args.wan_mbit} Mbit ({WAN_SHAPING[0]})"
        for direction, label in (("up", "upload"), ("down", "download")):
            a, b = median(getattr(wc, direction)), median(getattr(ws, direction))
            r = _ratio(a, b)
            other(
                f"(7) WAN {tag} {label} {args.wan_mib} MiB [MB/s]",
                _spread(getattr(wc, direction), ".1f"),
                "",
                _spread(getattr(ws, direction), ".1f"),
                xr(r),
                ">= 0.95x",
                _verdict(r >= 0.95 if r else None),
            )
        a, b = (wc.rtt or {}).get("p50_us"), (ws.rtt or {}).get("p50_us")
        r = _ratio(a, b)
        other(
            f"(7) WAN {tag} echo 64 B p50 [ms]",
            _f(a / 1000 if a else None, ".2f"),
            "",
            _f(b / 1000 if b else None, ".2f"),
            xr(r),
            "<= 1.05x",
            _verdict(r <= 1.05 if r else None),
        )

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = [
        f"tunnel benchmark · {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} "
        f"· asyncssh {asyncssh.__version__} · {ssh_version()} · {args.runs} runs · load avg "
        f"{args.load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        line,
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.append(line)
    ciphers = ", ".join(
        f"{mo.label}: {mo.cipher}" for mo in modes.values() if mo.cipher and mo.name != "direct"
    )
    if ciphers:
        out.append(f"negotiated cipher (send/recv): {ciphers}")
    for mo in modes.values():
        if mo.runtime:
            out.append(f"{mo.label}: {mo.runtime}")
    if {"patched", "patched-uvloop"} & set(cols):
        out.append(
            f"{COLUMN_LABELS['patched']} = the clawd forwarder (same code) with a copy of asyncssh "
            f"{asyncssh.__version__} patched by {', '.join(p.name for p in args.asyncssh_patch)} "
            "first on sys.path"
        )
    if "uvloop" in cols:
        out.append(f"{COLUMN_LABELS['uvloop']} = the clawd forwarder (same code, stock asyncssh) on uvloop")
    if "patched-uvloop" in cols:
        out.append(f"{COLUMN_LABELS['patched-uvloop']} = the patched-asyncssh forwarder on uvloop")
    if "tuned" in cols:
        out.append(
            "* clawd tuned = the same forwarder with prototype patches in its process: "
            + ", ".join(args.tune)
            + f"; for (3) the column is the in-process Supervisor; for (5) a TCP reachability poll of "
            f"the SSH port every {REACHABILITY_POLL_S:g} s during backoff."
        )
    elif start.supervisor:
        out.append(f"(3) in-process Supervisor (no interpreter start): {_spread(start.supervisor, '.3f')} s")
    if rec.stock_waits:
        out.append("(5) stock supervisor at sshd readiness: " + "; ".join(rec.stock_waits))
    if detect.clawd_reason or detect.ssh_reason:
        out.append(f"(4) clawd: {detect.clawd_reason!r}; ssh: {detect.ssh_reason!r}")
    if start.cli_rss_mib is not None:
        out.append(f"(6) clawd agent RSS {start.cli_rss_mib:.0f} MiB")
    for mo in modes.values():
        if mo.error:
            out.append(f"{mo.label}: ERROR {mo.error}")
    if wan is not None and wan.error:
        out.append(f"wan: ERROR {wan.error}")
    for name, r in (("start", start), ("detect", detect), ("reconnect", rec)):
        if r.error:
            out.append(f"{name}: ERROR {r.error}")
    out += notes
    return "\n".join(out)


def ssh_version() -> str:
    try:
        out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "ssh missing"
    return (out.stderr or out.stdout).strip().split(",")[0]


# -- main -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> str:
    args.load_start = os.getloadavg()[0]  # a busy machine shows in every row: say so
    modes = {c: Mode(c, COLUMN_LABELS[c].rstrip("*")) for c in COLUMNS}
    start, detect, rec, wan = StartResult(), DetectResult(), ReconnectResult(), WanResult()
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawd-tunnel-bench-")))
        (work / "home").mkdir()
        sshd = SshdServer(work / "sshd", extra_config=f"Ciphers {args.cipher}")
        stack.callback(sshd.close)
        sshd.start()
        servers = Worker("bench-servers")
        stack.callback(servers.close)
        loadgen = Worker("bench-loadgen")
        stack.callback(loadgen.close)
        target = int(servers.call("serve")["port"])
        say(f"sshd on {HOST}:{sshd.port} (Ciphers {args.cipher}), sink/echo server on {target}")

        if "throughput" in args.phases:
            with contextlib.ExitStack() as fwd_stack:  # the forwarders are gone before phase (3)
                p = bench_profile(sshd, target)
                fwd: dict[str, Forwarder] = {}
                if "direct" in args.columns:
                    fwd["direct"] = Forwarder("direct", target, None, "-")
                home = work / "home"
                if "clawd" in args.columns:
                    fwd["clawd"] = fwd_stack.enter_context(clawd_forwarder("clawd", p, home, []))
                if "patched" in args.columns or "patched-uvloop" in args.columns:
                    site = patched_asyncssh(work / "asyncssh-patched", args.asyncssh_patch)
                    for col, loop in (("patched", "asyncio"), ("patched-uvloop", "uvloop")):
                        if col in args.columns:
                            fwd[col] = fwd_stack.enter_context(
                                clawd_forwarder(col, p, home, [], pythonpath=site, loop=loop)
                            )
                if "uvloop" in args.columns:
                    fwd["uvloop"] = fwd_stack.enter_context(
                        clawd_forwarder("uvloop", p, home, [], loop="uvloop")
                    )
                if "tuned" in args.columns:
                    fwd["tuned"] = fwd_stack.enter_context(clawd_forwarder("tuned", p, home, list(args.tune)))
                if "ssh" in args.columns:
                    fwd["ssh"] = fwd_stack.enter_context(
                        ssh_forwarder(sshd, args.cipher, target, work / "ssh-bulk.log")
                    )[0]
                for f in fwd.values():
                    if f.name != "direct" and args.cipher not in f.cipher:
                        raise RuntimeError(f"{f.name}: negotiated {f.cipher}, not {args.cipher}")
                order = [modes[k] for k in ("direct", "ssh", *FORWARDER_COLUMNS) if k in fwd]
                measure_transfer(order, fwd, loadgen, sshd, args)

        if args.phases & {"start", "detect", "reconnect"}:
            gw_port = stack.enter_context(gateway_process(work))
            say(f"clawd-gateway on {HOST}:{gw_port}")
            if "start" in args.phases:
                try:
                    measure_start(start, sshd, gw_port, work, args)
                except (
                    RuntimeError,
                    TimeoutError,
                    AssertionError,
                    OSError,
                    subprocess.SubprocessError,
                ) as exc:
                    start.error = f"{type(exc).__name__}: {exc}"
            if "detect" in args.phases:
                try:
                    measure_detection(detect, sshd, gw_port, work, args)
                except (RuntimeError, TimeoutError, AssertionError, OSError) as exc:
                    detect.error = f"{type(exc).__name__}: {exc}"
            if "reconnect" in args.phases:
                try:
                    measure_reconnect(rec, sshd, gw_port, args)
                except (RuntimeError, TimeoutError, AssertionError, OSError) as exc:
                    rec.error = f"{type(exc).__name__}: {exc}"
        if "wan" in args.phases:
            try:
                measure_wan(wan, work, loadgen, args)
            except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
                wan.error = f"{type(exc).__name__}: {exc}"
    return report(modes, start, detect, rec, args, notes, wan)


PHASES = ("throughput", "start", "detect", "reconnect", "wan")


class SetupError(Exception):
    """The run cannot be set up as asked (printed as is, exit status 2)."""


def check_asyncssh_patchable(patches: list[Path]) -> None:
    """Refuse early, before anything is started, when the patches cannot apply."""
    if asyncssh.__version__ != ASYNCSSH_PATCH_VERSION:
        raise SetupError(
            f"the asyncssh patches are made against asyncssh {ASYNCSSH_PATCH_VERSION}, but asyncssh "
            f"{asyncssh.__version__} is installed ({Path(asyncssh.__file__).parent}); run without the "
            "'patched' column (--columns ...) or pass --asyncssh-patch files made for that version"
        )
    if shutil.which("patch") is None:
        raise SetupError("the 'patched' column needs the patch program (apt-get install patch)")
    for patch in patches:
        if not patch.is_file():
            raise SetupError(f"--asyncssh-patch: no such file: {patch}")


def patched_asyncssh(dest: Path, patches: list[Path]) -> Path:
    """Copies the installed asyncssh package to dest/asyncssh and applies `patches` there with
    `patch -p1` (the installed package is not touched). Returns dest, the directory to put first
    on a forwarder process's sys.path."""
    check_asyncssh_patchable(patches)
    shutil.copytree(
        Path(asyncssh.__file__).parent, dest / "asyncssh", ignore=shutil.ignore_patterns("__pycache__")
    )
    for patch in patches:
        done = subprocess.run(
            ["patch", "-p1", "--batch", "--forward", "-d", str(dest), "-i", str(patch)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SetupError(
                f"{patch} does not apply to asyncssh {asyncssh.__version__}:\n{done.stdout}{done.stderr}"
            )
    found = re.search(r"__version__ = '([^']+)'", (dest / "asyncssh" / "version.py").read_text())
    if not found or found.group(1) != ASYNCSSH_PATCH_VERSION:
        raise SetupError(f"the patched copy in {dest} is not asyncssh {ASYNCSSH_PATCH_VERSION}")
    names = ", ".join(p.name for p in patches)
    say(f"asyncssh {ASYNCSSH_PATCH_VERSION} copied to {dest} and patched: {names}")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--mib", type=int, default=256, help="MiB per bulk run (default 256)")
    ap.add_argument("--runs", type=int, default=7, help="bulk runs per mode and direction (default 7)")
    ap.add_argument("--rtt-count", type=int, default=2000, help="echo round trips (default 2000)")
    ap.add_argument("--rtt-size", type=int, default=64, help="echo payload bytes (default 64)")
    ap.add_argument("--starts", type=int, default=3, help="start->healthy repetitions (default 3)")
    ap.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU window (default 10)")
    ap.add_argument("--detect-runs", type=int, default=3, help="silent-drop repetitions (default 3)")
    ap.add_argument("--reconnect-runs", type=int, default=3, help="sshd restart repetitions (default 3)")
    ap.add_argument("--downtime", type=float, default=2.0, help="seconds sshd stays down (default 2)")
    ap.add_argument("--cipher", default=CIPHER, help=f"cipher forced on sshd and ssh (default {CIPHER})")
    ap.add_argument(
        "--tune",
        nargs="*",
        default=list(DEFAULT_TUNED),
        choices=sorted(TUNINGS),
        help="prototype patches for the 'clawd tuned' forwarder (default: all)",
    )
    ap.add_argument(
        "--skip-tuned", action="store_true", help="no 'clawd tuned' column (even if in --columns)"
    )
    ap.add_argument(
        "--columns",
        nargs="+",
        choices=COLUMNS,
        default=list(DEFAULT_COLUMNS),
        help="forwarders to measure: clawd (stock), patched (clawd on a patched asyncssh copy), uvloop "
        "(clawd on uvloop), patched-uvloop (both), tuned (clawd with the TUNINGS monkeypatches), ssh, "
        "direct "
        f"(default: {' '.join(DEFAULT_COLUMNS)})",
    )
    ap.add_argument(
        "--asyncssh-patch",
        action="append",
        type=Path,
        metavar="FILE",
        help="a unified diff against asyncssh 2.24.1 (patch -p1 in the directory holding asyncssh/) for the "
        f"'patched' column; repeatable, applied in order (default: {DATAPATH_PATCH.name})",
    )
    ap.add_argument(
        "--only", nargs="*", choices=PHASES, default=list(PHASES), help="run only these phases (default: all)"
    )
    ap.add_argument("--wan-rtt-ms", type=float, default=20.0, help="WAN row: round trip (default 20)")
    ap.add_argument("--wan-mbit", type=int, default=100, help="WAN row: rate each way (default 100)")
    ap.add_argument("--wan-mib", type=int, default=32, help="WAN row: MiB per bulk run (default 32)")
    ap.add_argument("--wan-runs", type=int, default=3, help="WAN row: bulk runs per mode (default 3)")
    ap.add_argument("--wan-rtt-count", type=int, default=200, help="WAN row: echoes (default 200)")
    ap.add_argument("--serve-in-ns", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--delay-line", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.delay_line:
        delay_line_main(int(args.delay_line[0]), args.delay_line[1], float(args.delay_line[2]))
        return 0
    if args.serve_in_ns:
        serve_in_ns_main(args.serve_in_ns)
        return 0
    args.phases = set(args.only)
    args.asyncssh_patch = [p.resolve() for p in (args.asyncssh_patch or [DATAPATH_PATCH])]
    args.columns = [c for c in COLUMNS if c in args.columns and not (c == "tuned" and args.skip_tuned)]
    args.skip_tuned = "tuned" not in args.columns  # row (5)'s prototype poll goes with the column
    try:
        if {"patched", "patched-uvloop"} & set(args.columns) and "throughput" in args.phases:
            check_asyncssh_patchable(args.asyncssh_patch)
    except SetupError as exc:
        print(f"tunnel_bench: {exc}", file=sys.stderr)
        return 2
    if min(args.mib, args.runs, args.rtt_count, args.starts, args.detect_runs, args.reconnect_runs) < 1:
        ap.error("counts must be >= 1")
    if not SSHD.exists() or shutil.which("ssh") is None:
        print(
            "tunnel benchmark needs OpenSSH (apt-get install openssh-server openssh-client)", file=sys.stderr
        )
        return 2
    t0 = time.monotonic()
    try:
        text = run(args)
    except SetupError as exc:
        print(f"tunnel_bench: {exc}", file=sys.stderr)
        return 2
    print(text)
    print(f"(whole run {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
