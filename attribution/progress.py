"""A dependency-free progress bar on stderr.

On a terminal it redraws one line; otherwise (logs, CI) it prints a line at every 10 %.
Disabled with ``enabled=False`` (``--quiet`` / ``--json``).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, desc: str, enabled: bool = True, stream: TextIO | None = None):
        self.total = max(total, 0)
        self.desc = desc
        self.enabled = enabled and self.total > 0
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def __call__(self, n: int) -> None:
        self.update(n)

    def update(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        if not self.enabled:
            return
        frac = self.done / self.total
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        text = (
            f"{self.desc}: {self.done}/{self.total} ({100 * frac:5.1f}%) "
            f"{rate:8.1f}/s eta {eta:6.1f}s"
        )
        if self._tty:
            bar = "#" * int(30 * frac)
            self.stream.write(f"\r[{bar:<30}] {text}")
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            decile = int(10 * frac)
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(text + "\n")
        self.stream.flush()
