"""How `clawd setup-remote` shows its steps: a step list with a spinner on a terminal, one plain
line per event otherwise (logs, CI, pipes), and one JSON object per line with `--json`.

Why three forms: a person at a terminal wants to see which step is slow right now; a log wants
lines that read the same afterwards; a script wants events it can parse. The flow only calls
`start`/`note`/`done`/`fail`/`skip`; it never prints by itself. Secrets never reach any of them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

_SPIN = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Progress:
    """Plain lines: `[step] title ...` then `[step] ok: detail` (or FAILED / skipped)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.current: str | None = None
        self.titles: dict[str, str] = {}

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, step: str, title: str) -> None:
        self.current = step
        self.titles[step] = title
        self._line(f"[{step}] {title} ...")

    def note(self, text: str) -> None:
        """A detail of the running step (a remote command, what was found)."""
        self._line(f"    {text}")

    def done(self, step: str, detail: str) -> None:
        self.current = None
        self._line(f"[{step}] ok: {detail}")

    def skip(self, step: str, title: str, why: str) -> None:
        self.titles[step] = title
        self._line(f"[{step}] skipped: {why}")

    def fail(self, step: str, message: str) -> None:
        self.current = None
        self._line(f"[{step}] FAILED: {message}")

    def close(self) -> None:
        return None


class TtyProgress(Progress):
    """The same events drawn as a step list: the running step's line carries a spinner that a
    background thread redraws, and is replaced by ✓ / ✗ / – when it ends."""

    def __init__(self, out: TextIO | None = None) -> None:
        super().__init__(out)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def _draw(self, text: str, *, final: bool) -> None:
        with self._lock:
            self.out.write("\r\x1b[2K" + text + ("\n" if final else ""))
            self.out.flush()

    def _spin(self, title: str) -> None:
        i = 0
        while not self._stop.wait(0.1):
            i += 1
            elapsed = time.monotonic() - self._started
            self._draw(f"{_SPIN[i % len(_SPIN)]} {title}  {elapsed:.0f}s", final=False)

    def start(self, step: str, title: str) -> None:
        self._halt()
        self.current = step
        self.titles[step] = title
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._draw(f"{_SPIN[0]} {title}", final=False)
        self._thread = threading.Thread(target=self._spin, args=(title,), daemon=True)
        self._thread.start()

    def _halt(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def note(self, text: str) -> None:
        self._draw(f"    {text}", final=True)

    def done(self, step: str, detail: str) -> None:
        self._halt()
        self.current = None
        self._draw(f"✓ {self.titles.get(step, step)}: {detail}", final=True)

    def skip(self, step: str, title: str, why: str) -> None:
        self._halt()
        self.titles[step] = title
        self._draw(f"– {title}: {why}", final=True)

    def fail(self, step: str, message: str) -> None:
        self._halt()
        self.current = None
        self._draw(f"✗ {self.titles.get(step, step)}: {message}", final=True)

    def close(self) -> None:
        self._halt()


class JsonProgress(Progress):
    """One JSON object per line: {"event": "step", "step": ID, "status": "start"|"ok"|...}."""

    def _emit(self, **body: Any) -> None:
        self._line(json.dumps({"event": "step", **body}))

    def start(self, step: str, title: str) -> None:
        self.current = step
        self.titles[step] = title
        self._emit(step=step, status="start", title=title)

    def note(self, text: str) -> None:
        self._line(json.dumps({"event": "note", "step": self.current, "text": text}))

    def done(self, step: str, detail: str) -> None:
        self.current = None
        self._emit(step=step, status="ok", detail=detail)

    def skip(self, step: str, title: str, why: str) -> None:
        self._emit(step=step, status="skipped", title=title, detail=why)

    def fail(self, step: str, message: str) -> None:
        self.current = None
        self._emit(step=step, status="failed", detail=message)


def make_progress(*, as_json: bool, out: TextIO | None = None) -> Progress:
    stream = out or sys.stdout
    if as_json:
        return JsonProgress(stream)
    if stream.isatty():
        return TtyProgress(stream)
    return Progress(stream)


__all__ = ["JsonProgress", "Progress", "TtyProgress", "make_progress"]
