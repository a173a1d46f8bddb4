"""Settings of the AMI bridge; kept apart from the bridge so the main settings can include them
without importing the bridge (which imports the main settings)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ingest.setting_checks import one_line


class AmiSettings(BaseModel):
    """Where the Asterisk Manager Interface listens and whom to log in as."""

    # Built alone (not through Settings), a refused value would otherwise be quoted: the secret.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=128)
    secret: SecretStr
    ping_interval_seconds: float = Field(
        default=20.0, gt=0, le=3600, description="how often to check the session with Ping"
    )
    ping_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="how long a Ping may go unanswered"
    )
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="for the TCP connect, and again for the login"
    )
    reconnect_min_seconds: float = Field(default=1.0, gt=0, le=600)
    reconnect_max_seconds: float = Field(default=30.0, gt=0, le=3600)
    # 32 MiB is about 45,000 Cdr events, hours of a busy PBX's calls. Reading goes on while
    # Kafka is away (Asterisk drops a session it cannot write to), up to this much.
    buffer_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=65_536,
        le=1024 * 1024 * 1024,
        description="events held in memory while Kafka does not take them; then reading pauses",
    )

    @field_validator("host", "username")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # Values go into AMI header lines: a line break would inject headers.
        return one_line(value)

    @field_validator("secret")
    @classmethod
    def _secret_one_line(cls, value: SecretStr) -> SecretStr:
        one_line(value.get_secret_value())
        return value

    cel_enabled: bool = Field(
        default=False, description="log in with Events: cdr,call and forward CEL calls"
    )
    presence_enabled: bool = Field(
        default=False,
        description="log in with Events: cdr,call and forward channels going up and down "
        "(calls in progress), asking for CoreShowChannels at each login",
    )
    cel_max_open_calls: int = Field(
        default=10_000, ge=1, le=1_000_000, description="calls whose CEL events are held at once"
    )
    cel_max_age_seconds: float = Field(
        default=21_600.0,
        gt=0,
        le=7 * 86_400,
        description="a call held longer is written incomplete",
    )
    # 524_288 = processors.parsers.asterisk_cel.CEL_MAX_RECORD_BYTES, not imported here: the
    # settings must not import the parsers (which import the settings).
    cel_max_call_bytes: int = Field(
        default=524_288, ge=4_096, le=524_288, description="a larger call is written in parts"
    )
