"""Prometheus metrics of alert delivery (the engine's own are in ``salespulse.metrics``).

Labels are the channel ('kafka', 'alertmanager', 'webhook') and a fixed outcome: never an alert,
a manager or a receiver address, so cardinality stays fixed.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# delivered: the receiver has it; retried: one failed attempt that will be retried; given_up:
# not retriable, or retried for delivery_retry_max_seconds; dropped: pushed out of a full
# queue; suppressed: silenced or rate limited, so not sent to a channel that reaches people;
# handed_over: left, undelivered, to the worker that took over alerting (it sends them).
OUTCOMES = ("delivered", "retried", "given_up", "dropped", "suppressed", "handed_over")

NOTICES = Counter(
    "salespulse_alert_delivery_notices_total",
    "Alert notices handled by delivery, per channel and outcome.",
    ["channel", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "salespulse_alert_delivery_seconds",
    "From a notice's time (fired or resolved) to its delivery, per channel.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
QUEUE_NOTICES = Gauge(
    "salespulse_alert_delivery_queue_notices",
    "Notices waiting in a delivery channel's queue.",
    ["channel"],
)
RESENDS = Counter(
    "salespulse_alertmanager_resends_total",
    "Re-posts of the firing alerts that keep them active in Alertmanager, by result.",
    ["result"],
)
