"""`clawd tray` on a real X desktop (Xvfb + trayer + a session bus) against a real tunnel.

A person's view of the tray: the icon docks, turns green once the gateway answers through the
real sshd, its menu opens on a right click and shows what the presenter says it should; a click
on Disconnect stops the tunnel and greys the icon, Connect brings both back, Quit exits 0 and
leaves no status file behind. The engine's state is checked each time with `clawd status
--json`, which reads what the tray's supervisor publishes.

Menu items are found the way a person finds them: by looking. The menu window is screenshotted,
its text rows are located (tests/support/desktop.text_bands), and they must be exactly as many
as the presenter's non-separator items; the row for "Disconnect" is hovered (it lights up, so
it is enabled) and clicked. Screenshots land in the test's artifacts folder
($CLAWD_TEST_ARTIFACTS, else tmp_path/artifacts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support.desktop import Desktop, desktop_session, text_bands, wait_for
from tests.support.servers import free_port
from tests.support.supervisor import ssh_profile

TOKEN = "s3cret-token-for-tests-0123456789"
PROFILE = "vps"

pytestmark = pytest.mark.timeout(240)


def _pixels(image: Any) -> Any:
    """All pixels in order, without Pillow's deprecated getdata() where the new name exists."""
    flat = getattr(image, "get_flattened_data", None)
    return flat() if flat is not None else image.getdata()


@pytest.fixture
def desktop(tmp_path: Path):
    with desktop_session(tmp_path / "desktop") as desk:
        yield desk


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    base = os.environ.get("CLAWD_TEST_ARTIFACTS")
    folder = (Path(base) / request.node.name) if base else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _tray_argv() -> list[str]:
    """`clawd tray` once the main CLI registers it; `python -m clawd_client.tray` until then."""
    from clawd_client.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction) and "tray" in action.choices:
            return [sys.executable, "-m", "clawd_client", "tray"]
    return [sys.executable, "-m", "clawd_client.tray"]


def _clawd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clawd_client", *args], capture_output=True, text=True, env=env, timeout=60
    )


def _tunnel(env: dict[str, str]) -> dict[str, Any] | None:
    out = _clawd(env, "status", "--json", PROFILE)
    tunnels = json.loads(out.stdout)["tunnels"]
    return tunnels[0] if tunnels else None


def _wait_state(
    env: dict[str, str], state: str, timeout: float = 40, proc: subprocess.Popen[bytes] | None = None
) -> dict[str, Any]:
    seen: list[str] = []

    def check() -> dict[str, Any] | None:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the tray exited ({proc.returncode}) while waiting for {state}")
        t = _tunnel(env)
        if t is not None:
            if not seen or seen[-1] != t["state"]:
                seen.append(t["state"])
            if t["state"] == state and t.get("running"):
                return t
        return None

    try:
        return wait_for(check, timeout, f"clawd status to say {state}", interval=0.1)
    except AssertionError as exc:
        log = Path(env["CLAWD_STATE_DIR"]) / "client" / "logs" / "tray.log"
        if proc is not None and proc.poll() is None and log.exists():
            size = log.stat().st_size
            os.kill(proc.pid, signal.SIGUSR1)  # the tray dumps every thread's stack into its log
            with contextlib.suppress(AssertionError):
                wait_for(lambda: log.stat().st_size > size, 3, "a stack dump")
        tail = log.read_text()[-6000:] if log.exists() else "(no tray log)"
        raise AssertionError(f"{exc}; states seen: {seen}\ntray log:\n{tail}") from None


def _color_pixels(image: Any, rgb: tuple[int, int, int], tolerance: int = 60) -> int:
    px = image.load()
    w, h = image.size
    return sum(
        1
        for y in range(h)
        for x in range(w)
        if sum(abs(a - b) for a, b in zip(px[x, y], rgb, strict=True)) <= tolerance
    )


def _save(image: Any, path: Path, scale: int = 1) -> None:
    if scale > 1:
        from PIL import Image

        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    image.save(path)


class TrayDriver:
    """The tray process plus the person in front of the screen."""

    def __init__(
        self, desk: Desktop, env: dict[str, str], artifacts: Path, backend: str, *extra: str
    ) -> None:
        self.desk = desk
        self.env = env
        self.artifacts = artifacts
        self.backend = backend
        self.out = (artifacts / "tray.stdout").open("wb")
        self.err = (artifacts / "tray.stderr").open("wb")
        self.proc = subprocess.Popen(
            [*_tray_argv(), PROFILE, *extra],
            env=env,
            stdout=self.out,
            stderr=self.err,
            stdin=subprocess.DEVNULL,
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()
        self.err.close()

    def stderr(self) -> str:
        if not self.err.closed:
            self.err.flush()
        return (self.artifacts / "tray.stderr").read_text(errors="replace")

    def icon(self) -> Any:
        icons = wait_for(self.desk.tray_icons, 30, "the clawd icon to dock in trayer")
        return icons[0]

    def icon_image(self) -> Any:
        return self.desk.grab(self.icon().box)

    def wait_icon_color(self, rgb: tuple[int, int, int], present: bool, what: str) -> Any:
        def check() -> Any:
            img = self.icon_image()
            return img if (_color_pixels(img, rgb) >= 4) == present else None

        return wait_for(check, 20, f"the icon to {what}")

    def open_menu(self) -> Any:
        before = {w.wid for w in self.desk.toplevels()}
        x, y = self.icon().center
        self.desk.click(x, y, button=3)

        def menu() -> Any:
            new = [w for w in self.desk.toplevels() if w.wid not in before and w.w > 60 and w.h > 60]
            return new[0] if new else None

        return wait_for(menu, 10, "the tray menu to open")

    def wait_menu_closed(self, menu: Any) -> None:
        wait_for(lambda: all(w.wid != menu.wid for w in self.desk.toplevels()), 10, "the menu to close")

    def click_item(self, menu: Any, model_ids: list[str], item_id: str, shot: str) -> None:
        """Find the item's text row in the menu, hover it (it must light up), click it."""

        def stable_bands() -> Any:
            img = self.desk.grab(menu.box)
            bands = text_bands(img)
            return (img, bands) if len(bands) == len(model_ids) else None

        try:
            img, bands = wait_for(stable_bands, 10, f"{len(model_ids)} text rows in the menu")
        except AssertionError:
            self.desk.grab(menu.box).save(self.artifacts / f"{shot}-unexpected.png")
            raise
        _save(img, self.artifacts / f"{shot}.png")
        top, bottom, left, right = bands[model_ids.index(item_id)]
        x = menu.x + (left + right) // 2
        y = menu.y + (top + bottom) // 2
        self.desk.move(x, y)
        plain = img.crop((2, top, img.width - 2, bottom + 1))

        def lit() -> Any:
            now = self.desk.grab(menu.box)
            row = now.crop((2, top, now.width - 2, bottom + 1))
            changed = sum(
                1
                for a, b in zip(_pixels(plain), _pixels(row), strict=True)
                if sum(map(abs, map(int.__sub__, a, b))) > 60
            )
            return now if changed > row.width * row.height * 0.3 else None

        hovered = wait_for(lit, 10, f"the {item_id!r} row to light up under the pointer")
        _save(hovered, self.artifacts / f"{shot}-hover-{item_id}.png")
        self.desk.click(x, y, button=1)
        self.wait_menu_closed(menu)


def _model_ids(status: dict[str, Any], backend: str, attention: Any = None) -> list[str]:
    """The presenter's top-level menu rows (labels included, separators not), for this status."""
    from clawd_client.tray.presenter import Caps, TrayInput, present

    caps = Caps(backend, has_default_action=backend != "appindicator", has_notification=False)
    view = present(
        TrayInput(
            status=status,
            profiles=(PROFILE,),
            profile=PROFILE,
            autostart=False,
            caps=caps,
            attention=attention,
        )
    )
    return [item.id or f"label:{item.text}" for item in view.menu if not item.separator]


def _fake_opener(tmp_path: Path) -> tuple[Path, Path]:
    """An `xdg-open` that records what it was asked to open, first on PATH: the browser and the
    text editor are the desktop's business, what clawd hands them is ours."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "opened.txt"
    script = bin_dir / "xdg-open"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{record}"\n')
    script.chmod(0o755)
    return bin_dir, record


def _opened(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


def _tray_env(desktop: Desktop, tmp_path: Path, backend: str) -> dict[str, str]:
    bin_dir, _ = _fake_opener(tmp_path)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_", "DBUS_", "XDG_"))
    }
    env.update(desktop.env)
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        CLAWD_CONFIG_DIR=str(tmp_path / "cfg"),
        CLAWD_STATE_DIR=str(tmp_path / "state"),
        OPENCLAW_GATEWAY_TOKEN=TOKEN,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",  # the token comes from the env
        PYSTRAY_BACKEND=backend,
        PYTHONUNBUFFERED="1",
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def _clipboard(desktop: Desktop) -> str:
    """What a paste would give, read by another GTK client (the tray owns the selection)."""
    code = (
        "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk, Gdk; "
        "print(Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD).wait_for_text() or '')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, **desktop.env),
    )
    return out.stdout.strip()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("backend", ["appindicator", "gtk"])
def test_tray_menu_drives_a_real_tunnel(backend, desktop, sshd, gateway, tmp_path, artifacts):
    from clawd_client.profiles import ProfileStore
    from clawd_client.tray.icons import DOT, IconKind

    t0 = time.monotonic()
    cfg = tmp_path / "cfg"
    local_port = free_port()
    ProfileStore(cfg / "profiles.json").add(ssh_profile(sshd, gateway.port, local_port, name=PROFILE))
    env = _tray_env(desktop, tmp_path, backend)
    green = DOT[IconKind.HEALTHY][:3]
    tray = TrayDriver(desktop, env, artifacts, backend)
    try:
        icon = tray.icon()
        assert "clawd" in icon.wm_class, icon  # findable as clawd's by any tray or tool
        healthy = _wait_state(env, "healthy", proc=tray.proc)
        assert healthy["pid"] == tray.proc.pid
        assert healthy["localUrl"] == f"ws://127.0.0.1:{local_port}"
        img = tray.wait_icon_color(green, True, "turn green (healthy)")
        _save(img, artifacts / "icon-healthy.png", scale=4)
        _save(desktop.grab(), artifacts / "screen-healthy.png")
        timings = {"healthy": time.monotonic() - t0}

        # Disconnect from the menu: the engine stops, the icon goes grey.
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(healthy, backend), "disconnect", "menu-healthy")
        stopped = _wait_state(env, "stopped", proc=tray.proc)
        assert not _port_open(local_port), "the tunnel's local port is still open after Disconnect"
        img = tray.wait_icon_color(green, False, "stop being green (stopped)")
        assert _color_pixels(img, DOT[IconKind.STOPPED][:3]) >= 4, "no grey status dot"
        _save(img, artifacts / "icon-stopped.png", scale=4)
        timings["stopped"] = time.monotonic() - t0

        # Connect from the menu: back to healthy through the real sshd.
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(stopped, backend), "connect", "menu-stopped")
        again = _wait_state(env, "healthy", proc=tray.proc)
        assert again["pid"] == tray.proc.pid
        assert _port_open(local_port)
        tray.wait_icon_color(green, True, "turn green again")
        timings["reconnected"] = time.monotonic() - t0

        # Copy gateway URL: another program can paste it.
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(again, backend), "copy-url", "menu-copy")
        wait_for(
            lambda: _clipboard(desktop) == again["localUrl"], 15, "the URL on the clipboard", interval=0.2
        )

        # Open Control UI: the browser gets the gateway's page on the tunnel, and no secret.
        record = tmp_path / "opened.txt"
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(again, backend), "open-ui", "menu-open-ui")
        wait_for(lambda: _opened(record), 10, "the browser to be asked to open the Control UI")
        assert _opened(record) == [f"http://127.0.0.1:{local_port}/"]
        # Open logs: the tray's own log file.
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(again, backend), "open-logs", "menu-open-logs")
        wait_for(lambda: len(_opened(record)) == 2, 10, "the log file to be opened")
        assert _opened(record)[1].endswith("/logs/tray.log")

        # Run diagnosis: the doctor walks every hop through the real sshd and gateway.
        report = tmp_path / "state" / "client" / "logs" / f"doctor-{PROFILE}.txt"
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(again, backend), "diagnose", "menu-diagnose")
        text = wait_for(lambda: report.is_file() and report.read_text(), 30, "the diagnosis report")
        assert "all hops ok" in text and "[ok ] health" in text, text
        timings["diagnosed"] = time.monotonic() - t0
        # No notification server on this bus, so the report itself is opened for the user.
        wait_for(lambda: len(_opened(record)) == 3, 10, "the diagnosis report to be opened")
        assert _opened(record)[2] == str(report)
        assert TOKEN not in "".join(_opened(record))

        # Start at login: the checkbox really writes (and removes) the XDG autostart entry.
        entry = tmp_path / "home" / ".config" / "autostart" / "clawd-tray.desktop"
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(again, backend), "autostart", "menu-autostart-off")
        text = wait_for(lambda: entry.is_file() and entry.read_text(), 30, "the autostart entry")
        assert "clawd_client tray" in text, text
        menu = tray.open_menu()
        shot = desktop.grab(menu.box)
        _save(shot, artifacts / "menu-autostart-on.png")
        tray.click_item(menu, _model_ids(again, backend), "autostart", "menu-autostart-on")
        wait_for(lambda: not entry.exists(), 30, "the autostart entry to be removed")

        # Quit from the menu: exit 0, tunnel down, no status left behind.
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(again, backend), "quit", "menu-quit")
        assert tray.proc.wait(20) == 0, tray.stderr()
        timings["quit"] = time.monotonic() - t0
        assert _tunnel(env) is None
        assert not _port_open(local_port)
        wait_for(lambda: not desktop.tray_icons(), 10, "the icon to leave the tray")
    finally:
        tray.close()
    log = (tmp_path / "state" / "client" / "logs" / "tray.log").read_text()
    assert "healthy" in log and "menu: disconnect" in log and "menu: connect" in log
    assert TOKEN not in log and TOKEN not in tray.stderr()
    (artifacts / "timings.json").write_text(json.dumps(timings, indent=2))
    print(f"\n[{backend}] " + ", ".join(f"{k} at {v:.2f}s" for k, v in timings.items()))


def test_tray_needs_you_for_an_unknown_host_key_and_trusts_it_from_the_menu(
    desktop, sshd, gateway, tmp_path, artifacts
):
    """A first connection to a new server: red icon, the fingerprint in the menu, one click to
    trust it (like answering OpenSSH's prompt), then healthy."""
    from clawd_client.engine.hostkeys import fingerprint
    from clawd_client.profiles import ProfileStore, replace
    from clawd_client.tray.icons import DOT, IconKind
    from clawd_client.tray.presenter import Attention

    local_port = free_port()
    known = tmp_path / "known_hosts_empty"
    profile = ssh_profile(sshd, gateway.port, local_port, name=PROFILE)
    profile = replace(profile, ssh=replace(profile.ssh, known_hosts=str(known)))
    ProfileStore(tmp_path / "cfg" / "profiles.json").add(profile)
    env = _tray_env(desktop, tmp_path, "appindicator")
    tray = TrayDriver(desktop, env, artifacts, "appindicator")
    try:
        fatal = _wait_state(env, "fatal", proc=tray.proc)
        assert "not known yet" in fatal["lastError"]
        img = tray.wait_icon_color(DOT[IconKind.NEEDS_USER][:3], True, "turn red (needs you)")
        _save(img, artifacts / "icon-needs-you.png", scale=4)
        fp = fingerprint(sshd.host_public_key)
        attention = Attention("host-key-unknown", "", fingerprint=fp)
        menu = tray.open_menu()
        tray.click_item(menu, _model_ids(fatal, "appindicator", attention), "trust-host-key", "menu-hostkey")
        healthy = _wait_state(env, "healthy", proc=tray.proc)
        assert healthy["pid"] == tray.proc.pid
        assert sshd.host_public_key_line.split()[1] in known.read_text()
        tray.wait_icon_color(DOT[IconKind.HEALTHY][:3], True, "turn green")
    finally:
        tray.close()
    assert tray.proc.returncode == 0, tray.stderr()


def test_tray_on_the_menuless_xorg_backend_explains_the_fix_and_a_click_connects(
    desktop, sshd, gateway, tmp_path, artifacts
):
    """The plain xorg backend has no menu: the tray says so (with the apt/dnf fix), and a left
    click still does the useful thing (here: connect, since it started disconnected). SIGTERM
    then tears the tunnel down and exits 0."""
    from clawd_client.profiles import ProfileStore

    local_port = free_port()
    ProfileStore(tmp_path / "cfg" / "profiles.json").add(
        ssh_profile(sshd, gateway.port, local_port, name=PROFILE)
    )
    env = _tray_env(desktop, tmp_path, "xorg")
    tray = TrayDriver(desktop, env, artifacts, "xorg", "--no-connect")
    try:
        stopped = _wait_state(env, "stopped", proc=tray.proc)
        assert stopped["pid"] == tray.proc.pid and not _port_open(local_port)
        wait_for(lambda: "CANNOT SHOW A MENU" in tray.stderr(), 10, "the no-menu explanation")
        err = tray.stderr()
        # PyGObject is installed here and the test forces xorg: the fix is to stop forcing it.
        assert "PYSTRAY_BACKEND=xorg" in err and "without --backend" in err, err
        icon = tray.icon()
        _save(desktop.grab(icon.box), artifacts / "icon-xorg-stopped.png", scale=4)
        x, y = icon.center
        desktop.click(x, y, button=1)
        healthy = _wait_state(env, "healthy", proc=tray.proc)
        assert healthy["pid"] == tray.proc.pid and _port_open(local_port)
        tray.proc.terminate()
        try:
            code = tray.proc.wait(20)
        except subprocess.TimeoutExpired:
            code = None
        log = tmp_path / "state" / "client" / "logs" / "tray.log"
        assert code == 0, f"exit {code}; stderr: {tray.stderr()}\nlog: {log.read_text()[-3000:]}"
        assert _tunnel(env) is None and not _port_open(local_port)
    finally:
        tray.close()
