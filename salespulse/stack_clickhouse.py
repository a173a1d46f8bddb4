"""ClickHouse pieces of the local stack: locating (or installing) the server, its config, probes."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
from pathlib import Path
from string import Template
from xml.sax.saxutils import escape

from salespulse.settings import REPO_ROOT, StackSettings

CLICKHOUSE_PACKAGES = ("clickhouse-server", "clickhouse-client")
INSTALL_HINT = "apt-get install clickhouse-server clickhouse-client"
TEMPLATE_DIR = REPO_ROOT / "deploy" / "clickhouse" / "server"
LISTEN_HOST = "127.0.0.1"
# /usr/sbin is often missing from a non-root PATH, and Debian installs the server there.
_WELL_KNOWN_PATHS = (Path("/usr/sbin/clickhouse-server"), Path("/usr/bin/clickhouse-server"))


class StackError(Exception):
    """The local stack could not be brought up, inspected or stopped; the message says why."""


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _search_clickhouse_server() -> Path | None:
    found = shutil.which("clickhouse-server")
    if found:
        return Path(found)
    return next((path for path in _WELL_KNOWN_PATHS if _is_executable(path)), None)


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


def find_clickhouse_server(explicit: Path | None = None, *, install_missing: bool = True) -> Path:
    """The clickhouse-server binary: ``explicit`` if given, else from PATH, else installed via apt.

    An explicit path is never replaced by a search result: a caller who names a binary wants
    that one, so a missing explicit binary is an error even when another one is installed.
    """
    if explicit is not None:
        if _is_executable(explicit):
            return explicit
        raise StackError(
            f"clickhouse-server not found at {explicit}; install the clickhouse-server "
            f"package (`{INSTALL_HINT}`)"
        )
    found = _search_clickhouse_server()
    if found is not None:
        return found
    if not (install_missing and can_apt_install()):
        raise StackError(f"clickhouse-server is not installed; install it with `{INSTALL_HINT}`")
    apt_install(CLICKHOUSE_PACKAGES)
    found = _search_clickhouse_server()
    if found is None:
        raise StackError(
            f"`{INSTALL_HINT}` succeeded but no clickhouse-server binary appeared on PATH "
            f"or in {', '.join(str(p) for p in _WELL_KNOWN_PATHS)}"
        )
    return found


def clickhouse_dir(settings: StackSettings) -> Path:
    return settings.state_dir / "clickhouse"


def clickhouse_config_path(settings: StackSettings) -> Path:
    return clickhouse_dir(settings) / "config.xml"


def clickhouse_log_path(settings: StackSettings) -> Path:
    return clickhouse_dir(settings) / "clickhouse-server.log"


def clickhouse_error_log_path(settings: StackSettings) -> Path:
    return clickhouse_dir(settings) / "clickhouse-server.err.log"


def render_clickhouse_config(settings: StackSettings, *, template_dir: Path | None = None) -> Path:
    """Write config.xml and users.xml for the stack's ClickHouse; return the config.xml path."""
    source = template_dir or TEMPLATE_DIR
    target = clickhouse_dir(settings).resolve()
    data_dir = target / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    users_path = target / "users.xml"
    shutil.copyfile(source / "users.xml", users_path)
    template = Template((source / "config.xml.template").read_text(encoding="utf-8"))
    rendered = template.substitute(
        # Paths are spliced into XML text, so a state dir containing & or < must stay valid XML.
        log_dir=escape(str(target)),
        data_dir=escape(str(data_dir)),
        users_config=escape(str(users_path)),
        listen_host=LISTEN_HOST,
        tcp_port=settings.clickhouse_tcp_port,
        http_port=settings.clickhouse_http_port,
    )
    config_path = target / "config.xml"
    config_path.write_text(rendered, encoding="utf-8")
    return config_path


def clickhouse_answers(settings: StackSettings, timeout: float = 1.0) -> bool:
    """True when HTTP /ping says ``Ok.`` and the native port accepts connections."""
    # http.client rather than urllib: urllib honours http_proxy, which must not apply to loopback.
    conn = http.client.HTTPConnection(LISTEN_HOST, settings.clickhouse_http_port, timeout=timeout)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        if response.status != 200 or response.read().strip() != b"Ok.":
            return False
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    try:
        with socket.create_connection((LISTEN_HOST, settings.clickhouse_tcp_port), timeout=timeout):
            return True
    except OSError:
        return False
