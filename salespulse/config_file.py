"""The YAML configuration file (``SALESPULSE_CONFIG_FILE``) as a settings source.

pydantic-settings' own YAML source reads with plain ``yaml.safe_load``: an alias bomb or deep
nesting in the file costs minutes or a ``RecursionError``, and a file that is YAML but not a
mapping fails with a bare ``TypeError``. This one reads with the bounds of ``yaml_limits`` and
refuses every bad file with a ``SettingsError`` naming the file; the message quotes no line of
it, since the file may hold secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import SettingsError, YamlConfigSettingsSource

from salespulse import yaml_limits
from salespulse.yaml_limits import yaml_problem


class ConfigFileSource(YamlConfigSettingsSource):
    def _read_file(self, file_path: Any) -> dict[str, Any]:
        path = Path(file_path)
        try:
            data = yaml_limits.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"config file {path}: cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SettingsError(f"config file {path}: not UTF-8 text") from None
        except yaml.YAMLError as exc:
            raise SettingsError(
                f"config file {path}: YAML does not parse: {yaml_problem(exc)}"
            ) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise SettingsError(
                f"config file {path}: must be a mapping of sections (kafka:, clickhouse: ...), "
                f"not a {type(data).__name__}"
            )
        return data
