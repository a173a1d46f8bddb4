"""Where secrets come from and how they are kept out of logs, errors and pages.

Secrets are the settings typed ``SecretStr`` plus the URLs that may carry a credential
(``https://user:pass@host``, ``?token=…``). Each may come from the environment, from a file named
by ``SALESPULSE_<SETTING>_FILE`` (the Docker and Kubernetes convention), or from a folder of files
named after the variables (``SALESPULSE_SECRETS_DIR``, e.g. a mounted Kubernetes secret).

Nothing here imports ``salespulse.settings``: the settings import this module.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NestedSecretsSettingsSource,
    SettingsError,
)
from pydantic_settings.sources import PydanticBaseSettingsSource

from salespulse.setting_names import (
    CONFIG_FILE_VARIABLE,
    DELIMITER,
    FILE_SUFFIX,
    PREFIX,
    KnownNames,
    setting_fields,
    unknown_variables,
)

# Plain-string settings that are URLs and may hold a credential in their user part or query.
CREDENTIAL_URLS = ("SALESPULSE_ALERTS__ALERTMANAGER_URL", "SALESPULSE_ALERTS__WEBHOOK_URL")
REDACTED = "***"
# What an unknown variable is handed on as: only its name matters, in the error that refuses it.
NOT_READ = "(not read)"
# Shorter values are not searched for in text: "ab" would blank every word containing it. A
# secret that short is no secret anyway.
MIN_REDACTED_LENGTH = 4

# Credentials that are recognisable by their shape, whatever their value.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host → scheme://***@host
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@"), r"\1" + REDACTED + "@"),
    # ?token=…, &api_key=…, ;password=… (any parameter whose name says it is a credential)
    (
        re.compile(
            r"([?&;][A-Za-z0-9_.\[\]-]*(?:token|secret|passw|pwd|key|sig|auth|credential)"
            r"[A-Za-z0-9_.\[\]-]*=)[^&#\s'\"]+",
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
    # A Bitrix24 inbound webhook: https://portal/rest/<user>/<secret>/
    (re.compile(r"(/rest/\d+/)[A-Za-z0-9]{6,}"), r"\1" + REDACTED),
    # An Authorization header's credentials; "Bearer" alone too, it is never an ordinary word
    # (while "Basic" is: "HTTP Basic password" must stay readable).
    (
        re.compile(
            r"\b(Authorization:\s*(?:Bearer|Basic)|Bearer)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE
        ),
        r"\1 " + REDACTED,
    ),
)

# Library debug lines that print what travels to and from Kafka: message bytes (source data,
# customer numbers and all), and whole protocol requests (a SASL handshake holds the password).
# The argument at that position is replaced by its size or type; the rest of the line stays.
_PAYLOAD_ARGUMENTS = {
    ("aiokafka.producer.producer", "Sending (key=%s value=%s) to %s"): 1,
    ("aiokafka.conn", "Request to %s:%d %d: %s"): 3,
    ("aiokafka.conn", "Response from %s:%d %d: %s"): 3,
}


def _is_secret_type(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def secret_paths(settings_cls: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    """Every secret setting: environment variable name → attribute path."""
    return {
        variable: path
        for variable, path, annotation in setting_fields(settings_cls)
        if _is_secret_type(annotation) or variable in CREDENTIAL_URLS
    }


class EnvironmentSource(EnvSettingsSource):
    """The environment, minus the ``…_FILE`` variables that name secret files (which
    ``SecretFilesSource`` reads): a section would otherwise take them for unknown settings.

    A ``SALESPULSE_`` variable that names no setting is handed on rather than dropped, so that
    the settings refuse it by name (``extra="forbid"``) along with any other problem. Its value
    is not: it is never used, and may be a secret under a misspelt name.
    """

    def __call__(self) -> dict[str, Any]:
        return _with_unknown_names(super().__call__(), self.env_vars, self.settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name: value
            for name, value in super()._load_env_vars().items()
            if not name.upper().endswith(FILE_SUFFIX)
        }


class SecretsFolderSource(NestedSecretsSettingsSource):
    """The files of ``SALESPULSE_SECRETS_DIR``, named after the variables. A file named like a
    setting that does not exist (``SALESPULSE_CLICKHOUSE__PASWORD``) is refused by name, as the
    same variable in the environment is: ignored, the password it holds would silently not be
    used. Other files (a Kubernetes mount's ``..data``, a README) are none of ours."""

    def __call__(self) -> dict[str, Any]:
        return _with_unknown_names(super().__call__(), self.env_vars, self.settings_cls)


def _with_unknown_names(
    data: dict[str, Any], names: Mapping[str, object], settings_cls: type[BaseSettings]
) -> dict[str, Any]:
    """``data`` plus every ``SALESPULSE_`` name in ``names`` that sets nothing, valued
    ``NOT_READ``, for the settings to refuse by name along with any other problem."""
    for name in unknown_variables(names, KnownNames.of(settings_cls)):
        key = name.removeprefix(PREFIX).lower()
        # One under a known section is already there, for the section to refuse.
        if not _present(data, key.split(DELIMITER)):
            data[key] = NOT_READ
    return data


def _present(data: Mapping[str, Any], path: list[str]) -> bool:
    value: Any = data
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


class SecretFilesSource(PydanticBaseSettingsSource):
    """``SALESPULSE_CLICKHOUSE__PASSWORD_FILE=/run/secrets/ch`` sets the ClickHouse password to
    that file's content (surrounding white space removed, as ``echo`` adds a line break).

    Only secret settings may be read this way; any other ``…_FILE`` name is an error, which
    also catches a misspelt one. Setting a variable and its ``…_FILE`` together is an error:
    which one wins would be a guess.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(settings_cls)
        self._environ = {
            k.upper(): v for k, v in (os.environ if environ is None else environ).items()
        }
        self._secrets = secret_paths(settings_cls)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads everything at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, location in sorted(self._environ.items()):
            if not (name.startswith(PREFIX) and name.endswith(FILE_SUFFIX)):
                continue
            if name == CONFIG_FILE_VARIABLE:
                continue
            variable = name.removesuffix(FILE_SUFFIX)
            path = self._secrets.get(variable)
            if path is None:
                raise SettingsError(
                    f"{name}: {variable} is not a secret setting; only these may be read from "
                    f"a file: {', '.join(sorted(self._secrets))}"
                )
            if variable in self._environ:
                raise SettingsError(f"{variable} and {name} are both set; set only one")
            try:
                text = Path(location).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise SettingsError(f"{name}: cannot read {location}: {reason}") from None
            target = values
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = text
        return values


_WHY_NOT_EMPTY = (
    "empty or only white space: refused, since an empty credential matches a request that "
    "carries none (an empty or missing file read with $(cat ...) gives one too); leave the "
    "setting unset instead"
)


def _given(container: object, name: str) -> object | None:
    """The value given for ``name`` in raw settings input: a mapping (the environment, files)
    or a section object built in code, where only what was set counts, not defaults."""
    if isinstance(container, Mapping):
        return container.get(name)
    if isinstance(container, BaseModel) and name in container.model_fields_set:
        value: object = getattr(container, name)
        return value
    return None


def given_secrets(
    data: object, settings_cls: type[BaseModel]
) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """Each secret setting given in raw settings input, as (variable, path, text)."""
    for variable, path in secret_paths(settings_cls).items():
        value: object = data
        for part in path:
            value = _given(value, part)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            yield variable, path, value


def secrets_in_input(data: object, settings_cls: type[BaseModel]) -> list[str]:
    """The values given for secret settings in raw settings input."""
    return [
        part for _, _, text in given_secrets(data, settings_cls) for part in credential_parts(text)
    ]


def refuse_blank_secrets(data: object, settings_cls: type[BaseModel]) -> None:
    """A ValidationError naming every ``SecretStr`` setting given as empty or white space.

    Defaults are not given: ClickHouse's empty password (no password) stays valid. The URLs
    among the secrets are plain strings whose empty value means "not used", compared with no
    request, so they are not refused. Checked before the sections' own validators, so that
    every empty secret is reported in the same words.
    """
    details: list[InitErrorDetails] = [
        {"type": PydanticCustomError("blank_secret", _WHY_NOT_EMPTY), "loc": path, "input": None}
        for variable, path, text in given_secrets(data, settings_cls)
        if variable not in CREDENTIAL_URLS and not text.strip()
    ]
    if details:
        refused = ValidationError.from_exception_data(settings_cls.__name__, details)
        raise redacted_validation_error(refused, [])


def credential_parts(value: str) -> list[str]:
    """The values worth hiding in one secret setting: all of it, and for a URL also its
    password and query values (which may appear in text without the rest of the URL)."""
    parts = [value]
    if "://" in value:
        try:
            url = urlsplit(value)
            parts += [url.password or ""]  # not the user name: "hook" would blank "webhook"
            parts += [v for _, v in parse_qsl(url.query)]
        except ValueError:
            pass
    return [part for part in parts if len(part) >= MIN_REDACTED_LENGTH]


def secret_values(settings: BaseModel) -> list[str]:
    """The configured secret values of a settings object, to redact from any text."""
    found: list[str] = []
    for variable, path in secret_paths(type(settings)).items():
        value: object = settings
        for part in path:
            value = getattr(value, part, None)
        if isinstance(value, SecretStr):
            found += credential_parts(value.get_secret_value())
        elif isinstance(value, str) and variable in CREDENTIAL_URLS:
            # Only the credential of a URL: the rest of it is the address people need to see.
            found += [part for part in credential_parts(value) if part != value]
    return found


def environment_secrets(
    settings_cls: type[BaseModel], environ: Mapping[str, str] | None = None
) -> list[str]:
    """Secret values set in the environment, known before the settings have loaded (so that
    an error while loading them can be redacted too)."""
    environ = os.environ if environ is None else environ
    found: list[str] = []
    for variable in secret_paths(settings_cls):
        value = environ.get(variable, "")
        if variable in CREDENTIAL_URLS:
            found += [part for part in credential_parts(value) if part != value]
        else:
            found += credential_parts(value)
    return found


class Redactor:
    """Replaces known secret values and credential-shaped text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets |= {s for s in secrets if len(s) >= MIN_REDACTED_LENGTH}
        if self._secrets:
            # Longest first: a secret containing another is hidden whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def record(self, record: logging.LogRecord) -> logging.LogRecord:
        """The log record with its message and traceback redacted."""
        payload = _PAYLOAD_ARGUMENTS.get((record.name, str(record.msg)))
        if payload is not None and isinstance(record.args, tuple) and len(record.args) > payload:
            args = list(record.args)
            value = args[payload]
            args[payload] = (
                f"<{len(value)} bytes>" if isinstance(value, bytes) else f"<{type(value).__name__}>"
            )
            record.args = tuple(args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        redacted = self(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = self(text)  # formatters print exc_text when it is set
        return record


_ACTIVE = Redactor()


def redact(text: str) -> str:
    """``text`` with every secret known to this process hidden."""
    return _ACTIVE(text)


def install_log_redaction(secrets: Iterable[str] = ()) -> Redactor:
    """Redact every log record this process creates from now on, whoever configures the
    handlers later (faust replaces them when the worker starts): the record factory is
    process-wide and outlives handler changes. Further calls add secrets."""
    _ACTIVE.add(secrets)
    current: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    if not getattr(current, "redacting", False):

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return _ACTIVE.record(current(*args, **kwargs))

        factory.redacting = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
    return _ACTIVE


def redacted_validation_error(
    exc: ValidationError, secrets: Iterable[str], known: KnownNames | None = None
) -> ValidationError:
    """``exc`` with every message redacted and naming its variable: a validator may quote the
    value it refused (a URL with a token in it), and hiding inputs does not hide what a message
    says. With ``known``, a name that is no setting also gets the one it probably meant."""
    redactor = Redactor(secrets)
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        message = redactor(error["msg"])
        variable = _variable(error["loc"])
        if variable is not None:
            if error["type"] == "extra_forbidden":
                message = _no_such_setting(variable, known)
            message = f"{variable}: {message}"
        # Braces would be read as placeholders of the message template.
        template = message.replace("{", "(").replace("}", ")")
        details.append(
            {
                "type": PydanticCustomError(error["type"], template),
                "loc": error["loc"],
                "input": None,
            }
        )
    return ValidationError.from_exception_data(exc.title, details, hide_input=True)


def _variable(loc: tuple[int | str, ...]) -> str | None:
    """The environment variable of an error's location; None for the whole model or for a
    place deeper than a section's setting (an item of a list)."""
    if not loc or len(loc) > 2 or not all(isinstance(part, str) for part in loc):
        return None
    return PREFIX + DELIMITER.join(str(part).upper() for part in loc)


def _no_such_setting(variable: str, known: KnownNames | None) -> str:
    meant = known.closest(variable) if known is not None else None
    hint = f"; did you mean {meant}?" if meant else ""
    return f"no such setting, refused rather than ignored{hint}"
