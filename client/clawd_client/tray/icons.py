"""Tray icon images: one glyph, five state variants, drawn with Pillow at any size.

Why drawn from geometry rather than scaled from a bitmap: the icon must be crisp from 16 px
(a classic X11 tray, Windows at 100 %) to 64 px and beyond (HiDPI panels, macOS at 2x). The
glyph is described once in unit coordinates (this module is the master), rendered 8x
oversized and reduced with a Lanczos filter, so every size gets anti-aliased edges computed
for that size. `assets/clawd-tray-master.png` (1024 px) and `assets/clawd-tray-states.png`
(a contact sheet of every state and size on light and dark panels) are renders of this
module, regenerated with `python -m clawd_client.tray.icons assets/`; a test keeps them in step.

Why it reads on light and dark panels: a near-white badge with a dark outline (the outline
carries it on light panels, the white fill on dark ones) and a status dot that is cut out of
the badge by a transparent gap and has its own dark rim. State is carried by colour *and*
shape (check, ring, bar, exclamation mark, stop square; the stopped badge is dimmed), so it
does not depend on colour vision.
"""

from __future__ import annotations

import enum
import math
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = [
    "ICON_SIZE",
    "IconKind",
    "contact_sheet",
    "render",
    "render_master",
    "write_assets",
]

# pystray scales one image for the panel; 64 px leaves headroom for 2x panels (32 pt * 2).
ICON_SIZE = 64
SUPERSAMPLE = 8
MASTER_SIZE = 1024


class IconKind(enum.Enum):
    """What the icon says at a glance; the presenter maps engine states onto these."""

    HEALTHY = "healthy"
    CONNECTING = "connecting"  # connecting, forwarding, reconnecting, waiting to retry
    DEGRADED = "degraded"  # tunnel up, gateway unreachable or unhealthy behind it
    NEEDS_USER = "needs-user"  # auth refused, host key unknown/changed, config error
    STOPPED = "stopped"  # disconnected by the user, or not started


Color = tuple[int, int, int, int]

INK: Color = (31, 35, 40, 255)  # the dark outline: GitHub's fg-default, softer than black
PAPER: Color = (246, 248, 250, 255)
INK_DIM: Color = (110, 119, 129, 255)
PAPER_DIM: Color = (208, 215, 222, 255)
WHITE: Color = (255, 255, 255, 255)

DOT: dict[IconKind, Color] = {
    IconKind.HEALTHY: (31, 136, 61, 255),  # green
    IconKind.CONNECTING: (191, 135, 0, 255),  # amber
    IconKind.DEGRADED: (219, 109, 40, 255),  # orange
    IconKind.NEEDS_USER: (207, 34, 46, 255),  # red
    IconKind.STOPPED: (110, 119, 129, 255),  # grey
}

# --- geometry, in units of the icon's side -----------------------------------------------------

BADGE = (0.07, 0.07, 0.93, 0.93)  # left, top, right, bottom
BADGE_RADIUS = 0.24
OUTLINE = 0.075
DOT_CENTER = (0.755, 0.755)
DOT_RADIUS = 0.235
DOT_GAP = 0.05  # transparent ring between badge and dot
DOT_RIM = 0.045

# Three claw slashes: quadratic Bezier curves (start, control, end) and their widest stroke.
SLASHES: tuple[tuple[tuple[float, float], tuple[float, float], tuple[float, float], float], ...] = (
    ((0.30, 0.22), (0.21, 0.42), (0.25, 0.72), 0.085),
    ((0.47, 0.20), (0.38, 0.42), (0.43, 0.66), 0.095),
    ((0.64, 0.22), (0.56, 0.36), (0.57, 0.50), 0.085),
)


def _bezier(p0: Sequence[float], p1: Sequence[float], p2: Sequence[float], t: float) -> tuple[float, float]:
    a = (1 - t) ** 2
    b = 2 * (1 - t) * t
    c = t * t
    return (a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1])


def _slash_polygon(
    p0: Sequence[float], p1: Sequence[float], p2: Sequence[float], width: float, scale: float, steps: int = 48
) -> list[tuple[float, float]]:
    """A tapered stroke along the curve: widest in the middle, pointed at both ends, like a claw mark."""
    left: list[tuple[float, float]] = []
    right: list[tuple[float, float]] = []
    for i in range(steps + 1):
        t = i / steps
        x, y = _bezier(p0, p1, p2, t)
        # derivative of the quadratic Bezier gives the tangent; its normal offsets the edges
        dx = 2 * (1 - t) * (p1[0] - p0[0]) + 2 * t * (p2[0] - p1[0])
        dy = 2 * (1 - t) * (p1[1] - p0[1]) + 2 * t * (p2[1] - p1[1])
        norm = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / norm, dx / norm
        half = width / 2 * (0.18 + 0.82 * math.sin(math.pi * t) ** 0.7)
        left.append(((x + nx * half) * scale, (y + ny * half) * scale))
        right.append(((x - nx * half) * scale, (y - ny * half) * scale))
    return left + right[::-1]


def _box(cx: float, cy: float, r: float, s: float) -> tuple[float, float, float, float]:
    return ((cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s)


def _draw_badge(img: Image.Image, s: float, ink: Color, paper: Color, with_dot_cutout: bool) -> None:
    draw = ImageDraw.Draw(img)
    box = tuple(v * s for v in BADGE)
    draw.rounded_rectangle(box, radius=BADGE_RADIUS * s, fill=paper, outline=ink, width=round(OUTLINE * s))
    for p0, p1, p2, width in SLASHES:
        draw.polygon(_slash_polygon(p0, p1, p2, width, s), fill=ink)
    if with_dot_cutout:
        # Punch a transparent hole so the dot stands apart from the badge on any panel colour.
        hole = Image.new("L", img.size, 0)
        ImageDraw.Draw(hole).ellipse(_box(*DOT_CENTER, DOT_RADIUS + DOT_GAP, s), fill=255)
        clear = Image.new("RGBA", img.size, (0, 0, 0, 0))
        img.paste(clear, (0, 0), hole)


def _draw_dot(img: Image.Image, kind: IconKind, s: float) -> None:
    draw = ImageDraw.Draw(img)
    cx, cy = DOT_CENTER
    r = DOT_RADIUS
    draw.ellipse(_box(cx, cy, r, s), fill=INK)
    draw.ellipse(_box(cx, cy, r - DOT_RIM, s), fill=DOT[kind])
    stroke = round(0.045 * s)
    if kind is IconKind.HEALTHY:  # check mark
        pts = [(cx - 0.095, cy + 0.005), (cx - 0.025, cy + 0.075), (cx + 0.105, cy - 0.075)]
        draw.line([(x * s, y * s) for x, y in pts], fill=WHITE, width=stroke, joint="curve")
    elif kind is IconKind.CONNECTING:  # ring: "in progress"
        draw.ellipse(_box(cx, cy, 0.085, s), outline=WHITE, width=stroke)
    elif kind is IconKind.DEGRADED:  # bar: "partly working"
        draw.rounded_rectangle(
            ((cx - 0.1) * s, (cy - 0.025) * s, (cx + 0.1) * s, (cy + 0.025) * s), radius=0.02 * s, fill=WHITE
        )
    elif kind is IconKind.NEEDS_USER:  # exclamation mark
        draw.rounded_rectangle(
            ((cx - 0.026) * s, (cy - 0.12) * s, (cx + 0.026) * s, (cy + 0.035) * s),
            radius=0.025 * s,
            fill=WHITE,
        )
        draw.ellipse(_box(cx, cy + 0.088, 0.03, s), fill=WHITE)
    elif kind is IconKind.STOPPED:  # stop square
        draw.rounded_rectangle(_box(cx, cy, 0.068, s), radius=0.015 * s, fill=WHITE)


def _render_big(kind: IconKind | None, side: int) -> Image.Image:
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    dim = kind is IconKind.STOPPED
    _draw_badge(img, side, INK_DIM if dim else INK, PAPER_DIM if dim else PAPER, kind is not None)
    if kind is not None:
        _draw_dot(img, kind, side)
    return img


@lru_cache(maxsize=64)
def render(kind: IconKind | None, size: int = ICON_SIZE) -> Image.Image:
    """The icon for `kind` at `size` px (RGBA); None gives the bare glyph (app icon, autostart entry).

    Cached: the tray asks for the same handful of images on every state change.
    Callers must not modify the returned image.
    """
    if size < 8:
        raise ValueError(f"icon size {size} is too small to draw")
    big = _render_big(kind, min(size * SUPERSAMPLE, 2048))
    return big.resize((size, size), Image.Resampling.LANCZOS)


def render_master(kind: IconKind | None = None) -> Image.Image:
    """The 1024 px master, as committed in assets/."""
    return render(kind, MASTER_SIZE)


def contact_sheet(sizes: Iterable[int] = (16, 22, 24, 32, 48, 64)) -> Image.Image:
    """Every state at every size, on a light and a dark panel colour: for reviewing by eye."""
    sizes = tuple(sizes)
    kinds = list(IconKind)
    pad = 8
    col_w = max(sizes) + pad
    width = pad + len(sizes) * col_w
    row_h = max(sizes) + pad
    panels: tuple[Color, ...] = ((240, 240, 240, 255), (36, 36, 36, 255))
    height = pad + len(panels) * len(kinds) * row_h
    sheet = Image.new("RGBA", (width * 1, height), (128, 128, 128, 255))
    y = pad
    for panel in panels:
        for kind in kinds:
            ImageDraw.Draw(sheet).rectangle((0, y - pad // 2, width, y + row_h - pad // 2), fill=panel)
            x = pad
            for size in sizes:
                icon = render(kind, size)
                sheet.alpha_composite(icon, (x, y + (max(sizes) - size) // 2))
                x += col_w
            y += row_h
    return sheet


def write_assets(directory: Path) -> list[Path]:
    """(Re)write the committed renders: the master glyph, one master per state, the contact sheet."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    master = directory / "clawd-tray-master.png"
    render_master(None).save(master, optimize=True)
    written.append(master)
    sheet = directory / "clawd-tray-states.png"
    contact_sheet().save(sheet, optimize=True)
    written.append(sheet)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "assets")
    for path in write_assets(target):
        print(path)
