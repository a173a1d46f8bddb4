"""Calls in progress: AMI channel events → presence records → ``channel`` rows → not idle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ingest.ami import presence_record
from processors.parsers import build_parsers
from processors.parsers.asterisk_ami_presence import AsteriskAmiPresenceParser
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.activity import CHANNEL_UP_MAX, ActivitySnapshot
from salespulse.alert_model import AlertState
from salespulse.directory import parse_directory
from salespulse.models import ActivityKind, Actor, SourceFamily, SourceRef
from salespulse.sections import LatenessSettings, ParsingSettings
from tests.unit.alert_world import TODAY, World, at

PARSER = AsteriskAmiPresenceParser()
SOURCE = SourceRef(PARSER.format_name, "pbx", 0, 0)
T0 = 1_795_680_000.0  # 2026-11-26 08:00:00 UTC


def ami(event: str, channel: str, state: int, uniqueid: str = "1795680000.7", **more: str) -> dict:
    """The fields of an AMI event, as ``fields_of`` gives them (lower-case names)."""
    fields = {
        "event": event,
        "channel": channel,
        "channelstate": str(state),
        "uniqueid": uniqueid,
        "linkedid": "1795680000.6",
    }
    return fields | {name.lower(): value for name, value in more.items()}


def parsed(fields: dict, wall: float = T0) -> list:
    record = presence_record(fields, wall)
    assert record.format == PARSER.format_name
    (line,) = PARSER.split(record.value)
    return PARSER.parse(line, SOURCE)


def test_a_manager_picking_up_is_a_channel_up_and_the_hangup_a_channel_down() -> None:
    (up,) = parsed(ami("Newstate", "PJSIP/101-0000001a", 6))
    (down,) = parsed(ami("Hangup", "PJSIP/101-0000001a", 6), T0 + 600)
    assert (up.kind, up.action, up.actor) == (
        ActivityKind.CHANNEL,
        "up",
        Actor(SourceFamily.PBX, "101"),
    )
    assert up.occurred_at == datetime.fromtimestamp(T0, UTC)
    assert (down.action, down.occurred_at) == ("down", datetime.fromtimestamp(T0 + 600, UTC))
    # One channel: the same line in both, and the call's id like its CDR's.
    assert up.external_ref == down.external_ref == "1795680000.7"
    assert up.call_id == "1795680000.6"
    assert up.event_id != down.event_id


def test_the_channel_of_one_call_is_one_up_however_often_it_is_said() -> None:
    dialling = parsed(ami("Newchannel", "SIP/102-00000003", 4))
    answered = parsed(ami("Newstate", "SIP/102-00000003", 6), T0 + 5)
    listed = parsed(ami("CoreShowChannel", "SIP/102-00000003", 6, Duration="00:01:40"), T0 + 100)
    assert dialling[0].event_id == answered[0].event_id == listed[0].event_id
    # CoreShowChannel says how long the channel has been up: it came up Duration ago.
    assert listed[0].occurred_at == datetime.fromtimestamp(T0, UTC)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        (ami("Newstate", "PJSIP/101-0000001a", 5), "channel not busy"),  # the phone rings
        (ami("Hangup", "PJSIP/101-0000001a", 5), "channel not busy"),  # ... and stops
        (ami("Newchannel", "PJSIP/101-0000001a", 0), "channel not busy"),  # being dialled
        (ami("Newstate", "PJSIP/provider-0000001b", 6), "not an extension's channel"),
        (ami("Newstate", "Local/101@from-queue-00000004;2", 6), "local channel"),
        (ami("DialBegin", "PJSIP/101-0000001a", 6), "not a channel event"),
    ],
)
def test_what_is_no_manager_on_the_phone(fields: dict, why: str) -> None:
    events = parsed(fields)
    assert events == []
    assert events.why == why  # type: ignore[attr-defined]


def test_the_event_s_own_timestamp_wins_over_the_bridge_s_clock() -> None:
    (up,) = parsed(ami("Newstate", "PJSIP/101-0000001a", 6, Timestamp="1795679990.250000"))
    assert up.occurred_at == datetime.fromtimestamp(1_795_679_990.25, UTC)


def test_the_record_keeps_the_fields_as_asterisk_gave_them() -> None:
    record = presence_record(ami("Hangup", "PJSIP/101-0000001a", 6), T0)
    assert record.key == b"1795680000.6"  # with the call's Cdr events
    assert json.loads(record.value) == {
        "event": "Hangup",
        "channel": "PJSIP/101-0000001a",
        "uniqueid": "1795680000.7",
        "linkedid": "1795680000.6",
        "channel_state": 6,
        "at": T0,
        "duration": None,
    }


# --- the worker: attributed through the directory like calls, never counted, never late


DIRECTORY = parse_directory(
    "departments: [{id: msk, timezone: Europe/Moscow}]\n"
    "managers: [{id: petrov, department: msk, identities: [{family: pbx, id: '101'}]}]\n",
    suffix=".yaml",
)
NOW = datetime.fromtimestamp(T0 + 3 * 3600, UTC)


def test_a_channel_is_attributed_like_a_call_and_stored_uncounted_however_late() -> None:
    processor = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(None),
        max_message_bytes=4096,
        grace=LatenessSettings().by_family(),
        clock=lambda: NOW,
    )
    # Announced after a reconnect, two hours after it came up: past the PBX's hour of grace.
    listed = presence_record(
        ami("CoreShowChannel", "PJSIP/101-0000001a", 6, Duration="02:00:00"), T0 + 7200
    )
    headers = [("sp-format", listed.format.encode())]
    message = RawMessage("pbx", 0, 9, headers, listed.value, received_at=NOW)
    result = processor.process([message])
    assert result.dead_letters == []
    (row,) = result.rows

    def column(name: str) -> object:
        return row[EVENT_COLUMNS.index(name)]

    assert (column("kind"), column("action"), column("manager_id")) == ("channel", "up", "petrov")
    assert column("occurred_at") == datetime.fromtimestamp(T0, UTC)
    assert column("excluded") == 1  # no metric counts it


# --- the alert: a call in progress is no silence


def test_busy_since_is_capped_by_the_clock_of_the_judgement() -> None:
    up = datetime.fromtimestamp(T0, UTC)
    snapshot = ActivitySnapshot(up, busy={"petrov": up})
    assert snapshot.busy_since("petrov", up + timedelta(minutes=50)) == up
    assert snapshot.busy_since("petrov", up + CHANNEL_UP_MAX) == up
    assert snapshot.busy_since("petrov", up + CHANNEL_UP_MAX + timedelta(seconds=1)) is None
    assert snapshot.busy_since("ivanova", up) is None


def idle_notices(world: World, start: str, end: str) -> list[tuple[AlertState, datetime]]:
    notices = world.run(at(TODAY, start), at(TODAY, end))
    return [(n.state, n.at) for n in notices if n.alert.key == "idle/manager/ivanova"]


def test_a_call_up_50_minutes_without_its_cdr_is_not_idle() -> None:
    world = World()
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:00"), 6)  # last ends 09:57
    world.channels.append(("ivanova", at(TODAY, "10:00"), at(TODAY, "10:50")))
    world.call_every("ivanova", at(TODAY, "10:50"), at(TODAY, "12:30"), 6)
    assert idle_notices(world, "09:00", "12:30") == []


def test_the_same_silence_without_a_call_in_progress_fires() -> None:
    world = World()
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:00"), 6)
    world.call_every("ivanova", at(TODAY, "10:50"), at(TODAY, "12:30"), 6)
    # Idle from 09:57: 45 minutes at 10:42, fired a minute later; the 10:50 call resolves it
    # once its resolve hold has passed.
    notices = idle_notices(world, "09:00", "12:30")
    assert notices[0] == (AlertState.FIRING, at(TODAY, "10:43"))
    assert [state for state, _ in notices[1:]] == [AlertState.RESOLVED]


def test_a_call_starting_resolves_what_fired_before_it() -> None:
    world = World()
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:00"), 6)
    world.channels.append(("ivanova", at(TODAY, "11:00"), None))
    states = [state for state, _ in idle_notices(world, "09:00", "11:30")]
    assert states == [AlertState.FIRING, AlertState.RESOLVED]


def test_a_lost_hangup_keeps_the_manager_busy_only_up_to_the_cap() -> None:
    world = World()
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:00"), 6)
    world.channels.append(("ivanova", at(TODAY, "10:00"), None))  # its Hangup never came
    # Busy until 14:00 (four hours), then idle since the channel came up: fired at once.
    assert idle_notices(world, "09:00", "15:00") == [(AlertState.FIRING, at(TODAY, "14:01"))]
