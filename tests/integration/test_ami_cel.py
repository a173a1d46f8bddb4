"""CEL through the AMI bridge on the real broker: one record per call, byte for byte."""

from __future__ import annotations

import asyncio
import itertools

from ingest.ami import CelOptions, run_ami_bridge
from ingest.raw_producer import RawProducer
from processors.parsers.asterisk_ami_cdr import AsteriskAmiCdrParser
from processors.parsers.asterisk_cel import AsteriskCelCallParser
from salespulse.models import SourceRef
from salespulse.topics import ensure_topics
from tests.conftest import LocalStack
from tests.integration.test_ami_bridge import (
    NEWCHANNEL,
    FakeAsterisk,
    Script,
    ami_settings,
    cdr,
    consume,
    own_topics,
)
from tests.polling import until_true
from tests.unit.test_asterisk_cel import INCOMING_EVENTS, INTERNAL, RING_GROUP, events_of

CEL_HEADERS = {"sp-format": b"asterisk-cel-call"}
CDR_HEADERS = {"sp-format": b"asterisk-ami-cdr"}


async def test_each_call_is_one_record_at_linkedid_end_and_cdrs_pass_as_before(
    stack: LocalStack,
) -> None:
    settings = own_topics(stack)
    await ensure_topics(settings.kafka, settings.topics)
    internal = events_of(INTERNAL)
    # Two calls' events interleaved as Asterisk raises them, with Cdr and other events between;
    # a third call is still going on when the bridge stops.
    interleaved = [
        block
        for pair in itertools.zip_longest(INCOMING_EVENTS, internal)
        for block in pair
        if block is not None
    ]
    ongoing = events_of(RING_GROUP)[:14]  # up to 101 giving up
    sent = [cdr(1), *interleaved[:7], NEWCHANNEL, *interleaved[7:], cdr(2), *ongoing]
    async with FakeAsterisk([Script(send=sent)]) as asterisk:
        stop = asyncio.Event()
        async with RawProducer(settings.kafka, settings.topics) as producer:
            bridge = asyncio.create_task(
                run_ami_bridge(
                    ami_settings(asterisk.port), producer, stop=stop, cel=CelOptions(enabled=True)
                )
            )
            try:
                # A Ping goes out only once everything received before it was written.
                await until_true(lambda: asterisk.pings >= 1)
            finally:
                stop.set()
                await asyncio.wait_for(bridge, 10)
        assert asterisk.logoffs == 1
    seen = await consume(settings, expected=5)

    assert [login["events"] for login in asterisk.logins] == ["cdr,call"]
    # The internal call ends first. The ongoing call is written as it is when the bridge stops.
    assert seen == [
        (b"1795673702.1", cdr(1), CDR_HEADERS),
        (b"1795680000.90", INTERNAL, CEL_HEADERS),
        (b"1795673702.45", b"".join(INCOMING_EVENTS), CEL_HEADERS),
        (b"1795673702.2", cdr(2), CDR_HEADERS),
        (b"1795677600.50", b"".join(ongoing), CEL_HEADERS),
    ]

    # What lands on the topic is what the worker's parsers read.
    cel_parser = AsteriskCelCallParser(timezone="Europe/Moscow")
    cdr_parser = AsteriskAmiCdrParser(timezone="Europe/Moscow")
    source = SourceRef(cel_parser.format_name, settings.topics.raw_pbx, 0, 0)
    people = []
    for _, value, headers in seen:
        parser = cel_parser if headers == CEL_HEADERS else cdr_parser
        for record in parser.split(value):
            people.append(sorted(e.actor.id for e in parser.parse(record, source)))
    # The ongoing call: 101 stopped ringing when 102 answered, 102 is still talking.
    assert people == [["101"], ["101", "201"], ["101"], ["101"], ["101"]]
