"""Alertmanager pieces of the local stack: locating (or installing) it, its config, its probe.

The stack's Alertmanager is where the demo's and the tests' alerts go: a real receiver of
``POST /api/v2/alerts`` whose API and web page show what salespulse sent. It notifies nobody
(every alert routes to a receiver without integrations) and runs without clustering (an empty
``--cluster.listen-address``), so it binds only its web port and never gossips with another
Alertmanager on the machine. ``stack.py`` starts, probes and stops it like the other services.
"""

from __future__ import annotations

import http.client
from pathlib import Path

from salespulse.sections import StackSettings
from salespulse.stack_clickhouse import LISTEN_HOST
from salespulse.stack_packages import find_binary

ALERTMANAGER_PACKAGE = "prometheus-alertmanager"
# Debian names the binary after its package; upstream tarballs call it plain ``alertmanager``.
_BINARY_NAMES = (ALERTMANAGER_PACKAGE, "alertmanager")
_WELL_KNOWN_DIR = Path("/usr/bin")
# 'null' is quoted: bare, YAML reads it as no name at all and Alertmanager rejects the config.
CONFIG = """\
# Written by `salespulse stack up`; rewritten at every start.
# Alerts are kept and shown (API, web page) but sent to nobody.
route:
  receiver: 'null'
receivers:
  - name: 'null'
"""


def find_alertmanager(explicit: Path | None = None, *, install_missing: bool = True) -> Path:
    """The Alertmanager binary: ``explicit``, else from PATH or /usr/bin, else via apt."""
    return find_binary(
        explicit,
        _BINARY_NAMES,
        tuple(_WELL_KNOWN_DIR / name for name in _BINARY_NAMES),
        (ALERTMANAGER_PACKAGE,),
        install_missing=install_missing,
    )


def alertmanager_dir(settings: StackSettings) -> Path:
    return settings.state_dir / "alertmanager"


def alertmanager_config_path(settings: StackSettings) -> Path:
    return alertmanager_dir(settings) / "alertmanager.yml"


def alertmanager_log_path(settings: StackSettings) -> Path:
    # Alertmanager logs to stderr, which the stack sends to the service's stdout log.
    return alertmanager_dir(settings) / "alertmanager.stdout.log"


def render_alertmanager_config(settings: StackSettings) -> Path:
    """Write the stack's alertmanager.yml and create its storage dir; return the config path."""
    (alertmanager_dir(settings) / "data").mkdir(parents=True, exist_ok=True)
    config_path = alertmanager_config_path(settings)
    config_path.write_text(CONFIG, encoding="utf-8")
    return config_path


def alertmanager_argv(binary: Path, settings: StackSettings) -> list[str]:
    # Absolute: the server runs in its own directory, where a relative state dir means nothing.
    return [
        str(binary),
        f"--config.file={alertmanager_config_path(settings).resolve()}",
        f"--storage.path={(alertmanager_dir(settings) / 'data').resolve()}",
        f"--web.listen-address={LISTEN_HOST}:{settings.alertmanager_port}",
        "--cluster.listen-address=",
    ]


def alertmanager_answers(settings: StackSettings, timeout: float = 1.0) -> bool:
    """True when ``GET /-/ready`` says ``OK``: the config is loaded and the API takes alerts."""
    # http.client rather than urllib: urllib honours http_proxy, which must not apply to loopback.
    conn = http.client.HTTPConnection(LISTEN_HOST, settings.alertmanager_port, timeout=timeout)
    try:
        conn.request("GET", "/-/ready")
        response = conn.getresponse()
        return response.status == 200 and response.read().strip() == b"OK"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
