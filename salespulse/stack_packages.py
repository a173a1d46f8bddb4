"""Finding the local stack's server binaries, installing the Debian package when one is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from salespulse.errors import ConfigurationError


class StackError(ConfigurationError):
    """The local stack could not be brought up, inspected or stopped; the message says why."""


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def apt_install(packages: tuple[str, ...]) -> None:
    """``apt-get install -y`` the Debian ``packages``, refreshing the package lists if need be."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", *packages]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if first.returncode == 0:
        return
    # A fresh container has empty package lists: apt then reports no candidate at all.
    output = first.stdout + first.stderr
    if "no installation candidate" not in output and "Unable to locate package" not in output:
        raise StackError(f"`{' '.join(command)}` failed:\n{output[-2000:]}")
    subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if second.returncode != 0:
        raise StackError(
            f"`{' '.join(command)}` failed after apt-get update:\n"
            f"{(second.stdout + second.stderr)[-2000:]}"
        )


def can_apt_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def find_binary(
    explicit: Path | None,
    names: Sequence[str],
    well_known: Sequence[Path],
    packages: tuple[str, ...],
    *,
    install_missing: bool,
) -> Path:
    """A server binary: ``explicit`` if given, else one of ``names`` on PATH or a
    ``well_known`` path, else installed from the Debian ``packages`` (as root, with apt).

    An explicit path is never replaced by a search result: a caller who names a binary wants
    that one, so a missing explicit binary is an error even when another one is installed.
    """
    hint = f"apt-get install {' '.join(packages)}"
    what = names[0]
    if explicit is not None:
        if _is_executable(explicit):
            return explicit
        raise StackError(f"{what} not found at {explicit}; install it with `{hint}`")

    def search() -> Path | None:
        for name in names:
            found = shutil.which(name)
            if found:
                return Path(found)
        return next((path for path in well_known if _is_executable(path)), None)

    found = search()
    if found is not None:
        return found
    if not (install_missing and can_apt_install()):
        raise StackError(f"{what} is not installed; install it with `{hint}`")
    apt_install(packages)
    found = search()
    if found is None:
        places = ", ".join(str(path) for path in well_known)
        raise StackError(f"`{hint}` succeeded but {what} appeared neither on PATH nor in {places}")
    return found
