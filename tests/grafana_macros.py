"""What Grafana sends to ClickHouse for a dashboard panel: its SQL with the dashboard's
variables and the ClickHouse data source's macros expanded.

Grafana expands a panel's SQL in two steps, and so does ``expand``: the browser replaces the
dashboard variables (``${name}``, ``$name``, ``${name:singlequote}``), then the data source's
backend (grafana-clickhouse-datasource 4.x) replaces its macros. The subset supported here is
the one our dashboards may use (docs/dashboards.md lists it); anything else is an error, so a
dashboard cannot use what its test does not run:

=========================  ======================================================================
``$__fromTime``            ``toDateTime(<range start, Unix seconds>)``
``$__toTime``              ``toDateTime(<range end, Unix seconds>)``
``$__timeFilter(c)``       ``c >= toDateTime(<start>) AND c <= toDateTime(<end>)``
``$__timeInterval(c)``     ``toStartOfInterval(toDateTime(c), INTERVAL <interval> second)``
``$__interval_s``          ``<interval>``, the panel's interval in whole seconds
=========================  ======================================================================

The plugin writes ``$__timeInterval`` with ``toStartOfInterval``, which current servers have and
ClickHouse 18.16 does not. ``PORTABLE`` expansion writes the same epoch-aligned bucket as
``toDateTime(intDiv(toUInt32(c), <interval>) * <interval>)``, which every server has: the tests
run the plugin's own expansion on the current engine and the portable one on the old server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class MacroError(ValueError):
    """A panel uses a macro or variable the expander does not know, or uses one wrongly."""


class Dialect(Enum):
    PLUGIN = "plugin"  # exactly what grafana-clickhouse-datasource 4.x sends
    PORTABLE = "portable"  # the same results, in SQL that ClickHouse 18.16 runs too


@dataclass(frozen=True)
class QueryContext:
    """The request a panel's query runs in: its time range (aware datetimes), its interval and
    the current value of each dashboard variable."""

    start: datetime
    end: datetime
    interval_seconds: int = 60
    variables: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("the time range must be time zone aware")
        if self.start > self.end:
            raise ValueError("the time range ends before it starts")
        if self.interval_seconds < 1:
            raise ValueError("the interval must be at least a second")


# ${name}, ${name:format} and $name; names of Grafana's own variables and of the data source's
# macros start with "__" and are not dashboard variables.
_VARIABLE = re.compile(r"\$\{(?!__)(\w+)(?::(\w+))?\}|\$(?!__)([A-Za-z_]\w*)")
_MACRO = re.compile(r"\$__(\w+)")


def _format(value: str, fmt: str | None) -> str:
    if fmt in (None, "raw"):
        return value
    if fmt == "singlequote":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise MacroError(f"unsupported variable format {fmt!r}")


def replace_variables(sql: str, variables: Mapping[str, str]) -> str:
    """Grafana's first step: the dashboard variables' current values."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name not in variables:
            raise MacroError(f"unknown dashboard variable {name!r}")
        return _format(variables[name], match.group(2))

    return _VARIABLE.sub(value, sql)


def _arguments(sql: str, opening: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose "(" is at ``opening``, and the index
    just past its ")"; commas inside nested parentheses belong to their argument."""
    depth, start, arguments = 0, opening + 1, []
    for index in range(opening, len(sql)):
        char = sql[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                arguments.append(sql[start:index].strip())
                return arguments, index + 1
        elif char == "," and depth == 1:
            arguments.append(sql[start:index].strip())
            start = index + 1
    raise MacroError("unbalanced parentheses in a macro call")


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def expand_macros(sql: str, context: QueryContext, dialect: Dialect = Dialect.PLUGIN) -> str:
    """The data source's step: its macros, in ``dialect``."""
    start = f"toDateTime({_seconds(context.start)})"
    end = f"toDateTime({_seconds(context.end)})"
    step = context.interval_seconds

    def bucket(column: str) -> str:
        if dialect is Dialect.PLUGIN:
            return f"toStartOfInterval(toDateTime({column}), INTERVAL {step} second)"
        return f"toDateTime(intDiv(toUInt32({column}), {step}) * {step})"

    plain: dict[str, str] = {"fromTime": start, "toTime": end, "interval_s": str(step)}
    with_column: dict[str, Callable[[str], str]] = {
        "timeFilter": lambda column: f"{column} >= {start} AND {column} <= {end}",
        "timeInterval": bucket,
    }
    out: list[str] = []
    position = 0
    for match in _MACRO.finditer(sql):
        if match.start() < position:
            continue  # inside the arguments of a macro already expanded
        name = match.group(1)
        out.append(sql[position : match.start()])
        if name in plain:
            out.append(plain[name])
            position = match.end()
        elif name in with_column:
            if sql[match.end() : match.end() + 1] != "(":
                raise MacroError(f"$__{name} needs a column: $__{name}(column)")
            arguments, position = _arguments(sql, match.end())
            if len(arguments) != 1 or not arguments[0]:
                raise MacroError(f"$__{name} takes exactly one column")
            out.append(with_column[name](arguments[0]))
        else:
            raise MacroError(f"unsupported macro $__{name}")
    out.append(sql[position:])
    return "".join(out)


def expand(sql: str, context: QueryContext, dialect: Dialect = Dialect.PLUGIN) -> str:
    """The SQL Grafana sends for a panel query ``sql`` in ``context``."""
    return expand_macros(replace_variables(sql, context.variables), context, dialect)
