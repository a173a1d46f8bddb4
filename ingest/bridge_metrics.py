"""Prometheus counters every bridge shares, labelled by bridge name (``ami``, ...) or topic.

Labels are bounded sets: a bridge name, a topic and a short reason code, never a host, user or
call.
"""

from __future__ import annotations

from prometheus_client import Counter

BRIDGE_RECORDS = Counter(
    "salespulse_bridge_records_total",
    "Source records a bridge wrote to a raw topic and Kafka acknowledged.",
    ["bridge"],
)
BRIDGE_RECONNECTS = Counter(
    "salespulse_bridge_reconnects_total",
    "Times a bridge scheduled a new connection to its source after losing or failing one.",
    ["bridge"],
)
BRIDGE_ERRORS = Counter(
    "salespulse_bridge_errors_total",
    "Bridge failures by reason (auth, connection, keepalive, protocol, produce, ...).",
    ["bridge", "reason"],
)
PRODUCED_MESSAGES = Counter(
    "salespulse_produced_messages_total",
    "Messages written to a raw topic and acknowledged by Kafka, by topic.",
    ["topic"],
)
