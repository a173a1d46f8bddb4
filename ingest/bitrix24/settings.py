"""Configuration of the Bitrix24 bridge: the portal's REST webhook and how hard to use it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from yarl import URL


class Bitrix24Settings(BaseModel):
    """One Bitrix24 portal.

    ``webhook_url`` is an *incoming* webhook (``https://<portal>/rest/<user id>/<secret>/``):
    the secret in its path is a password for the portal's CRM, so it is a ``SecretStr`` and is
    never logged. ``application_token`` is what the portal puts into every *outgoing* event
    (``auth[application_token]``); events without it are rejected.
    """

    # A validation error would otherwise quote the rejected URL, secret and all; a misspelt
    # key is refused rather than ignored.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    webhook_url: SecretStr
    application_token: SecretStr
    rate_per_second: float = Field(
        default=2.0,
        gt=0,
        le=1000,
        description="sustained REST requests per second; Bitrix24 cloud allows 2 per portal",
    )
    burst: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="requests allowed back to back before the rate applies; the portal's own "
        "allowance (50) is shared with every other integration, so stay well below it",
    )
    cache_ttl_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="how long a fetched entity answers repeated events for it; 0 disables",
    )
    cache_max_entries: int = Field(default=10_000, ge=1, le=1_000_000)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_retries: int = Field(
        default=4,
        ge=0,
        le=20,
        description="retries after the first attempt, on 5xx, 429, "
        "QUERY_LIMIT_EXCEEDED and network errors",
    )
    backoff_seconds: float = Field(
        default=0.5, ge=0, le=60, description="first retry delay; doubles with each retry"
    )
    backoff_max_seconds: float = Field(default=30.0, ge=0, le=600)
    openlines_lookback_seconds: float = Field(
        default=86_400.0,
        gt=0,
        le=30 * 86_400,
        description="how long before an Open Lines event was sent its session may have closed: "
        "the window of closing times searched for the session",
    )
    openlines_max_pages: int = Field(
        default=5,
        ge=1,
        le=50,
        description="pages of 200 sessions read from that window before giving the session up",
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_shape(cls, value: SecretStr) -> SecretStr:
        # Messages name the problem, never the URL: it holds the secret.
        text = value.get_secret_value().strip()
        try:
            url = URL(text)
        except ValueError:
            raise ValueError("webhook_url is not a URL") from None
        if url.scheme not in ("https", "http") or not url.host:
            raise ValueError("webhook_url must be an http(s) URL with a host")
        if url.query_string or url.fragment:
            raise ValueError("webhook_url must not have a query or fragment")
        return SecretStr(text if text.endswith("/") else text + "/")
