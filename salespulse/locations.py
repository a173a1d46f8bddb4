"""Where the service finds the files it ships and where it keeps its state.

The files it reads (migrations, example configuration, the local stack's ClickHouse templates)
are package data, found through ``importlib.resources`` whether the packages run from a source
checkout, an editable install or an installed wheel. State is written into the checkout's
``.state/`` when running from one, else under the current directory's ``.state/`` — never into
site-packages. Imports nothing of salespulse: every layer may use it.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

_PACKAGES_ROOT = Path(__file__).resolve().parent.parent


def packaged(package: str, *parts: str) -> Traversable:
    """A file or directory shipped inside ``package`` (``packaged("salespulse", "examples")``)."""
    resource = files(package)
    for part in parts:
        resource = resource.joinpath(part)
    return resource


def packaged_path(package: str, *parts: str) -> Path:
    """A shipped file as a filesystem path, for settings that hold a path (a default file that
    the operator replaces with their own, re-read when it changes).

    pip installs packages as plain files, so this is the file itself; from a zip archive,
    where it is not, the service refuses to start rather than point a setting at nothing.
    """
    resource = packaged(package, *parts)
    if isinstance(resource, Path):
        return resource
    raise RuntimeError(f"{package}/{'/'.join(parts)} is not a file on disk; install unzipped")


def source_checkout() -> Path | None:
    """The checkout the packages run from (``pyproject.toml`` beside them), else None."""
    pyproject = _PACKAGES_ROOT / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return _PACKAGES_ROOT if 'name = "salespulse"' in text else None


def state_root() -> Path:
    """Where state directories live by default: ``.state/`` of the checkout the packages run
    from, else ``.state/`` of the current directory (an installed package never writes into
    site-packages)."""
    checkout = source_checkout()
    return (checkout if checkout is not None else Path.cwd()) / ".state"
