"""Reading the operator's configuration files (rules, calendar, directory) the same careful way:
a size limit before reading, UTF-8, and one-line errors that say which entry is wrong."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


def read_config_text(path: Path, limit: int, what: str, error: type[Exception]) -> str:
    """The text of ``path``; ``error`` (naming ``what`` and the path) when it is unreadable,
    not UTF-8 or larger than ``limit`` bytes (a file never read whole cannot exhaust memory)."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise error(f"{path}: {size} bytes is over the {limit} limit")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc


def describe_validation(exc: ValidationError) -> str:
    """Each problem on one line part: where (``absences[1].to``), what, and the bad input."""
    problems = []
    for error in exc.errors():
        where = ""
        for part in error["loc"]:
            where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] != "value_error":
            shown = repr(error["input"])
            message += f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
