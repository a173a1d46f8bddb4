"""One root for every error salespulse raises on purpose (salespulse/errors.py draws the tree):
the command line catches that one type, and no two error classes share a name."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections import defaultdict

import ingest
import processors
import queries
import salespulse
import sinks
from salespulse.errors import SalespulseError

PACKAGES = (salespulse, ingest, processors, sinks, queries)


def error_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        for module_info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if module_info.name.endswith(".__main__"):
                continue  # runs the command line when imported
            module = importlib.import_module(module_info.name)
            found += [
                cls
                for _, cls in inspect.getmembers(module, inspect.isclass)
                if issubclass(cls, BaseException)
                and cls.__module__ == module.__name__
                # Private ones steer control flow inside their module and never leave it.
                and not cls.__name__.startswith("_")
            ]
    return found


def test_every_error_class_derives_from_the_one_root() -> None:
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in error_classes()
        if not issubclass(cls, SalespulseError)
    ]
    assert strays == []


def test_no_two_error_classes_share_a_name() -> None:
    homes: dict[str, set[str]] = defaultdict(set)
    for cls in error_classes():
        homes[cls.__qualname__].add(cls.__module__)
    assert {name: sorted(m) for name, m in homes.items() if len(m) > 1} == {}
