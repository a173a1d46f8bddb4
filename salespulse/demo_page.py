"""The demo's last words: where the head of sales' page is, and that it shows the numbers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from salespulse.settings import Settings


def today_from_page(url: str, timeout_seconds: float) -> dict[str, Any] | None:
    """The page's JSON once it has its first numbers; None after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}api/today", timeout=5) as response:  # noqa: S310 - our own http URL
                today: dict[str, Any] = json.loads(response.read())
            if today.get("taken_at"):
                return today
        except (urllib.error.URLError, OSError, ValueError):
            pass  # not serving yet, or no first reading yet (503)
        time.sleep(0.5)
    return None


def show_page(settings: Settings, timeout_seconds: float = 60.0) -> bool:
    url = f"http://127.0.0.1:{settings.worker.web_port}/"
    today = today_from_page(url, timeout_seconds)
    if today is None:
        print(f"\nthe page at {url} has no numbers after {timeout_seconds:.0f} s")
        return False
    departments = today["departments"]
    managers = sum(len(d.get("managers", ())) for d in departments)
    calls = sum(d["metrics"]["calls_out"]["actual"] for d in departments)
    print(f"\nThe head of sales' page: {url}")
    print(
        f"  today so far: {len(departments)} departments, {managers} managers, "
        f"{calls} outgoing calls, {len(today['alerts'])} open alerts; it updates itself "
        f"every {today['refresh_seconds']:g} s (JSON at {url}api/today)"
    )
    return True
