"""The development tools' commands: ``salespulse stack``, ``generate`` and ``demo``.

A plugin of the command line (the ``salespulse.commands`` entry point in pyproject.toml), so that
the product's command line lists them without importing the local stack, the generator or the
demo (the import contract, tests/unit/test_layers.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from salespulse.settings import Settings


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stack = sub.add_parser("stack", help="local Kafka-protocol broker, ClickHouse, Alertmanager")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument(
        "--durable",
        action="store_true",
        help="the broker stores in SeaweedFS (S3) and survives a restart; the same as "
        "SALESPULSE_STACK__BROKER_STORAGE=s3",
    )
    stack.set_defaults(func=cmd_stack)

    generate = sub.add_parser("generate", help="realistic generated traffic, to Kafka or files")
    _add_traffic_arguments(generate)
    generate.add_argument("--to", choices=["kafka", "files"], default="kafka")
    generate.add_argument("--out", type=Path, help="output folder for --to files")
    generate.add_argument("--rate", type=float, help="records per second (default: max)")
    generate.set_defaults(func=cmd_generate)

    demo = sub.add_parser("demo", help="the whole pipeline end to end on the local stack")
    _add_traffic_arguments(demo)
    demo.add_argument(
        "--stop-worker", action="store_true", help="stop the worker at the end (default: keep it)"
    )
    demo.set_defaults(func=cmd_demo)


def _add_traffic_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--managers", type=int, default=40)
    parser.add_argument("--departments", type=int, default=5)
    parser.add_argument("--days", type=int, default=7, help="simulated days ending now")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--malformed-share", type=float, default=0.005)


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.demo_worker import stop_demo_worker
    from salespulse.stack import stack_down, stack_status, stack_up

    if args.durable:
        settings = settings.model_copy(
            update={"stack": settings.stack.model_copy(update={"broker_storage": "s3"})}
        )
    if args.action == "up":
        status = stack_up(settings.stack)
    elif args.action == "down":
        worker = stop_demo_worker(settings.stack)
        stopped = [f"demo worker (pid {worker})"] if worker else []
        stopped += stack_down(settings.stack)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    else:
        status = stack_status(settings.stack)
    print(status.describe())
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.demo import generate_command

    return generate_command(args, settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.demo import run_demo

    return run_demo(args, settings)
