"""The pages' texts, their escaping, the JSON they poll, and the cached reading behind them, on
the hand-checkable world of ``alert_world`` (no ClickHouse, no browser: see
tests/integration/test_web_page.py for those)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import pytest

from processors.alerting.rules import RulesFile
from processors.alerting.today import TodayBoard
from processors.web import render
from processors.web.payload import amount_text, board_payload, layout_of
from processors.web.source import TodaySource
from salespulse.alert_model import Alert, Severity
from salespulse.calendar import Calendar, parse_calendar
from salespulse.directory import Directory, parse_directory
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse, ClickHouseError
from tests.unit.alert_world import DIRECTORY, TODAY, World, at

EVIL = '<script>alert("x")</script> & Co'


def board_of(world: World, now: datetime, alerts: tuple[Alert, ...] = ()) -> TodayBoard:
    return world.board(now, alerts)


@pytest.fixture
def world() -> World:
    world = World()
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "13:00"), 6)  # 40 calls
    world.call_every("petrov", at(TODAY, "09:00"), at(TODAY, "11:00"), 12)  # 10 calls
    return world


def late_task(manager_name: str) -> Alert:
    return Alert(
        key="late/task/T-<1>",
        rule="late",
        kind="overdue_task",
        severity=Severity.CRITICAL,
        manager_id="petrov",
        manager_name=manager_name,
        department_id="msk",
        department_name="Moscow sales",
        metric="tasks_done",
        actual=600,
        expected=0,
        since=at(TODAY, "11:50"),
        fired_at=at(TODAY, "12:00"),
        summary_en=f"{manager_name} (Moscow sales): task T-<1> is overdue",
    )


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("calls_out", 45, "45"),
        ("calls_out", 22.5, "22"),  # ten and more: whole numbers (round half to even)
        ("offers", 2.5, "2.5"),
        ("offers", 3.02, "3"),
        ("talk_seconds", 3959, "1:05"),
        ("talk_seconds", 29, "0:00"),
        ("talk_seconds", 36000, "10:00"),
        ("offers", None, "—"),
    ],
)
def test_amounts_read_as_a_person_says_them(metric: str, value: float | None, text: str) -> None:
    assert amount_text(metric, value) == text


def test_the_manager_page_shows_actual_expected_norm_and_pace(world: World) -> None:
    board = board_of(world, at(TODAY, "12:00"))
    petrov = board.manager("petrov")
    assert petrov is not None
    page = render.manager(board, petrov, "", 5)
    # 10 calls by 12:00 against 15 expected from the norm (40 / 8 h x 3 h), at this pace 27.
    assert (
        '<tr class="" data-subject="manager:petrov" data-metric="calls_out">'
        "<th>Outgoing calls</th>"
        '<td data-field="actual">10</td><td data-field="expected">15</td>'
        '<td data-field="norm">40</td><td data-field="projected">27</td>'
    ) in page
    assert '<span data-field="share">67%</span> <small data-field="expected_from">norm' in page
    assert 'data-state="clock">12:00</span>' in page  # Moscow time, the manager's own
    assert 'data-state="worked">3:00 of 8:00</span>' in page
    assert 'src="../assets/today.js"' in page


def test_a_dip_is_marked_with_its_window(world: World) -> None:
    # petrov's last call was at 10:48: by 14:30 the 150 working minutes 11:00-13:00 and
    # 14:00-14:30 held none where his norm expects 12.5, and the drop rule's scan breaches.
    board = board_of(world, at(TODAY, "14:30"))
    petrov = board.manager("petrov")
    assert petrov is not None
    page = render.manager(board, petrov, "", 5)
    tooltip = "0 in the last 150 working minutes (from 11:00), about 12 expected"
    assert (
        '<tr class="dipping" data-subject="manager:petrov" data-metric="calls_out" '
        f'title="{tooltip}"><th>Outgoing calls</th>'
    ) in page
    assert f'<small class="dip" data-field="dip">{tooltip}</small>' in page
    department = board.department("msk")
    assert department is not None
    page = render.department(board, department, "", 5)
    assert (
        'class="metric dipping" data-subject="manager:petrov" data-metric="calls_out" '
        f'title="{tooltip}"><span class="actual" data-field="actual">10</span>'
    ) in page
    # ivanova has called as usual: no mark, no tooltip.
    assert 'class="metric" data-subject="manager:ivanova" data-metric="calls_out">' in page
    # The department dips where one of its managers does, and says who.
    dipping = 'title="1 manager dipping: Pavel Petrov"'
    assert (
        f'class="metric dipping" data-subject="department:msk" data-metric="calls_out" {dipping}>'
    ) in page
    overview = render.overview(board, "", 5)
    assert (
        f'class="metric dipping" data-subject="department:msk" data-metric="calls_out" {dipping}>'
    ) in overview
    # Fewer missed calls than expected is not a warning.
    assert 'class="metric unknown lower" data-subject="manager:petrov" data-metric="missed"' in page
    payload = board_payload(board, "", 5)
    (msk,) = payload["departments"]
    calls = msk["managers"][1]["metrics"]["calls_out"]
    assert (calls["dipping"], calls["dipping_managers"], calls["text"]["dip"]) == (
        True,
        1,
        tooltip,
    )
    assert calls["dip"]["window_start"] == at(TODAY, "11:00").isoformat()
    assert (calls["dip"]["observed"], calls["dip"]["expected"]) == (0, 12.5)
    assert calls["dip"]["false_alarms"] == "1 per 20 working days"
    assert msk["metrics"]["calls_out"]["dipping_managers"] == 1
    assert msk["metrics"]["calls_out"]["dip"] is None


def test_a_small_count_under_half_of_expected_is_no_dip(world: World) -> None:
    # One call by 10:20 where his norm expects 6.7 (15%) was red under the whole-day ratio.
    # No window of today expects more than ln(1 / α) = 9.2, the least for even none observed
    # to be rare enough at 1 per 20 working days: nothing to mark yet.
    world.calls["petrov"] = [at(TODAY, "09:40")]
    board = board_of(world, at(TODAY, "10:20"))
    petrov = board.manager("petrov")
    assert petrov is not None
    page = render.manager(board, petrov, "", 5)
    assert '<tr class="" data-subject="manager:petrov" data-metric="calls_out">' in page
    assert '<span data-field="share">15%</span>' in page


def test_names_and_alert_texts_from_data_are_escaped(world: World) -> None:
    # A JSON string is a YAML double-quoted one.
    world.directory = parse_directory(
        DIRECTORY.replace("Pavel Petrov", json.dumps(EVIL)), suffix=".yaml"
    )
    assert world.directory.managers["petrov"].name == EVIL
    board = board_of(world, at(TODAY, "12:00"), (late_task(EVIL),))
    petrov = board.manager("petrov")
    department = board.department("msk")
    assert petrov is not None
    assert department is not None
    pages = [
        render.overview(board, "", 5),
        render.department(board, department, "", 5),
        render.manager(board, petrov, "", 5),
    ]
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co"
    for page in pages:
        assert "<script>alert" not in page
        assert escaped in page
        assert "task T-&lt;1&gt; is overdue" in page
    assert f"<h1>{escaped}</h1>" in pages[2]


def test_a_stale_reading_says_so(world: World) -> None:
    board = board_of(world, at(TODAY, "12:00"))
    page = render.overview(board, "ClickHouse unreachable: refused", 5)
    assert '<body class="today stale"' in page
    assert "not updated (ClickHouse unreachable: refused); numbers as of 09:00:00 UTC" in page


def test_the_json_carries_numbers_and_texts(world: World) -> None:
    board = board_of(world, at(TODAY, "12:00"), (late_task("Pavel Petrov"),))
    payload = json.loads(json.dumps(board_payload(board, "", 5)))
    (msk,) = payload["departments"]
    assert msk["text"] == {"clock": "12:00", "working": "at work", "at_work": "2 of 2",
                           "alerts": "1"}  # fmt: skip
    calls = msk["metrics"]["calls_out"]
    assert (calls["actual"], calls["expected"], calls["norm"]) == (40, 45.0, 80)
    assert calls["text"]["projected"] == "107"  # 30 x 8/3 + 10 x 8/3
    petrov = msk["managers"][1]
    assert petrov["metrics"]["calls_out"]["bar"] == 67
    # 10 of 15 and calling every 12 minutes until 11:00: no dip, nothing to say of one.
    calls = petrov["metrics"]["calls_out"]
    assert (calls["dipping"], calls["dipping_managers"], calls["dip"]) == (False, 0, None)
    assert calls["text"]["dip"] == ""
    (alert,) = payload["alerts"]
    assert alert["link"] == "managers/petrov"
    assert alert["text"]["when"] == "since 11:50, fired 12:00"  # Moscow time
    assert payload["layout"] == layout_of(board)


def test_the_layout_changes_when_the_directory_does(world: World) -> None:
    before = layout_of(board_of(world, at(TODAY, "12:00")))
    assert before == layout_of(board_of(world, at(TODAY, "12:05")))  # numbers are not layout
    world.directory = parse_directory(DIRECTORY.replace("Pavel", "Paul"), suffix=".yaml")
    assert layout_of(board_of(world, at(TODAY, "12:05"))) != before


class _Config:
    def __init__(self, world: World) -> None:
        self.world = world

    def current(self) -> tuple[RulesFile, Calendar, Directory]:
        return self.world.rules, parse_calendar(""), self.world.directory


def _no_clickhouse() -> ClickHouse:
    raise AssertionError("these tests read no ClickHouse")


async def test_many_requests_share_one_reading(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = TodaySource(_no_clickhouse, _Config(world), CountingSettings(), max_age_seconds=60)
    readings: list[datetime] = []
    board = board_of(world, at(TODAY, "12:00"))

    def read(now: datetime) -> TodayBoard:
        readings.append(now)
        time.sleep(0.05)  # a slow ClickHouse: the other requests wait for this reading
        return board

    monkeypatch.setattr(source, "read", read)
    try:
        results = await asyncio.gather(*(source.reading() for _ in range(50)))
        assert len(readings) == 1
        assert all(result.board is board for result in results)
        source.max_age_seconds = 0  # the next request reads again
        await source.reading()
        assert len(readings) == 2
    finally:
        source.close()


async def test_a_failed_reading_keeps_the_last_board_and_says_why(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = TodaySource(_no_clickhouse, _Config(world), CountingSettings(), max_age_seconds=0)
    board = board_of(world, at(TODAY, "12:00"))
    monkeypatch.setattr(source, "read", lambda now: board)
    try:
        assert (await source.reading()).board is board

        def fail(now: datetime) -> TodayBoard:
            raise ClickHouseError("ClickHouse unreachable: refused", retriable=True)

        monkeypatch.setattr(source, "read", fail)
        reading = await source.reading()
        assert reading.board is board
        assert reading.error == "ClickHouse unreachable: refused"
    finally:
        source.close()
