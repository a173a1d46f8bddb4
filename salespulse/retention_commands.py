"""``salespulse retention apply [--dry-run]``: drop the partitions older than their table's
retention (docs/retention.md), or say which it would drop.

The worker's group leader does the same once a day (``SALESPULSE_RETENTION__APPLY_IN_WORKER``);
this command is for a first run after upgrading, for a look before it, and for installations
that schedule it themselves (a systemd timer or cron job).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from salespulse.errors import ConfigurationError
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.retention import Plan, apply


def add_retention_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    retention = sub.add_parser(
        "retention", help="drop stored data older than its retention (whole partitions)"
    )
    retention.add_argument("action", choices=["apply"])
    retention.add_argument(
        "--dry-run", action="store_true", help="say what would be dropped; drop nothing"
    )
    retention.set_defaults(func=cmd_retention)


def cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    if settings.clickhouse.cluster is not None:
        # It would read the parts of the Distributed tables, which have none, and drop nothing
        # while saying all is well.
        raise ConfigurationError(
            "retention does not drop partitions on a cluster yet (SALESPULSE_CLICKHOUSE__CLUSTER "
            "is set); see docs/adr/0019-clickhouse-cluster.md"
        )
    client = NativeClickHouse(settings.clickhouse)
    try:
        result = apply(client, settings.retention, datetime.now(UTC), dry_run=args.dry_run)
    finally:
        client.close()
    print(render(result))
    return 1 if result.failed else 0


def render(result: Plan) -> str:
    """The plan as an operator reads it: one line per partition dropped, then what is kept."""
    verb = "would drop" if result.dry_run else "dropped"
    failed = {line.split(":", 1)[0] for line in result.failed}
    lines = []
    for partition in result.drop:
        name = f"{partition.table} {partition.partition}"
        done = "NOT dropped" if name in failed else verb
        lines.append(
            f"{done} {name} ({partition.first_day} to {partition.last_day}, {partition.rows} rows)"
        )
    if not result.drop:
        lines.append(f"nothing to drop at {result.now:%Y-%m-%d %H:%M}Z")
    kept = ", ".join(f"{table} {count}" for table, count in result.kept.items())
    lines.append(f"partitions kept: {kept}")
    lines.extend(result.notes)
    lines.extend(f"refused: {line}" for line in result.failed)
    return "\n".join(lines)
