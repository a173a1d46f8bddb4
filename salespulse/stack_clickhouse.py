"""ClickHouse pieces of the local stack: locating (or installing) the server, its config, probes."""

from __future__ import annotations

import http.client
import socket
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template
from xml.sax.saxutils import escape

from salespulse.locations import packaged
from salespulse.sections import StackSettings
from salespulse.stack_packages import StackError as StackError
from salespulse.stack_packages import find_binary

CLICKHOUSE_PACKAGES = ("clickhouse-server", "clickhouse-client")
TEMPLATE_DIR = packaged("salespulse", "stack_templates", "clickhouse")
LISTEN_HOST = "127.0.0.1"
# /usr/sbin is often missing from a non-root PATH, and Debian installs the server there.
_WELL_KNOWN_PATHS = (Path("/usr/sbin/clickhouse-server"), Path("/usr/bin/clickhouse-server"))


def find_clickhouse_server(explicit: Path | None = None, *, install_missing: bool = True) -> Path:
    """The clickhouse-server binary: ``explicit``, else from PATH, else installed via apt."""
    return find_binary(
        explicit,
        ("clickhouse-server",),
        _WELL_KNOWN_PATHS,
        CLICKHOUSE_PACKAGES,
        install_missing=install_missing,
    )


def clickhouse_dir(settings: StackSettings) -> Path:
    return settings.state_dir / "clickhouse"


def clickhouse_config_path(settings: StackSettings) -> Path:
    return clickhouse_dir(settings) / "config.xml"


def clickhouse_log_path(settings: StackSettings) -> Path:
    return clickhouse_dir(settings) / "clickhouse-server.log"


def clickhouse_error_log_path(settings: StackSettings) -> Path:
    return clickhouse_dir(settings) / "clickhouse-server.err.log"


def render_clickhouse_config(
    settings: StackSettings, *, template_dir: Traversable | None = None
) -> Path:
    """Write config.xml and users.xml for the stack's ClickHouse; return the config.xml path."""
    source = template_dir or TEMPLATE_DIR
    target = clickhouse_dir(settings).resolve()
    data_dir = target / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    users_path = target / "users.xml"
    users_path.write_bytes(source.joinpath("users.xml").read_bytes())
    template = Template(source.joinpath("config.xml.template").read_text(encoding="utf-8"))
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
