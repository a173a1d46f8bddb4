"""Customer phone numbers never reach storage in clear.

With a key configured, a number becomes a keyed hash (HMAC-SHA-256): the same customer gets the
same token across calls, so repeat calls can still be counted, but the number cannot be
recovered without the key. Without a key, numbers are masked (last two digits kept), which is
safe but makes repeat customers indistinguishable. Extensions, operator ids and CRM entity ids
are not phone numbers and pass through unchanged.

A number inside a longer value (``sip:+79161234567@trunk``, a messenger id such as
``79161234567@c.us``) is protected in place, with the token the bare number gets, so the same
customer stays one customer across channels.

The pipeline protects counterparts, meeting places and actor ids with one protector: a number
that is an actor (a call forwarded trunk to trunk) gets the token it gets as a counterpart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import overload

_MIN_PHONE_DIGITS = 7
# What people and their editors put between the digits of a number: spaces (also the
# non-breaking, thin and narrow ones word processors insert), hyphens and dashes (also the
# non-breaking hyphen and the minus sign), dots, slashes, parentheses, and the invisible
# characters a copy from a web page or a messenger carries along (zero-width space, word
# joiner, soft hyphen, byte order mark). A separator the list missed would split a number into
# short runs that each stay in clear.
NUMBER_SEPARATORS = (
    " ().-/"
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
    "\u200b\u200c\u200d\u2060\u00ad\ufeff"
)
_SEPARATORS = str.maketrans("", "", "+" + NUMBER_SEPARATORS)
_REMEMBERED_VALUES = 16_384
# Digits with separators between them ("+7 (916) 123 – 45 – 67"), inside any text. Up to three
# separators in a row: ") " and " – " are common. ASCII digits only: other scripts' digits are
# not dialled, and would not encode for the HMAC.
_NUMBER_IN_TEXT = re.compile(f"\\+?[0-9](?:[{re.escape(NUMBER_SEPARATORS)}]{{0,3}}[0-9])+")


# Runs that look like phone numbers (5+ digits, possibly split by the separators numbers are
# written with) in an error message: details go to logs and dead-letter headers, which must
# not hold them in clear.
_PHONEISH = re.compile(rf"\+?\d(?:[\s{re.escape(NUMBER_SEPARATORS)}]{{0,3}}\d)+")


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

    @overload
    def protect(self, value: str) -> str: ...
    @overload
    def protect(self, value: None) -> None: ...
    @overload
    def protect(self, value: str | None) -> str | None: ...

    def protect(self, value: str | None) -> str | None:
        """``value`` with every phone number in it replaced by its token (or mask)."""
        if value is None or len(value) < _MIN_PHONE_DIGITS:
            return value  # too short to hold a number: extensions and most ids, without a lookup
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
