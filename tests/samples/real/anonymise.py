"""Replace phone numbers (and, on request, names) in real CDR samples with fakes of the same shape.

The files under ``tests/samples/real`` come from public repositories and vendor documentation.
Before one is committed it is run through this script once, from the text as published:

    python tests/samples/real/anonymise.py ORIGINAL OUTPUT [--name 'Real Name=Fake Name' ...]

What counts as a phone number
    Every run of 7 or more ASCII digits, with an optional leading ``+`` (or ``%2B``, the
    percent-encoded plus of FreeSWITCH), and every dashed North-American number
    ``NXX-NXX-XXXX``. Two kinds of digit runs are *not* phone numbers and are left alone:

    * Unix times: a run of 10, 13 or 16 digits starting with ``1`` whose first ten digits lie
      between 1 000 000 000 and 2 099 999 999 (epoch seconds, milliseconds, microseconds:
      Asterisk uniqueids, FreeSWITCH ``*_epoch``/``*_uepoch``, Bitrix24 ``ts``). No national
      significant number of the NANP (area codes 2-9) or of Russia (3, 4, 8, 9) starts with 1.
    * Hexadecimal identifiers: the digits sit in an alphanumeric token of 8 or more characters
      made only of ``0-9a-fA-F`` with at least one letter (UUID parts, SIP Call-IDs, Bitrix24
      call ids and member ids).
    * Decimal numbers: the run is the integer or fraction part of ``<digits>.<digits>`` (REST
      timings such as ``0.5951778888702393``, amounts such as ``1000000.00``, the counter of
      an Asterisk uniqueid or Bitrix24 call id).
    * Counters: the run is the value of a ``"key": "…"`` whose key ends in ``usec``, ``msec``,
      ``_ms``, ``_time``, ``duration``, ``bytes``, ``count`` or ``ssrc`` (FreeSWITCH ``uduration``,
      ``billusec``, ``rtp_audio_in_raw_bytes``).

How a fake is made
    The fake keeps the length, the ``+``/``%2B`` and the country or trunk prefix of the real
    number, and carries a *fiction marker* right after that prefix, so a fake can never be the
    number of a real person in the ranges we use and the corpus test can tell fakes from
    leftovers:

    * 11 digits starting with 7 or 8, or 10 digits starting with 9 (Russia, with or without the
      trunk prefix): ``<7|8>9990XXXXXX`` / ``9990XXXXXX``, i.e. ``+7 999 0xx xx xx``. All
      spellings of one Russian number (+7…, 7…, 8…, bare 10 digits) get the same fake body.
    * 11 digits starting with 1, or 10 digits starting with 2-8 (NANP): ``[1]AAA55501XX``
      (area code 200-899), the 555-01XX block reserved for fiction; dashed numbers keep their
      dashes (``AAA-555-01XX``).
    * anything else: the prefix (``+`` and country code from a small table, else the first
      digit) followed by ``9990`` and filler digits.

    The filler digits are HMAC-SHA256 of the number's canonical form under a constant key, so
    the same real number always becomes the same fake, in one file and across files, and a
    rerun on the same originals gives the same output. Two real numbers that would collide get
    distinct fakes (the second is re-hashed with a counter).

Names
    Names cannot be found reliably by pattern; pass each real-looking name with ``--name``
    (``'Андрей Николаев=Иван Иванов'``); the replacement is literal. ``--word`` replaces a
    whole word only (``--word dan=usr`` leaves ``redundant`` alone). For files in a legacy
    encoding (CP1251 Master.csv lines) use ``--encoding cp1251``: the text is decoded, replaced
    and encoded back, so a CP1251 name stays a CP1251 name.

``is_fake(digits, plus)`` and ``phone_runs(text)`` are what
``tests/unit/test_real_corpus_anonymised.py`` uses to check that the committed corpus holds
no number this scheme did not produce.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KEY = b"salespulse real-corpus fakes v1"
MARKER = "9990"

# Country codes kept as the prefix of an international number that is neither NANP nor Russian.
_COUNTRY_CODES = (
    "380", "375", "374", "373", "372", "371", "370", "998", "996", "995", "994", "993", "992",
    "49", "44", "43", "41", "39", "34", "33", "32", "31", "48", "46", "45", "47", "61", "81",
    "82", "86", "90", "91", "55", "52", "54", "27", "20",
)  # fmt: skip

_DIGITS = re.compile(r"\d+")
_DASHED_NANP = re.compile(r"(?<![\d-])(\d{3})-(\d{3})-(\d{4})(?![\d-])")
_ALNUM = re.compile(r"[0-9A-Za-z]")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_COUNTER_KEY = re.compile(
    r'"[A-Za-z0-9_]*(?:usec|msec|_ms|_time|duration|bytes|count|ssrc)"\s*:\s*"?$', re.IGNORECASE
)


@dataclass(frozen=True)
class Run:
    """A digit run that is a phone number: ``text[start:end]`` is ``plus + digits``."""

    start: int
    end: int
    plus: str  # "", "+" or "%2B"/"%2b"
    digits: str


def _is_epoch(digits: str) -> bool:
    return (
        len(digits) in (10, 13, 16)
        and digits[0] == "1"
        and 1_000_000_000 <= int(digits[:10]) < 2_100_000_000
    )


def _token_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The alphanumeric token around text[start:end]; a %2B before the digits ends it."""
    left = start
    while left > 0 and _ALNUM.match(text[left - 1]):
        if text[left - 3 : left].lower() == "%2b" and left == start:
            break
        left -= 1
    right = end
    while right < len(text) and _ALNUM.match(text[right]):
        right += 1
    return left, right


def _is_hex_id(token: str) -> bool:
    return len(token) >= 8 and _HEX.fullmatch(token) is not None and any(c.isalpha() for c in token)


def phone_runs(text: str) -> Iterator[Run]:
    """Every undashed run of 7+ digits that is not a Unix time or part of a hex identifier."""
    for match in _DIGITS.finditer(text):
        start, end = match.span()
        digits = match.group()
        if len(digits) < 7 or _is_epoch(digits):
            continue
        if text[start - 2 : start - 1].isdigit() and text[start - 1 : start] == ".":
            continue  # fraction of a decimal number
        if text[end : end + 1] == "." and text[end + 1 : end + 2].isdigit():
            continue  # integer part of a decimal number
        if _COUNTER_KEY.search(text[max(0, start - 60) : start]):
            continue
        plus = ""
        if start >= 3 and text[start - 3 : start].lower() == "%2b":
            plus = text[start - 3 : start]
        elif start >= 1 and text[start - 1] == "+":
            plus = "+"
        left, right = _token_bounds(text, start, end)
        if not plus and _is_hex_id(text[left:right]):
            continue
        yield Run(start - len(plus), end, plus, digits)


def dashed_runs(text: str) -> Iterator[re.Match[str]]:
    return _DASHED_NANP.finditer(text)


# --- the fake scheme ------------------------------------------------------------------------


def _shape(digits: str, plus: str) -> tuple[str, str, str]:
    """(kind, prefix, body): kind is ``ru``, ``nanp`` or ``other``; prefix + body == digits."""
    n = len(digits)
    if n == 11 and digits[0] in "78" and not (plus and digits[0] == "8"):
        return "ru", digits[0], digits[1:]
    if n == 10 and digits[0] == "9" and not plus:
        return "ru", "", digits
    if n == 11 and digits[0] == "1":
        return "nanp", "1", digits[1:]
    if n == 10 and not plus and digits[0] in "2345678":
        return "nanp", "", digits
    if plus:
        for code in _COUNTRY_CODES:
            if digits.startswith(code) and n - len(code) >= len(MARKER) + 1:
                return "other", code, digits[len(code) :]
    return "other", digits[0], digits[1:]


def is_fake(digits: str, plus: str = "") -> bool:
    """Whether a phone-number run is one this scheme produces."""
    kind, _prefix, body = _shape(digits, plus)
    if kind == "nanp":
        return body[0] in "2345678" and body[3:8] == "55501"
    return body.startswith(MARKER)


def is_fake_dashed(area: str, exchange: str, line: str) -> bool:
    return exchange == "555" and line.startswith("01")


class Anonymiser:
    """Deterministic real → fake mapping; one instance may serve several files."""

    def __init__(self) -> None:
        self._fakes: dict[tuple[str, str], str] = {}  # (kind, canonical body) -> fake body
        self._taken: dict[tuple[str, str], tuple[str, str]] = {}

    def _digits_for(self, canonical: str, count: int, attempt: int) -> str:
        mac = hmac.new(KEY, f"{canonical}#{attempt}".encode(), hashlib.sha256).hexdigest()
        return str(int(mac, 16)).zfill(count)[-count:]

    def fake_body(self, kind: str, body: str) -> str:
        key = (kind, body)
        if key in self._fakes:
            return self._fakes[key]
        attempt = 0
        while True:
            if kind == "nanp":
                raw = self._digits_for(f"nanp:{body}", 5, attempt)
                area = str(200 + int(raw[:3]) % 700)  # 200-899: a 9xx could read as Russian
                fake = f"{area}55501{raw[3:]}"
            else:
                tail = len(body) - len(MARKER)
                fake = MARKER + (self._digits_for(f"{kind}:{body}", tail, attempt) if tail else "")
            owner = self._taken.get((kind, fake))
            if owner is None or owner == key:
                break
            attempt += 1
        self._fakes[key] = fake
        self._taken[(kind, fake)] = key
        return fake

    def fake_run(self, digits: str, plus: str) -> str:
        kind, prefix, body = _shape(digits, plus)
        if kind == "other" and len(body) < len(MARKER):
            raise ValueError(f"number too short to fake: {len(digits)} digits")
        return prefix + self.fake_body(kind, body)

    def text(
        self,
        text: str,
        names: dict[str, str] | None = None,
        words: dict[str, str] | None = None,
    ) -> str:
        for real, fake in (names or {}).items():
            text = text.replace(real, fake)
        for real, fake in (words or {}).items():
            text = re.sub(rf"(?<!\w){re.escape(real)}(?!\w)", fake, text)

        def dashed(m: re.Match[str]) -> str:
            body = self.fake_body("nanp", m.group(1) + m.group(2) + m.group(3))
            return f"{body[:3]}-{body[3:6]}-{body[6:]}"

        text = _DASHED_NANP.sub(dashed, text)
        out: list[str] = []
        pos = 0
        for run in phone_runs(text):
            out.append(text[pos : run.start])
            out.append(run.plus + self.fake_run(run.digits, run.plus))
            pos = run.end
        out.append(text[pos:])
        return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("original", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--name", action="append", default=[], help="'Real=Fake', repeatable")
    parser.add_argument("--word", action="append", default=[], help="'real=fake', whole words")
    parser.add_argument("--encoding", default="utf-8")
    args = parser.parse_args(argv)
    names = dict(pair.split("=", 1) for pair in args.name)
    words = dict(pair.split("=", 1) for pair in args.word)
    raw = args.original.read_bytes()
    text = raw.decode(args.encoding)
    result = Anonymiser().text(text, names, words)
    args.output.write_bytes(result.encode(args.encoding))
    return 0


if __name__ == "__main__":
    sys.exit(main())
