"""Report files: their names, and writing them so that no reader ever sees half a file."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from salespulse.reports.period import ReportPeriod

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def report_stem(
    period: ReportPeriod, *, department: str | None = None, manager: str | None = None
) -> str:
    """``salespulse-week-2026-11-16``, ``salespulse-day-2026-11-20-msk``: sortable, and the
    period and its first date are in the name."""
    parts = ["salespulse", period.slug]
    for scope in (department, manager):
        if scope:
            parts.append(_UNSAFE.sub("_", scope).strip("._") or "_")
    return "-".join(parts)


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename it over
    ``path``: a reader (a file share, a sync job) sees the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
