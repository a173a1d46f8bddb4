"""``salespulse erase --manager ID | --phone NUMBER | --again [--dry-run]``: erase one
person's data from ClickHouse on request (docs/erasure.md), or count what would go; ``--again``
erases once more everyone the audit log names whose rows a replay brought back.

The phone number is turned into the token the parsers store (the same protector, the same
key), so the rows are found by what they hold; the number itself is never printed, logged or
stored. Kafka cannot delete single records: the command says until when the raw and
dead-letter topics may still hold the person, and that a replay before then brings them back.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import re
from collections.abc import Sequence

from processors.privacy import PhoneProtector, normalise_number
from salespulse.errors import ConfigurationError
from salespulse.settings import Settings
from sinks.clickhouse.client import ClickHouse, NativeClickHouse
from sinks.clickhouse.erasure import (
    Erasure,
    Subject,
    erase,
    logged_subjects,
    stored_manager_ids,
)

# Manager ids as directories write them: letters (any script), digits and . _ - @ +. Anything
# else (quotes, semicolons, spaces, control characters) is refused before any query: such an id
# is a mistake of the command line, not a manager.
_MANAGER_ID = re.compile(r"[\w.@+-]{1,64}")
_MIN_DIGITS, _MAX_DIGITS = 7, 20  # the protector's least; E.164 allows 15, extensions add some


class ErasureRefused(ConfigurationError):
    """An erasure request that names nobody: an empty, malformed or non-number value."""


def add_erase_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    erase_cmd = sub.add_parser(
        "erase", help="erase one person's data on request: a manager's rows, a customer's number"
    )
    whom = erase_cmd.add_mutually_exclusive_group(required=True)
    whom.add_argument("--manager", metavar="ID", help="the manager's id in the directory")
    whom.add_argument("--phone", metavar="NUMBER", help="a customer's phone number, any format")
    whom.add_argument(
        "--again",
        action="store_true",
        help="erase again everyone the audit log names whose rows came back (after a replay)",
    )
    erase_cmd.add_argument(
        "--dry-run", action="store_true", help="count what would be erased; change nothing"
    )
    erase_cmd.add_argument(
        "--by", default="", help="who asked or the request's reference, for the audit log"
    )
    erase_cmd.add_argument(
        "--wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for each table's mutation (default 300)",
    )
    erase_cmd.set_defaults(func=cmd_erase)


def manager_subject(manager_id: str | None, key: bytes | None) -> Subject:
    """The manager as rows hold them, and the hash the audit keeps: HMAC-SHA-256 of the id
    under the phone hash key when one is set, SHA-256 otherwise."""
    value = (manager_id or "").strip()
    if not value:
        raise ErasureRefused("--manager needs a manager id; an empty one names nobody")
    if not _MANAGER_ID.fullmatch(value):
        raise ErasureRefused(
            "--manager must be a directory id: 1 to 64 letters, digits and . _ - @ +; "
            "quotes, spaces, semicolons and other characters are refused"
        )
    seed = f"manager:{value}".encode()
    digest = (
        hmac.new(key, seed, hashlib.sha256).hexdigest()
        if key is not None
        else hashlib.sha256(seed).hexdigest()
    )
    return Subject("manager", value, f"m:{digest[:20]}")


def phone_subject(number: str | None, key: bytes | None) -> Subject:
    """The number's token exactly as the parsers store it (hash with a key, mask without)."""
    digits = normalise_number((number or "").strip())
    if not (digits.isascii() and digits.isdigit()) or not (
        _MIN_DIGITS <= len(digits) <= _MAX_DIGITS
    ):
        # The value is not quoted: it may be a number after all, and errors reach terminals.
        raise ErasureRefused(
            f"--phone must be a phone number of {_MIN_DIGITS} to {_MAX_DIGITS} digits "
            "(spaces, dashes, dots, slashes, parentheses and a leading + allowed); shorter "
            "numbers are extensions, which are stored in clear and are the company's"
        )
    token = PhoneProtector(key).protect(digits)
    return Subject("phone", token, token)


def returned_subjects(ch: ClickHouse, key: bytes | None) -> list[Subject]:
    """The subjects of past erasures whose rows are stored again (a replay, an import).

    Numbers are found by the token the audit kept. Managers by hashing every manager id stored
    now the way the audit did: the log never held the id. Both need the key of the time of the
    erasure: after a change of key, old hashes match nothing."""
    logged = logged_subjects(ch)
    subjects = [Subject(kind, recorded, recorded) for kind, recorded in logged if kind == "phone"]
    wanted = {recorded for kind, recorded in logged if kind == "manager"}
    for manager_id in sorted(stored_manager_ids(ch)):
        if not _MANAGER_ID.fullmatch(manager_id):
            continue  # no erasure could have named it
        subject = manager_subject(manager_id, key)
        if subject.recorded in wanted:
            subjects.append(subject)
    return [subject for subject in subjects if any(erase(ch, subject, dry_run=True).rows.values())]


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "unknown"


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    secret = settings.parsing.phone_hash_key
    key = secret.get_secret_value().encode() if secret is not None else None
    # Checked before any connection: a refused request touches nothing.
    if args.manager is not None:
        subjects = [manager_subject(args.manager, key)]
    elif args.phone is not None:
        subjects = [phone_subject(args.phone, key)]
    if args.wait <= 0:
        raise ErasureRefused("--wait must be a number of seconds above 0")
    if settings.clickhouse.cluster is not None:
        # Its mutations address the Distributed tables, which take none.
        raise ConfigurationError(
            "erasure does not run on a cluster yet (SALESPULSE_CLICKHOUSE__CLUSTER is set); see "
            "docs/adr/0019-clickhouse-cluster.md"
        )
    client = NativeClickHouse(settings.clickhouse)
    try:
        if args.again:
            subjects = returned_subjects(client, key)
        results = [
            erase(
                client,
                subject,
                dry_run=args.dry_run,
                requested_by=args.by or _operator(),
                timeout_seconds=args.wait,
            )
            for subject in subjects
        ]
    finally:
        client.close()
    if args.again and not results:
        print("erase --again: no row of an erased manager or number is stored")
        return 0
    topics = settings.topics.raw_topics()
    print("\n".join(render(result, masked=key is None, topics=topics) for result in results))
    return 0 if all(result.dry_run or result.complete for result in results) else 1


def render(result: Erasure, *, masked: bool, topics: Sequence[str]) -> str:
    """What an operator reads: rows per table, what is left, and what Kafka still holds."""
    subject = result.subject
    who = f"manager {subject.match}" if subject.kind == "manager" else f"number {subject.recorded}"
    verb = "would erase" if result.dry_run else "erased"
    lines = [
        f"erasure of {who} at {result.at:%Y-%m-%d %H:%M:%S}Z (audit subject {subject.recorded})"
    ]
    how = (
        "rows deleted" if subject.kind == "manager" else "rows whose number is replaced by 'erased'"
    )
    for table, rows in result.rows.items():
        state = ""
        if table in result.pending:
            state = " (mutation still running when the wait ended)"
        elif result.left.get(table):
            state = f" ({result.left[table]} still there: run the erasure again)"
        lines.append(f"{verb} {table}: {rows} {how}{state}")
    if subject.kind == "phone" and masked:
        lines.append(
            "numbers are masked here (no SALESPULSE_PARSING__PHONE_HASH_KEY): the mask is shared "
            "by every number of the same length and last two digits, and all of them are erased"
        )
    if subject.kind == "manager":
        lines.append(
            "the directory: remove the manager from the directory file and publish the deletion "
            f"(salespulse directory publish --delete-manager {subject.match}); department totals "
            "no longer include their numbers"
        )
    lines.append(
        f"Kafka: the raw topics ({', '.join(topics)}) and the dead-letter topic keep source "
        "bytes until their retention.ms passes (14 days recommended, 7 by the broker's default); "
        "a replay of records from before this erasure brings the person back: erase again "
        "after any replay (salespulse erase --again)"
    )
    return "\n".join(lines)
