"""The pages' first view, rendered on the server: the numbers are there without the script.

Every text that comes from data (names from the directory, alert texts, ids) is HTML-escaped;
the texts themselves come from ``processors.web.payload``, which the script updates from.
Elements the script updates carry ``data-subject`` (``manager:<id>`` or ``department:<id>``)
with ``data-metric`` and ``data-field``, or ``data-state``; alert lists carry ``data-alerts``.
Links are relative (``root`` leads back to the pages' root), so the pages also work behind a
proxy that serves them under a path of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from processors.alerting.messages import metric_name
from processors.alerting.today import HEADLINE_METRICS, DepartmentToday, ManagerToday, TodayBoard
from processors.page_links import department_link, manager_link
from processors.web.payload import (
    alert_payload,
    department_payload,
    layout_of,
    manager_payload,
    status_text,
)

LEGEND = (
    "Each cell: done today / expected by now (the manager's usual pace, or the norm for a new "
    "manager) / the day's norm. Red: dipping now, fewer in the last stretch of working time than "
    "chance allows at the usual pace, as the drop alert judges it (point at the cell for the "
    "stretch); for a department, any of its managers."
)


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def page(title: str, root: str, body: str, board: TodayBoard | None, error: str,
         refresh_seconds: float) -> str:  # fmt: skip
    stale = " stale" if error else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · salespulse</title>
<link rel="stylesheet" href="{root}assets/today.css">
</head>
<body class="today{stale}" data-root="{root}" data-refresh="{refresh_seconds:g}"
 data-layout="{_attr(layout_of(board))}">
<header><a class="home" href="{root or "./"}">salespulse · today</a>
<span id="status">{escape(status_text(board, error))}</span></header>
<main>
{body}
</main>
<script src="{root}assets/today.js"></script>
</body>
</html>
"""


def _classes(data: Mapping[str, Any], *first: str) -> str:
    """The classes the script toggles on a metric's element (see today.js)."""
    classes = list(first)
    if data["dipping"]:
        classes.append("dipping")
    if data["share"] is None:
        classes.append("unknown")
    if data["lower_is_better"]:
        classes.append("lower")
    return " ".join(classes)


def _title(data: Mapping[str, Any]) -> str:
    """The tooltip of a dipping cell: the window and its counts (the script keeps it)."""
    dip = data["text"]["dip"]
    return f' title="{_attr(dip)}"' if dip else ""


def _metric_cell(subject: str, metric: str, data: Mapping[str, Any]) -> str:
    text = data["text"]
    return (
        f'<td class="{_classes(data, "metric")}" data-subject="{_attr(subject)}" '
        f'data-metric="{_attr(metric)}"{_title(data)}>'
        f'<span class="actual" data-field="actual">{escape(text["actual"])}</span>'
        f'<span class="rest"> / <span data-field="expected">{escape(text["expected"])}</span>'
        f' / <span data-field="norm">{escape(text["norm"])}</span></span>'
        f'<span class="bar"><span data-field="bar" style="width:{data["bar"] or 0}%"></span>'
        "</span></td>"
    )


def _metric_headers(metrics: Sequence[str]) -> str:
    return "".join(
        f"<th>{escape(metric_name(metric, 'en').capitalize())}</th>" for metric in metrics
    )


def _state(subject: str, state: str, text: str, classes: str = "") -> str:
    css = f' class="{classes}"' if classes else ""
    return f'<span{css} data-subject="{_attr(subject)}" data-state="{state}">{escape(text)}</span>'


def _working(subject: str, data: Mapping[str, Any]) -> str:
    return _state(subject, "working", data["text"]["working"], "" if data["working"] else "off")


def alert_list(root: str, board: TodayBoard, alerts: Iterable[Any], scope: str) -> str:
    """Open alerts, most severe first; ``scope`` is '' (all), ``manager:<id>`` or
    ``department:<id>``, and the script keeps the list to it."""
    items = []
    for alert in alerts:
        data = alert_payload(alert, board.zone_of(alert.department_id))
        text = data["text"]
        items.append(
            f'<li class="alert {_attr(data["severity"])}" data-key="{_attr(data["key"])}">'
            f'<span class="severity">{escape(data["severity"])}</span> '
            f'<a href="{_attr(root + data["link"])}">{escape(text["summary"])}</a> '
            f'<span class="when">{escape(text["when"])}</span></li>'
        )
    if not items:
        items.append('<li class="none">No open alerts.</li>')
    return f'<ul class="alerts" data-alerts="{_attr(scope)}">{"".join(items)}</ul>'


def overview(board: TodayBoard, error: str, refresh_seconds: float) -> str:
    rows = []
    for department in board.departments:
        data = department_payload(department, board.taken_at)
        subject = f"department:{department.department.id}"
        cells = "".join(
            _metric_cell(subject, metric, data["metrics"][metric]) for metric in HEADLINE_METRICS
        )
        rows.append(
            f'<tr><th class="who"><a href="{_attr(department_link(data["id"]))}">'
            f"{escape(data['name'])}</a>"
            f"<small>{_state(subject, 'clock', data['text']['clock'])} · {_working(subject, data)}"
            f" · {_state(subject, 'at_work', data['text']['at_work'])} at work</small></th>"
            f"{cells}</tr>"
        )
    body = f"""<h1>Today</h1>
<p class="legend">{escape(LEGEND)}</p>
<div class="scroll"><table class="board">
<thead><tr><th>Department</th>{_metric_headers(HEADLINE_METRICS)}</tr></thead>
<tbody>{"".join(rows) or '<tr><td class="none">No departments in the directory.</td></tr>'}</tbody>
</table></div>
<h2>Open alerts</h2>
{alert_list("", board, board.alerts, "")}"""
    return page("Today", "", body, board, error, refresh_seconds)


def department(board: TodayBoard, found: DepartmentToday, error: str, refresh: float) -> str:
    root = "../"
    data = department_payload(found, board.taken_at)
    subject = f"department:{found.department.id}"
    rows = []
    for manager in data["managers"]:
        who = f"manager:{manager['id']}"
        cells = "".join(
            _metric_cell(who, metric, manager["metrics"][metric]) for metric in HEADLINE_METRICS
        )
        rows.append(
            f'<tr><th class="who"><a href="{_attr(root + manager_link(manager["id"]))}">'
            f"{escape(manager['name'])}</a><small>{_working(who, manager)}</small></th>{cells}</tr>"
        )
    totals = "".join(
        _metric_cell(subject, metric, data["metrics"][metric]) for metric in HEADLINE_METRICS
    )
    body = f"""<p class="crumbs"><a href="{root}">All departments</a></p>
<h1>{escape(data["name"])}</h1>
<p class="facts">Local time {_state(subject, "clock", data["text"]["clock"])}
({escape(data["timezone"])}), {escape(data["local_date"])} · {_working(subject, data)} ·
{_state(subject, "at_work", data["text"]["at_work"])} managers at work</p>
<p class="legend">{escape(LEGEND)}</p>
<div class="scroll"><table class="board">
<thead><tr><th>Manager</th>{_metric_headers(HEADLINE_METRICS)}</tr></thead>
<tbody>{"".join(rows) or '<tr><td class="none">No managers.</td></tr>'}</tbody>
<tfoot><tr><th class="who">Department</th>{totals}</tr></tfoot>
</table></div>
<h2>Open alerts</h2>
{alert_list(root, board, found.alerts, subject)}"""
    return page(data["name"], root, body, board, error, refresh)


def manager(board: TodayBoard, found: ManagerToday, error: str, refresh: float) -> str:
    root = "../"
    data = manager_payload(found, board.taken_at)
    subject = f"manager:{found.manager.id}"
    department_found = board.department(found.manager.department)
    department_name = department_found.department.name if department_found else ""
    rows = []
    for metric in HEADLINE_METRICS:
        values = data["metrics"][metric]
        text = values["text"]
        fields = "".join(
            f'<td data-field="{field}">{escape(text[field])}</td>'
            for field in ("actual", "expected", "norm", "projected")
        )
        rows.append(
            f'<tr class="{_classes(values)}" data-subject="{_attr(subject)}" '
            f'data-metric="{_attr(metric)}"{_title(values)}>'
            f"<th>{escape(values['label'].capitalize())}</th>{fields}"
            f'<td class="share"><span data-field="share">{escape(text["share"])}</span> '
            f'<small data-field="expected_from">{escape(text["expected_from"])}</small>'
            f'<small class="dip" data-field="dip">{escape(text["dip"])}</small>'
            f'<span class="bar"><span data-field="bar" style="width:{values["bar"] or 0}%">'
            "</span></span></td></tr>"
        )
    role = f" · {escape(data['role'])}" if data["role"] else ""
    department_href = _attr(root + department_link(found.manager.department))
    department_text = escape(department_name or found.manager.department)
    body = f"""<p class="crumbs"><a href="{root}">All departments</a> ›
<a href="{department_href}">{department_text}</a></p>
<h1>{escape(data["name"])}</h1>
<p class="facts">Local time {_state(subject, "clock", data["text"]["clock"])}
({escape(data["timezone"])}), {escape(data["local_date"])}{role} · {_working(subject, data)} ·
worked {_state(subject, "worked", data["text"]["worked"])} working hours today</p>
<h2>Open alerts</h2>
{alert_list(root, board, found.alerts, subject)}
<h2>Today so far</h2>
<table class="detail">
<thead><tr><th>Metric</th><th>Today</th><th>Expected by now</th><th>Norm for the day</th>
<th>At this pace by the end of the day</th><th>Of expected</th></tr></thead>
<tbody>{"".join(rows)}</tbody>
</table>"""
    return page(data["name"], root, body, board, error, refresh)


def not_found(root: str, what: str, board: TodayBoard | None, error: str, refresh: float) -> str:
    body = f"""<h1>Not found</h1>
<p>{escape(what)} is not in the directory. <a href="{root or "./"}">All departments</a></p>"""
    return page("Not found", root, body, board, error, refresh)


def waiting(root: str, error: str, refresh: float) -> str:
    body = "<h1>Today</h1><p>The first numbers are being read; this page updates by itself.</p>"
    return page("Today", root, body, None, error, refresh)
