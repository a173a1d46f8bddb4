"""A report as one self-contained HTML file: inline CSS and SVG, no script, nothing fetched.

It opens the same from a mail client, a shared folder or a browser offline. Every name (a
manager's, a department's, an id) is escaped: they come from a directory file anyone may edit.
"""

from __future__ import annotations

from datetime import UTC
from html import escape

from salespulse.reports.data import UNATTRIBUTED, Line, Report
from salespulse.reports.svg import Bar, bar_chart, column_chart
from salespulse.reports.words import (
    CHART_METRICS,
    TABLE_METRICS,
    metric_label,
    money_text,
    phrase,
    value_text,
)

_STYLE = """
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: #222; margin: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
p.note { color: #555; margin: 2px 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; }
th { background: #f0f3f7; font-weight: 600; font-size: 12px; vertical-align: bottom;
     max-width: 90px; }
td { text-align: right; white-space: nowrap; }
td.name { text-align: left; }
tr.sum td { font-weight: 600; background: #f7f7f7; }
td.below { color: #b02a25; font-weight: 600; }
td.met { color: #1d6b2f; }
div.wide { overflow-x: auto; }
div.charts { display: flex; flex-wrap: wrap; gap: 12px 28px; }
div.chart { break-inside: avoid; }
svg text { font: 11px system-ui, Arial, sans-serif; fill: #222; }
"""


def render_html(report: Report, language: str = "en") -> str:
    period = report.period
    heading = f"{phrase('title', language)}: {period.title(language)}"
    scope = _scope(report, language)
    generated = report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{language}"><head><meta charset="utf-8">',
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
    ]
    if scope:
        parts.append(f'<p class="note">{escape(scope)}</p>')
    parts.append(f'<p class="note">{escape(phrase("local_days", language))} ')
    parts.append(f"{escape(phrase('generated', language))}: {escape(generated)}</p>")
    if not report.managers:
        parts.append(f"<p>{escape(phrase('no_managers', language))}</p></body></html>")
        return "\n".join(parts) + "\n"
    parts.append(f"<h2>{escape(phrase('departments', language))}</h2>")
    parts.append(_table(report.departments, report.total, language, per_manager=False))
    parts.append(f"<h2>{escape(phrase('managers', language))}</h2>")
    parts.append(f'<p class="note">{escape(phrase("norm_note", language))}</p>')
    parts.append(_table(report.managers, None, language, per_manager=True))
    parts.append(f"<h2>{escape(phrase('charts', language))}</h2>")
    parts.append(f'<p class="note">{escape(phrase("charts_note", language))}</p>')
    parts.append(_manager_charts(report, language))
    if period.kind != "day":
        parts.append(f"<h2>{escape(phrase('trend', language))}</h2>")
        parts.append(_trend(report, language))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _scope(report: Report, language: str) -> str:
    words = []
    if report.department is not None and report.departments:
        words.append(f"{phrase('department', language)}: {report.departments[0].name}")
    if report.manager is not None and report.managers:
        words.append(f"{phrase('manager', language)}: {report.managers[0].name}")
    return "; ".join(words)


def _table(lines: list[Line], total: Line | None, language: str, *, per_manager: bool) -> str:
    head = [phrase("manager" if per_manager else "department", language)]
    if per_manager:
        head.append(phrase("department", language))
    else:
        head.append(phrase("managers_count", language))
    head.append(phrase("working_days", language))
    head.extend(metric_label(metric, language) for metric in TABLE_METRICS)
    head.append(phrase("amounts", language))
    rows = ['<div class="wide"><table><thead><tr>']
    rows.extend(f"<th>{escape(title)}</th>" for title in head)
    rows.append("</tr></thead><tbody>")
    for line in lines:
        rows.append(_row(line, language, per_manager))
    if total is not None:
        rows.append(_row(total, language, per_manager, css="sum"))
    rows.append("</tbody></table></div>")
    return "".join(rows)


def _row(line: Line, language: str, per_manager: bool, css: str = "") -> str:
    name = phrase("total", language) if line.kind == "total" else line.name
    cells = [f'<td class="name">{escape(name)}</td>']
    if per_manager:
        cells.append(f'<td class="name">{escape(line.department_name)}</td>')
    else:
        cells.append(f"<td>{line.members}</td>")
    days = "—" if line.working_days is None else str(line.working_days)
    cells.append(f"<td>{days}</td>")
    for metric in TABLE_METRICS:
        cells.append(_cell(metric, line, language))
    money = "<br>".join(escape(money_text(v, c)) for c, v in sorted(line.amounts.items()))
    cells.append(f"<td>{money or '—'}</td>")
    row_class = f' class="{css}"' if css else ""
    return f"<tr{row_class}>{''.join(cells)}</tr>"


def _cell(metric: str, line: Line, language: str) -> str:
    value = line.counts.get(metric, 0)
    text = value_text(metric, value, language)
    norm = line.norms.get(metric)
    if norm is None:
        return f"<td>{escape(text)}</td>"
    css = "below" if value < norm else "met"
    return f'<td class="{css}">{escape(text)} / {escape(value_text(metric, norm, language))}</td>'


def _manager_charts(report: Report, language: str) -> str:
    scale = [
        max(max(line.counts.get(m, 0), line.norms.get(m, 0)) for line in report.managers)
        for m in CHART_METRICS
    ]
    charts = []
    for line in report.managers:
        bars = [
            Bar(
                metric_label(metric, language),
                line.counts.get(metric, 0),
                value_text(metric, line.counts.get(metric, 0), language),
                line.norms.get(metric),
            )
            for metric in CHART_METRICS
        ]
        title = (
            line.name
            if line.manager_id == UNATTRIBUTED
            else f"{line.name} ({line.department_name})"
        )
        charts.append(f'<div class="chart">{bar_chart(title, bars, scale)}</div>')
    return f'<div class="charts">{"".join(charts)}</div>'


def _trend(report: Report, language: str) -> str:
    charts = []
    for metric in CHART_METRICS:
        columns = [
            Bar(
                f"{day.day}",
                counts.get(metric, 0),
                f"{day.isoformat()}: {value_text(metric, counts.get(metric, 0), language)}",
            )
            for day, counts in report.trend
        ]
        peak = max((c.value for c in columns), default=0)
        chart = column_chart(
            metric_label(metric, language), columns, value_text(metric, peak, language)
        )
        charts.append(f'<div class="chart">{chart}</div>')
    return f'<div class="charts">{"".join(charts)}</div>'
