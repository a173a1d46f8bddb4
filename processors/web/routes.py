"""The head of sales' pages on the worker's web server (faust's, aiohttp underneath).

``/`` the departments and the open alerts, ``/departments/<id>`` a department's managers,
``/managers/<id>`` one manager's day, ``/api/today`` the same as JSON (the pages poll it every
``REFRESH_SECONDS``), and the pages' script and style under ``/assets/``. No external assets:
the pages work on a network without the internet. See docs/web.md.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Any

import faust

from processors.alert_service import AlertEvaluator
from processors.web import render
from processors.web.payload import board_payload
from processors.web.source import EvaluatorConfig, FileConfig, TodaySource
from salespulse.directory import Directory
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse

REFRESH_SECONDS = 5.0
# The pages run only their own script and style, fetch only from here, and are not framed.
_HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSETS = {"today.js": "text/javascript", "today.css": "text/css"}


@cache
def _asset(name: str) -> str:
    return files("processors.web").joinpath("static", name).read_text(encoding="utf-8")


def add_web_pages(
    app: faust.App,
    settings: Settings,
    directory: Callable[[], Directory],
    evaluator: AlertEvaluator | None,
) -> TodaySource:
    """Register the pages; they share the evaluator's rules, calendar and directory, or read
    the rules and calendar files themselves when alerting is off."""
    config = (
        EvaluatorConfig(evaluator, directory)
        if evaluator is not None
        else FileConfig(settings.alerts, directory)
    )
    source = TodaySource(
        lambda: NativeClickHouse(settings.clickhouse),
        config,
        settings.counting,
        max_age_seconds=REFRESH_SECONDS,
    )

    def html(view: Any, text: str, status: int = 200) -> Any:
        return view.html(text, status=status, headers=dict(_HTML_HEADERS))

    async def today_overview(view: Any, request: Any) -> Any:
        board, error = await source.reading()
        if board is None:
            return html(view, render.waiting("", error, REFRESH_SECONDS), 503)
        return html(view, render.overview(board, error, REFRESH_SECONDS))

    async def today_department(view: Any, request: Any, department_id: str) -> Any:
        board, error = await source.reading()
        if board is None:
            return html(view, render.waiting("../", error, REFRESH_SECONDS), 503)
        found = board.department(department_id)
        if found is None:
            text = render.not_found(
                "../", f"Department {department_id!r}", board, error, REFRESH_SECONDS
            )
            return html(view, text, 404)
        return html(view, render.department(board, found, error, REFRESH_SECONDS))

    async def today_manager(view: Any, request: Any, manager_id: str) -> Any:
        board, error = await source.reading()
        if board is None:
            return html(view, render.waiting("../", error, REFRESH_SECONDS), 503)
        found = board.manager(manager_id)
        if found is None:
            text = render.not_found("../", f"Manager {manager_id!r}", board, error, REFRESH_SECONDS)
            return html(view, text, 404)
        return html(view, render.manager(board, found, error, REFRESH_SECONDS))

    async def today_api(view: Any, request: Any) -> Any:
        board, error = await source.reading()
        payload = board_payload(board, error, REFRESH_SECONDS)
        headers = {"Cache-Control": "no-store"}
        return view.json(payload, status=200 if board is not None else 503, headers=headers)

    async def today_asset(view: Any, request: Any, name: str) -> Any:
        if name not in _ASSETS:
            return view.text("not found", status=404)
        return view.text(
            _asset(name), content_type=_ASSETS[name], headers={"Cache-Control": "no-cache"}
        )

    app.page("/")(today_overview)
    app.page("/departments/{department_id}")(today_department)
    app.page("/managers/{manager_id}")(today_manager)
    app.page("/api/today")(today_api)
    app.page("/assets/{name}")(today_asset)
    return source
