"""A one-line progress display on a terminal's stderr (``scan``): counts and rate.

:func:`render` is pure; :class:`Progress` only decides when to redraw. It draws the
first update at once, then at most every ``interval`` seconds, and the final counts
when closed, then clears the line, so the report that follows starts clean. Disabled,
it costs one attribute test per update.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


def render(files: int, elfs: int, elapsed: float) -> str:
    """``scanning: 12,345 files, 678 ELF, 9,876 files/s``."""
    rate = files / elapsed if elapsed > 0 else 0.0
    return f"scanning: {files:,} files, {elfs:,} ELF, {rate:,.0f} files/s"


class Progress:
    def __init__(
        self,
        stream: TextIO,
        enabled: bool,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.enabled = enabled
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.last: float | None = None
        self.width = 0

    def update(self, files: int, elfs: int) -> None:
        if not self.enabled:
            return
        if self.last is not None and files & 0xFF:
            return  # look at the clock only every 256 files
        now = self.clock()
        if self.last is None or now - self.last >= self.interval:
            self._draw(render(files, elfs, now - self.start))
            self.last = now

    def close(self, files: int, elfs: int) -> None:
        if not self.enabled:
            return
        self._draw(render(files, elfs, self.clock() - self.start))
        self.stream.write("\r" + " " * self.width + "\r")
        self.stream.flush()

    def _draw(self, line: str) -> None:
        pad = max(0, self.width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.width = max(self.width, len(line))

    def __call__(self, files: int, elfs: int, done: bool = False) -> None:
        """The scan's progress callback: ``update``, or ``close`` when ``done``."""
        if done:
            self.close(files, elfs)
        else:
            self.update(files, elfs)
