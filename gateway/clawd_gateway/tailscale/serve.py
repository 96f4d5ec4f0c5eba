"""Put the loopback gateway behind Tailscale Serve or Funnel, and take back only what we added.

The user asked for an exposure explicitly, so every failure is fatal (exit 78, the config
refusal code) rather than a warning under a gateway that then looks fine but is unreachable.
Checks run before the gateway listens; the one change (`tailscale serve|funnel --bg ...`) runs
right after, and is verified with `serve status --json` because the CLI can exit 0 having
configured nothing (HTTPS disabled for the tailnet).

Ownership: what we add is recorded in the state dir, so a later run (after a crash, or with
resetOnExit off) knows that handler is ours. A handler we did not add is never replaced or
removed; if it sits where we want to be, we refuse and say how to move either one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RefusalError
from ..log import log
from ..paths import atomic_write
from . import command
from .parse import (
    FUNNEL_DEFAULT_PORTS,
    MIN_VERSION,
    Failure,
    NodeStatus,
    ServeConfig,
    classify_failure,
    host_port,
    parse_serve_config,
    parse_status,
    parse_version,
    state_failure,
)

RECORD_FILE = "tailscale-serve.json"
HTTPS_PORT = 443
KEY = "gateway.tailscale.mode"


class TailscaleSetupError(RefusalError):
    """Serve/Funnel was asked for and cannot be set up; names the cause and the fix."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message, key=KEY, fix=failure.fix)
        self.kind = failure.kind


@dataclass(frozen=True)
class Exposure:
    """What is in place once the gateway is reachable through Tailscale."""

    mode: str
    dns_name: str
    https_port: int
    mount: str
    target: str
    url: str
    ws_url: str
    owned: bool  # we added it (or a previous run of ours did): ours to remove
    reset_on_exit: bool

    @property
    def origin(self) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.dns_name}{port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "url": self.url,
            "wsUrl": self.ws_url,
            "dnsName": self.dns_name,
            "httpsPort": self.https_port,
            "path": self.mount,
            "target": self.target,
            "owned": self.owned,
            "resetOnExit": self.reset_on_exit,
        }


def _fail(kind: str, message: str, fix: str) -> TailscaleSetupError:
    return TailscaleSetupError(Failure(kind, message, fix))


class TailscaleExposure:
    """One gateway run's Serve/Funnel: preflight, apply, undo."""

    def __init__(
        self,
        mode: str,
        *,
        base_path: str,
        reset_on_exit: bool,
        state_dir: Path,
        logger: logging.Logger,
        configured_port: int = 0,
        binary: str | None = None,
    ) -> None:
        if mode not in ("serve", "funnel"):
            raise ValueError(mode)
        self.mode = mode
        self.base_path = base_path
        self.mount = base_path or "/"
        self.reset_on_exit = reset_on_exit
        self.record_path = state_dir / RECORD_FILE
        self.logger = logger
        self.configured_port = configured_port
        self.https_port = HTTPS_PORT
        self._binary = binary
        self.status: NodeStatus | None = None
        self.exposure: Exposure | None = None

    # -- helpers -------------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        if self._binary is None:
            found = command.find_binary()
            if found is None:
                raise _fail(
                    "not_installed",
                    f"tailscale {self.mode} needs the `tailscale` CLI, and it is not on PATH "
                    f"(nor at {command.MACOS_APP_BINARY})",
                    "install Tailscale (https://tailscale.com/download) and log in, "
                    'or set gateway.tailscale.mode to "off"',
                )
            self._binary = found
        return self._binary

    async def _run(self, *args: str, timeout: float = command.STATUS_TIMEOUT_S) -> command.RunResult:
        try:
            res = await command.run(self.binary, *args, timeout=timeout)
        except OSError as exc:
            raise _fail(
                "not_runnable",
                f"cannot run {self.binary}: {exc.strerror or exc}",
                "check the Tailscale install",
            ) from None
        log(
            self.logger,
            logging.DEBUG,
            "tailscale command",
            args=" ".join(args),
            code=res.returncode,
        )
        return res

    def target(self, port: int) -> str:
        return f"http://127.0.0.1:{port}{self.base_path}"

    def _hp(self) -> str:
        assert self.status is not None
        return host_port(self.status.dns_name, self.https_port)

    def _read_record(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _recorded_ours(self, handler: dict[str, Any] | None) -> bool:
        rec = self._read_record()
        return bool(
            rec
            and handler is not None
            and rec.get("hostPort") == self._hp()
            and rec.get("mount") == self.mount
            and rec.get("target") == handler.get("Proxy")
        )

    # -- steps ---------------------------------------------------------------------------------

    async def _version_check(self) -> None:
        res = await self._run("version")
        ver = parse_version(res.stdout) if res.ok else None
        if ver is None and self.status is not None:
            ver = parse_version(self.status.version)
        if ver is not None and ver < MIN_VERSION:
            have = ".".join(map(str, ver))
            want = ".".join(map(str, MIN_VERSION))
            raise _fail(
                "old_version",
                f"tailscale {have} is too old for `tailscale {self.mode} --bg --https=...` (needs {want}+)",
                "update Tailscale: https://tailscale.com/download",
            )

    async def read_status(self) -> NodeStatus:
        res = await self._run("status", "--json")
        if res.timed_out:
            raise _fail(
                "daemon_down",
                "`tailscale status --json` did not answer within 5 s (is tailscaled stuck?)",
                "check tailscaled: sudo systemctl status tailscaled",
            )
        try:
            status = parse_status(res.stdout)
        except ValueError:
            raise TailscaleSetupError(classify_failure(res.output, mode=self.mode)) from None
        failure = state_failure(status)
        if failure is not None:
            raise TailscaleSetupError(failure)
        if not status.dns_name:
            raise _fail(
                "no_magicdns",
                f"this node has no MagicDNS name, which tailscale {self.mode} needs for its HTTPS URL",
                "turn on MagicDNS and HTTPS: https://login.tailscale.com/admin/dns",
            )
        return status

    async def read_serve_config(self) -> ServeConfig:
        res = await self._run("serve", "status", "--json")
        if not res.ok:
            raise TailscaleSetupError(classify_failure(res.output, mode=self.mode))
        try:
            return parse_serve_config(res.stdout)
        except ValueError:
            raise _fail(
                "unknown",
                "could not read `tailscale serve status --json`",
                "run it yourself to see what it prints; update Tailscale if it is old",
            ) from None

    def _funnel_check(self, status: NodeStatus) -> None:
        if not status.https_enabled:
            raise TailscaleSetupError(classify_failure("HTTPS must be enabled", mode="funnel"))
        if not status.funnel_attr:
            raise TailscaleSetupError(classify_failure("node attribute not set", mode="funnel"))
        allowed = status.funnel_ports()
        if self.https_port not in (allowed if allowed is not None else FUNNEL_DEFAULT_PORTS):
            ports = ", ".join(map(str, sorted(allowed or FUNNEL_DEFAULT_PORTS)))
            raise _fail(
                "funnel_port",
                f"Funnel does not allow port {self.https_port} for this node (allowed: {ports})",
                "allow 443 in the funnel-ports node attribute of the tailnet policy file",
            )

    def _conflicts(self, sc: ServeConfig, port: int | None) -> bool:
        """Refuse anything that would clobber or expose the user's config; True if ours is there."""
        hp = self._hp()
        where = f"https://{self.status.dns_name if self.status else '?'}{self.mount}"
        off_cmd = f"tailscale serve --https={self.https_port} --set-path={self.mount} off"
        if self.https_port in sc.foreground_ports():
            raise _fail(
                "port_taken",
                f"HTTPS port {self.https_port} is held by a foreground `tailscale serve` in another process",
                "stop that `tailscale serve` (Ctrl-C it), then start the gateway again",
            )
        tcp = sc.tcp(self.https_port)
        if tcp is not None and not tcp.get("HTTPS"):
            raise _fail(
                "port_taken",
                f"HTTPS port {self.https_port} is already used by your Tailscale config for "
                + ("plain HTTP" if tcp.get("HTTP") else "a TCP forward"),
                f"remove it if unused (tailscale serve --tcp={self.https_port} off, or --http=)",
            )
        handlers = sc.handlers(hp)
        ours = handlers.get(self.mount)
        # SetWebHandler also drops a handler whose mount differs only by a trailing slash.
        twins = [m for m in handlers if m != self.mount and m.rstrip("/") == self.mount.rstrip("/")]
        if twins:
            raise _fail(
                "path_taken",
                f"{where} is already served by your handler at {twins[0]!r}; clawd will not replace it",
                f"remove it (tailscale serve --https={self.https_port} --set-path={twins[0]} off) "
                "or set gateway.controlUi.basePath to mount the gateway elsewhere",
            )
        mine = False
        if ours is not None:
            if self._recorded_ours(ours):
                mine = True
            elif port is None or ours.get("Proxy") != self.target(port):
                what = ours.get("Proxy") or ours.get("Path") or "text"
                raise _fail(
                    "path_taken",
                    f"{where} is already served by your Tailscale config (→ {what}); "
                    "clawd will not replace it",
                    f"remove it ({off_cmd}) or set gateway.controlUi.basePath to mount the gateway elsewhere",
                )
        others = [m for m in handlers if m != self.mount]
        if self.mode == "funnel" and others and not sc.funnel(hp):
            raise _fail(
                "would_expose",
                f"Funnel works per host and port: turning it on for port {self.https_port} would also "
                f"publish your other Serve paths there ({', '.join(sorted(others))}) to the internet",
                "move those paths to another port, or use tailscale.mode serve",
            )
        if self.mode == "serve" and sc.funnel(hp) and not mine:
            raise _fail(
                "would_expose",
                f"port {self.https_port} has Funnel on in your Tailscale config: `tailscale serve` would "
                "turn your Funnel off, and leaving it on would make the gateway public",
                "use tailscale.mode funnel (with password auth), or move your Funnel to 8443/10000",
            )
        return ours is not None

    async def preflight(self) -> None:
        """Everything that can be checked before the gateway listens; raises TailscaleSetupError."""
        _ = self.binary
        self.status = await self.read_status()
        await self._version_check()
        if self.mode == "funnel":
            self._funnel_check(self.status)
        sc = await self.read_serve_config()
        self._conflicts(sc, self.configured_port or None)

    async def apply(self, port: int) -> Exposure:
        """Configure Serve/Funnel for the listening port and verify it took."""
        if self.status is None:
            await self.preflight()
        assert self.status is not None
        dns = self.status.dns_name
        hp = self._hp()
        target = self.target(port)
        sc = await self.read_serve_config()
        present = self._conflicts(sc, port)
        handler = sc.handler(hp, self.mount)
        recorded = self._recorded_ours(handler)
        already = (
            handler is not None
            and handler.get("Proxy") == target
            and (sc.funnel(hp) if self.mode == "funnel" else not sc.funnel(hp))
        )
        owned = recorded or not present
        if present and not recorded and not already:
            raise _fail(
                "path_taken",
                f"https://{dns}{self.mount} already points at the gateway in your own Tailscale config, but "
                + ("without" if self.mode == "funnel" else "with")
                + " Funnel; clawd will not change a handler it did not add",
                f"remove it (tailscale serve --https={self.https_port} --set-path={self.mount} off) "
                "and start the gateway again",
            )
        if not already:
            args = [self.mode, "--bg", "--yes", f"--https={self.https_port}"]
            if self.mount != "/":
                args.append(f"--set-path={self.mount}")
            # Recorded before the change, so a crash right after it still leaves the route ours.
            self._write_record(hp, target)
            res = await self._run(*args, target, timeout=command.SERVE_TIMEOUT_S)
            after = await self.read_serve_config()
            got = after.handler(hp, self.mount)
            funnel_ok = after.funnel(hp) if self.mode == "funnel" else not after.funnel(hp)
            if got is None or got.get("Proxy") != target or not funnel_ok:
                if not recorded:
                    self.record_path.unlink(missing_ok=True)
                elif handler is not None:  # still ours, at its old target
                    self._write_record(hp, str(handler.get("Proxy")))
                if got is not None and got.get("Proxy") == target:
                    # The handler went in but Funnel did not: take ours back out before failing.
                    await self._remove()
                if res.ok and not res.output.strip():
                    raise _fail(
                        "unknown",
                        f"`tailscale {self.mode}` exited 0 but {hp}{self.mount} is not configured",
                        f"run `tailscale {self.mode} status` and check HTTPS for the tailnet",
                    )
                raise TailscaleSetupError(classify_failure(res.output or "timed out", mode=self.mode))
            owned = True
        if owned:
            self._write_record(hp, target)
        port_part = "" if self.https_port == 443 else f":{self.https_port}"
        self.exposure = Exposure(
            mode=self.mode,
            dns_name=dns,
            https_port=self.https_port,
            mount=self.mount,
            target=target,
            url=f"https://{dns}{port_part}{self.base_path}/",
            ws_url=f"wss://{dns}{port_part}{self.base_path}",
            owned=owned,
            reset_on_exit=self.reset_on_exit,
        )
        log(
            self.logger,
            logging.INFO,
            f"tailscale {self.mode} enabled",
            url=self.exposure.url,
            ws=self.exposure.ws_url,
            owned=owned,
            changed=not already,
        )
        return self.exposure

    def _write_record(self, hp: str, target: str) -> None:
        rec = {"hostPort": hp, "mount": self.mount, "target": target, "mode": self.mode, "pid": os.getpid()}
        atomic_write(self.record_path, json.dumps(rec) + "\n", mode=0o600)

    async def _remove(self) -> command.RunResult:
        args = [self.mode, f"--https={self.https_port}", f"--set-path={self.mount}", "off"]
        return await self._run(*args, timeout=command.SERVE_TIMEOUT_S)

    async def undo(self) -> str | None:
        """With resetOnExit, remove exactly our handler (never `serve reset`); a warning or None."""
        exp = self.exposure
        if exp is None or not exp.owned or not self.reset_on_exit:
            return None
        off_cmd = f"tailscale {self.mode} --https={self.https_port} --set-path={self.mount} off"
        try:
            sc = await self.read_serve_config()
            handler = sc.handler(self._hp(), self.mount)
            if handler is None or handler.get("Proxy") != exp.target:
                # Gone or replaced by the user meanwhile: not ours any more.
                self.record_path.unlink(missing_ok=True)
                return None
            res = await self._remove()
            after = await self.read_serve_config()
        except TailscaleSetupError as exc:
            return f"could not undo tailscale {self.mode}: {exc}; run: {off_cmd}"
        if after.handler(self._hp(), self.mount) is not None:
            return f"could not undo tailscale {self.mode} ({res.output[:200]}); run: {off_cmd}"
        self.record_path.unlink(missing_ok=True)
        log(
            self.logger, logging.INFO, f"tailscale {self.mode} removed", path=self.mount, port=self.https_port
        )
        if after.funnel(self._hp()):
            return (
                f"Funnel is still on for {self._hp()} (other handlers were added there meanwhile); "
                f"check `tailscale funnel status`"
            )
        return None
