"""Configuration: environment variables with the ``SALESPULSE_`` prefix, over an optional YAML file.

Nested sections use ``__``: ``SALESPULSE_KAFKA__BOOTSTRAP_SERVERS=broker:9092``. The file named by
``SALESPULSE_CONFIG_FILE`` has the same shape in YAML; the environment wins over it. Secrets are
``SecretStr`` so they never appear in logs, reprs or error messages, and may also be read from a
file: ``SALESPULSE_<SETTING>_FILE`` names one, ``SALESPULSE_SECRETS_DIR`` a folder of files named
after the variables (docs/security.md). Validation errors never quote what was given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ingest.ami_settings import AmiSettings
from ingest.bitrix24.settings import Bitrix24Settings
from ingest.cdr_table_settings import CdrTableSettings
from ingest.receiver_auth import ReceiverSettings
from ingest.tailer_state import TailerSettings
from salespulse.alert_settings import AlertsSettings
from salespulse.config_file import ConfigFileSource
from salespulse.locations import packaged_path
from salespulse.report_settings import ReportsSettings
from salespulse.retention_settings import RetentionSettings
from salespulse.secret_config import (
    EnvironmentSource,
    SecretFilesSource,
    SecretsFolderSource,
    redacted_validation_error,
    refuse_blank_secrets,
    secrets_in_input,
)
from salespulse.sections import (
    ClickHouseSettings,
    CountingSettings,
    KafkaSettings,
    LatenessSettings,
    ParsingSettings,
    StackSettings,
    TopicSettings,
    WorkerSettings,
)
from salespulse.setting_names import (
    CONFIG_FILE_VARIABLE,
    SECRETS_DIR_VARIABLE,
    KnownNames,
    section_model,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SALESPULSE_",
        env_nested_delimiter="__",
        extra="forbid",
        # An error must not quote what was given: it may be a secret under a misspelt name,
        # or a whole section's input (a password beside a missing user).
        hide_input_in_errors=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    topics: TopicSettings = TopicSettings()
    worker: WorkerSettings = WorkerSettings()
    # Factories: their defaults (state dirs, shipped files) are looked up when settings load.
    stack: StackSettings = Field(default_factory=StackSettings)
    parsing: ParsingSettings = ParsingSettings()
    directory_path: Path = Field(
        default_factory=lambda: packaged_path("salespulse", "examples", "directory.example.yaml")
    )
    counting: CountingSettings = CountingSettings()
    lateness: LatenessSettings = LatenessSettings()
    tailer: TailerSettings = Field(default_factory=TailerSettings)
    receiver: ReceiverSettings = ReceiverSettings()
    ami: AmiSettings | None = None
    cdr_table: CdrTableSettings | None = None
    bitrix24: Bitrix24Settings | None = None
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    reports: ReportsSettings = ReportsSettings()
    retention: RetentionSettings = RetentionSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: arguments, the environment, secret files, the secrets folder, the file.
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            EnvironmentSource(settings_cls),
            SecretFilesSource(settings_cls),
        ]
        secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
        if secrets_dir:
            sources.append(
                SecretsFolderSource(
                    file_secret_settings, secrets_dir=secrets_dir, secrets_dir_missing="error"
                )
            )
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            sources.append(ConfigFileSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @model_validator(mode="wrap")
    @classmethod
    def _errors_without_secrets(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Settings:
        refuse_blank_secrets(data, cls)
        try:
            settings: Settings = handler(data)
        except ValidationError as exc:
            known = KnownNames.of(cls)
            raise redacted_validation_error(exc, secrets_in_input(data, cls), known) from None
        return settings


def _flattened(settings: Settings) -> Iterator[tuple[str, object]]:
    """Every setting as (environment variable name, value), unset optional ones included."""
    for field_name in type(settings).model_fields:
        value = getattr(settings, field_name)
        prefix = f"SALESPULSE_{field_name.upper()}"
        section = section_model(type(settings).model_fields[field_name].annotation)
        if section is None:
            yield prefix, value
            continue
        for inner in section.model_fields:
            yield f"{prefix}__{inner.upper()}", None if value is None else getattr(value, inner)


def environment_names() -> list[str]:
    """The names of all environment variables salespulse reads (besides SALESPULSE_CONFIG_FILE)."""
    return [name for name, _ in _flattened(Settings())]


def to_environment(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce ``settings`` in a child process.

    Used to start a worker as its own process with exactly the parent's configuration (the demo,
    the end-to-end tests). Secrets are included in clear because the environment is where they
    belong; never log the result.
    """
    env: dict[str, str] = {}
    for name, value in _flattened(settings):
        if isinstance(value, SecretStr):
            # An empty secret is the default (no ClickHouse password): given, it is refused.
            value = value.get_secret_value() or None
        if value is None:
            continue
        # Lists and mappings travel as JSON, which is how pydantic-settings reads them back.
        env[name] = (
            json.dumps(TypeAdapter(type(value)).dump_python(value, mode="json"))
            if isinstance(value, list | tuple | dict)
            else str(value)
        )
    return env
