"""Settings of alert evaluation and delivery (``SALESPULSE_ALERTS__*``).

The rules themselves (norms, rules, silences, recipients) live in their own YAML file, reloaded
without a restart; these settings say where that file is and where alerts go.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from salespulse.locations import packaged_path


class AlertsSettings(BaseModel):
    # A misspelt key is refused: a misspelt WEBHOOK_SECRET would send webhooks unsigned.
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # The shipped examples (package data), until the operator names their own files.
    rules_path: Path = Field(
        default_factory=lambda: packaged_path("salespulse", "examples", "alerts.example.yaml")
    )
    calendar_path: Path | None = Field(
        default_factory=lambda: packaged_path("salespulse", "examples", "calendar.example.yaml")
    )
    holidays_ics_path: Path | None = None
    tick_seconds: float = Field(default=1.0, gt=0, le=60, description="evaluation interval")
    # Evaluation shares the worker's interpreter (one core) with the stream: the next tick starts
    # no sooner than the last tick's CPU time divided by this share.
    max_cpu_share: float = Field(default=0.1, gt=0, le=1)
    # While the oldest raw message the worker has not made durable is older than this (catching
    # up after a restart, an outage, a backfill), today's stored activity is not current:
    # nothing is judged.
    max_lag_seconds: float = Field(default=60.0, gt=0)
    language: str = Field(default="en", pattern="^(en|ru)$")
    # Base of the links in messages; '' means the worker's own page on its web port.
    dashboard_url: str = ""
    alertmanager_url: str = ""
    alertmanager_resend_seconds: float = Field(default=60.0, gt=0, le=3600)
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None
    delivery_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # A notice a channel could not take is retried with capped exponential backoff for this
    # long, then given up (counted, logged; the history in ClickHouse and Kafka keeps it).
    delivery_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # The longest wait between two attempts: how soon a receiver that comes back is served.
    delivery_retry_cap_seconds: float = Field(default=60.0, gt=0, le=3600)
    delivery_queue_max: int = Field(default=10_000, ge=10)

    @field_validator("alertmanager_url", "webhook_url", "dashboard_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            # The value is not quoted: a webhook URL may carry its token.
            raise ValueError("not an http(s) URL")
        return value.rstrip("/")
