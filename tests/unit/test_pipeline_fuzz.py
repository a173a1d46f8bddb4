"""Whatever a batch holds, the batch processor accounts for every record: it becomes events, or
is no activity by its format's rules, or is a dead letter with a reason, its coordinates and
its original bytes. Nothing raises, nothing is lost, and huge input is refused before it costs
memory."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from processors.parsers import Parser, RecordError, build_parsers
from processors.pipeline import (
    EVENT_COLUMNS,
    BatchProcessor,
    DeadLetter,
    RawMessage,
    settle_sides,
)
from processors.privacy import PhoneProtector
from salespulse.directory import load_directory
from salespulse.models import FORMAT_HEADER, SourceRef
from salespulse.sections import REPO_ROOT, LatenessSettings, ParsingSettings, WorkerSettings
from tests.unit.fuzzing import INTERESTING, fuzz_settings, mutated
from tests.unit.test_parsers_fuzz import SAMPLES

PARSERS = build_parsers(ParsingSettings())
DIRECTORY = load_directory(REPO_ROOT / "salespulse" / "examples" / "directory.example.yaml")
# The samples' activity is on 2026-11-26; some mutations move it into the future or far back.
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
MAX_MESSAGE_BYTES = WorkerSettings().max_message_bytes
TOPIC = "salespulse.raw.fuzz"
OFFSET, POSITION = EVENT_COLUMNS.index("source_offset"), EVENT_COLUMNS.index("source_index")


def processor(phone_key: bytes | None = None) -> BatchProcessor:
    return BatchProcessor(
        PARSERS,
        lambda: DIRECTORY,
        PhoneProtector(phone_key),
        max_message_bytes=MAX_MESSAGE_BYTES,
        grace=LatenessSettings().by_family(),
        excluded_numbers=["79161234567"],
        clock=lambda: NOW,
    )


FORMAT_NAMES = sorted(SAMPLES)
HEADER_VALUES = st.one_of(
    st.sampled_from([name.encode() for name in FORMAT_NAMES]),
    st.binary(max_size=70),  # unknown, non-UTF-8, longer than a format name may be
)


@st.composite
def messages(draw: st.DrawFn, offset: int) -> RawMessage:
    """A message of a known format (one or a few mutated records, framed as its producer frames
    them), of an unknown one, or without the header; with or without a Kafka timestamp."""
    format_name = draw(st.sampled_from(FORMAT_NAMES))
    # Mostly the right header, so that most messages reach a parser.
    header = draw(st.one_of(st.just(format_name.encode()), HEADER_VALUES, st.none()))
    headers = [] if header is None else [(FORMAT_HEADER, header)]
    if draw(st.integers(0, 4)) == 0:
        headers.append(("sp-backfill", draw(st.sampled_from([b"1", b"true", b"0", b"\xff"]))))
    samples = SAMPLES[format_name]
    separator = b"\r\n" if format_name.startswith("asterisk-ami") else b"\n"
    record = st.one_of(st.sampled_from(samples), mutated(samples, INTERESTING))
    value = draw(
        st.one_of(
            st.lists(record, min_size=1, max_size=3).map(separator.join),
            st.none(),
            st.binary(max_size=300),
        )
    )
    # No Kafka timestamp (lateness not judged), or one that makes some records late.
    received = draw(st.one_of(st.none(), st.just(NOW), st.datetimes(timezones=st.just(UTC))))
    return RawMessage(TOPIC, draw(st.integers(0, 3)), offset, headers, value, received)


@st.composite
def batches(draw: st.DrawFn) -> list[RawMessage]:
    count = draw(st.integers(1, 6))
    return [draw(messages(offset)) for offset in range(count)]


def parser_of(message: RawMessage) -> Parser | None:
    """The parser the batch processor picks for ``message``; None when it refuses it whole."""
    raw = dict(message.headers).get(FORMAT_HEADER)
    if raw is None or len(message.value or b"") > MAX_MESSAGE_BYTES:
        return None
    return PARSERS.get(raw.decode("utf-8", "replace")[:64])


def outcomes_of(batch: list[RawMessage], rows: list[tuple[object, ...]],
                dead: list[DeadLetter]) -> Counter[str]:  # fmt: skip
    """Checks that every record of ``batch`` ended exactly one way (rows, no activity, a dead
    letter) and counts the ways; a message refused whole is one dead letter."""
    rows_of = Counter((row[OFFSET], row[POSITION]) for row in rows)
    dead_of = {(letter.source.offset, letter.source.position): letter for letter in dead}
    assert len(dead_of) == len(dead), "at most one dead letter per record"
    outcomes: Counter[str] = Counter()
    for message in batch:
        payload = message.value or b""
        parser = parser_of(message)
        if parser is None:
            letter = dead_of.pop((message.offset, 0))
            assert letter.reason in ("missing_format_header", "unknown_format", "too_large")
            assert letter.original == payload, "a refused message is kept byte for byte"
            outcomes["dead letter"] += 1
            continue
        records = parser.split(payload)
        if not records:
            assert not payload.strip(), "framing drops only blank payloads"
            letter = dead_of.pop((message.offset, 0))
            assert (letter.reason, letter.original) == ("empty", payload)
            outcomes["dead letter"] += 1
            continue
        for index, record in enumerate(records):
            letter = dead_of.pop((message.offset, index), None)
            events = rows_of.pop((message.offset, index), 0)
            if letter is not None:
                assert letter.reason, "a dead letter says why"
                assert letter.detail, "and says it for people too"
                assert letter.original == record, "a dead letter keeps the record's bytes"
                assert letter.source == SourceRef(
                    parser.format_name, TOPIC, message.partition, message.offset, index
                )
                assert not events, "a dead-lettered record has no rows"
                outcomes["dead letter"] += 1
                continue
            parsed = parser.parse(record, SourceRef(parser.format_name, TOPIC, 0, 0))
            # Of a record that speaks for both ends, the directory decides which sides stay.
            kept = settle_sides(parsed, DIRECTORY.resolve)
            assert events == len(kept), "every event of a record is a row"
            outcomes["events" if events else "no activity"] += 1
    assert not dead_of, f"dead letters of records never sent: {dead_of}"
    assert not rows_of, f"rows of records never sent: {rows_of}"
    return outcomes


def records_in(message: RawMessage) -> int:
    parser = parser_of(message)
    return 0 if parser is None else len(parser.split(message.value or b""))


@fuzz_settings(300)
@given(batch=batches(), phone_key=st.one_of(st.none(), st.just(b"k" * 32)))
def test_every_record_is_events_no_activity_or_a_dead_letter(
    batch: list[RawMessage], phone_key: bytes | None
) -> None:
    result = processor(phone_key).process(batch)
    outcomes = outcomes_of(batch, result.rows, result.dead_letters)
    framed = [records_in(m) for m in batch]
    refused = framed.count(0)  # no parser, or nothing but blanks: the message is one letter
    # Count in (records framed, messages refused whole) equals count out.
    assert sum(framed) + refused == sum(outcomes.values())
    assert sum(result.records.values()) == sum(framed)
    assert len(result.dead_letters) == outcomes["dead letter"]
    for outcome in outcomes:  # shown by --hypothesis-show-statistics: all three must occur
        event(f"a record ended as {outcome}")


# --- huge input -------------------------------------------------------------------------------

# What refusing a huge input may cost beyond the input itself, which the caller already holds.
REFUSAL_BYTES = 256 * 1024


def peak_bytes_of(work: object) -> int:
    """Peak Python allocations while ``work()`` runs, beyond what existed before."""
    assert callable(work)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


HUGE = {
    "a 50 MB CDR line": SAMPLES["asterisk-cdr-csv"][0] + b"," + b"9" * 50_000_000,
    "50 MB without a newline": b"x" * 50_000_000,
    "JSON nested 1,000,000 deep": b'{"a":' * 1_000_000 + b"1" + b"}" * 1_000_000,
}


@pytest.mark.parametrize("what", sorted(HUGE))
@pytest.mark.parametrize("format_name", ["asterisk-cdr-csv", "freeswitch-json-cdr"])
def test_huge_message_is_one_dead_letter_at_no_memory_cost(what: str, format_name: str) -> None:
    payload = HUGE[what]
    message = RawMessage(TOPIC, 0, 7, [(FORMAT_HEADER, format_name.encode())], payload)
    results = []
    peak = peak_bytes_of(lambda: results.append(processor().process([message])))
    (result,) = results
    assert [letter.reason for letter in result.dead_letters] == ["too_large"]
    assert result.dead_letters[0].original is payload  # kept, not copied
    assert peak < REFUSAL_BYTES, f"refusing {what} allocated {peak} bytes"


@pytest.mark.parametrize("what", sorted(HUGE))
@pytest.mark.parametrize("format_name", sorted(PARSERS))
def test_huge_record_is_refused_by_every_parser_before_decoding(
    what: str, format_name: str
) -> None:
    parser = PARSERS[format_name]
    source = SourceRef(format_name, TOPIC, 0, 0)
    reasons = []

    def parse() -> None:
        try:
            parser.parse(HUGE[what], source)
        except RecordError as exc:
            reasons.append(exc.reason)

    peak = peak_bytes_of(parse)
    assert reasons == ["too_large"]
    assert peak < REFUSAL_BYTES, f"{format_name} allocated {peak} bytes refusing {what}"


# Under every record limit (64 KB), past the JSON decoder's recursion limit.
DEEP = [b"[" * 16_000 + b"]" * 16_000, b'{"variables":' * 4_000 + b"1" + b"}" * 4_000]


@pytest.mark.parametrize("format_name", sorted(PARSERS))
def test_deep_nesting_within_the_size_limit_is_a_dead_letter(format_name: str) -> None:
    messages = [
        RawMessage(TOPIC, 0, offset, [(FORMAT_HEADER, format_name.encode())], record)
        for offset, record in enumerate(DEEP)
    ]
    result = processor().process(messages)
    assert not result.rows
    assert {letter.reason for letter in result.dead_letters} <= {"malformed", "invalid"}
    assert len(result.dead_letters) == len(DEEP)
