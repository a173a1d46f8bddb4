"""A configuration file that is re-read when it changes, keeping the last good version.

An operator edits the alert rules or the working calendar while the worker runs; the change
takes effect at the next ``refresh``. A file that fails to load leaves the previous version in
force and says why in ``last_error``: a typo must not switch alerting off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class WatchedFile(Generic[T]):
    """``current`` is the last version of ``path`` that ``load`` accepted.

    ``load`` raises one of ``errors`` for a bad file; the first load must succeed (a worker
    does not start on a broken configuration), later ones may fail without effect.
    """

    def __init__(
        self, path: Path, load: Callable[[Path], T], errors: tuple[type[Exception], ...]
    ) -> None:
        self.path = path
        self._load = load
        self._errors = errors
        self._stamp = self._read_stamp()
        self.current: T = load(path)
        self.last_error: str | None = None
        self.reloads = 0

    def _read_stamp(self) -> tuple[int, int]:
        stat = self.path.stat()
        return (stat.st_mtime_ns, stat.st_size)

    def refresh(self) -> bool:
        """Reload if the file changed; True when a new version took effect."""
        try:
            stamp = self._read_stamp()
        except OSError as exc:
            self.last_error = f"cannot stat {self.path}: {exc}"
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.current = self._load(self.path)
        except self._errors as exc:
            self.last_error = str(exc)
            return False
        self.last_error = None
        self.reloads += 1
        return True
