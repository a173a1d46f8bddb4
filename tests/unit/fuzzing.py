"""Fuzzing helpers: whatever the bytes, ``parse()`` returns events or raises ``RecordError`` with
a known reason; and the number of examples every fuzz test runs.

``SALESPULSE_FUZZ`` chooses how hard to try: unset or ``ci`` for the bounded run of every test
suite, ``long`` for a local run with ``LONG_FACTOR`` times as many examples of each test. A long
test outlasts the suite's 300 s per-test timeout, so lift it::

    SALESPULSE_FUZZ=long pytest --timeout 3600 --hypothesis-show-statistics \
        tests/unit/test_*fuzz*.py tests/integration/test_http_fuzz.py
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from processors.parsers.base import Parser, RecordError
from salespulse.models import ActivityEvent, SourceRef

REASONS = {"decode_error", "malformed", "invalid", "bad_time", "too_large", "ids_only"}
SOURCE = SourceRef("fuzz", "salespulse.raw.fuzz", 0, 0)
LONG_FACTOR = 50


def _mode() -> str:
    mode = os.environ.get("SALESPULSE_FUZZ", "ci") or "ci"
    if mode not in ("ci", "long"):
        # A typo must not quietly run the short suite under a long-run label.
        raise ValueError(f"SALESPULSE_FUZZ must be ci or long, not {mode!r}")
    return mode


FUZZ_MODE = _mode()


def fuzz_settings(examples: int) -> settings:
    """``examples`` per test in CI, ``LONG_FACTOR`` times more in the long mode. No deadline:
    the suite shares two cores with other work, and a slow example is not a failure."""
    scale = LONG_FACTOR if FUZZ_MODE == "long" else 1
    return settings(
        max_examples=examples * scale,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


FUZZ = fuzz_settings(200)

# Bytes that matter to the formats: quotes, separators, percent escapes, digits, braces, and
# non-UTF-8.
INTERESTING = st.sampled_from(
    [b'"', b",", b'","', b"%", b"%2B", b"%FF", b"&", b"=", b"+", b"[", b"]", b"{", b"}",
     b"0", b"9", b".", b":", b"-", b"\\", b"\xff", b"\xd0", b"\x00", b" "]
)  # fmt: skip
ANY_BYTE = st.integers(0, 255)


# Formats whose parsers decode only the fields they read: bytes that do not decode elsewhere in
# a record (a caller name in another encoding) do not stop it.
FIELD_DECODING = frozenset(
    {"asterisk-cdr-csv", "asterisk-ami-cdr", "asterisk-cel-call", "freeswitch-cdr-csv"}
)


def check(parser: Parser, record: bytes) -> None:
    try:
        events = parser.parse(record, SOURCE)
    except RecordError as exc:
        reason = exc.reason
        exc.detail.encode("utf-8")  # details travel in Kafka headers: no undecoded bytes
    else:
        assert isinstance(events, list)
        assert all(isinstance(event, ActivityEvent) for event in events)
        for event in events:  # whatever was not decoded stays out of the events
            for text in (event.actor.id, event.counterpart, event.call_id):
                (text or "").encode("utf-8")
        return
    assert reason in REASONS
    if reason != "decode_error" and parser.format_name not in FIELD_DECODING:
        record.decode("utf-8")  # non-UTF-8 input is always reported as decode_error


@st.composite
def mutated(
    draw: st.DrawFn,
    samples: list[bytes],
    interesting: st.SearchStrategy[bytes] = INTERESTING,
    *,
    overwrite: st.SearchStrategy[int] = ANY_BYTE,
    max_cut: int = 8,
    max_copy: int = 12,
) -> bytes:
    """A sample with up to six edits: a byte overwritten by one of ``overwrite``, a run of up to
    ``max_cut`` bytes cut, ``interesting`` bytes inserted, or up to ``max_copy`` of its own bytes
    repeated."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            data[at] = draw(overwrite)
        elif choice == 1:
            del data[at : at + draw(st.integers(1, max_cut))]
        elif choice == 2:
            data[at:at] = draw(interesting)
        else:
            data[at:at] = data[at : at + draw(st.integers(1, max_copy))]
    return bytes(data)


@st.composite
def truncated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    sample = draw(st.sampled_from(samples))
    start = draw(st.integers(0, len(sample)))
    return sample[start : draw(st.integers(start, len(sample)))]


def json_values(near_valid: list[str]) -> st.SearchStrategy[Any]:
    """JSON values of every shape, with a bias towards the ``near_valid`` strings."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=20),
        st.sampled_from(near_valid),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )


@st.composite
def reshaped(
    draw: st.DrawFn, sample: dict[str, Any], fields: list[str], values: st.SearchStrategy[Any]
) -> dict[str, Any]:
    """A copy of ``sample`` with some of ``fields`` removed or set to one of ``values``."""
    result = dict(sample)
    for name in draw(st.lists(st.sampled_from(fields), max_size=4)):
        if draw(st.booleans()):
            result[name] = draw(values)
        else:
            result.pop(name, None)
    return result
