"""Settings of the CDR table follower; kept apart from the follower so the main settings can
include them without importing it (which imports the main settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ingest.setting_checks import one_line
from salespulse.errors import ConfigurationError
from salespulse.locations import state_root

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class CdrTableError(ConfigurationError):
    """The table cannot be followed: it has no ``calldate`` column to follow."""


class CdrTableSettings(BaseModel):
    """Where the PBX's CDR table is (FreePBX, Issabel and VitalPBX keep ``asteriskcdrdb.cdr``,
    written by ``cdr_adaptive_odbc`` or ``cdr_mysql``) and how to follow it."""

    # Built alone (not through Settings), a refused value would otherwise be quoted: the secret.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = Field(default=3306, ge=1, le=65535)
    user: str = Field(min_length=1, max_length=128)
    password: SecretStr
    # Written into SQL as identifiers: plain names only.
    database: str = Field(default="asteriskcdrdb", pattern=_IDENTIFIER)
    table: str = Field(default="cdr", pattern=_IDENTIFIER)
    poll_seconds: float = Field(default=5.0, gt=0, le=3600, description="how often to look")
    # A CDR row is written when its call ends, dated when it began: a call of two hours is
    # written two hours "late". Rows this far behind the newest are looked at again.
    lookback_seconds: int = Field(
        default=4 * 3600,
        ge=60,
        le=7 * 86_400,
        description="rows dated this long before the newest are re-read, for long calls",
    )
    rows_per_query: int = Field(default=5_000, ge=100, le=100_000)
    rows_per_message: int = Field(default=500, ge=1, le=10_000)
    start_at: str = Field(
        default="beginning",
        pattern="^(beginning|now)$",
        description="where a first run starts: the table's oldest row, or rows from now on",
    )
    source_key: str = Field(default="asteriskcdrdb", min_length=1, max_length=64)
    state_dir: Path = Field(default_factory=lambda: state_root() / "cdr-table")
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=600)

    @field_validator("host", "user")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return one_line(value)
