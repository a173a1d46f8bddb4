"""Per-manager activity for a day (or a few days), read back from ClickHouse.

"Today" is each manager's own local day: at 08:00 in Vladivostok it is still yesterday in
Kaliningrad. The query therefore groups by local date and the dates wanted are chosen per
department afterwards. Managers with no activity are listed too: a zero is the row a head of
sales most needs to see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from salespulse.activity_metrics import is_duration
from salespulse.directory import Directory
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse, as_date
from sinks.clickhouse.metric_sql import (
    ACTIVITY_METRICS,
    CALL_METRICS,
    day_params,
    per_manager_metrics,
)

UNATTRIBUTED = "(unattributed)"

# The table's columns: (metric name from sinks.clickhouse.metric_sql, short title).
# Incoming calls show answered and missed apart, outgoing calls all attempts and those that
# reached someone; talks and talk are with customers, internal calls are counted apart.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("calls_in_answered", "in"),
    ("missed", "missed"),
    ("calls_out", "out"),
    ("calls_out_answered", "reached"),
    ("calls_internal", "int"),
    ("conversations", "talks"),
    ("talk_seconds", "talk"),
    ("chats", "chats"),
    ("meetings", "meet"),
    ("offers", "offers"),
    ("leads", "leads"),
    ("deals_won", "won"),
    ("payments", "paid"),
    ("tasks_done", "tasks"),
)


@dataclass
class ManagerDay:
    manager_id: str
    name: str
    department_id: str
    counts: dict[str, int] = field(default_factory=dict)


def local_today(directory: Directory, department_id: str, now: datetime) -> date:
    if department_id in directory.departments:
        return now.astimezone(directory.timezone_of(department_id)).date()
    return now.astimezone(UTC).date()


def query_summary(
    ch: ClickHouse,
    directory: Directory,
    *,
    last_day: date | None = None,
    days: int = 1,
    now: datetime | None = None,
    counting: CountingSettings | None = None,
) -> list[ManagerDay]:
    """Totals over ``days`` local days ending at ``last_day`` (default: each department's today)."""
    now = now or datetime.now(UTC)
    wanted: dict[str, tuple[date, date]] = {}
    for department_id in [*directory.departments, ""]:
        end = last_day or local_today(directory, department_id, now)
        wanted[department_id] = (end - timedelta(days=days - 1), end)
    low = min(start for start, _ in wanted.values())
    high = max(end for _, end in wanted.values())
    counting = counting or CountingSettings()
    params = day_params(low, high, counting)
    calls_sql, activity_sql = per_manager_metrics(ch.database, "", counting)
    rows = [
        (*row[:3], dict(zip((name for name, _ in metrics), row[3:], strict=True)))
        for sql, metrics in ((calls_sql, CALL_METRICS), (activity_sql, ACTIVITY_METRICS))
        for row in ch.execute(sql, params)
    ]
    table: dict[str, ManagerDay] = {
        m.id: ManagerDay(m.id, m.name, m.department) for m in directory.managers.values()
    }
    for manager_id, department_id, local_date, values in rows:
        first, last = wanted.get(department_id, wanted[""])
        if not first <= as_date(local_date) <= last:
            continue
        key = manager_id or UNATTRIBUTED
        entry = table.setdefault(key, ManagerDay(key, manager_id or UNATTRIBUTED, department_id))
        for name, value in values.items():
            entry.counts[name] = entry.counts.get(name, 0) + int(value)
    return sorted(
        table.values(), key=lambda m: (m.manager_id == UNATTRIBUTED, m.department_id, m.name)
    )


def _format_duration(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}"


def render_table(rows: list[ManagerDay]) -> str:
    """A fixed-width text table, with a totals line."""
    headers = ["manager", "dept", *(title for _, title in TABLE_COLUMNS)]
    totals: dict[str, int] = {}
    lines: list[list[str]] = []
    for row in rows:
        cells = [row.name or row.manager_id, row.department_id]
        for name, _ in TABLE_COLUMNS:
            value = row.counts.get(name, 0)
            totals[name] = totals.get(name, 0) + value
            cells.append(_format_duration(value) if is_duration(name) else str(value))
        lines.append(cells)
    total_cells = ["TOTAL", ""] + [
        _format_duration(totals.get(n, 0)) if is_duration(n) else str(totals.get(n, 0))
        for n, _ in TABLE_COLUMNS
    ]
    widths = [max(len(r[i]) for r in [headers, *lines, total_cells]) for i in range(len(headers))]

    def fmt(cells: list[str]) -> str:
        first = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
        rest = [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)]
        return "  ".join(first + rest)

    rule = "-" * len(fmt(headers))
    return "\n".join([fmt(headers), rule, *map(fmt, lines), rule, fmt(total_cells)])


def query_unknown_identities(ch: ClickHouse, *, limit: int = 50) -> list[tuple[str, str, int, str]]:
    """Identities with events but no manager: (family, id, events, last seen), busiest first.

    These are the rows to add to the directory; once added, replaying the affected offsets (or
    waiting for the next events) attributes them.
    """
    rows = ch.execute(
        "SELECT actor_family, actor_id, count(), toString(max(occurred_at)) "
        f"FROM {ch.database}.events FINAL WHERE manager_id = '' "
        "GROUP BY actor_family, actor_id ORDER BY count() DESC, actor_id LIMIT %(limit)s",
        {"limit": limit},
    )
    return [(str(f), str(i), int(n), str(last)) for f, i, n, last in rows]
