"""What ``salespulse erase`` accepts as a person, and the form it looks for: the parsers' own
token for a number, a hash for a manager, nothing in clear; the rest refused before any query."""

from __future__ import annotations

import re

import pytest

from processors.privacy import PhoneProtector
from salespulse.erase_commands import ErasureRefused, manager_subject, phone_subject
from sinks.clickhouse.erasure import number_pattern


@pytest.mark.parametrize(
    "written", ["+7 (916) 555-12-34", "79165551234", "7\u00a0916\u00a0555\u201112\u201134"]
)
def test_a_number_is_looked_for_as_the_parsers_store_it(written: str) -> None:
    subject = phone_subject(written, b"key")
    assert subject.match == PhoneProtector(b"key").protect("sip:+79165551234@trunk")[4:-6]
    assert subject.recorded == subject.match
    assert "5551234" not in subject.recorded


def test_without_a_key_the_number_is_its_mask() -> None:
    assert phone_subject("+7 916 555-12-34", None).match == "*********34"


def test_a_manager_is_recorded_as_a_hash_that_depends_on_the_key() -> None:
    keyed = manager_subject(" petrov ", b"key")
    assert keyed.match == "petrov"
    assert re.fullmatch(r"m:[0-9a-f]{20}", keyed.recorded)
    assert keyed.recorded != manager_subject("petrov", b"other").recorded
    assert keyed.recorded != manager_subject("petrov", None).recorded
    assert manager_subject("петров.a-1@x+y", None).match == "петров.a-1@x+y"


@pytest.mark.parametrize(
    "value", ["", "  ", "petrov' OR 1=1 --", "a;b", "a b", "a\\nb", "x" * 65, "a'", 'a"', "a\\\\"]
)
def test_hostile_manager_ids_are_refused(value: str) -> None:
    with pytest.raises(ErasureRefused):
        manager_subject(value, b"key")


@pytest.mark.parametrize(
    "value",
    ["", "+-() ./", "101", "123456", "7916555123x", "7916555123' --", "1" * 21, "٧٩١٦٥٥٥١٢٣٤"],
)
def test_numbers_that_name_nobody_are_refused_without_being_quoted(value: str) -> None:
    with pytest.raises(ErasureRefused) as refused:
        phone_subject(value, b"key")
    if len(value) > 3:
        assert value not in str(refused.value)


def test_a_mask_pattern_does_not_match_the_tail_of_a_longer_mask() -> None:
    pattern = re.compile(number_pattern("*********34"))
    assert pattern.search("*********34")
    assert pattern.search("sip:*********34@trunk")
    assert not pattern.search("***********34")
