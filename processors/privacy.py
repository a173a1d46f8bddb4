"""Customer phone numbers never reach storage in clear.

With a key configured, a number becomes a keyed hash (HMAC-SHA-256): the same customer gets the
same token across calls, so repeat calls can still be counted, but the number cannot be
recovered without the key. Without a key, numbers are masked (last two digits kept), which is
safe but makes repeat customers indistinguishable. Extensions, operator ids and CRM entity ids
are not phone numbers and pass through unchanged.

A number inside a longer value (``sip:+79161234567@trunk``, a messenger id such as
``79161234567@c.us``) is protected in place, with the token the bare number gets, so the same
customer stays one customer across channels.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_MIN_PHONE_DIGITS = 7
_SEPARATORS = str.maketrans("", "", " +-().")
_REMEMBERED_VALUES = 16_384
# Digits with the separators numbers are written with ("+7 (916) 123-45-67"), inside any text.
# ASCII digits only: other scripts' digits are not dialled, and would not encode for the HMAC.
_NUMBER_IN_TEXT = re.compile(r"\+?\d(?:[ ().-]{0,2}\d)+", re.ASCII)


# Phone-like digit runs in an error message: five digits or more are masked.
_PHONEISH = re.compile(r"\+?\d[\d\s().\-]{3,}\d")


def _mask(match: re.Match[str]) -> str:
    text = match.group()
    return "<digits>" if sum(ch.isdigit() for ch in text) >= 5 else text


def mask_numbers(text: str) -> str:
    """``text`` with phone-like digit runs masked: an error message may quote a value."""
    return _PHONEISH.sub(_mask, text)


def normalise_number(value: str) -> str:
    """A number as digits only: ``+7 (916) 123-45-67`` and ``79161234567`` are one customer."""
    return value.translate(_SEPARATORS)


class PhoneProtector:
    def __init__(self, key: bytes | None) -> None:
        self._key = key
        # The protected form of recently seen values: a customer calls more than once, and a
        # CDR names the same counterpart on both legs of an internal call.
        self._seen: dict[str, str] = {}

    def protect(self, value: str | None) -> str | None:
        if value is None:
            return None
        protected = self._seen.get(value)
        if protected is None:
            protected = self._protect(value)
            if len(self._seen) >= _REMEMBERED_VALUES:
                self._seen.clear()
            self._seen[value] = protected
        return protected

    def _protect(self, value: str) -> str:
        digits = normalise_number(value)
        if digits.isascii() and digits.isdigit():
            return self._token(digits) if len(digits) >= _MIN_PHONE_DIGITS else value
        return _NUMBER_IN_TEXT.sub(self._embedded, value)

    def _embedded(self, match: re.Match[str]) -> str:
        digits = normalise_number(match.group())
        return self._token(digits) if len(digits) >= _MIN_PHONE_DIGITS else match.group()

    def _token(self, digits: str) -> str:
        if self._key is None:
            return "*" * (len(digits) - 2) + digits[-2:]
        digest = hmac.new(self._key, digits.encode("ascii"), hashlib.sha256).hexdigest()
        return f"h:{digest[:20]}"
