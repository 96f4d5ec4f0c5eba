"""A real X desktop for tray tests: Xvfb, a tray host (trayer), a private D-Bus session bus,
plus the few things a person does with it (find a window, click, press keys, look at pixels).

Why real: whether an icon docks, whether its menu opens and whether a click reaches the
callback are exactly the things that differ between pystray backends (ci-recipes.md section 4),
so the test drives the same X server protocol a desktop would. Everything started here is a
child of the test, stopped by PID afterwards; waits are on conditions with deadlines.

`require()` skips on a laptop without these tools and fails under CLAWD_REQUIRE_SERVERS=1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.keyring_session import _BUS_CONFIG
from tests.support.servers import require

APT_HINT = (
    "apt-get install -y --no-install-recommends xvfb trayer xdotool x11-utils xauth dbus "
    "libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1, "
    "then pip install 'PyGObject<3.51' 'clawd[tray]'"
)
TOOLS = ("Xvfb", "trayer", "xdotool", "xwininfo", "dbus-daemon")

_TREE_LINE = re.compile(
    r'^(?P<indent>\s*)(?P<wid>0x[0-9a-f]+) (?P<name>"(?:[^"\\]|\\.)*"|\(has no name\)): '
    r"\((?P<cls>[^)]*)\)\s+(?P<w>\d+)x(?P<h>\d+)[+-]-?\d+[+-]-?\d+\s+\+(?P<x>-?\d+)\+(?P<y>-?\d+)"
)


def require_desktop() -> None:
    """Skip (or fail in CI) unless the X tools, a tray host and PyGObject with GTK 3 are here."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    require(not missing, f"the tray desktop test needs {', '.join(missing)} ({APT_HINT})")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gi, importlib.util as u; gi.require_version('Gtk', '3.0'); "
            "from gi.repository import Gtk; import PIL.ImageGrab; assert u.find_spec('pystray'), 'no pystray'",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    require(
        probe.returncode == 0,
        f"PyGObject with GTK 3 (and pystray/Pillow) must be importable: {probe.stderr.strip()[-300:]} "
        f"({APT_HINT})",
    )


@dataclass(frozen=True)
class Win:
    """One line of `xwininfo -root -tree`: absolute geometry, name, class, nesting depth."""

    wid: str
    name: str | None
    wm_class: tuple[str, ...]
    x: int
    y: int
    w: int
    h: int
    depth: int
    parent: str | None

    @property
    def center(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.x + self.w, self.y + self.h


def parse_tree(text: str) -> list[Win]:
    """Windows from `xwininfo -root -tree` output, with each one's parent window id."""
    out: list[Win] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    for raw in text.splitlines():
        # A window name may contain newlines (a multi-line tooltip as the title): rejoin it.
        if lines and lines[-1].count('"') % 2 == 1:
            lines[-1] += "\n" + raw
        else:
            lines.append(raw)
    for line in lines:
        m = _TREE_LINE.match(line)
        if not m:
            continue
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        raw_name = m.group("name")
        name = None if raw_name == "(has no name)" else raw_name[1:-1]
        cls = tuple(c.strip().strip('"') for c in m.group("cls").split('" "')) if m.group("cls") else ()
        win = Win(
            m.group("wid"),
            name,
            cls,
            int(m.group("x")),
            int(m.group("y")),
            int(m.group("w")),
            int(m.group("h")),
            len(stack),
            stack[-1][1] if stack else None,
        )
        out.append(win)
        stack.append((indent, win.wid))
    return out


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll a condition until it holds (returning its value) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Desktop:
    display: str
    bus_address: str
    runtime_dir: Path
    log_path: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """What a desktop session gives its programs: display, bus, runtime dir; no a11y bus."""
        return {
            "DISPLAY": self.display,
            "DBUS_SESSION_BUS_ADDRESS": self.bus_address,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "GDK_BACKEND": "x11",
            "NO_AT_BRIDGE": "1",  # no accessibility bus here; GTK would warn and wait for it
        }

    def _run(self, *argv: str, timeout: float = 10) -> str:
        env = dict(os.environ, DISPLAY=self.display)
        # Window names may be Latin-1 (xorg backends) or UTF-8 (GTK): never fail on decoding.
        result = subprocess.run(
            argv, capture_output=True, encoding="utf-8", errors="replace", env=env, timeout=timeout
        )
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def windows(self) -> list[Win]:
        """The window tree now. xwininfo fails ("Bad Window") when a window vanishes while it
        walks the tree (a menu closing, an icon undocking): that is a race, so ask again."""
        for attempt in range(10):
            try:
                return parse_tree(self._run("xwininfo", "-root", "-tree"))
            except AssertionError as exc:
                if "X Error" not in str(exc) or attempt == 9:
                    raise
        raise AssertionError("unreachable")

    def tray_panel(self) -> Win | None:
        return next((w for w in self.windows() if w.name == "panel" and "trayer" in w.wm_class), None)

    def tray_icons(self) -> list[Win]:
        """Icons docked in trayer: windows inside its panel that are big enough to click."""
        wins = self.windows()
        panel = next((w for w in wins if w.name == "panel" and "trayer" in w.wm_class), None)
        if panel is None:
            return []
        by_id = {w.wid: w for w in wins}

        def inside(w: Win) -> bool:
            p = w.parent
            while p is not None:
                if p == panel.wid:
                    return True
                p = by_id[p].parent if p in by_id else None
            return False

        docked = [w for w in wins if inside(w) and w.w >= 8 and w.h >= 8]
        # trayer wraps each icon in a socket window of the same size: keep the innermost ones.
        parents = {w.parent for w in docked}
        return [w for w in docked if w.wid not in parents]

    def toplevels(self) -> list[Win]:
        return [w for w in self.windows() if w.depth == 0]

    def viewable(self, wid: str) -> bool:
        """Whether a window is mapped and on screen. GTK creates a submenu's window before it
        first shows it, and keeps it unmapped after it closes: being in the tree is not enough."""
        try:
            return "Map State: IsViewable" in self._run("xwininfo", "-id", wid)
        except AssertionError:  # gone meanwhile
            return False

    def click(self, x: int, y: int, button: int = 1) -> None:
        self._run("xdotool", "mousemove", str(x), str(y), "click", str(button))

    def move(self, x: int, y: int) -> None:
        self._run("xdotool", "mousemove", str(x), str(y))

    def key(self, *keys: str) -> None:
        self._run("xdotool", "key", *keys)

    def grab(self, box: tuple[int, int, int, int] | None = None) -> Any:
        from PIL import ImageGrab

        image = ImageGrab.grab(bbox=box, xdisplay=self.display)
        return image.convert("RGB")

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""


def text_bands(image: Any, margin: int = 4, min_gap: int = 3) -> list[tuple[int, int, int, int]]:
    """Rows of a menu that hold text, top to bottom, as (top, bottom, left, right) boxes.

    The background is the commonest colour; a row "has ink" when some of its pixels differ from
    it. Separator lines (a thin row that differs across most of the width) and the menu's own
    border are skipped; rows less than `min_gap` apart are merged, so one label is one band.
    """
    width, height = image.size
    px = image.load()
    counts: Counter[tuple[int, int, int]] = Counter(
        px[x, y] for y in range(0, height, 2) for x in range(0, width, 2)
    )
    background = counts.most_common(1)[0][0]

    def differs(c: tuple[int, int, int]) -> bool:
        return sum(abs(a - b) for a, b in zip(c, background, strict=True)) > 60

    xs = range(margin, width - margin)
    rows: list[tuple[int, int, int] | None] = []
    for y in range(height):
        ink = [x for x in xs if differs(px[x, y])]
        if not ink or y < margin or y >= height - margin or len(ink) > 0.8 * len(xs):
            rows.append(None)  # empty, border, or a separator line
        else:
            rows.append((y, min(ink), max(ink)))
    bands: list[list[int]] = []
    for row in rows:
        if row is None:
            continue
        y, left, right = row
        if bands and y - bands[-1][1] <= min_gap:
            band = bands[-1]
            band[1] = y
            band[2] = min(band[2], left)
            band[3] = max(band[3], right)
        else:
            bands.append([y, y, left, right])
    return [(b[0], b[1], b[2], b[3]) for b in bands if b[1] - b[0] >= 3]


@contextlib.contextmanager
def desktop_session(directory: Path, *, width: int = 800, height: int = 600) -> Iterator[Desktop]:
    """Xvfb + a private session bus + trayer docked at the top right; everything stopped afterwards."""
    require_desktop()
    directory.mkdir(parents=True, exist_ok=True)
    # Short path: AF_UNIX socket paths are limited to ~108 bytes, pytest's tmp_path can be longer.
    root = Path(tempfile.mkdtemp(prefix="clawd-x-"))
    run = root / "run"
    run.mkdir(mode=0o700)
    (root / "bus.conf").write_text(_BUS_CONFIG.format(run=run))
    log_path = directory / "desktop.log"
    log = log_path.open("wb")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        read_fd, write_fd = os.pipe()
        try:
            xvfb = subprocess.Popen(
                [
                    "Xvfb",
                    "-displayfd",
                    str(write_fd),
                    "-screen",
                    "0",
                    f"{width}x{height}x24",
                    "-nolisten",
                    "tcp",
                    "-noreset",  # no server reset when the last client leaves, between two xwininfo calls
                ],
                pass_fds=(write_fd,),
                stdout=log,
                stderr=log,
            )
        finally:
            os.close(write_fd)
        procs.append(xvfb)
        # Xvfb writes its display number once it accepts connections: that is the ready signal.
        with os.fdopen(read_fd, "rb") as ready:
            number = ready.readline().decode().strip()
        if not number.isdigit():
            raise AssertionError(f"Xvfb did not start (log: {log_path.read_text(errors='replace')[-800:]})")
        display = f":{number}"
        bus = subprocess.Popen(
            [
                "dbus-daemon",
                f"--config-file={root / 'bus.conf'}",
                "--print-address=1",
                "--nofork",
                "--nopidfile",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        procs.append(bus)
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        if not address:
            raise AssertionError("dbus-daemon printed no address")
        desk = Desktop(display, address, run, log_path, procs)

        def answers() -> bool:
            try:
                desk._run("xwininfo", "-root")
            except AssertionError:
                return False
            return True

        wait_for(answers, 10, f"the X server on {display} to answer")
        # trayer has been seen to fail "cannot open display" right after Xvfb came up (rarely, on
        # a loaded machine); a tray host that exits at once is started again, at most 3 times.
        for attempt in range(3):
            trayer = subprocess.Popen(
                [
                    "trayer",
                    "--edge",
                    "top",
                    "--align",
                    "right",
                    "--widthtype",
                    "request",
                    "--height",
                    "32",
                    "--transparent",
                    "false",
                    "--SetDockType",
                    "true",
                ],
                env=dict(os.environ, **desk.env),
                stdout=log,
                stderr=log,
            )
            procs.append(trayer)

            def panel_or_exit(proc: subprocess.Popen[bytes] = trayer) -> Any:
                return desk.tray_panel() or proc.poll() is not None

            try:
                wait_for(panel_or_exit, 20, "trayer's panel window")
            except AssertionError as exc:
                log.flush()
                raise AssertionError(f"{exc} (log: {log_path.read_text(errors='replace')[-800:]})") from None
            if trayer.poll() is None:
                break
            log.flush()
            if attempt == 2:
                raise AssertionError(
                    f"trayer exited ({trayer.returncode}) three times: {log_path.read_text(errors='replace')[-800:]}"
                )
        yield desk
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
