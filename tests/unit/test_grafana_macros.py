"""The expander of dashboard SQL writes what Grafana and the ClickHouse plugin would send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.grafana_macros import Dialect, MacroError, QueryContext, expand

END = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)  # 1795690800
CONTEXT = QueryContext(END - timedelta(hours=1), END, 300, {"manager": "m-0001", "offset": "-3600"})


def test_time_macros_are_the_plugins_unix_second_datetimes() -> None:
    sql = "SELECT 1 FROM t WHERE $__timeFilter(at) AND x < $__toTime AND y > $__fromTime"
    assert expand(sql, CONTEXT) == (
        "SELECT 1 FROM t WHERE at >= toDateTime(1795687200) AND at <= toDateTime(1795690800) "
        "AND x < toDateTime(1795690800) AND y > toDateTime(1795687200)"
    )


def test_the_interval_bucket_per_dialect() -> None:
    sql = "SELECT $__timeInterval(processed_at) AS time, count() * 60 / $__interval_s AS n"
    assert expand(sql, CONTEXT, Dialect.PLUGIN) == (
        "SELECT toStartOfInterval(toDateTime(processed_at), INTERVAL 300 second) AS time, "
        "count() * 60 / 300 AS n"
    )
    assert expand(sql, CONTEXT, Dialect.PORTABLE) == (
        "SELECT toDateTime(intDiv(toUInt32(processed_at), 300) * 300) AS time, "
        "count() * 60 / 300 AS n"
    )


def test_macro_arguments_may_hold_calls_with_commas() -> None:
    sql = "WHERE $__timeFilter(ifNull(ended_at, occurred_at)) AND 1"
    assert expand(sql, CONTEXT) == (
        "WHERE ifNull(ended_at, occurred_at) >= toDateTime(1795687200) AND "
        "ifNull(ended_at, occurred_at) <= toDateTime(1795690800) AND 1"
    )


def test_variables_are_replaced_before_macros_in_each_format() -> None:
    sql = "WHERE m = ${manager:singlequote} AND x = '$manager' AND t < $__toTime + (${offset})"
    assert expand(sql, CONTEXT) == (
        "WHERE m = 'm-0001' AND x = 'm-0001' AND t < toDateTime(1795690800) + (-3600)"
    )


def test_singlequote_escapes_quotes() -> None:
    context = QueryContext(END, END, 60, {"name": "O'Brien \\ co"})
    assert expand("${name:singlequote}", context) == "'O\\'Brien \\\\ co'"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__dateFilter(d)", "unsupported macro"),
        ("$__timeFilter", "needs a column"),
        ("$__timeFilter(a, b)", "exactly one column"),
        ("$__timeFilter(a", "unbalanced"),
        ("${department}", "unknown dashboard variable"),
        ("${manager:csv}", "unsupported variable format"),
    ],
)
def test_what_is_not_supported_is_an_error(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        expand(sql, CONTEXT)


def test_the_context_is_checked() -> None:
    with pytest.raises(ValueError, match="aware"):
        QueryContext(datetime(2026, 1, 1), END)
    with pytest.raises(ValueError, match="ends before"):
        QueryContext(END, END - timedelta(seconds=1))
