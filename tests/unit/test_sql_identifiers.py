"""Names from configuration are checked when it loads; values reach SQL only as parameters."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from salespulse.sections import ClickHouseSettings
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.migrations import MigrationError, apply_migrations

ROOT = Path(__file__).parents[2]
HOSTILE_NAMES = [
    "x; DROP TABLE y",
    "sales`pulse",
    "`salespulse`",
    "sales'pulse",
    'sales"pulse',
    "salеspulse",  # the е is Cyrillic
    "salespulse\n",
    "sales pulse",
    "sales.pulse",
    "1sales",
    "",
    "s" * 64,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_database_name_is_refused_at_load_naming_the_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__DATABASE", name)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "SALESPULSE_CLICKHOUSE__DATABASE: " in str(refused.value)
    assert "plain SQL identifier" in str(refused.value)


@pytest.mark.parametrize("name", ["salespulse", "_sp", "Sales_2026", "s" * 63])
def test_plain_database_names_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__DATABASE", name)
    assert Settings().clickhouse.database == name


@pytest.mark.parametrize(
    "variable",
    ["SALESPULSE_TOPICS__RAW_PBX", "SALESPULSE_TOPICS__DEAD_LETTER", "SALESPULSE_WORKER__APP_ID"],
)
@pytest.mark.parametrize("name", ["x; DROP TABLE y", "raw\n", "rаw", "..", "", "t" * 250])
def test_hostile_topic_and_group_names_are_refused_at_load(
    variable: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, name)
    with pytest.raises(ValidationError, match=f"{variable}: .*Kafka name"):
        Settings()


# Names in SQL f-strings that hold SQL text or identifiers, never a value from data or a user:
# the validated database and cluster names, table-name constants, and fragments assembled from
# constants.
SQL_TEXT_NAMES = {
    "database",
    "cluster",
    "db",
    "table",
    "columns",
    "sums",
    "counts",
    "keys",
    "group",
    "group_by",
    "extra",
    "days",
    "threshold",
    "call_sql",
    "legs",
    "latest",
    "digest",
    "values",
    "where",
    "recent",
    "firsts",
    "source",
    "sql",
    "union",
    "any_activity",
    "activity",
    "calls",
    "quarters",
    "worktime",
    "cases",
    "metric",
    "name",
    "counted",
    "work",
    "visits",
}
# Calls that turn a value into text: a value formatted into SQL all the same.
CONVERSIONS = {"str", "repr", "int", "float", "format", "ascii"}
SQL = re.compile(r"\b(SELECT|INSERT INTO|ALTER TABLE|CREATE|DROP|WHERE|countIf|sumIf)\b")
SCANNED = ("sinks", "queries", "processors", "salespulse", "ingest")


def _sql_fstring_values() -> Iterator[tuple[str, str]]:
    """(place, expression) of every expression formatted into an f-string that reads as SQL."""
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.JoinedStr):
                    continue
                text = "".join(
                    part.value
                    for part in node.values
                    if isinstance(part, ast.Constant) and isinstance(part.value, str)
                )
                if not SQL.search(text):
                    continue
                for part in node.values:
                    if isinstance(part, ast.FormattedValue):
                        place = f"{path.relative_to(ROOT)}:{node.lineno}"
                        yield place, ast.unparse(part.value)


def _is_sql_text(expression: str) -> bool:
    """True for names of SQL text (above), UPPER_CASE constants, and calls of the functions
    that build SQL from constants (their own f-strings are scanned too)."""
    tree = ast.parse(expression, mode="eval").body
    if isinstance(tree, ast.Call):
        function = tree.func
        if isinstance(function, ast.Attribute):
            return function.attr in ("join", "format", "replace")
        return isinstance(function, ast.Name) and function.id not in CONVERSIONS
    names = [
        node.attr if isinstance(node, ast.Attribute) else node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute | ast.Name)
    ]
    final = names[0] if names else ""
    return final in SQL_TEXT_NAMES or final.lstrip("_").isupper() or final.endswith("_sql")


def test_no_value_is_formatted_into_sql_text() -> None:
    """A new f-string that writes, say, ``{manager_id}`` into a query fails here: values go as
    ``%(manager_id)s`` parameters, which clickhouse-driver escapes."""
    found = list(_sql_fstring_values())
    assert len(found) > 50  # the scan does see the project's queries
    suspicious = [
        f"{place}: {{{expression}}}" for place, expression in found if not _is_sql_text(expression)
    ]
    assert suspicious == []


def test_the_scan_catches_a_value_formatted_into_sql() -> None:
    assert not _is_sql_text("manager_id")
    assert not _is_sql_text("row.department")
    assert _is_sql_text("ch.database")
    assert _is_sql_text("DAILY.table")
    assert not _is_sql_text("str(day)")
    assert _is_sql_text("consolidated_calls(database)")


class _Recorder:
    """Records the SQL it is asked to run; a refusal must come before the first statement."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.statements: list[str] = []

    def execute(self, sql: str, params: dict[str, object] | None = None) -> list[tuple[object]]:
        self.statements.append(sql)
        return []


def test_migrations_refuse_a_hostile_database_name_before_any_sql() -> None:
    client = _Recorder("x; DROP TABLE y")
    with pytest.raises(MigrationError, match="plain SQL identifier"):
        apply_migrations(client)  # type: ignore[arg-type]
    assert client.statements == []


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_client_given_a_hostile_database_name_refuses_it(name: str) -> None:
    # Tests and benchmarks name a database of their own, past the settings' check.
    with pytest.raises(ValueError, match="plain SQL identifier"):
        NativeClickHouse(ClickHouseSettings(), database=name)
