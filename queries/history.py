"""The hourly history the baselines learn from (``processors.alerting.baseline``): weeks of
activity per manager and local hour, read from the 15-minute rollup.
"""

from __future__ import annotations

from datetime import date

from salespulse.activity import HourRow
from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES
from sinks.clickhouse.client import ClickHouse, as_date


def query_hourly_history(ch: ClickHouse, first_day: date, last_day: date) -> list[HourRow]:
    """Every manager's activity per local hour of local days ``first_day``..``last_day``.

    Hours without activity and unattributed activity are left out.
    """
    sums = ", ".join(f"sum({name})" for name in ACTIVITY_METRIC_NAMES)
    # The hour of a bucket from its seconds: bucket is wall-clock time stored as UTC, so this is
    # the local hour without any time-zone function (whose handling differs across versions).
    rows = ch.execute(
        f"SELECT manager_id, department_id, local_date, "
        f"intDiv(modulo(toUInt32(bucket), 86400), 3600) AS local_hour, {sums} "
        f"FROM {ch.database}.activity_15m FINAL "
        "WHERE local_date >= %(first)s AND local_date <= %(last)s AND manager_id != '' "
        "GROUP BY manager_id, department_id, local_date, local_hour",
        {"first": first_day, "last": last_day},
    )
    history = []
    for manager_id, department_id, day, hour, *values in rows:
        counts = {
            name: int(value)
            for name, value in zip(ACTIVITY_METRIC_NAMES, values, strict=True)
            if value
        }
        if counts:  # zero rows are left by activity that moved to another manager
            history.append(HourRow(manager_id, department_id, as_date(day), int(hour), counts))
    return history
