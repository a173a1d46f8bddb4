"""``salespulse alerts check|list``: validate the rules and calendar, read the alert history."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from processors.alert_service import load_working_calendar
from processors.alerting.rules import load_rules
from queries.alert_history import recent_notices
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse


def add_alert_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = sub.add_parser("alerts", help="alert rules and history")
    alerts.add_argument(
        "action",
        choices=["check", "list"],
        help="check: validate the rules and calendar files; list: the latest notices",
    )
    alerts.add_argument("--rules", type=Path, help="rules file (default: the configured one)")
    alerts.add_argument("--calendar", type=Path, help="calendar file (default: configured)")
    alerts.add_argument("--hours", type=float, default=24.0, help="list: how far back")
    alerts.add_argument("--limit", type=int, default=50, help="list: at most this many")
    alerts.set_defaults(func=cmd_alerts)


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "check":
        return _check(args, settings)
    client = NativeClickHouse(settings.clickhouse)
    try:
        since = datetime.now(UTC) - timedelta(hours=args.hours)
        notices = recent_notices(client, since, args.limit)
    finally:
        client.close()
    if not notices:
        print(f"no alert notices in the last {args.hours:g} hours")
        return 0
    for notice in notices:
        flag = f" [{notice.suppressed}]" if notice.suppressed else ""
        reason = f" ({notice.reason})" if notice.reason else ""
        print(
            f"{notice.at:%Y-%m-%d %H:%M:%S}Z {notice.state:<8} {notice.alert.severity:<8} ", end=""
        )
        print(f"{notice.alert.key}{reason}{flag}\n    {notice.alert.summary_en}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    alerts = settings.alerts
    if args.calendar is not None:
        alerts = alerts.model_copy(update={"calendar_path": args.calendar})
    rules_path = args.rules or alerts.rules_path
    rules = load_rules(rules_path)
    calendar = load_working_calendar(alerts)
    print(
        f"{rules_path}: {len(rules.active_rules())} rules in use ({len(rules.rules)} in all), "
        f"{len(rules.norms)} norms, {len(rules.silences)} silences: OK"
    )
    print(
        f"{alerts.calendar_path or 'built-in calendar'}: {len(calendar.departments)} departments "
        f"with their own hours, {len(calendar.holidays)} holidays, "
        f"{len(calendar.absences)} absences: OK"
    )
    return 0
