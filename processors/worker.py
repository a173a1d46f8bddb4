"""The stream worker: a faust-streaming application around one batch consumer (ADR 0009).

faust provides the worker lifecycle, timers, background tasks and the web server. The raw topics
are read by ``BatchConsumer`` (aiokafka ``getmany``, no per-message framework work), which hands
each whole batch to ``BatchRuntime`` (``prepare``, then ``store``) and commits the batch's
offsets only after ``store`` returned, i.e. after the batch is durable in ClickHouse. faust's own
Kafka consumer is not started: nothing in the application reads a topic through it.

Nothing happens at import time: ``build_app`` constructs the application from settings.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.web.base import Web
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import generate_latest

from processors.alert_service import AlertEvaluator, DeliveryLog, run_alerting
from processors.batch_consumer import BatchConsumer
from processors.consumer_lag import LAG_UPDATE_SECONDS, LagGauge
from processors.health import readiness
from processors.runtime import BatchRuntime
from processors.web import add_web_pages
from salespulse import metrics
from salespulse.directory_topic import ensure_directory_topic
from salespulse.http_server import guard, host_check, server_options
from salespulse.lag import LagProbe
from salespulse.settings import Settings
from salespulse.topics import ensure_topics
from sinks.alerts.dispatch import AlertDispatcher
from sinks.clickhouse.client import ClickHouseError, NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.retention import DailyRetention
from sinks.clickhouse.rollup import RollupUpdater

log = logging.getLogger(__name__)
# How often the leader looks whether today's retention run is due (it runs once a UTC day).
RETENTION_CHECK_SECONDS = 3600.0


def _broker_url(settings: Settings) -> str:
    servers = [s.strip() for s in settings.kafka.bootstrap_servers.split(",") if s.strip()]
    return ";".join(f"kafka://{server}" for server in servers)


def _credentials(settings: Settings) -> Any:
    kafka = settings.kafka
    if kafka.sasl_mechanism:
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=kafka.ssl_context(),
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(kafka.ssl_context())
    return None


class _WithoutFaustConsumer(BootStrategy):
    """faust's services without its Kafka clients: the batch consumer reads the topics, and
    a faust consumer with nothing to read would still join a group; nothing produces through
    faust either."""

    enable_kafka = False


class _App(faust.App):
    BootStrategy = _WithoutFaustConsumer

    def on_webserver_init(self, web: Web) -> None:
        # faust's hook between building its aiohttp application and serving it: the one place
        # to add what ``server_options`` cannot (a response signal) without replacing faust's.
        if isinstance(web, AiohttpWeb):
            guard(web.web_app)


def retention_duty(
    retention: DailyRetention,
    is_leader: Callable[[], bool],
    storage_duty: asyncio.Lock,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[], Awaitable[None]]:
    """The leader's timer: today's retention run, if it is due (docs/retention.md)."""

    async def apply_retention() -> None:
        if not is_leader():
            return
        try:
            async with storage_duty:
                done = await asyncio.to_thread(retention.run_if_due, clock())
        except ClickHouseError as exc:
            metrics.RETENTION_RUNS.labels("error").inc()
            log.warning("retention not applied this time: %s", exc)
            return
        if done is not None:
            metrics.RETENTION_RUNS.labels("refused" if done.failed else "ok").inc()

    return apply_retention


def build_app(settings: Settings) -> faust.App:
    worker = settings.worker
    state_dir = settings.stack.state_dir.parent / "worker"
    # Faust creates only the last level: a first start in a fresh directory has no .state/ yet.
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    app = _App(
        worker.app_id,
        broker=_broker_url(settings),
        broker_credentials=_credentials(settings),
        broker_client_id=settings.kafka.client_id,
        autodiscover=False,
        datadir=str(state_dir),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        producer_acks=-1,
        web_enabled=True,
        web_bind=worker.web_bind,
        web_port=worker.web_port,
        web_host="127.0.0.1",
        # Handed to aiohttp.web.Application by faust's aiohttp driver: see salespulse.http_server.
        web_application_options=server_options([host_check(worker.web_host_names())]),
    )
    runtime = BatchRuntime(settings)
    consumer = BatchConsumer(settings.kafka, worker, settings.topics.raw_topics())

    async def consume_raw() -> None:
        try:
            async with runtime:
                await consumer.run(runtime)
        except Exception as exc:
            # A worker that cannot store batches (schema mismatch, a bug) must not stay up
            # looking healthy: it stops, and its supervisor restarts it or raises the alarm.
            log.critical("the worker stops: the raw topics cannot be consumed: %r", exc)
            await app.crash(exc)
            raise

    app.task(consume_raw)

    rollups = RollupUpdater(NativeClickHouse(settings.clickhouse), settings.counting)
    # A rollup pass and a retention run never overlap: a pass that read which days are frozen
    # before a drop could otherwise recompute a day whose events the drop just removed.
    storage_duty = asyncio.Lock()

    async def update_rollups() -> None:
        # Only the group leader recomputes: the work is idempotent but need not be done twice.
        if not consumer.is_leader():
            return
        try:
            async with storage_duty:
                await asyncio.to_thread(rollups.run_once)
        except ClickHouseError as exc:
            log.warning("rollups not updated this time: %s", exc)

    app.timer(worker.rollup_interval_seconds)(update_rollups)

    if settings.retention.apply_in_worker and settings.clickhouse.cluster is not None:
        log.warning(
            "retention is not applied on a cluster yet (docs/adr/0019-clickhouse-cluster.md)"
        )
    elif settings.retention.apply_in_worker:
        retention = DailyRetention(NativeClickHouse(settings.clickhouse), settings.retention)
        duty = retention_duty(retention, consumer.is_leader, storage_duty)
        app.timer(RETENTION_CHECK_SECONDS)(duty)

    # Every worker, not only the leader: each reports the lag of its own partitions.
    lag = LagGauge(
        settings.topics.raw_topics(), consumer.assignment, consumer.end_offsets, consumer.committed
    )
    app.timer(LAG_UPDATE_SECONDS)(lag.update)

    evaluator = (
        _add_alerting(app, settings, runtime, consumer.is_leader)
        if settings.alerts.enabled
        else None
    )
    add_web_pages(app, settings, lambda: runtime.directory.current, evaluator)

    async def metrics_page(view: Any, request: Any) -> Any:
        # Prometheus' text format; plain text/plain because the web server refuses a charset
        # parameter in the content type, and every scraper accepts it.
        return view.bytes(generate_latest(), content_type="text/plain")

    app.page("/metrics")(metrics_page)

    async def healthz(view: Any, request: Any) -> Any:
        return view.json({"alive": True})

    async def readyz(view: Any, request: Any) -> Any:
        checks = await readiness(settings.kafka, settings.clickhouse)
        checks["partitions"] = consumer.joined()
        return view.json(checks, status=200 if all(checks.values()) else 503)

    app.page("/healthz")(healthz)
    app.page("/readyz")(readyz)
    return app


def _add_alerting(
    app: faust.App, settings: Settings, runtime: BatchRuntime, is_leader: Callable[[], bool]
) -> AlertEvaluator:
    """Alert evaluation on the group leader, delivery from every worker that led at some point.

    The evaluator is built now, so a broken rules or calendar file stops the worker at start
    with the file's error rather than failing quietly later."""
    alerts = settings.alerts
    # Series that exist before the first evaluation, so rules see the first error as an increase.
    for result in ("ok", "error", "paused_lag"):
        metrics.ALERT_EVALUATIONS.labels(result)
    for name, result in itertools.product(("rules", "calendar"), ("ok", "error")):
        metrics.ALERT_CONFIG_RELOADS.labels(name, result)
    dashboard = alerts.dashboard_url or f"http://127.0.0.1:{settings.worker.web_port}"
    evaluator = AlertEvaluator(
        alerts,
        settings.counting,
        lambda: NativeClickHouse(settings.clickhouse),
        lambda: runtime.directory.current,
        dashboard,
        runtime.directory_topic,
    )

    async def evaluate_alerts() -> None:
        probe = LagProbe(settings.kafka, settings.worker.app_id, settings.topics.raw_topics())
        log_delivery = DeliveryLog(lambda: NativeClickHouse(settings.clickhouse))
        dispatcher = AlertDispatcher.from_settings(
            settings.alerts, settings.kafka, settings.topics.alerts, log_delivery=log_delivery
        )
        async with probe, dispatcher:
            await run_alerting(evaluator, dispatcher, is_leader, probe.behind_seconds)

    app.task(evaluate_alerts)
    return evaluator


def prepare(settings: Settings) -> None:
    """Topics and schema up to date before consuming: a worker never writes to a stale schema."""
    created = asyncio.run(ensure_topics(settings.kafka, settings.topics))
    if created:
        log.info("created topics: %s", ", ".join(created))
    topics = settings.topics
    if asyncio.run(
        ensure_directory_topic(
            settings.kafka, topics.directory, replication_factor=topics.replication_factor
        )
    ):
        log.info("created topic %s (compacted)", topics.directory)
    client = NativeClickHouse(settings.clickhouse)
    try:
        applied = apply_migrations(client, cluster=settings.clickhouse.cluster)
    finally:
        client.close()
    for migration in applied:
        log.info("applied migration %04d_%s", migration.version, migration.name)


def run_worker(settings: Settings) -> None:
    prepare(settings)
    app = build_app(settings)
    faust.Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
