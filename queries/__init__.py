"""What salespulse reads back from ClickHouse for people and for the alert rules: today's
activity minute by minute, the hourly history the baselines learn from.

Reads, apart from the writes in ``sinks``: they take the ClickHouse connection and the metric
definitions from ``sinks.clickhouse`` and hand back the core's models (``salespulse.activity``),
which the alert rules (``processors.alerting``) judge without knowing where they came from.
"""
