"""A terminal progress bar for long Sim runs and replays (only when a person is watching)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``[#####.....]  45%  450,000/1,000,000 bars  312,000 bars/s``, redrawn in place at
    most ten times a second on `stream` (stderr by default)."""

    def __init__(
        self, total: int, unit: str = "bars", stream: TextIO | None = None, width: int = 30
    ) -> None:
        self.total = max(total, 1)
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.started = time.perf_counter()
        self._drawn = 0.0

    @staticmethod
    def wanted(stream: TextIO | None = None) -> bool:
        """True when `stream` (stderr) is a terminal."""
        stream = stream if stream is not None else sys.stderr
        return bool(getattr(stream, "isatty", lambda: False)())

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        frac = min(done / self.total, 1.0)
        filled = int(frac * self.width)
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {frac * 100:5.1f}%  "
            f"{done:,}/{self.total:,} {self.unit}  {rate:,.0f} {self.unit}/s"
        )
        self.stream.flush()

    def finish(self, done: int) -> None:
        self.update(done, force=True)
        self.stream.write("\n")
        self.stream.flush()
