"""The names of the activity metrics: what a rule, the page, a report or the summary may name.

Core: the names only. What each one counts is SQL over the stored events, defined once in
``sinks.clickhouse.metric_sql`` (docs/metrics.md) in this very order, which the hourly and daily
rollups keep as their columns.
"""

from __future__ import annotations

# Counted over a manager's consolidated calls.
CALL_METRIC_NAMES: tuple[str, ...] = (
    "calls_in",
    "calls_in_answered",
    "calls_out",
    "calls_out_answered",
    "calls_internal",
    "missed",
    "conversations",
    "talk_seconds",
    "internal_talk_seconds",
)
# Counted over chats and CRM events.
OTHER_METRIC_NAMES: tuple[str, ...] = (
    "chats",
    "chats_missed",
    "chat_first_response_seconds",
    "chats_answered",
    "meetings",
    "meetings_office",
    "meetings_visit",
    "presentations",
    "offers",
    "leads",
    "leads_created",
    "deals_won",
    "deals_lost",
    "payments",
    "tasks_created",
    "tasks_done",
    "tasks_done_late",
)
ACTIVITY_METRIC_NAMES: tuple[str, ...] = CALL_METRIC_NAMES + OTHER_METRIC_NAMES


def is_duration(metric: str) -> bool:
    """Metrics measured in seconds say so in their name (``talk_seconds``, ``…_seconds``)."""
    return metric.endswith("_seconds")
