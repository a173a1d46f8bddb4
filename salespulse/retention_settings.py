"""How long each kind of stored data is kept (``SALESPULSE_RETENTION__*``), in days; 0 keeps it
for ever. docs/retention.md gives the reasons for the defaults and the limits.

The limits protect what the product itself reads: alert baselines read eight weeks of history
and overdue tasks are considered for 45 days, so events are kept at least 90 days; the alerts
that are open at a restart are read back from up to 45 days of alert history; rollups are
recomputed from events, so they are kept at least as long as the events (a day whose events are
gone can never be rebuilt). More than 36,500 days (a century) is a mistake, not a policy.
"""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

MAX_DAYS = 36_500
# The least each setting may be when it is not 0, and why.
MINIMUM_DAYS = {
    "events_days": 90,  # eight weeks of baselines, 45 days of open tasks, last month's report
    "rollups_days": 90,  # and never less than events_days (checked below)
    "alerts_days": 45,  # the open alerts of overdue tasks are restored from 45 days back
    "ingest_batches_days": 7,  # a week to see which offsets were processed twice
}


class RetentionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events_days: int = Field(
        default=400, description="raw events: a year plus a month, so a year compares with the last"
    )
    rollups_days: int = Field(
        default=1830, description="dashboard rollups (15-minute, daily, payments): five years"
    )
    alerts_days: int = Field(default=400, description="alert history and its delivery log")
    ingest_batches_days: int = Field(default=30, description="the log of processed batches")
    apply_in_worker: bool = Field(
        default=True, description="the group leader applies the retention once a day"
    )

    @field_validator("events_days", "rollups_days", "alerts_days", "ingest_batches_days")
    @classmethod
    def _days(cls, value: int, info: ValidationInfo) -> int:
        least = MINIMUM_DAYS[str(info.field_name)]
        if value != 0 and not least <= value <= MAX_DAYS:
            raise ValueError(f"must be 0 (keep for ever) or from {least} to {MAX_DAYS} days")
        return value

    @model_validator(mode="after")
    def _rollups_outlive_events(self) -> RetentionSettings:
        if _shorter(self.rollups_days, self.events_days):
            raise ValueError(
                "rollups_days must be 0 or at least events_days: rollups are recomputed from "
                "the events, and a day whose events are kept must keep its rollups"
            )
        return self


def _shorter(days: int, than: int) -> bool:
    """Whether a retention of ``days`` keeps less than one of ``than`` (0 is for ever)."""
    if days == 0:
        return False
    return than == 0 or days < than
