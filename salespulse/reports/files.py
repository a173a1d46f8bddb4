"""Report files: their names, and writing them so that no reader ever sees half a file."""

from __future__ import annotations

import os
import re
import secrets
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
    ``path``: a reader (a file share, a sync job) sees the old file or the new one, whole.

    The file gets the permissions the process's umask gives new files, like any other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
