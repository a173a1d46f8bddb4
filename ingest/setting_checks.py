"""Checks the bridges' settings share; kept apart so that settings modules import no bridge."""

from __future__ import annotations


def one_line(value: str) -> str:
    """``value`` unchanged, or a ValueError if it holds a line break: it goes into a protocol's
    line (an AMI header, a login), where a line break would inject another."""
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain a line break")
    return value
