"""A one-line progress display on stderr for long work (build, add, compact, embedding):
done / total, rate and ETA, redrawn at most ten times a second. Off unless asked for; the
CLI asks when stderr is a terminal and --quiet is not given, so logs and pipes stay clean.
"""

from __future__ import annotations

import sys
import time


def wanted(quiet: bool = False) -> bool:
    """Whether to draw progress: stderr is a terminal and the user did not ask for quiet."""
    try:
        return not quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """`update(n)` as work is done; `close()` (or leaving the with block) ends the line.
    total: the amount of work, None when unknown (then no percentage or ETA)."""

    def __init__(self, label: str, total: float | None = None, unit: str = "",
                 enabled: bool = True, start: float = 0, scale: float = 1.0) -> None:
        self.label, self.total, self.unit, self.enabled = label, total, unit, enabled
        self.done = self._start = start
        self.scale = scale  # shown amounts are done / scale (e.g. bytes -> MB)
        self._t0 = self._last = time.perf_counter()
        self._drawn = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = (self.done - self._start) / elapsed
        unit = f" {self.unit}" if self.unit else ""
        shown = f"{self.done / self.scale:,.0f}"
        if self.total:
            pct = 100 * min(self.done / self.total, 1)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            return (f"  {self.label} {shown}/{self.total / self.scale:,.0f}{unit} ({pct:3.0f}%), "
                    f"{rate / self.scale:,.0f}{unit}/s, ETA "
                    f"{_clock(eta) if eta != float('inf') else '?'}")
        return f"  {self.label} {shown}{unit}, {rate / self.scale:,.0f}{unit}/s, {_clock(elapsed)}"

    def update(self, n: float = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last >= 0.1 or (self.total and self.done >=
                                                         self.total)):
            self._last = now
            self._drawn = True
            print("\r" + self.line(), end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self._drawn:
            print("\r" + self.line(), file=sys.stderr, flush=True)
            self._drawn = False
