"""Channels up and down through the AMI bridge on the real broker: live events as they come,
and the channels already up listed at login."""

from __future__ import annotations

import asyncio
import json
import time

from ingest.ami import run_ami_bridge
from ingest.raw_producer import RawProducer
from processors.parsers.asterisk_ami_presence import AsteriskAmiPresenceParser
from salespulse.models import SourceRef
from salespulse.topics import ensure_topics
from tests.conftest import LocalStack
from tests.integration.test_ami_bridge import (
    FakeAsterisk,
    Script,
    ami_settings,
    cdr,
    consume,
    own_topics,
)
from tests.polling import until_true

PRESENCE = {"sp-format": b"asterisk-ami-presence"}
CDR = {"sp-format": b"asterisk-ami-cdr"}


def event(name: str, channel: str, state: int, uniqueid: str, stamp: str = "") -> bytes:
    timestamp = f"Timestamp: {stamp}\r\n" if stamp else ""
    return (
        f"Event: {name}\r\nPrivilege: call,all\r\n{timestamp}Channel: {channel}\r\n"
        f"ChannelState: {state}\r\nUniqueid: {uniqueid}\r\nLinkedid: {uniqueid}\r\n\r\n"
    ).encode()


# 101 dials out and is answered; the far end's trunk channel comes up too; a DialBegin between.
LIVE = [
    event("Newchannel", "PJSIP/101-00000001", 4, "1795680000.1", "1795680000.250000"),
    b"Event: DialBegin\r\nPrivilege: call,all\r\nChannel: PJSIP/101-00000001\r\n\r\n",
    event("Newchannel", "PJSIP/provider-00000002", 0, "1795680000.2"),
    event("Newstate", "PJSIP/101-00000001", 6, "1795680000.1", "1795680010.000000"),
]
# Already on a call for 12 minutes when the bridge logs in.
UP_BEFORE = (
    "Channel: SIP/102-00000009\r\nChannelState: 6\r\nChannelStateDesc: Up\r\n"
    "Uniqueid: 1795679000.9\r\nLinkedid: 1795679000.9\r\nDuration: 00:12:00\r\n"
)


async def test_the_bridge_writes_channels_live_and_lists_those_up_when_it_logs_in(
    stack: LocalStack,
) -> None:
    settings = own_topics(stack)
    await ensure_topics(settings.kafka, settings.topics)
    hangup = event("Hangup", "PJSIP/101-00000001", 6, "1795680000.1", "1795680600.000000")
    # The first session drops after the live events; the second brings the Hangup and a CDR.
    scripts = [Script(send=LIVE, drop_after=b"Event: Newst"), Script(send=[hangup, cdr(1)])]
    async with FakeAsterisk(scripts, channels=[UP_BEFORE]) as asterisk:
        stop = asyncio.Event()
        async with RawProducer(settings.kafka, settings.topics) as producer:
            bridge = asyncio.create_task(
                run_ami_bridge(ami_settings(asterisk.port), producer, stop=stop, presence=True)
            )
            try:
                await until_true(lambda: asterisk.connections >= 2 and asterisk.pings >= 1)
            finally:
                stop.set()
                await asyncio.wait_for(bridge, 10)
    seen = await consume(settings, expected=6)

    assert [login["events"] for login in asterisk.logins] == ["cdr,call", "cdr,call"]
    # The first session drops before it answers the listing; the one after the reconnect does.
    assert asterisk.channel_listings == 1
    presence = [(key, json.loads(value)) for key, value, headers in seen if headers == PRESENCE]
    assert [headers for _, _, headers in seen].count(CDR) == 1
    names = [record["event"] for _, record in presence]
    assert sorted(names) == sorted(
        ["Newchannel", "Newchannel", "Newstate", "CoreShowChannel", "Hangup"]
    )
    answered = {
        "event": "Newstate",
        "channel": "PJSIP/101-00000001",
        "uniqueid": "1795680000.1",
        "linkedid": "1795680000.1",
        "channel_state": 6,
        "at": 1795680010.0,  # Asterisk's Timestamp
        "duration": None,
    }
    assert (b"1795680000.1", answered) in presence

    # What the worker makes of them: 101 up at dialling, up (the same row) when answered, down
    # at the Hangup (a session later); 102 up since 12 minutes before the listing; the trunk
    # (dialled, not busy) and DialBegin: none.
    parser = AsteriskAmiPresenceParser()
    source = SourceRef(parser.format_name, settings.topics.raw_pbx, 0, 0)
    events = [
        e
        for _, value, headers in seen
        if headers == PRESENCE
        for record in parser.split(value)
        for e in parser.parse(record, source)
    ]
    by_row = {(e.actor.id, e.action): e for e in events}
    assert sorted(by_row) == [("101", "down"), ("101", "up"), ("102", "up")]
    assert by_row[("101", "down")].occurred_at.timestamp() == 1795680600.0
    # Listed moments ago, by the bridge's clock: up since 12 minutes before.
    listed = by_row[("102", "up")]
    assert abs(time.time() - 720 - listed.occurred_at.timestamp()) < 60
