"""A faithful test double of the `tailscale` CLI and of tailscaled's LocalAPI.

This is the one fake the project allows: no tailnet exists in CI, yet the gateway's Serve/Funnel
automation, identity-header auth (whois) and the client's tailscale profile must be tested against
the real CLI syntax, texts, exit codes and JSON shapes. Both faces read one JSON state file, so a
scenario set here is seen by every `tailscale ...` subprocess and by the LocalAPI socket alike.

    fake = FakeTailscale.create(tmp_path)
    fake.add_peer("laptop", ["100.64.0.7"], user_login="bob@example.com")
    subprocess.run(["tailscale", "serve", "--bg", "--yes", "18789"], env={**os.environ, **fake.env})
    assert fake.serve_config()["Web"]["gw.tail1234.ts.net:443"]["Handlers"]["/"]["Proxy"] == ...
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from . import _core

BIN_DIR = Path(__file__).resolve().parent
STATE_ENV = _core.STATE_ENV


class FakeTailscale:
    """Scenario control + inspection for the fake `tailscale` binary and LocalAPI."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_path = self.root / "state.json"
        self.calls_path = self.root / _core.CALLS_NAME
        self.bin_dir = BIN_DIR
        self.binary = BIN_DIR / "tailscale"
        self._sock_dir = Path(tempfile.mkdtemp(prefix="fts-", dir="/tmp"))
        self.socket_path = str(self._sock_dir / "tailscaled.sock")
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._api_calls: list[dict[str, Any]] = []
        self._api_lock = threading.Lock()
        if not self.state_path.exists():
            st = _core.default_state()
            st["socket_path"] = self.socket_path  # the one --socket value accepted without a LocalAPI
            self._write(st)

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, tmp_path: Path | str, **scenario: Any) -> FakeTailscale:
        """A fresh running, logged-in node `gw.tail1234.ts.net` with HTTPS and Funnel allowed."""
        fake = cls(Path(tmp_path) / "fake_tailscale")
        if scenario:
            fake.configure(**scenario)
        return fake

    def __enter__(self) -> FakeTailscale:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_localapi()
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        """Merge into a subprocess env (or monkeypatch os.environ) to put the fake first on PATH."""
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            STATE_ENV: str(self.state_path),
        }

    # ------------------------------------------------------------------ scenario

    def _write(self, st: dict[str, Any]) -> None:
        with _core.locked_state(str(self.state_path)) as cur:
            cur.clear()
            cur.update(st)

    def _update(self, **kv: Any) -> None:
        with _core.locked_state(str(self.state_path)) as st:
            st.update(kv)

    def state(self) -> dict[str, Any]:
        """The raw scenario state (for debugging; prefer the typed accessors)."""
        return _core.read_state(str(self.state_path))

    def configure(self, **kv: Any) -> None:
        """Set raw state keys (see _core.default_state), e.g. configure(https_enabled=False)."""
        unknown = set(kv) - set(_core.default_state())
        if unknown:
            raise KeyError(f"unknown fake tailscale state keys: {sorted(unknown)}")
        self._update(**kv)

    def set_daemon_running(self, running: bool) -> None:
        """Stopped daemon: CLI calls fail like a missing tailscaled and the LocalAPI socket goes away."""
        self._update(daemon_running=running)
        if not running and self._server is not None:
            self._shutdown_server()
        elif running and self._thread is not None and self._server is None:
            self._serve()

    def set_backend_state(self, state: str, auth_url: str | None = None) -> None:
        """Running / Starting / NeedsLogin / NeedsMachineAuth / Stopped / NoState."""
        allowed = ("Running", "Starting", "NeedsLogin", "NeedsMachineAuth", "Stopped", "NoState")
        if state not in allowed:
            raise ValueError(f"backend state must be one of {allowed}")
        if auth_url is None:
            auth_url = "https://login.tailscale.com/a/1a2b3c4d5e6f" if state == "NeedsLogin" else ""
        self._update(backend_state=state, auth_url=auth_url)

    def set_self(
        self,
        *,
        hostname: str | None = None,
        dns_name: str | None = None,
        ips: list[str] | None = None,
        online: bool | None = None,
        os_name: str | None = None,
        user_login: str | None = None,
        user_display_name: str | None = None,
        tags: list[str] | None = None,
        extra_caps: list[str] | None = None,
    ) -> None:
        """Change this node. dns_name must be the FQDN with its trailing dot, like real."""
        with _core.locked_state(str(self.state_path)) as st:
            me = st["self"]
            for key, val in (
                ("hostname", hostname),
                ("dns_name", dns_name),
                ("ips", ips),
                ("online", online),
                ("os", os_name),
                ("user_login", user_login),
                ("user_display_name", user_display_name),
                ("tags", tags),
                ("extra_caps", extra_caps),
            ):
                if val is not None:
                    me[key] = val
            if hostname is not None and dns_name is None:
                me["dns_name"] = f"{hostname}.{st['tailnet']['magic_dns_suffix']}."

    def set_tailnet(
        self, name: str | None = None, magic_dns_suffix: str | None = None, magic_dns: bool | None = None
    ) -> None:
        with _core.locked_state(str(self.state_path)) as st:
            tn = st["tailnet"]
            if name is not None:
                tn["name"] = name
            if magic_dns_suffix is not None:
                tn["magic_dns_suffix"] = magic_dns_suffix
            if magic_dns is not None:
                tn["magic_dns_enabled"] = magic_dns

    def set_https(self, enabled: bool, *, wait: bool = False) -> None:
        """HTTPS certificates for the tailnet (the "https" node capability, CertDomains).

        wait=True models control's ShouldWait: `serve` prints the enable URL and blocks until
        set_https(True) is called (or it is killed), instead of exiting 0 with nothing configured.
        """
        self._update(https_enabled=enabled, https_enable_wait=wait)

    def set_funnel_attr(self, enabled: bool, ports: str = "443,8443,10000", *, prompt: bool = False) -> None:
        """The "funnel" node attribute and allowed ports. prompt=True: control offers the
        interactive enable flow (prints "Funnel is not enabled on your tailnet", exit 0) instead of
        the CLI's fallback error."""
        self._update(funnel_attr=enabled, funnel_ports=ports, funnel_enable_prompt=prompt)

    def set_version(self, version: str) -> None:
        """E.g. "1.50.1": below 1.52 serve/funnel take the legacy syntax (`--bg` is undefined)."""
        self._update(version=version)

    def set_access_denied(self, denied: bool) -> None:
        """Non-root, non-operator caller: serve/funnel changes fail with "Access denied"."""
        self._update(access_denied=denied)

    def set_health(self, messages: list[str]) -> None:
        self._update(health=list(messages))

    def add_peer(
        self,
        hostname: str,
        ips: list[str],
        *,
        dns_name: str | None = None,
        online: bool = True,
        os_name: str = "linux",
        user_login: str = "bob@example.com",
        user_display_name: str = "Bob Example",
        tags: list[str] | None = None,
        peer_cap_map: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A tailnet peer: listed in `status --json` Peer and answerable by whois."""
        with _core.locked_state(str(self.state_path)) as st:
            peer = {
                "hostname": hostname,
                "dns_name": dns_name or f"{hostname}.{st['tailnet']['magic_dns_suffix']}.",
                "ips": list(ips),
                "online": online,
                "os": os_name,
                "user_login": user_login,
                "user_display_name": user_display_name,
                "tags": list(tags or []),
                "peer_cap_map": peer_cap_map or {},
            }
            st["peers"] = [p for p in st["peers"] if p["hostname"] != hostname] + [peer]
        return copy.deepcopy(peer)

    def remove_peer(self, hostname: str) -> None:
        with _core.locked_state(str(self.state_path)) as st:
            st["peers"] = [p for p in st["peers"] if p["hostname"] != hostname]

    def add_whois(
        self,
        ip: str,
        login: str,
        *,
        display_name: str = "",
        node_name: str | None = None,
        os_name: str = "macOS",
        tags: list[str] | None = None,
    ) -> None:
        """A whois-only identity (e.g. a node shared into the tailnet, absent from `status`)."""
        host = (node_name or f"node-{ip.replace('.', '-').replace(':', '-')}").split(".")[0]
        with _core.locked_state(str(self.state_path)) as st:
            entry = {
                "hostname": host,
                "dns_name": node_name if node_name and node_name.endswith(".") else "",
                "ips": [ip],
                "online": True,
                "os": os_name,
                "user_login": login,
                "user_display_name": display_name or login.split("@")[0],
                "tags": list(tags or []),
            }
            st["whois_extra"] = [e for e in st["whois_extra"] if ip not in e["ips"]] + [entry]

    def set_serve_config(self, config: dict[str, Any] | None) -> None:
        """Pre-existing ServeConfig (real JSON shape, e.g. the user's own routes), or None."""
        self._update(serve_config=copy.deepcopy(config))

    # ------------------------------------------------------------------ inspection

    def serve_config(self) -> dict[str, Any] | None:
        """What `tailscale serve status --json` would print (None = never configured, {} = reset)."""
        sc = self.state().get("serve_config")
        return None if sc is None else _core.normalize_sc(sc)

    def status_json(self) -> dict[str, Any]:
        return _core.build_status(self.state())

    def call_records(self) -> list[dict[str, Any]]:
        """Every CLI invocation: {"argv": [...args without the program...], "cwd", "t", "pid", "socket"}."""
        try:
            text = self.calls_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def calls(self) -> list[list[str]]:
        """argv lists of every CLI call, program name excluded: [["version"], ["status", "--json"], ...]."""
        return [r["argv"] for r in self.call_records()]

    def clear_calls(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.calls_path.unlink()
        with self._api_lock:
            self._api_calls.clear()

    def run(
        self, *args: str, timeout: float = 10.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the fake CLI (for scenario tests of the double itself)."""
        return subprocess.run(
            [str(self.binary), *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.binary), *args],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(self, predicate: Any, timeout: float = 10.0, what: str = "fake tailscale state") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    # ------------------------------------------------------------------ LocalAPI

    def start_localapi(self) -> str:
        """Serve /localapi/v0/{status,whois,serve-config} on a unix socket; returns its path."""
        with _core.locked_state(str(self.state_path)) as st:
            st["localapi_socket"] = self.socket_path
        if self._server is None and self.state()["daemon_running"]:
            self._serve()
        if self._thread is None:
            self._thread = threading.Thread()  # marks "wanted" for set_daemon_running(True)
        return self.socket_path

    def localapi_calls(self) -> list[dict[str, Any]]:
        """{"method", "path", "query", "host", "auth"} per LocalAPI request."""
        with self._api_lock:
            return list(self._api_calls)

    def stop_localapi(self) -> None:
        self._shutdown_server()
        self._thread = None

    def _serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        server = _UnixHTTPServer(self.socket_path, _LocalAPIHandler)
        server.fake = self
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        self._server = server
        self._thread = t

    def _shutdown_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)

    def _record_api(self, rec: dict[str, Any]) -> None:
        with self._api_lock:
            self._api_calls.append(rec)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    fake: FakeTailscale


class _LocalAPIHandler(BaseHTTPRequestHandler):
    """tailscaled's LocalAPI as ipn/localapi/localapi.go answers the routes the project uses."""

    protocol_version = "HTTP/1.1"
    server: _UnixHTTPServer
    _version = ""

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        code: int,
        body: str,
        ctype: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Tailscale-Version", self._version)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, msg: str) -> None:
        # net/http.Error: text/plain, "nosniff", message + "\n"
        self._send(code, msg + "\n", headers={"X-Content-Type-Options": "nosniff"})

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        fake._record_api(
            {
                "method": method,
                "path": u.path,
                "query": {k: v[0] for k, v in q.items()},
                "host": self.headers.get("Host", ""),
                "auth": self.headers.get("Authorization", ""),
            }
        )
        st = fake.state()
        self._version = _core.version_long(st["version"])
        host = self.headers.get("Host", "")
        if (
            self.headers.get("Referer")
            or self.headers.get("Origin")
            or host not in ("", "local-tailscaled.sock")
        ):
            # localapi.Handler.ServeHTTP: the cross-origin guard of the world-writable socket.
            self._error(403, "invalid localapi request")
            return
        if u.path == "/localapi/v0/status":
            peers = q.get("peers", ["true"])[0] != "false"
            self._send(
                200, _core.go_json(_core.build_status(st, peers=peers), indent="\t"), "application/json"
            )
        elif u.path == "/localapi/v0/whois":
            code, body = _core.whois_lookup(st, q.get("addr", [""])[0])
            if code == 200:
                self._send(200, _core.go_json(body, indent="\t"), "application/json")
            else:
                self._error(code, body)
        elif u.path == "/localapi/v0/serve-config":
            self._serve_config(method, st)
        else:
            self._error(404, "404 page not found")

    def _serve_config(self, method: str, st: dict[str, Any]) -> None:
        fake = self.server.fake
        if method == "GET":
            sc = st.get("serve_config")
            body = "null" if sc is None else _core.go_json(_core.normalize_sc(sc), indent=None)
            etag = _core._h("etag", body)
            self._send(200, body, "application/json", {"Etag": etag})
            return
        if method != "POST":
            self._error(405, "method not allowed")
            return
        if st.get("access_denied"):
            self._error(403, "serve config denied")
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            new = json.loads(raw or b"null")
        except ValueError:
            self._error(400, "decoding config")
            return
        conflict = False
        with _core.locked_state(str(fake.state_path)) as w:
            cur = w.get("serve_config")
            cur_body = "null" if cur is None else _core.go_json(_core.normalize_sc(cur), indent=None)
            want = self.headers.get("If-Match")
            if want and want != _core._h("etag", cur_body):
                conflict = True
            else:
                w["serve_config"] = new if new is not None else {}
        if conflict:
            self._error(412, "preconditions failed")
        else:
            self._send(200, "", "text/plain")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


def localapi_get(
    socket_path: str, path: str, timeout: float = 5.0, host: str = "local-tailscaled.sock"
) -> tuple[int, str]:
    """Tiny HTTP/1.1 GET over a unix socket, the way tailscale's LocalClient talks to tailscaled."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_path)
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic OmZha2U=\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks).decode()
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body


__all__ = ["BIN_DIR", "STATE_ENV", "FakeTailscale", "localapi_get"]
