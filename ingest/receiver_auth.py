"""The HTTP receiver's settings, who may post to it, how often, and what a body must look like.
Nothing here imports ``salespulse.settings``, so the main settings can include
``ReceiverSettings``.

Credentials are compared with ``hmac.compare_digest`` so that the time an answer takes does not
reveal how much of a guess was right; every configured credential is checked, matched or not, for
the same reason. Nothing here logs a credential.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import math
import re
import time
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ingest.pacing import TokenBucket
from salespulse.errors import ConfigurationError, SourceError
from salespulse.models import SourceFamily

TOKEN_HEADER = "X-Salespulse-Token"  # noqa: S105 - a header name, not a secret
BITRIX24_TOKEN_FIELD = "auth[application_token]"  # noqa: S105 - a field name
# A Bitrix24 event has a dozen fields; the bound keeps a hostile body cheap to parse.
_MAX_FORM_FIELDS = 200
_FORMAT = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")


Auth = Literal["token", "token-or-basic", "bitrix24"]
# The route of the formats in ``generic_formats``; it takes the shared token.
GENERIC_PATH = "/ingest/{family}/{format}"
GENERIC_AUTH: Auth = "token"


class ReceiverNotSecured(ConfigurationError):
    """The receiver would refuse every request: no route has a credential configured."""


def usable(secret: SecretStr | None) -> bool:
    """Whether a credential is configured: an empty one would match a request carrying none."""
    return secret is not None and bool(secret.get_secret_value().strip())


def matches(given: str, expected: SecretStr | None) -> bool:
    """Whether ``given`` is the credential ``expected``; never for a credential not configured,
    whatever was given (an empty token, an empty Basic password)."""
    if expected is None or not usable(expected):  # "is None" for the type checker
        return False
    # A header's bytes beyond ASCII arrive as surrogate escapes: compare the bytes as sent.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.get_secret_value().encode()
    )


@dataclass(frozen=True)
class Credentials:
    shared_token: SecretStr | None = None
    basic_user: str | None = None
    basic_password: SecretStr | None = None

    def check_headers(self, headers: Mapping[str, str], *, allow_basic: bool) -> bool:
        """Whether the request carries the shared token (``Authorization: Bearer`` or
        ``X-Salespulse-Token``) or, if allowed, the Basic user and password."""
        authorization = headers.get("Authorization", "")
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        bearer = value.strip() if scheme == "bearer" else ""
        token_ok = matches(bearer, self.shared_token) | matches(
            headers.get(TOKEN_HEADER, ""), self.shared_token
        )
        basic_ok = False
        if allow_basic and scheme == "basic":
            user, password = _basic_pair(value.strip())
            expected_user = SecretStr(self.basic_user) if self.basic_user is not None else None
            # "&" rather than "and": both comparisons always run.
            basic_ok = matches(user, expected_user) & matches(password, self.basic_password)
        return token_ok or basic_ok

    def basic_configured(self) -> bool:
        user = SecretStr(self.basic_user) if self.basic_user is not None else None
        return usable(user) and usable(self.basic_password)


def _basic_pair(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


class FormError(SourceError, ValueError):
    """A body that is not an ``application/x-www-form-urlencoded`` form."""


def parse_form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError("not a URL-encoded form") from exc
    return dict(pairs)


def without_credentials(form: Mapping[str, str]) -> bytes:
    """A Bitrix24 form body minus its ``auth[...]`` fields, to store instead of the original.

    The application token and OAuth tokens travel in the body; kept, they would sit in Kafka
    and in every dead letter. Everything else is kept in order as the portal sent it.
    """
    return urlencode([(k, v) for k, v in form.items() if not k.startswith("auth[")]).encode()


def check_bitrix24(form: Mapping[str, str], application_token: SecretStr | None) -> bool:
    """Bitrix24 signs outgoing events with the application token in the body, not a header."""
    return matches(form.get(BITRIX24_TOKEN_FIELD, ""), application_token)


class RateLimiter:
    """A token bucket per client address: ``rate`` requests per second, bursts of ``burst``.

    Memory stays bounded: at most ``max_clients`` buckets, the least recently seen dropped
    first. A dropped bucket was idle the longest, so it has most likely refilled anyway.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, client: str) -> float:
        """0 if the request may proceed, else the seconds until it would."""
        bucket = self._buckets.pop(client, None) or TokenBucket(
            self.rate, self.burst, clock=self._clock
        )
        self._buckets[client] = bucket
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return bucket.try_take()


def forwarded_client(header_lines: Sequence[str], trusted_hops: int) -> str | None:
    """The client address behind ``trusted_hops`` proxies, from X-Forwarded-For, or None.

    Each proxy appends the address it received the request from, so the nearest one's entry is
    last and the client's, as the farthest trusted proxy saw it, is ``trusted_hops`` from the
    right; everything left of it is whatever the client chose to send. Several header lines
    count as one list in their order (RFC 9110 5.3), or a client's own extra line would be read
    first. A chain shorter than the proxies, or an entry that is not an IP address, is None.
    """
    entries = [entry.strip() for line in header_lines for entry in line.split(",")]
    if len(entries) < trusted_hops:
        return None
    try:
        # Normalised, so that one address cannot be spelt two ways to get two buckets.
        return str(ipaddress.ip_address(entries[-trusted_hops]))
    except ValueError:
        return None


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


class RouteSettings(BaseModel):
    # A misspelt key ("auht") would leave the route with the default authentication.
    model_config = ConfigDict(extra="forbid")

    path: str = Field(pattern=r"^/[A-Za-z0-9/_.-]*$")
    format: str = Field(pattern=_FORMAT.pattern)
    family: SourceFamily
    auth: Auth = "token"
    body: Literal["json-lines", "freeswitch-cdr", "bitrix24-form"] = "json-lines"
    key: str | None = Field(
        default=None, max_length=255, description="Kafka key unless the request sets one"
    )

    @model_validator(mode="after")
    def _token_in_body(self) -> RouteSettings:
        # The Bitrix24 application token travels inside the form body.
        if self.auth == "bitrix24" and self.body != "bitrix24-form":
            raise ValueError("auth bitrix24 needs body bitrix24-form")
        return self


DEFAULT_ROUTES = [
    RouteSettings(
        path="/ingest/freeswitch/json-cdr",
        format="freeswitch-json-cdr",
        family=SourceFamily.PBX,
        auth="token-or-basic",
        body="freeswitch-cdr",
        key="freeswitch",
    ),
    RouteSettings(
        path="/ingest/bitrix24/event",
        format="bitrix24-event-webhook",
        family=SourceFamily.CRM,
        auth="bitrix24",
        body="bitrix24-form",
    ),
]


class ReceiverSettings(BaseModel):
    # A validation error would otherwise quote the rejected value, which may be a credential;
    # a misspelt key would leave the credential meant unset.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    host: str = Field(default="127.0.0.1", description="listen address; a proxy faces the world")
    port: int = Field(default=8470, ge=1, le=65535)
    shared_token: SecretStr | None = Field(
        default=None, description="Bearer / X-Salespulse-Token for every token route"
    )
    basic_user: str | None = None
    basic_password: SecretStr | None = None
    bitrix24_application_token: SecretStr | None = None
    bitrix24_raw_events: dict[str, str] = Field(
        default_factory=lambda: {
            "ONVOXIMPLANTCALLEND": "bitrix24-call-end-event",
            "ONVOXIMPLANTCALLSTART": "bitrix24-call-start-event",
        },
        description="Bitrix24 events written as received, with this format, never transformed",
    )
    routes: list[RouteSettings] = Field(default_factory=lambda: list(DEFAULT_ROUTES))
    generic_formats: dict[str, SourceFamily] = Field(
        default_factory=lambda: {
            "chat-session-json": SourceFamily.CHAT,
            "crm-event-json": SourceFamily.CRM,
        },
        description="formats POST /ingest/{family}/{format} accepts (JSON Lines bodies)",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=4_000_000)
    rate_per_ip: float = Field(default=50.0, gt=0, description="sustained requests/s per client")
    burst: int = Field(default=100, ge=1, description="requests a client may send at once")
    trust_forwarded_for: bool = Field(
        default=False,
        description="rate-limit by the X-Forwarded-For entry the trusted proxies appended",
    )
    trusted_proxy_hops: int = Field(
        default=1,
        ge=1,
        le=16,
        description="proxies in front of the receiver that append to X-Forwarded-For",
    )
    read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="longest time to receive a body (then 408)"
    )
    keepalive_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="a connection that completes no request head for this long is closed: "
        "idle keep-alive connections and clients sending their headers slowly alike",
    )
    max_connections: int = Field(
        default=1000, ge=1, description="open connections; more are answered 503 and closed"
    )
    write_timeout_seconds: float = Field(
        default=15.0, gt=0, description="longest wait for Kafka's acknowledgement (then 503)"
    )
    shutdown_timeout_seconds: float = Field(
        default=20.0, gt=0, description="on stop, how long requests in flight may still finish"
    )
    unready_after_failure_seconds: float = Field(
        default=30.0, ge=0, description="/readyz is 503 this long after a failed Kafka write"
    )
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After of a 503")
    allow_anonymous: bool = Field(
        default=False,
        description="routes whose credential is not configured accept posts from anyone "
        "(logged at WARNING on start); without it they refuse every post, and a receiver "
        "none of whose routes has a credential does not start",
    )

    @field_validator("basic_user")
    @classmethod
    def _basic_user_not_blank(cls, value: str | None) -> str | None:
        # An empty user would be half of an empty credential; unset means no Basic login.
        if value is not None and not value.strip():
            raise ValueError("empty or only white space; leave it unset instead")
        return value

    @model_validator(mode="after")
    def _basic_pair(self) -> ReceiverSettings:
        # One without the other makes every Basic login fail: a mistake, not a choice.
        if (self.basic_user is None) != (self.basic_password is None):
            raise ValueError("basic_user and basic_password go together: set both or neither")
        return self

    def credentials(self) -> Credentials:
        return Credentials(self.shared_token, self.basic_user, self.basic_password)

    def route_auths(self) -> dict[str, Auth]:
        """Each path that takes posts and how it authenticates them: the routes, and the
        generic route while it has formats."""
        auths = {route.path: route.auth for route in self.routes}
        if self.generic_formats:
            auths.setdefault(GENERIC_PATH, GENERIC_AUTH)
        return auths

    def has_credential(self, auth: Auth) -> bool:
        """Whether a usable credential is configured for routes authenticating by ``auth``."""
        if auth == "bitrix24":
            return usable(self.bitrix24_application_token)
        if auth == "token-or-basic" and self.credentials().basic_configured():
            return True
        return usable(self.shared_token)

    def anonymous_auths(self) -> frozenset[Auth]:
        """The kinds of authentication waived: only with ``allow_anonymous``, and only where
        no credential is configured. Everywhere else a post without its credential is
        refused."""
        if not self.allow_anonymous:
            return frozenset()
        kinds: tuple[Auth, ...] = typing.get_args(Auth)
        return frozenset(kind for kind in kinds if not self.has_credential(kind))

    @field_validator("routes")
    @classmethod
    def _unique_paths(cls, routes: list[RouteSettings]) -> list[RouteSettings]:
        paths = [route.path for route in routes]
        if len(set(paths)) != len(paths):
            raise ValueError("two routes share a path")
        return routes

    @field_validator("generic_formats")
    @classmethod
    def _format_names(cls, formats: dict[str, SourceFamily]) -> dict[str, SourceFamily]:
        for name in formats:
            if not _FORMAT.match(name):
                raise ValueError(f"not a format name: {name!r}")
        return formats

    @field_validator("bitrix24_raw_events")
    @classmethod
    def _event_formats(cls, events: dict[str, str]) -> dict[str, str]:
        for name in events.values():
            if not _FORMAT.match(name):
                raise ValueError(f"not a format name: {name!r}")
        # Bitrix24 upper-cases event names in what it posts; so does the lookup.
        return {event.upper(): name for event, name in events.items()}


def json_lines_problem(body: bytes) -> str | None:
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        return "empty body"
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                return "each line must be a JSON object"
        except (ValueError, RecursionError):
            return "not JSON Lines: one JSON object per line"
    return None


def freeswitch_cdr_problem(body: bytes) -> str | None:
    """mod_json_cdr posts raw JSON, or ``cdr=<url-encoded JSON>`` with ``encode=true``, or
    ``cdr=<base64 JSON>`` with ``encode=base64``; told apart by the value's first characters, as
    the parser does, since a proxy may change the Content-Type."""
    try:
        if body.startswith(b"cdr="):
            value = body[4:].strip()
            if value[:1] == b"{" or value[:3].upper() == b"%7B":
                payload: bytes | str = parse_form(body).get("cdr", "")
            else:
                payload = base64.b64decode(value, validate=True)
        else:
            payload = body
        if isinstance(json.loads(payload), dict):
            return None
    except (ValueError, RecursionError, binascii.Error):
        pass
    return "neither a JSON CDR nor a cdr= form holding one"
