"""The ``salespulse`` command: one entry point, one subcommand per job.

Each subcommand is a small function taking parsed arguments and settings; the heavy lifting lives
in the modules they call. Errors a user can fix (a missing package, a bad directory file, an
unreachable server) are printed as one clear line and exit with status 2, not as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeAlias

from pydantic import ValidationError
from pydantic_settings import SettingsError

from salespulse import __version__
from salespulse.alert_commands import add_alert_commands
from salespulse.bridge_commands import add_bridge_commands
from salespulse.directory import load_directory
from salespulse.erase_commands import add_erase_commands
from salespulse.errors import ConfigurationError, SalespulseError
from salespulse.locations import packaged
from salespulse.reports.commands import add_report_commands
from salespulse.retention_commands import add_retention_commands
from salespulse.secret_config import (
    environment_secrets,
    install_log_redaction,
    redact,
    secret_values,
)
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse

log = logging.getLogger("salespulse")

# Commands that packages add to ``salespulse``: entry points naming a function that takes the
# subparsers. The development tools (local stack, generator, demo) come this way, so that
# nothing of the product imports them (tests/unit/test_layers.py).
COMMAND_PLUGINS = "salespulse.commands"
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(ConfigurationError):
    """A problem the user can fix; printed without a traceback."""


def _parse_day(text: str, now: datetime) -> date | None:
    """``today`` means each department's own local today, so it maps to None."""
    if text == "today":
        return None
    if text == "yesterday":
        return now.date() - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"--date must be today, yesterday or YYYY-MM-DD, not {text!r}") from exc


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.clickhouse.migrations import apply_migrations

    client = NativeClickHouse(settings.clickhouse)
    try:
        applied = apply_migrations(client, cluster=settings.clickhouse.cluster)
    finally:
        client.close()
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
    print(f"schema up to date; applied now: {names or 'nothing'}")
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.topics import ensure_topics

    created = asyncio.run(ensure_topics(settings.kafka, settings.topics))
    print(f"topics ready; created now: {', '.join(created) or 'nothing'}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from processors.worker import run_worker

    run_worker(settings)
    return 0


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.summary import query_summary, render_table

    now = datetime.now(UTC)
    last_day = _parse_day(args.date, now)
    directory = load_directory(settings.directory_path)
    client = NativeClickHouse(settings.clickhouse)
    try:
        rows = query_summary(
            client,
            directory,
            last_day=last_day,
            days=args.days,
            now=now,
            counting=settings.counting,
        )
    finally:
        client.close()
    span = f"{args.days} days to {args.date}" if args.days > 1 else args.date
    print(f"Activity per manager, {span} (local dates):")
    print(render_table(rows))
    return 0


def _publish_directory_change(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.directory_publish import (
        publish_absence_from_file,
        publish_deletion,
        publish_from_file,
    )

    topics = settings.topics
    # Checked against the file and the topic as they are now, so a change the workers would
    # reject is refused here, where its author sees why.
    check = None if args.no_check else settings.directory_path
    if bool(args.absence) != bool(args.id):
        raise UsageError("--absence FILE and --id ID go together (ID: the HR system's record id)")
    if args.absence:
        key = asyncio.run(
            publish_absence_from_file(
                settings.kafka,
                topics.directory,
                args.absence,
                args.id,
                directory_path=check,
                replication_factor=topics.replication_factor,
            )
        )
    elif args.delete_absence:
        key = asyncio.run(
            publish_deletion(
                settings.kafka,
                topics.directory,
                "absence",
                args.delete_absence,
                replication_factor=topics.replication_factor,
            )
        )
    elif args.manager or args.department:
        key = asyncio.run(
            publish_from_file(
                settings.kafka,
                topics.directory,
                args.manager or args.department,
                kind="manager" if args.manager else "department",
                directory_path=check,
                replication_factor=topics.replication_factor,
            )
        )
    elif args.delete_manager or args.delete_department:
        key = asyncio.run(
            publish_deletion(
                settings.kafka,
                topics.directory,
                "manager" if args.delete_manager else "department",
                args.delete_manager or args.delete_department,
                directory_path=check,
                replication_factor=topics.replication_factor,
            )
        )
    else:
        raise UsageError(
            "directory publish needs --manager, --department, --absence (with --id), "
            "--delete-manager, --delete-department or --delete-absence"
        )
    print(f"published {key} on {topics.directory}")
    return 0


def cmd_directory(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.summary import query_unknown_identities

    if args.action == "publish":
        return _publish_directory_change(args, settings)
    if args.action == "check":
        directory = load_directory(settings.directory_path)
        identities = sum(len(m.identities) for m in directory.managers.values())
        print(
            f"{settings.directory_path}: {len(directory.departments)} departments, "
            f"{len(directory.managers)} managers, {identities} identities: OK"
        )
        return 0
    client = NativeClickHouse(settings.clickhouse)
    try:
        unknown = query_unknown_identities(client, limit=args.limit)
    finally:
        client.close()
    if not unknown:
        print("every identity in ClickHouse is in the directory")
        return 0
    print(f"{'family':<8}{'identity':<24}{'events':>8}  last seen (UTC)")
    for family, identity, count, last in unknown:
        print(f"{family:<8}{identity:<24}{count:>8}  {last}")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from ingest.raw_producer import ProduceError
    from salespulse.history_import import import_files

    if args.directory is not None:
        settings = settings.model_copy(update={"directory_path": args.directory})
    try:
        summary = asyncio.run(import_files(args.files, settings, format_name=args.format))
    except (KafkaError, ProduceError) as exc:
        raise UsageError(f"Kafka did not take the import: {exc}") from exc
    print(f"imported {summary.describe()}")
    return 0


def cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.source_check import check_file, render

    path = args.directory or settings.directory_path
    directory = load_directory(path) if path is not None and path.exists() else None
    if directory is None:
        raise UsageError("no manager directory: name one with --directory")
    troubled = False
    for file in args.files:
        report = check_file(
            file, directory, settings.parsing, worker=settings.worker, format_name=args.format
        )
        print(render(report))
        troubled |= report.trouble
    return 1 if troubled else 0


# The shipped examples, written out under the names an operator's own copies would have.
EXAMPLE_FILES = {
    "directory.example.yaml": "directory.yaml",
    "alerts.example.yaml": "alerts.yaml",
    "calendar.example.yaml": "calendar.yaml",
}


def cmd_examples(args: argparse.Namespace, settings: Settings) -> int:
    """Copies of the example directory, rules and calendar, to edit and point the settings at."""
    target: Path = args.target
    existing = [name for name in EXAMPLE_FILES.values() if (target / name).exists()]
    if existing:
        raise UsageError(f"{target} already has {', '.join(existing)}; nothing was written")
    target.mkdir(parents=True, exist_ok=True)
    examples = packaged("salespulse", "examples")
    for shipped, name in EXAMPLE_FILES.items():
        (target / name).write_bytes(examples.joinpath(shipped).read_bytes())
        print(target / name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salespulse", description="Same-day activity intensity of sales managers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    schema = sub.add_parser("schema", help="ClickHouse schema migrations")
    schema.add_argument("action", choices=["apply"])
    schema.set_defaults(func=cmd_schema)

    topics = sub.add_parser("topics", help="Kafka topics")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(func=cmd_topics)

    worker = sub.add_parser("worker", help="run the stream worker")
    worker.set_defaults(func=cmd_worker)

    summary = sub.add_parser("summary", help="per-manager counts read back from ClickHouse")
    summary.add_argument("--date", default="today", help="today, yesterday or YYYY-MM-DD")
    summary.add_argument("--days", type=int, default=1, help="number of days ending at --date")
    summary.set_defaults(func=cmd_summary)

    add_bridge_commands(sub)
    add_alert_commands(sub)
    add_report_commands(sub)
    add_retention_commands(sub)
    add_erase_commands(sub)

    directory = sub.add_parser("directory", help="the manager directory")
    directory.add_argument(
        "action",
        choices=["check", "unknown", "publish"],
        help="check: validate the file; unknown: identities with events but no manager; "
        "publish: one change on the directory topic",
    )
    directory.add_argument("--limit", type=int, default=50)
    change = directory.add_mutually_exclusive_group()
    change.add_argument("--manager", type=Path, metavar="FILE", help="one manager entry, YAML")
    change.add_argument("--department", type=Path, metavar="FILE", help="one department, YAML")
    change.add_argument("--delete-manager", metavar="ID", help="delete a manager (file's too)")
    change.add_argument("--delete-department", metavar="ID", help="delete a department")
    change.add_argument("--absence", type=Path, metavar="FILE", help="one absence, YAML; with --id")
    change.add_argument("--delete-absence", metavar="ID", help="delete an absence by its id")
    directory.add_argument("--id", metavar="ID", help="the absence's id in the HR system")
    directory.add_argument(
        "--no-check", action="store_true", help="publish without checking the merged directory"
    )
    directory.set_defaults(func=cmd_directory)

    imports = sub.add_parser(
        "import",
        help="send source files of the past (CDR files, JSON exports) to Kafka as a backfill",
    )
    imports.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imports.add_argument("--format", help="the files' format (default: told from their records)")
    imports.add_argument(
        "--directory", type=Path, help="manager directory for the summary (default: settings)"
    )
    imports.set_defaults(func=cmd_import)
    sources = sub.add_parser("sources", help="check source files before connecting a source")
    sources_sub = sources.add_subparsers(dest="action", required=True)
    check = sources_sub.add_parser(
        "check",
        help="what the worker would make of a file: format, PBX time zone, identities, dead "
        "letters, one day per manager; no Kafka or ClickHouse needed (exit 1 if it would "
        "not be counted as it should)",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--format", help="the files' format (default: told from their records)")
    check.add_argument("--directory", type=Path, help="manager directory (default: settings)")
    check.set_defaults(func=cmd_sources)
    examples = sub.add_parser(
        "examples", help="write copies of the example directory, alert rules and calendar"
    )
    examples.add_argument("target", type=Path, metavar="DIR", help="where (created if missing)")
    examples.set_defaults(func=cmd_examples)
    for plugin in entry_points(group=COMMAND_PLUGINS):
        add_commands: Callable[[Subcommands], None] = plugin.load()
        add_commands(sub)
    return parser


# What an operator can act on: salespulse's own errors (salespulse.errors draws their tree),
# settings pydantic refused, and files or sockets the system refused. Anything else is a bug.
_USER_ERRORS = (SalespulseError, ValidationError, SettingsError, OSError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The ClickHouse driver logs every failed connection as a warning with its traceback;
        # the command says "ClickHouse unreachable" in one line instead (-v shows it all).
        logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    # Before the settings load, so that even an error in them is redacted; then with every
    # secret they hold. Every log record of the command is redacted; the factory is put back
    # at the end for callers that run main() in their own process (tests).
    plain_records = logging.getLogRecordFactory()
    install_log_redaction(environment_secrets(Settings))
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        settings = Settings()
        install_log_redaction(secret_values(settings))
        return func(args, settings)
    except _USER_ERRORS as exc:
        print(f"salespulse {args.command}: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        # A traceback quotes messages, and messages may quote what a server or library said.
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1
    finally:
        logging.setLogRecordFactory(plain_records)


if __name__ == "__main__":
    sys.exit(main())
