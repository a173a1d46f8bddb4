"""Settings of scheduled reports and their delivery (``SALESPULSE_REPORTS__*``).

Flat on purpose: every setting is one environment variable; the schedule is a JSON list.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from salespulse.models import TimeZoneName

PeriodName = Literal["day", "week", "month"]
WeekdayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAY_NAMES: tuple[WeekdayName, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class ReportSchedule(BaseModel):
    """One scheduled report: which period, when (local wall clock) and for whom."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    period: PeriodName
    at: str = Field(description="local time HH:MM at which the report is made")
    timezone: TimeZoneName | None = None  # None: the section's timezone
    # day reports: the weekdays they are made on (empty: every day)
    weekdays: tuple[WeekdayName, ...] = ()
    # week reports: the weekday they are made on
    weekday: WeekdayName = "mon"
    # month reports: the day of the month they are made on
    day_of_month: int = Field(default=1, ge=1, le=28)
    # the period containing the run's local date, or the one before it; None: current for
    # day reports (a 19:00 report on the day), previous for weeks and months
    covers: Literal["current", "previous"] | None = None
    department: str | None = None
    manager: str | None = None
    to: tuple[str, ...] = ()  # empty: the section's mail_to

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a report name (lower case, digits, _ and -)")
        return value

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a local time like 19:00")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_addresses(value)

    @property
    def local_time(self) -> time:
        hours, minutes = self.at.split(":")
        return time(int(hours), int(minutes))

    @property
    def previous(self) -> bool:
        """Whether the report covers the period before the run's local date."""
        if self.covers is None:
            return self.period != "day"
        return self.covers == "previous"


def _check_addresses(value: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    for address in value:
        if not _ADDRESS.match(address):
            raise ValueError(f"{address!r} is not an e-mail address")
    return tuple(value)


class ReportsSettings(BaseModel):
    # A misspelt key is refused rather than ignored (SMTP_PASWORD: mail sent without a login).
    model_config = ConfigDict(extra="forbid")

    schedule: list[ReportSchedule] = Field(default_factory=list)
    timezone: TimeZoneName = "UTC"
    language: str = Field(default="en", pattern="^(en|ru)$")
    # Where reports are written (file names carry the period and its first date); None: not.
    directory: Path | None = None
    smtp_host: str = ""  # empty: no e-mail
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_user: str = ""
    smtp_password: SecretStr | None = None
    smtp_cafile: Path | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    mail_from: str = ""
    mail_to: list[str] = Field(default_factory=list)
    # A delivery that failed is tried again after retry_initial_seconds, doubling up to
    # retry_max_seconds, at most delivery_attempts times in all.
    delivery_attempts: int = Field(default=5, ge=1, le=100)
    retry_initial_seconds: float = Field(default=10.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)
    # Spreadsheet programs read a UTF-8 CSV with Cyrillic names correctly only with a BOM.
    csv_bom: bool = False

    @field_validator("mail_to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return list(_check_addresses(value))

    @field_validator("mail_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        if value:
            _check_addresses([value.rsplit("<", 1)[-1].rstrip(">").strip()])
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> ReportsSettings:
        names = [entry.name for entry in self.schedule]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"report names must be unique: {', '.join(repeated)}")
        return self

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)
