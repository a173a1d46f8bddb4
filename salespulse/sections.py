"""The sections of the configuration that the data path reads: the broker, ClickHouse, topics,
the worker, parsing and counting, with the checks their values must pass.

Core: nothing here imports ingest, processors, sinks or the application. ``salespulse.settings``
composes these sections with the bridges', the alerts' and the reports' into ``Settings``, read
from the environment and the configuration file (docs/configuration.md)."""

from __future__ import annotations

import codecs
import re
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from salespulse.locations import state_root
from salespulse.models import MAX_RECORDS_PER_MESSAGE, SourceFamily, TimeZoneName

# The directory holding the packages: the source checkout in tests and benchmarks. The service
# reads nothing through it (salespulse.locations finds shipped files and the state root).
REPO_ROOT = Path(__file__).resolve().parent.parent
# Meeting places (Bitrix24 activity LOCATION) that mean "in our office" or "by video"; anything
# else is a visit to the client. Narrow on purpose: "офис клиента" is a visit.
OFFICE_LOCATION_KEYWORDS = ("наш офис", "our office", "переговорн", "meeting room")
REMOTE_LOCATION_KEYWORDS = ("zoom", "teams", "meet.google", "skype", "telemost", "телемост")
# fullmatch, never ``^…$``: ``$`` also matches before a final line break. ASCII only, so that
# look-alike letters (Cyrillic "а") are refused rather than sent to the server.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}", re.ASCII)
_IDENTIFIER_RULE = (
    "must be a plain SQL identifier: ASCII letters, digits and _, not starting with a digit, "
    "at most 63 characters"
)
AsteriskCdrColumns = Literal[
    "auto",
    "default",
    "uniqueid",
    "userfield",
    "uniqueid+userfield",
    "new",
    "uniqueid+new",
    "userfield+new",
    "all",
    "custom",
]
"""An Asterisk cdr_csv column set, named after the ``[csv]`` options that add columns:
``uniqueid`` (loguniqueid), ``userfield`` (loguserfield), ``new`` (newcdrcolumns); ``all`` is all
three. ``custom`` is the Master.csv template of cdr_custom.conf.sample, written by cdr_custom.
``auto`` recognises the set per line."""
_ASCII_BYTES = bytes(range(128))
_ASCII_TEXT = _ASCII_BYTES.decode("ascii")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}", re.ASCII)
_TOPIC_RULE = "must be a Kafka name: 1 to 249 ASCII letters, digits, '.', '_' and '-'"
# Sections refuse unknown keys: a misspelt SALESPULSE_CLICKHOUSE__PASWORD must fail loudly rather
# than leave the password unset.
_SECTION = ConfigDict(extra="forbid")
# A DNS name as a Host header carries it (letters, digits, '-', '.'; any case, a final dot).
_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?$")


def sql_identifier(value: str) -> str:
    """``value`` if it is safe to write into SQL as a database or table name, else ValueError.

    Values travel as parameters; names cannot, so every name that comes from configuration
    passes through here when the configuration is loaded.
    """
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(_IDENTIFIER_RULE)
    return value


def text_encoding(name: str) -> str:
    """Python's name for ``name`` if it is a text encoding that keeps ASCII as ASCII, else
    ValueError. CDR lines are framed and split on ASCII line breaks, commas, quotes and colons
    before anything is decoded, so UTF-16 or EBCDIC would cut them in the wrong places."""
    try:
        canonical = codecs.lookup(name).name
        ascii_compatible = _ASCII_BYTES.decode(canonical) == _ASCII_TEXT
    except LookupError:  # also for codecs that are not text encodings (base64, rot13)
        raise ValueError("not a text encoding Python knows (utf-8, cp1251, koi8-r ...)") from None
    except UnicodeError:
        ascii_compatible = False
    if not ascii_compatible:
        raise ValueError("not ASCII-compatible: CDR lines are split on ASCII characters")
    return canonical


def kafka_name(value: str) -> str:
    """``value`` if it is a valid Kafka topic or consumer-group name, else ValueError."""
    if not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise ValueError(_TOPIC_RULE)
    return value


class KafkaSettings(BaseModel):
    """Plain bootstrap servers plus optional SASL/TLS: works with any Kafka-protocol broker."""

    model_config = _SECTION

    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    client_id: str = "salespulse"

    def aiokafka_options(self) -> dict[str, object]:
        """Keyword arguments shared by aiokafka producers, consumers and admin clients."""
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        from aiokafka.helpers import create_ssl_context

        context: ssl.SSLContext = create_ssl_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        return context


class ClickHouseSettings(BaseModel):
    model_config = _SECTION

    host: str = "127.0.0.1"
    port: int = Field(default=19000, ge=1, le=65535, description="native protocol port")
    user: str = "default"
    password: SecretStr = SecretStr("")
    database: str = "salespulse"
    secure: bool = False
    connect_timeout_seconds: float = 5.0
    cluster: str | None = Field(
        default=None,
        description="the ClickHouse cluster (remote_servers) the schema lives on: replicated "
        "tables behind Distributed ones, DDL ON CLUSTER; none: a single server",
    )

    @field_validator("database")
    @classmethod
    def _safe_identifier(cls, value: str) -> str:
        # The database name is written into every query (names cannot be parameters).
        return sql_identifier(value)

    @field_validator("cluster")
    @classmethod
    def _safe_cluster(cls, value: str | None) -> str | None:
        # Written into DDL like the database name.
        return None if value is None else sql_identifier(value)


class TopicSettings(BaseModel):
    model_config = _SECTION

    raw_pbx: str = "salespulse.raw.pbx"
    raw_chat: str = "salespulse.raw.chat"
    raw_crm: str = "salespulse.raw.crm"
    dead_letter: str = "salespulse.deadletter"
    directory: str = "salespulse.directory"
    alerts: str = "salespulse.alerts"
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=7)

    @field_validator("raw_pbx", "raw_chat", "raw_crm", "dead_letter", "directory", "alerts")
    @classmethod
    def _valid_topic(cls, value: str) -> str:
        return kafka_name(value)

    def raw_topics(self) -> tuple[str, str, str]:
        return (self.raw_pbx, self.raw_chat, self.raw_crm)

    def for_family(self, family: SourceFamily) -> str:
        """The raw topic of a source family."""
        return {
            SourceFamily.PBX: self.raw_pbx,
            SourceFamily.CHAT: self.raw_chat,
            SourceFamily.CRM: self.raw_crm,
        }[family]


class WorkerSettings(BaseModel):
    model_config = _SECTION

    # The consumer group, and the prefix of the topics faust names after the application.
    app_id: str = "salespulse-worker"
    batch_max_messages: int = Field(default=2000, ge=1, le=1_000_000)
    batch_within_seconds: float = Field(default=0.5, gt=0, le=60)
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    max_record_bytes: int = Field(default=65_536, ge=256)
    # A message of more records is one dead letter (too_many_records): a megabyte of "{}" lines
    # is 340,000 records, each a dead letter, and stalled its partition for 15 s. Real CDR
    # lines are 100 bytes or more, so a 1 MiB message of them holds about 10,000.
    max_records_per_message: int = Field(default=MAX_RECORDS_PER_MESSAGE, ge=1)
    web_port: int = Field(default=6066, ge=1, le=65535)
    # The pages and /metrics have no login: loopback unless a proxy in front adds one.
    web_bind: str = "127.0.0.1"
    web_hosts: list[str] = Field(
        default_factory=list,
        description="host names the web server answers for (Host header), besides localhost, "
        "IP literals and WEB_BIND; '*' for any. Others get 421: no DNS rebinding",
    )
    sink_retry_max_seconds: float = Field(default=30.0, gt=0)
    commit_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    rollup_interval_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="how often dashboard rollups catch up"
    )
    # How long the group coordinator waits for members during a rebalance, and how long a
    # silent member keeps its partitions. Shorter than faust's 60 s defaults so that a new or
    # dead worker's partitions move within seconds.
    rebalance_timeout_seconds: float = Field(default=10.0, ge=1, le=300)
    session_timeout_seconds: float = Field(default=10.0, ge=3, le=300)

    @field_validator("app_id")
    @classmethod
    def _valid_group(cls, value: str) -> str:
        return kafka_name(value)

    @field_validator("web_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if name != "*" and not _HOST_NAME.match(name):
                raise ValueError(f"not a host name: {name!r}")
        return names

    def web_host_names(self) -> list[str]:
        """Every name the web server answers for besides IP literals: localhost (browsers and
        the system resolve it, never someone else's DNS), the configured ones and the bind
        address."""
        return ["localhost", *self.web_hosts, self.web_bind]


class StackSettings(BaseModel):
    """The local development/CI stack: Tansu, ClickHouse and Alertmanager (and, for a durable
    broker, SeaweedFS) as plain processes on loopback."""

    model_config = _SECTION

    state_dir: Path = Field(default_factory=lambda: state_root() / "stack")
    kafka_port: int = Field(default=19092, ge=1, le=65535)
    clickhouse_tcp_port: int = Field(default=19000, ge=1, le=65535)
    clickhouse_http_port: int = Field(default=18123, ge=1, le=65535)
    alertmanager_port: int = Field(default=19093, ge=1, le=65535)
    # memory: Tansu keeps topics and offsets in memory, a broker restart empties them.
    # s3: Tansu stores them in a SeaweedFS bucket the stack also runs, so they survive one.
    broker_storage: Literal["memory", "s3"] = "memory"
    # SeaweedFS binds all of these; each is set, or some would land on SeaweedFS's fixed defaults.
    seaweedfs_s3_port: int = Field(default=18333, ge=1, le=65535)
    seaweedfs_s3_grpc_port: int = Field(default=18334, ge=1, le=65535)
    seaweedfs_master_port: int = Field(default=18335, ge=1, le=65535)
    seaweedfs_master_grpc_port: int = Field(default=18336, ge=1, le=65535)
    seaweedfs_volume_port: int = Field(default=18337, ge=1, le=65535)
    seaweedfs_volume_grpc_port: int = Field(default=18338, ge=1, le=65535)
    seaweedfs_filer_port: int = Field(default=18339, ge=1, le=65535)
    seaweedfs_filer_grpc_port: int = Field(default=18340, ge=1, le=65535)

    @property
    def durable(self) -> bool:
        """Whether the broker stores on S3 (SeaweedFS) rather than in memory."""
        return self.broker_storage == "s3"

    @property
    def alertmanager_url(self) -> str:
        """Base URL of the stack's Alertmanager, in the form ``alerts.alertmanager_url`` takes."""
        return f"http://127.0.0.1:{self.alertmanager_port}"


class ParsingSettings(BaseModel):
    model_config = _SECTION

    pbx_timezone: TimeZoneName = Field(
        default="UTC",
        description="time zone of the PBX's CDR timestamps (Asterisk writes local time unless "
        "usegmtime=yes)",
    )
    internal_extension_pattern: str = Field(
        default=r"^\d{2,6}$",
        description="which channel endpoints are managers' phones; the rest are trunks",
    )
    asterisk_cdr_columns: AsteriskCdrColumns = Field(
        default="auto",
        description="cdr_csv column set (loguniqueid, loguserfield, newcdrcolumns), or custom "
        "for cdr_custom's Master.csv template; auto: by field count and where the times are",
    )
    pbx_encoding: str = Field(
        default="utf-8",
        description="encoding of the text in Asterisk CDRs (Master.csv, AMI): utf-8, cp1251, "
        "koi8-r or any ASCII-compatible Python codec; only the fields salespulse reads must be "
        "valid in it",
    )
    freeswitch_log_b_leg: bool = Field(
        default=True,
        description="must match mod_json_cdr's log-b-leg; when false an a-leg also speaks for "
        "the party it called",
    )
    freeswitch_cdr_csv_legs: Literal["a", "ab"] = Field(
        default="a",
        description="must match mod_cdr_csv's legs; with ab a bridged a-leg speaks only for its "
        "caller and shares its b-leg's uuid",
    )
    bitrix24_portal_timezone: TimeZoneName | None = Field(
        default=None,
        description="zone of Bitrix24 dates in the portal format DD.MM.YYYY HH:MM:SS",
    )
    bitrix24_office_location_keywords: list[str] = Field(
        default_factory=lambda: list(OFFICE_LOCATION_KEYWORDS),
        description="meeting locations containing one of these are in the office",
    )
    bitrix24_remote_location_keywords: list[str] = Field(
        default_factory=lambda: list(REMOTE_LOCATION_KEYWORDS),
        description="meeting locations containing one of these are remote (video calls)",
    )
    phone_hash_key: SecretStr | None = Field(
        default=None,
        description="key for hashing customer phone numbers; without it numbers are masked",
    )

    @field_validator("internal_extension_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value

    @field_validator("pbx_encoding")
    @classmethod
    def _text_encoding(cls, value: str) -> str:
        return text_encoding(value)


class LatenessSettings(BaseModel):
    """How long after an activity its record may arrive and still count (per source family).

    Later records go to the dead-letter topic as ``late``, raw, to be replayed deliberately
    with the ``sp-backfill`` header if they should count after all. 0 switches the check off.
    """

    model_config = _SECTION

    pbx_grace_seconds: int = Field(default=3600, ge=0, description="CDRs: 1 hour")
    chat_grace_seconds: int = Field(default=86400, ge=0, description="chat sessions: 24 hours")
    crm_grace_seconds: int = Field(default=86400, ge=0, description="CRM events: 24 hours")

    def by_family(self) -> dict[SourceFamily, timedelta]:
        grace = {
            SourceFamily.PBX: self.pbx_grace_seconds,
            SourceFamily.CHAT: self.chat_grace_seconds,
            SourceFamily.CRM: self.crm_grace_seconds,
        }
        return {family: timedelta(seconds=s) for family, s in grace.items() if s > 0}


class CountingSettings(BaseModel):
    """What counts as what: the definitions in docs/metrics.md that an operator may tune."""

    model_config = _SECTION

    conversation_min_seconds: int = Field(
        default=30, ge=0, le=3600, description="talk time from which a call is a conversation"
    )
    department_conversation_min_seconds: dict[str, int] = Field(
        default_factory=dict,
        description='per-department conversation thresholds, e.g. {"support": 60}',
    )
    excluded_numbers: list[str] = Field(
        default_factory=list,
        description="numbers and extensions whose calls never count: voicemail, IVR, test "
        "lines (applies to records processed after the change; replay to apply to history)",
    )
    internal_calls_are_conversations: bool = Field(
        default=False,
        description="count calls between two managers as conversations and their talk in "
        "talk_seconds, as before customer and internal calls were counted apart",
    )
    ring_group_legs_count: bool = Field(
        default=False,
        description="count a ring-group member's unanswered leg as that member's incoming, "
        "missed call even when the call rang several managers",
    )
