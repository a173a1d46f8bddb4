"""The SQL that turns stored events into the numbers of docs/metrics.md.

One place for each definition, used by the summary, the dashboard rollups and the tests. Every
query reads ``events FINAL`` (rows keyed by event id, so replays never count twice) and is
restricted by a date range first, which the sorting key ``(toDate(occurred_at), event_id)``
turns into a cheap range scan.

Inner aliases differ from column names on purpose: old servers resolve an alias equal to a
column name inside its own aggregate as a nested aggregate.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from salespulse.activity_metrics import CALL_METRIC_NAMES, OTHER_METRIC_NAMES
from salespulse.sections import CountingSettings

# A manager's consolidated call counts as their incoming call when they answered it, or when it
# reached them alone and nobody answered it: a ring group's members who did not answer did not
# miss it, and neither did a manager whose call was taken by someone outside the directory (a
# colleague on another PBX, a forward to a mobile), unless the operator asks for that
# (%(group_legs)s = 1).
# A leg nobody's (an IVR, a queue's announcement, a dialplan step before the dial) that
# nobody answered is no call of its own when the call reached a manager: it is the manager's
# call, answered or missed there, and counting it too would show one missed call twice.
_COUNTED = (
    "(manager_id != '' OR rung_members = 0 OR answered = 1) AND "
    "(answered = 1 OR (call_answered = 0 AND rung_members <= 1) OR %(group_legs)s = 1)"
)

# A conversation is with a customer: a call between two managers is counted apart (internal
# calls, internal talk time), unless the operator restores the old definition
# (%(internal_conversations)s = 1).
_CUSTOMER = "(direction != 'internal' OR %(internal_conversations)s = 1)"

# (name, SQL aggregate over consolidated calls); {threshold} is the conversation threshold, per
# department where the operator set one (see ``conversation_threshold``).
CALL_METRICS: tuple[tuple[str, str], ...] = (
    ("calls_in", f"countIf(direction = 'incoming' AND {_COUNTED})"),
    ("calls_in_answered", "countIf(direction = 'incoming' AND answered = 1)"),
    ("calls_out", "countIf(direction = 'outgoing')"),
    ("calls_out_answered", "countIf(direction = 'outgoing' AND answered = 1)"),
    ("calls_internal", "countIf(direction = 'internal')"),
    ("missed", f"countIf(direction = 'incoming' AND answered = 0 AND {_COUNTED})"),
    (
        "conversations",
        f"countIf(answered = 1 AND talk_seconds >= {{threshold}} AND {_CUSTOMER})",
    ),
    ("talk_seconds", f"sumIf(talk_seconds, {_CUSTOMER})"),
    ("internal_talk_seconds", "sumIf(talk_seconds, direction = 'internal')"),
)

# (name, SQL aggregate over events of every other kind).
ACTIVITY_METRICS: tuple[tuple[str, str], ...] = (
    ("chats", "countIf(kind = 'chat_session' AND action = 'served')"),
    ("chats_missed", "countIf(kind = 'chat_session' AND action = 'missed')"),
    (
        "chat_first_response_seconds",
        "sumIf(ifNull(first_response_seconds, 0), kind = 'chat_session' AND action = 'served')",
    ),
    (
        "chats_answered",
        "countIf(kind = 'chat_session' AND action = 'served' "
        "AND isNotNull(first_response_seconds))",
    ),
    ("meetings", "countIf(kind = 'meeting')"),
    # A meeting with no place recorded was held in the office, as Bitrix24 treats it too.
    ("meetings_office", "countIf(kind = 'meeting' AND location IN ('office', ''))"),
    ("meetings_visit", "countIf(kind = 'meeting' AND location NOT IN ('office', 'remote', ''))"),
    ("presentations", "countIf(kind = 'meeting' AND action = 'presentation')"),
    ("offers", "countIf(kind = 'offer' AND action = 'sent')"),
    ("leads", "countIf(kind = 'lead')"),
    ("leads_created", "countIf(kind = 'lead' AND action = 'created')"),
    ("deals_won", "countIf(kind = 'deal' AND action = 'won')"),
    ("deals_lost", "countIf(kind = 'deal' AND action = 'lost')"),
    ("payments", "countIf(kind = 'payment')"),
    ("tasks_created", "countIf(kind = 'task' AND action = 'created')"),
    ("tasks_done", "countIf(kind = 'task' AND action = 'completed')"),
    # A completion event's time is when the task was done. ifNull: a comparison with a NULL
    # deadline is NULL, which old servers let turn the whole count into NULL.
    (
        "tasks_done_late",
        "countIf(kind = 'task' AND action = 'completed' AND ifNull(occurred_at > due_at, 0))",
    ),
)

# The SQL above defines the metrics the core names, in the core's order.
if (
    tuple(name for name, _ in CALL_METRICS) != CALL_METRIC_NAMES
    or tuple(name for name, _ in ACTIVITY_METRICS) != OTHER_METRIC_NAMES
):
    raise ImportError("sinks.clickhouse.metric_sql and salespulse.activity_metrics disagree")


def utc_day_range(first: date, last: date) -> tuple[date, date]:
    """UTC dates that can hold events of local days ``first``..``last`` anywhere on Earth, and
    legs of calls that started then (a transfer may end after midnight)."""
    return first - timedelta(days=1), last + timedelta(days=2)


def conversation_threshold(counting: CountingSettings) -> str:
    """SQL for the conversation threshold of a row's department: the per-department override,
    else the default. Department ids travel as parameters (see ``day_params``)."""
    overrides = len(counting.department_conversation_min_seconds)
    if not overrides:
        return "%(conversation)s"
    cases = ", ".join(
        f"department_id = %(conversation_dep_{i})s, %(conversation_min_{i})s"
        for i in range(overrides)
    )
    return f"multiIf({cases}, %(conversation)s)"


def day_params(low: date, high: date, counting: CountingSettings) -> dict[str, Any]:
    """Parameters of the metric queries over local days ``low``..``high``."""
    utc_low, utc_high = utc_day_range(low, high)
    params: dict[str, Any] = {
        "low": low,
        "high": high,
        "utc_low": utc_low,
        "utc_high": utc_high,
        "conversation": counting.conversation_min_seconds,
        "group_legs": int(counting.ring_group_legs_count),
        "internal_conversations": int(counting.internal_calls_are_conversations),
    }
    overrides = sorted(counting.department_conversation_min_seconds.items())
    for i, (department, seconds) in enumerate(overrides):
        params[f"conversation_dep_{i}"] = department
        params[f"conversation_min_{i}"] = seconds
    return params


def consolidated_calls(database: str) -> str:
    """One row per call and manager, from the legs sharing a call id (see docs/metrics.md).

    Legs of one manager that start in the same second are one conversation seen twice (a Local
    channel's two halves, a desk phone and a mobile ringing together, a ring group's answered
    and unanswered CDRs of one phone): they count once, with the longest talk. Legs that start
    apart (a transfer back to the same manager) add up.

    Parameters: %(utc_low)s and %(utc_high)s bound the legs read (see ``utc_day_range``).
    Columns: call_key, manager_id, department_id, local_date, local_time, direction, answered,
    talk_seconds, duration_seconds, legs, rung_members, call_answered.
    """
    legs = (
        f"FROM {database}.events FINAL WHERE kind = 'call' AND excluded = 0 "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s"
    )
    return f"""
SELECT call_key, manager_id, first_department AS department_id,
       first_local_date AS local_date, first_local_time AS local_time,
       first_direction AS direction, any_answered AS answered, total_talk AS talk_seconds,
       total_duration AS duration_seconds, legs, rung_members, call_answered
FROM
(
    SELECT call_key, manager_id,
           any(s_department) AS first_department,
           argMin(s_local_date, s_start) AS first_local_date,
           argMin(s_local_time, s_start) AS first_local_time,
           argMin(s_direction, s_start) AS first_direction,
           max(s_answered) AS any_answered, sum(s_talk) AS total_talk,
           sum(s_duration) AS total_duration, sum(s_legs) AS legs
    FROM
    (
        SELECT if(call_id = '', event_id, call_id) AS call_key, manager_id,
               occurred_at AS s_start, any(department_id) AS s_department,
               any(local_date) AS s_local_date, any(local_time) AS s_local_time,
               argMax(direction, answered) AS s_direction, max(answered) AS s_answered,
               max(talk_seconds) AS s_talk, max(duration_seconds) AS s_duration,
               count() AS s_legs
        {legs}
        GROUP BY call_key, manager_id, occurred_at
    )
    GROUP BY call_key, manager_id
) AS per_manager
ANY LEFT JOIN
(
    SELECT if(call_id = '', event_id, call_id) AS call_key,
           uniqExactIf(manager_id, manager_id != '') AS rung_members,
           max(answered) AS call_answered
    {legs}
    GROUP BY call_key
) AS per_call USING call_key"""


def per_manager_metrics(
    database: str, group_by: str, counting: CountingSettings
) -> tuple[str, str]:
    """Two queries, calls and other activity, each grouped by ``manager_id, department_id,
    local_date`` plus ``group_by`` (an expression over ``local_time``, or '' for whole days),
    over local days %(low)s..%(high)s. Selected: the grouping columns, then the metrics in
    CALL_METRICS / ACTIVITY_METRICS order."""
    extra = f", {group_by}" if group_by else ""
    keys = f"manager_id, department_id, local_date{extra}"
    days = "local_date >= %(low)s AND local_date <= %(high)s"
    threshold = conversation_threshold(counting)
    call_sql = ", ".join(sql.format(threshold=threshold) for _, sql in CALL_METRICS)
    calls = (
        f"SELECT {keys}, {call_sql} "
        f"FROM ({consolidated_calls(database)}) WHERE {days} GROUP BY {keys}"
    )
    activity = (
        f"SELECT {keys}, {', '.join(sql for _, sql in ACTIVITY_METRICS)} "
        f"FROM {database}.events FINAL WHERE kind != 'call' AND excluded = 0 AND {days} "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        f"GROUP BY {keys}"
    )
    return calls, activity
