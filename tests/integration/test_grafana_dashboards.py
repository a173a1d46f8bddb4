"""The Grafana dashboards in deploy/grafana: their provisioning files and dashboards are
well-formed, and every panel and variable query runs on both ClickHouse engines over a populated
database and answers with rows, so the dashboards cannot silently rot.

Each query is expanded as Grafana would send it (``tests/grafana_macros.py``): the dashboard's
variables take their first value, as Grafana picks for a dashboard opened fresh, and the time
range is the dashboard's default one (or the panel's own, ``timeFrom``) ending at the data's
``NOW``. On the current engine the data source's macros expand exactly as the plugin writes
them; on ClickHouse 18.16 into the portable subset.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from sinks.clickhouse.client import ClickHouse, ClickHouseError
from tests.grafana_macros import Dialect, QueryContext, expand
from tests.integration.dashboard_data import NOW, populate

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "salespulse.yaml"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
DOC = Path(__file__).resolve().parents[2] / "docs" / "dashboards.md"
PLUGIN = "grafana-clickhouse-datasource"
# sqlds' format codes, which the plugin sends: 0 time series, 1 table.
TIME_SERIES, TABLE = 0, 1
QUERY_TYPE = {TIME_SERIES: "timeSeries", TABLE: "table"}
PANEL_FORMATS = {"timeseries": TIME_SERIES, "barchart": TABLE, "stat": TABLE, "table": TABLE}
# Grafana asks for about one point per pixel; a panel is about this wide.
MAX_DATA_POINTS = 1000
_NICE_INTERVALS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                   43200, 86400)  # fmt: skip
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def datasource_uid() -> str:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    return str(datasource["uid"])


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows (collapsed rows keep theirs) included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in all_panels(dashboard) if panel["type"] != "row"]


def seconds(duration: str) -> int:
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"unsupported duration {duration!r}")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def default_range(dashboard: dict[str, Any]) -> tuple[datetime, datetime]:
    """The dashboard's default time range ("now-30d" to "now"), ending at the data's NOW."""
    time = dashboard["time"]
    assert time["to"] == "now", "dashboards end their default range now"
    assert time["from"].startswith("now-"), time["from"]
    return NOW - timedelta(seconds=seconds(time["from"][4:])), NOW


def panel_context(
    panel: dict[str, Any], dashboard: dict[str, Any], variables: dict[str, str]
) -> QueryContext:
    start, end = default_range(dashboard)
    if "timeFrom" in panel:
        start = end - timedelta(seconds=seconds(panel["timeFrom"]))
    # Grafana divides the range by the points the panel can show, rounds up to a nice
    # interval, and never goes below the panel's minimum interval.
    wanted = math.ceil((end - start).total_seconds() / MAX_DATA_POINTS)
    step = next((n for n in _NICE_INTERVALS if n >= wanted), _NICE_INTERVALS[-1])
    if "interval" in panel:
        step = max(step, seconds(panel["interval"]))
    return QueryContext(start, end, step, variables)


def dialect_for(ch: ClickHouse) -> Dialect:
    # Users are told to run 23.8 or later, and get the plugin's own SQL; older servers (the
    # 18.16 we test on) lack toStartOfInterval, and get the portable expansion.
    return Dialect.PLUGIN if ch.server_version() >= (23, 8) else Dialect.PORTABLE


# --- The files themselves -----------------------------------------------------------------


def test_the_four_dashboards_are_there() -> None:
    assert [path.stem for path in DASHBOARD_FILES] == [
        "alerts-history",
        "department-overview",
        "manager-drilldown",
        "pipeline-health",
    ]
    uids = [load(path)["uid"] for path in DASHBOARD_FILES]
    assert len(set(uids)) == len(uids)


def test_the_datasource_is_provisioned_from_the_environment() -> None:
    document = yaml.safe_load(DATASOURCES.read_text())
    assert document["apiVersion"] == 1
    (datasource,) = document["datasources"]
    assert datasource["type"] == PLUGIN
    assert datasource["uid"]
    assert datasource["name"]
    json_data, secure = datasource["jsonData"], datasource["secureJsonData"]
    assert json_data["protocol"] in ("native", "http")
    # Where the server is and whom to connect as come from the environment, and every
    # variable is documented.
    placeholders = re.findall(r"\$\{?(\w+)\}?", DATASOURCES.read_text())
    for key in ("host", "port", "defaultDatabase", "username"):
        assert str(json_data[key]).startswith("$"), key
    assert str(secure["password"]).startswith("$")
    documented = DOC.read_text()
    assert placeholders
    for name in placeholders:
        assert f"`{name}`" in documented, f"{name} is not in docs/dashboards.md"


def test_the_dashboard_provider_loads_the_dashboards_folder() -> None:
    document = yaml.safe_load(PROVIDERS.read_text())
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["name"]
    assert provider["folder"]
    assert provider["options"]["path"].startswith("/")


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=[p.stem for p in DASHBOARD_FILES])
def test_the_dashboard_is_well_formed(path: Path) -> None:
    dashboard = load(path)
    uid = datasource_uid()
    assert dashboard["uid"].startswith("salespulse-")
    assert dashboard["title"]
    assert dashboard["id"] is None, "provisioned dashboards carry no database id"
    assert isinstance(dashboard["schemaVersion"], int)
    default_range(dashboard)
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    panels = query_panels(dashboard)
    assert panels
    for panel in panels:
        where = f"{path.stem}: {panel['title']}"
        assert panel["datasource"] == {"type": PLUGIN, "uid": uid}, where
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], where
            assert target["editorType"] == "sql", where
            assert target["rawSql"].strip(), where
            # Tables are read from the data source's default database, whatever its name.
            assert not re.search(r"\bsalespulse\.", target["rawSql"]), where
            assert target["format"] == PANEL_FORMATS[panel["type"]], where
            assert target["queryType"] == QUERY_TYPE[target["format"]], where
            # A query without a 4.x pluginVersion is migrated as a 3.x one when loaded.
            assert int(target["pluginVersion"].split(".")[0]) >= 4, where
    for variable in dashboard["templating"]["list"]:
        assert variable["type"] == "query", variable["name"]
        assert variable["datasource"] == {"type": PLUGIN, "uid": uid}, variable["name"]
        assert variable["query"]["rawSql"].strip(), variable["name"]


def test_links_between_dashboards_name_real_dashboards_and_variables() -> None:
    dashboards = {load(path)["uid"]: load(path) for path in DASHBOARD_FILES}
    seen = 0
    for dashboard in dashboards.values():
        for url in re.findall(r'"url": "(/d/[^"]+)"', json.dumps(dashboard)):
            match = re.match(r"/d/([\w-]+)", url)
            assert match, url
            uid = match.group(1)
            assert uid in dashboards, url
            names = {v["name"] for v in dashboards[uid]["templating"]["list"]}
            for variable in re.findall(r"var-(\w+)=", url):
                assert variable in names, url
            seen += 1
    assert seen


# --- Every query, run ----------------------------------------------------------------------


def _numbers(rows: list[tuple[Any, ...]]) -> list[int | float | Decimal]:
    return [
        cell
        for row in rows
        for cell in row
        if isinstance(cell, int | float | Decimal) and not isinstance(cell, bool)
    ]


def _check_answer(
    panel: dict[str, Any],
    target: dict[str, Any],
    columns: list[tuple[str, str]],
    rows: list[tuple[Any, ...]],
) -> list[str]:
    """What is wrong with a panel's answer over a populated database (nothing, ideally)."""
    problems = []
    names = [name for name, _ in columns]
    if not rows:
        problems.append("no rows")
    numbers = _numbers(rows)
    if numbers and not any(numbers):
        problems.append("every number is zero")
    if len(set(names)) != len(names):
        problems.append(f"duplicate column names {names}")
    unnamed = [name for name in names if not re.fullmatch(r"\w+", name)]
    if unnamed:
        problems.append(f"columns without an alias: {unnamed}")
    if target["format"] == TIME_SERIES:
        if not columns or not columns[0][1].startswith("DateTime"):
            problems.append(f"a time series needs a DateTime first column, not {columns[:1]}")
        times = [str(row[0]) for row in rows]
        if times != sorted(times):
            problems.append("a time series must come ordered by time")
    for override in panel["fieldConfig"]["overrides"]:
        matcher = override["matcher"]
        if matcher["id"] == "byName" and matcher["options"] not in names:
            problems.append(f"override for a missing column {matcher['options']!r}")
        if matcher["id"] == "byRegexp":
            pattern = re.compile(matcher["options"].strip("/"))
            if not any(pattern.search(name) for name in names):
                problems.append(f"override {matcher['options']} matches no column")
    return problems


def _run(ch: ClickHouse, sql: str) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    columns = [(str(row[0]), str(row[1])) for row in ch.execute(f"DESCRIBE TABLE ({sql})")]
    return columns, ch.execute(sql)


def _variables(ch: ClickHouse, dashboard: dict[str, Any], dialect: Dialect) -> dict[str, str]:
    """Each variable's first value, resolved in order as Grafana does (a variable may use the
    ones before it)."""
    start, end = default_range(dashboard)
    values: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        sql = expand(variable["query"]["rawSql"], QueryContext(start, end, 60, values), dialect)
        rows = ch.execute(sql)
        assert rows, f"variable {variable['name']} has no values: {sql}"
        values[variable["name"]] = str(rows[0][0])
    return values


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=[p.stem for p in DASHBOARD_FILES])
def test_every_query_runs_and_answers(clickhouse: ClickHouse, path: Path) -> None:
    populate(clickhouse)
    dashboard = load(path)
    dialect = dialect_for(clickhouse)
    # Panels name tables without a database, as the data source's default database serves them.
    clickhouse.execute(f"USE {clickhouse.database}")
    try:
        variables = _variables(clickhouse, dashboard, dialect)
        problems = []
        for panel in query_panels(dashboard):
            for target in panel["targets"]:
                sql = expand(target["rawSql"], panel_context(panel, dashboard, variables), dialect)
                try:
                    columns, rows = _run(clickhouse, sql)
                except ClickHouseError as exc:  # listed with the others, not the first alone
                    problems.append(f"{panel['title']}: {str(exc).splitlines()[0]}\n{sql}")
                    continue
                problems += [
                    f"{panel['title']}: {problem}\n{sql}"
                    for problem in _check_answer(panel, target, columns, rows)
                ]
    finally:
        clickhouse.execute("USE default")  # chDB's session outlives this test
    assert not problems, "\n\n".join(problems)


# The plugin's toStartOfInterval runs on the current engine only.
@pytest.mark.parametrize("clickhouse", ["chdb"], indirect=True)
@pytest.mark.parametrize("step", [60, 900, 3600, 86400])
def test_the_portable_bucket_is_the_plugins_bucket(clickhouse: ClickHouse, step: int) -> None:
    context = QueryContext(NOW - timedelta(days=1), NOW, step)
    plugin = expand("$__timeInterval(t)", context, Dialect.PLUGIN)
    portable = expand("$__timeInterval(t)", context, Dialect.PORTABLE)
    rows = clickhouse.execute(
        f"SELECT countIf(toUInt32({plugin}) != toUInt32({portable})), count() "
        "FROM (SELECT toDateTime(1795680000 + number * 61, 'UTC') AS t "
        "FROM system.numbers LIMIT 5000)"
    )
    assert [tuple(map(int, row)) for row in rows] == [(0, 5000)]
