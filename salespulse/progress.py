"""Progress of a long command on stderr: one line that rewrites itself on a terminal, a line
per step otherwise (a log file or a CI job keeps every step)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``step(done, total, detail)`` after each unit of work; ``finish()`` ends a terminal line.

    Never writes to stdout, which carries the command's result (a report piped to a file).
    """

    def __init__(self, label: str, unit: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._open = False

    def step(self, done: int, total: int, detail: str = "") -> None:
        elapsed = time.monotonic() - self._started
        text = f"{self.label}: {done}/{total} {self.unit}"
        if detail:
            text += f" {detail}"
        text += f" ({elapsed:.1f} s)"
        if self._tty:
            self.stream.write("\r\x1b[K" + text)
            self._open = done < total
            if not self._open:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, done: int, total: int) -> None:
        self.step(done, total)

    def finish(self) -> None:
        """End an unfinished terminal line (a command that stopped early)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
