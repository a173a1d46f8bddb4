"""Waiting on a condition, the one way every test does it: poll, never sleep a guess.

``eventually`` (plain tests) and ``until`` (async tests, whose event loop keeps running while
they wait) return ``check()``'s first truthy value, or its last falsy one once ``seconds`` have
passed, for the caller to assert on: a timeout fails with what was seen. ``until_true`` raises
itself, for conditions with nothing to show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], seconds: float = 90.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


async def until(check: Callable[[], T], seconds: float = 90.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


async def until_true(
    check: Callable[[], object], seconds: float = 15.0, interval: float = 0.05
) -> None:
    if not await until(check, seconds, interval):
        raise AssertionError(f"not true within {seconds} s")
