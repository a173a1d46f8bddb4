"""A Bitrix24 call in progress is no silence: OnVoximplantCallStart goes up, the call's end
(OnVoximplantCallEnd) goes down, through the worker's pipeline into ClickHouse, read by the
alert evaluator on a controlled clock (both engines)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from queries.todays_activity import query_activity_snapshot
from salespulse.alert_model import AlertState
from salespulse.directory import parse_directory
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from tests.integration.test_alert_calls_in_progress import Pbx, evaluator, msk
from tests.integration.test_worked_examples import call_end_event

# Petrova is Bitrix24 user 1269: her calls are attributed by her CRM id.
DIRECTORY = parse_directory(
    "departments: [{id: msk, name: Moscow sales, timezone: Europe/Moscow}]\n"
    "managers: [{id: petrova, name: Olga Petrova, department: msk,"
    " identities: [{family: crm, id: '1269'}]}]\n",
    suffix=".yaml",
)
CALL_ID = "externalCall.7b0c7de811455ef32b18dc5917e4306a.1795670360"
START, END = "bitrix24-call-start-event", "bitrix24-call-end-event"


def call_start(call_id: str, at: datetime) -> bytes:
    """The OnVoximplantCallStart body the portal POSTs when user 1269 answers."""
    form = {"event": "ONVOXIMPLANTCALLSTART", "event_handler_id": "13"}
    form |= {"data[CALL_ID]": call_id, "data[USER_ID]": "1269", "ts": str(int(at.timestamp()))}
    return urlencode(form).encode()


def call_end(call_id: str, start: datetime, seconds: int) -> bytes:
    """Its OnVoximplantCallEnd: an outgoing call of 1269, answered."""
    return call_end_event(
        CALL_ID=call_id,
        CALL_TYPE="1",
        PHONE_NUMBER="79161110001",
        PORTAL_USER_ID="1269",
        CALL_DURATION=str(seconds),
        CALL_START_DATE=start.isoformat(),
        CALL_FAILED_CODE="200",
    )


@pytest.mark.parametrize("answered", [True, False], ids=["on-a-call", "silent"])
async def test_a_bitrix24_call_in_progress_raises_no_inactivity_until_it_ends(
    clickhouse: ClickHouse, tmp_path: Path, answered: bool
) -> None:
    apply_migrations(clickhouse)
    portal = Pbx(clickhouse, DIRECTORY)  # the Asterisk test's store, on the CRM's directory
    # 09:00-09:05 a call (its end event at its end). At 09:19:50 Petrova dials out, the
    # customer answers at 09:20 (OnVoximplantCallStart) and they talk until 10:30: 70 minutes,
    # more than 45 working minutes without any end. At 10:30 the call-end event arrives.
    happens = {
        msk("09:05"): (END, call_end("externalCall.0.1795669200", msk("09:00"), 300)),
        msk("10:30"): (END, call_end(CALL_ID, msk("09:20") - timedelta(seconds=10), 4210)),
    }
    if answered:
        happens[msk("09:20")] = (START, call_start(CALL_ID, msk("09:20")))
    alerts = evaluator(clickhouse, tmp_path, DIRECTORY)
    alerts.restore(msk("09:00"))
    notices = []
    now = msk("09:00")
    while now <= msk("11:30"):
        if now in happens:
            await portal.store(now, *happens[now])
        if now == msk("10:15") and answered:
            # 55 working minutes into the call, still no end: busy since the answer.
            snapshot = query_activity_snapshot(clickhouse, DIRECTORY, now, CountingSettings())
            assert snapshot.busy == {"petrova": msk("09:20")}
        notices += [(n.state, n.at) for n in alerts.evaluate(now) if n.alert.rule == "idle"]
        now += timedelta(minutes=1)

    snapshot = query_activity_snapshot(clickhouse, DIRECTORY, msk("10:31"), CountingSettings())
    assert snapshot.busy == {}  # the end event closed the call
    assert snapshot.last_active == {"petrova": msk("10:30")}
    if answered:
        # Idle only from the call's end: 45 working minutes at 11:15, fired after the hold.
        assert notices == [(AlertState.FIRING, msk("11:16"))]
    else:
        # Without the start, the call was silence until its end arrived: idle from 09:05.
        assert notices[0] == (AlertState.FIRING, msk("09:51"))
