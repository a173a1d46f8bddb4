"""A call in progress is no silence: the AMI bridge's channel records, through the worker's
pipeline into ClickHouse, read by the alert evaluator on a controlled clock (both engines)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.ami import presence_record
from processors.alert_service import AlertEvaluator
from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from queries.todays_activity import query_activity_snapshot
from salespulse.alert_model import AlertState
from salespulse.alert_settings import AlertsSettings
from salespulse.directory import Directory, parse_directory
from salespulse.sections import CountingSettings, ParsingSettings
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.sink import ClickHouseSink
from tests.integration.test_worked_examples import cdr

MSK = ZoneInfo("Europe/Moscow")
DIRECTORY = parse_directory(
    "departments: [{id: msk, name: Moscow sales, timezone: Europe/Moscow}]\n"
    "managers: [{id: ivanova, name: Anna Ivanova, department: msk,"
    " identities: [{family: pbx, id: '101'}]}]\n",
    suffix=".yaml",
)


def msk(hhmm: str) -> datetime:
    """Moscow wall clock on Thursday 2026-11-26, as UTC."""
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return datetime(2026, 11, 26, hours, minutes, tzinfo=MSK).astimezone(UTC)


def channel(event: str, state: int, at: datetime, uniqueid: str = "1795680000.7") -> bytes:
    """What the AMI bridge writes for a channel event of extension 101's phone."""
    fields = {
        "event": event,
        "channel": "PJSIP/101-0000001a",
        "channelstate": str(state),
        "uniqueid": uniqueid,
        "linkedid": uniqueid,
    }
    return presence_record(fields, at.timestamp()).value


class Pbx:
    """Records stored as the worker stores them, each at its own moment, with the batch log
    that tells the evaluator to read again."""

    def __init__(self, ch: ClickHouse, directory: Directory = DIRECTORY) -> None:
        self._ch = ch
        self._directory = directory
        self._offset = 0

    async def store(self, now: datetime, fmt: str, payload: bytes) -> None:
        processor = BatchProcessor(
            build_parsers(ParsingSettings()),
            lambda: self._directory,
            PhoneProtector(b"k"),
            max_message_bytes=1 << 20,
            clock=lambda: now,
        )
        headers = [("sp-format", fmt.encode())]
        result = processor.process([RawMessage("pbx", 0, self._offset, headers, payload, now)])
        assert not result.dead_letters, result.dead_letters
        await ClickHouseSink(lambda: self._ch).write_events(result.rows)
        columns = ("topic", "partition", "first_offset", "last_offset", "rows", "inserted_at")
        row = ["pbx", 0, self._offset, self._offset, len(result.rows), now]
        self._ch.insert_columns("ingest_batches", columns, [[value] for value in row])
        self._offset += 1


def evaluator(ch: ClickHouse, tmp_path: Path, directory: Directory = DIRECTORY) -> AlertEvaluator:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {name: idle, kind: inactivity, idle: 45m, metrics: [calls_in, calls_out]}\n"
    )
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text('defaults: {workdays: [mon, tue, wed, thu, fri], hours: "09:00-18:00"}\n')
    settings = AlertsSettings(rules_path=rules, calendar_path=calendar)
    return AlertEvaluator(settings, CountingSettings(), lambda: ch, lambda: directory, "http://x")


@pytest.mark.parametrize("on_a_call", [True, False], ids=["on-a-call", "silent"])
async def test_a_call_in_progress_for_an_hour_raises_no_inactivity(
    clickhouse: ClickHouse, tmp_path: Path, on_a_call: bool
) -> None:
    apply_migrations(clickhouse)
    pbx = Pbx(clickhouse)
    # 09:00-09:05 a call (its CDR at its end); from 09:20 Ivanova dials out and talks, and at
    # 10:25 that call has not ended: no Hangup, no CDR yet.
    happens = {
        msk("09:05"): (
            "asterisk-cdr-csv",
            cdr(
                caller="101", callee="79161110001", start=msk("09:00").isoformat(), ring=0, talk=300
            ),
        )
    }
    if on_a_call:
        happens[msk("09:20")] = ("asterisk-ami-presence", channel("Newchannel", 4, msk("09:20")))
        happens[msk("09:21")] = ("asterisk-ami-presence", channel("Newstate", 6, msk("09:21")))
    alerts = evaluator(clickhouse, tmp_path)
    alerts.restore(msk("09:00"))
    notices = []
    now = msk("09:00")
    while now <= msk("10:25"):
        if now in happens:
            await pbx.store(now, *happens[now])
        notices += [(n.state, n.at) for n in alerts.evaluate(now) if n.alert.rule == "idle"]
        now += timedelta(minutes=1)
    if on_a_call:
        assert notices == []
    else:
        # Idle from 09:05: 45 working minutes at 09:50, fired after the minute's hold.
        assert notices == [(AlertState.FIRING, msk("09:51"))]


async def test_the_snapshot_tells_channels_up_from_those_hung_up_or_too_old(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    pbx = Pbx(clickhouse)
    now = msk("15:00")
    # Up at 14:30 and still up: busy since 14:30 (stored twice: a copy changes nothing).
    up = channel("Newstate", 6, msk("14:30"), "1.1")
    await pbx.store(msk("14:30"), "asterisk-ami-presence", up)
    await pbx.store(msk("14:31"), "asterisk-ami-presence", up)
    # Up at 13:00, hung up at 13:40: not busy, active until 13:40.
    await pbx.store(
        msk("13:00"), "asterisk-ami-presence", channel("Newstate", 6, msk("13:00"), "1.2")
    )
    await pbx.store(
        msk("13:40"), "asterisk-ami-presence", channel("Hangup", 6, msk("13:40"), "1.2")
    )
    snapshot = query_activity_snapshot(clickhouse, DIRECTORY, now, CountingSettings())
    assert snapshot.busy == {"ivanova": msk("14:30")}
    assert snapshot.last_active == {"ivanova": msk("14:30")}
    assert snapshot.loading == {}
    assert snapshot.minutes == {}  # a channel counts in no metric

    # Its Hangup lost: four hours after it came up, nobody is busy any more.
    later = msk("14:30") + timedelta(hours=4, minutes=1)
    snapshot = query_activity_snapshot(clickhouse, DIRECTORY, later, CountingSettings())
    assert snapshot.busy == {}


async def test_a_channel_listed_after_a_reconnect_is_no_day_being_loaded(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    pbx = Pbx(clickhouse)
    fields = {
        "event": "CoreShowChannel",
        "channel": "PJSIP/101-0000001a",
        "channelstate": "6",
        "uniqueid": "1.3",
        "linkedid": "1.3",
        "duration": "00:40:00",
    }
    now = msk("11:00")
    await pbx.store(now, "asterisk-ami-presence", presence_record(fields, now.timestamp()).value)
    snapshot = query_activity_snapshot(clickhouse, DIRECTORY, now, CountingSettings())
    assert snapshot.busy == {"ivanova": msk("10:20")}
    assert snapshot.loading == {}
