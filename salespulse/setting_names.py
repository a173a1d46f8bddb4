"""The names of the settings as environment variables, found from the models; which
``SALESPULSE_`` variables name no setting, and which one a misspelt name probably meant.

pydantic-settings reads only the variables that match a field: ``SALESPULSE_FOO`` or a misspelt
section (``SALESPULSE_RECIEVER__SHARED_TOKEN``) would be dropped without a word, and the setting
meant would stay unset. The environment source hands such names on to validation, which refuses
them (``extra="forbid"``) together with any other problem. Every command loads the whole
``Settings``, so a typo is caught whichever command runs, even one that uses a single section.

Nothing here imports ``salespulse.settings``: the settings import this module.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

PREFIX = "SALESPULSE_"
DELIMITER = "__"
FILE_SUFFIX = "_FILE"
CONFIG_FILE_VARIABLE = "SALESPULSE_CONFIG_FILE"
SECRETS_DIR_VARIABLE = "SALESPULSE_SECRETS_DIR"

# Variables with the prefix that are not settings, and who reads them. The one place to add
# such a variable: any other SALESPULSE_ name is refused as a misspelt setting. Listed in
# docs/configuration.md.
NOT_SETTINGS: Mapping[str, str] = {
    CONFIG_FILE_VARIABLE: "the YAML file of settings",
    SECRETS_DIR_VARIABLE: "the folder of secret files",
    "SALESPULSE_VENV": "dev.sh: the virtual environment it builds and uses",
    "SALESPULSE_FAULTS": "tests/faults: ci or long",
    "SALESPULSE_FAULTS_SEED": "tests/faults: repeats a plan of kills",
    "SALESPULSE_FUZZ": "tests: ci or long fuzzing",
    # deploy/compose/docker-compose.yml interpolates it into the ClickHouse container and into
    # SALESPULSE_CLICKHOUSE__PASSWORD: an operator's shell or .env file holds it.
    "SALESPULSE_CLICKHOUSE_PASSWORD": "deploy/compose: the password compose hands out",
    # deploy/grafana provisioning: often set in the same environment as the service's.
    "SALESPULSE_GRAFANA_CLICKHOUSE_HOST": "deploy/grafana: the data source",
    "SALESPULSE_GRAFANA_CLICKHOUSE_PORT": "deploy/grafana: the data source",
    "SALESPULSE_GRAFANA_CLICKHOUSE_SECURE": "deploy/grafana: the data source",
    "SALESPULSE_GRAFANA_CLICKHOUSE_USER": "deploy/grafana: the data source",
    "SALESPULSE_GRAFANA_CLICKHOUSE_PASSWORD": "deploy/grafana: the data source",
    "SALESPULSE_GRAFANA_CLICKHOUSE_DATABASE": "deploy/grafana: the data source",
}


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model class of a section field, also when it is optional (``Model | None``)."""
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_mapping(annotation: Any) -> bool:
    return any(
        typing.get_origin(candidate) is dict
        for candidate in (annotation, *typing.get_args(annotation))
    )


def setting_fields(settings_cls: type[BaseModel]) -> Iterator[tuple[str, tuple[str, ...], Any]]:
    """Every setting as (environment variable, attribute path, type): the top-level settings
    and the fields of each section, not the sections themselves."""
    for name, field in settings_cls.model_fields.items():
        section = section_model(field.annotation)
        if section is None:
            yield f"{PREFIX}{name.upper()}", (name,), field.annotation
            continue
        for inner, inner_field in section.model_fields.items():
            variable = f"{PREFIX}{name.upper()}{DELIMITER}{inner.upper()}"
            yield variable, (name, inner), inner_field.annotation


@dataclass(frozen=True)
class KnownNames:
    """The variables that set something: each setting, each section (a whole section may be
    given as JSON), and any key below a mapping setting
    (``SALESPULSE_COUNTING__DEPARTMENT_CONVERSATION_MIN_SECONDS__SUPPORT=60``)."""

    exact: frozenset[str]
    mappings: tuple[str, ...]

    @classmethod
    def of(cls, settings_cls: type[BaseModel]) -> KnownNames:
        settings = list(setting_fields(settings_cls))
        sections = {f"{PREFIX}{name.upper()}" for name in settings_cls.model_fields}
        return cls(
            exact=frozenset({variable for variable, _, _ in settings} | sections),
            mappings=tuple(variable for variable, _, kind in settings if _is_mapping(kind)),
        )

    def knows(self, variable: str) -> bool:
        return variable in self.exact or variable.startswith(
            tuple(mapping + DELIMITER for mapping in self.mappings)
        )

    def closest(self, variable: str) -> str | None:
        """The setting a misspelt name most likely meant, compared without the common prefix
        (which would make every name look alike)."""
        bare = {name.removeprefix(PREFIX): name for name in self.exact}
        given = variable.removeprefix(PREFIX)
        # The whole name, then its section alone: SALESPULSE_RECIEVER__X meant the receiver.
        for candidate in (given, given.split(DELIMITER)[0]):
            found = difflib.get_close_matches(candidate, bare, n=1, cutoff=0.75)
            if found:
                return bare[found[0]]
        return None


def unknown_variables(environ: Mapping[str, object], known: KnownNames) -> list[str]:
    """The ``SALESPULSE_`` variables in ``environ`` that set nothing, upper-cased (names are
    matched regardless of case, as pydantic-settings reads them). ``…_FILE`` names are left to
    the secret-file source, which refuses those that name no secret setting."""
    names = {name.upper() for name in environ}
    return sorted(
        name
        for name in names
        if name.startswith(PREFIX)
        and name not in NOT_SETTINGS
        and not name.endswith(FILE_SUFFIX)
        and not known.knows(name)
    )
