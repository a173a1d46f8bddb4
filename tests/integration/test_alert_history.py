"""The alert history table, on the 18.16 server and on chDB 26.9."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from queries.alert_history import open_alerts, open_notices, recent_notices
from salespulse.alert_model import Suppression
from sinks.clickhouse.alert_history import record_notices
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from tests.alert_samples import fired, resolved, sample_alert

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def rows(ch: ClickHouse, final: bool = True) -> int:
    sql = f"SELECT count() FROM {ch.database}.alerts{' FINAL' if final else ''}"
    return int(ch.execute(sql)[0][0])


def test_a_notice_recorded_twice_is_one_row(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    alert = sample_alert(T0)
    fire, resolve = fired(alert), resolved(alert, T0 + timedelta(minutes=20))
    record_notices(clickhouse, [fire], now=T0)
    # A retry after a timeout, a restart: the same notices again, recorded later.
    record_notices(clickhouse, [fire, resolve], now=T0 + timedelta(minutes=20))
    record_notices(clickhouse, [resolve], now=T0 + timedelta(minutes=21))
    record_notices(clickhouse, [])
    assert rows(clickhouse, final=False) == 4
    assert rows(clickhouse) == 2
    # Every field comes back as it went in (times in whole UTC seconds).
    assert recent_notices(clickhouse, T0) == [resolve, fire]


def test_open_alerts_are_those_fired_and_not_resolved(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    still_firing = sample_alert(T0)
    over = sample_alert(T0 + timedelta(minutes=1))
    silenced = sample_alert(T0 + timedelta(minutes=2))
    too_old = sample_alert(T0 - timedelta(days=3))
    # One key with two episodes: the first resolved, the second still firing.
    first = sample_alert(T0 - timedelta(hours=2), key="tasks_overdue:petrov")
    second = dataclasses.replace(first, fired_at=T0 + timedelta(minutes=3))
    # And one whose resolve came in the same second as its fire.
    blink = sample_alert(T0 + timedelta(minutes=4))
    record_notices(
        clickhouse,
        [
            fired(still_firing),
            fired(over),
            fired(silenced, Suppression.SILENCED),
            fired(too_old),
            fired(first),
            resolved(first, T0 - timedelta(hours=1)),
            fired(second),
            fired(blink),
            resolved(blink, blink.fired_at),
        ],
        now=T0,
    )
    record_notices(clickhouse, [resolved(over, T0 + timedelta(minutes=30))], now=T0)
    record_notices(clickhouse, [fired(still_firing)], now=T0 + timedelta(minutes=31))

    since = T0 - timedelta(days=1)
    assert open_alerts(clickhouse, since) == [still_firing, silenced, second]
    suppressed = [notice.suppressed for notice in open_notices(clickhouse, since)]
    assert suppressed == [Suppression.NONE, Suppression.SILENCED, Suppression.NONE]
    assert open_alerts(clickhouse, T0 - timedelta(days=4))[0] == too_old
    assert open_alerts(clickhouse, T0 + timedelta(hours=1)) == []


def test_recent_notices_are_newest_first_and_limited(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    alerts = [sample_alert(T0 + timedelta(minutes=m)) for m in range(5)]
    record_notices(clickhouse, [fired(a) for a in alerts], now=T0)
    listed = recent_notices(clickhouse, T0 + timedelta(minutes=1), limit=3)
    assert [n.alert for n in listed] == alerts[:1:-1]
    assert recent_notices(clickhouse, T0 + timedelta(minutes=9)) == []
