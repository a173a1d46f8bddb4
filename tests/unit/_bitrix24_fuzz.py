"""Fuzzing helpers for the Bitrix24 parsers: whatever the bytes, events or a known RecordError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from processors.parsers import Parser, RecordError
from salespulse.models import ActivityEvent, SourceRef

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples" / "bitrix24"
REASONS = {"decode_error", "malformed", "invalid", "bad_time", "too_large"}
SOURCE = SourceRef("fuzz", "salespulse.raw.fuzz", 0, 0)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INTERESTING = st.sampled_from(
    [b'"', b",", b"-", b":", b"0", b"9", b"{", b"}", b"[", b"\\", b"\xff", b"\xd0", b"\x00", b" "]
)

# Values of every JSON shape, biased towards the near-valid ones Bitrix24 fields take.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "0",
            "Y",
            "N",
            "60",
            "65",
            "WON",
            "C1:LOSE",
            "2026-11-26T10:02:11+03:00",
            "2026-11-26T10:02:11",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "12.345",
            "1e400",
            "-1",
        ]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def load_sample(relative: str) -> Any:
    return json.loads((SAMPLES_DIR / relative).read_text(encoding="utf-8"))


def check(parser: Parser, record: bytes) -> None:
    try:
        events = parser.parse(record, SOURCE)
    except RecordError as exc:
        reason = exc.reason
    else:
        assert isinstance(events, list)
        assert all(isinstance(event, ActivityEvent) for event in events)
        return
    assert reason in REASONS
    if reason != "decode_error":
        record.decode("utf-8")  # non-UTF-8 input is always reported as decode_error


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            data[at] = draw(st.integers(0, 255))
        elif choice == 1:
            del data[at]
        elif choice == 2:
            data[at:at] = draw(INTERESTING)
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 12))]
    return bytes(data)


@st.composite
def truncated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    sample = draw(st.sampled_from(samples))
    start = draw(st.integers(0, len(sample)))
    end = draw(st.integers(start, len(sample)))
    return sample[start:end]


@st.composite
def reshaped(draw: st.DrawFn, sample: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A copy of ``sample`` with some of ``fields`` removed or set to values of any shape."""
    base = dict(sample)
    for name in draw(st.lists(st.sampled_from(fields), max_size=4)):
        if draw(st.booleans()):
            base[name] = draw(JSON_VALUES)
        else:
            base.pop(name, None)
    return base
