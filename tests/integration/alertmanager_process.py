"""A real Alertmanager (Debian's ``prometheus-alertmanager``) as a plain process for tests.

On a free port, with its config and storage in a temporary directory and clustering off (an
empty ``--cluster.listen-address``), so it runs beside any other Alertmanager on the machine.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from salespulse.stack_settings import free_ports

BINARY = Path("/usr/bin/prometheus-alertmanager")
# Every alert goes to a receiver that notifies nobody: the tests read the API, not a pager.
CONFIG = """\
route:
  receiver: nobody
  group_wait: 1h
receivers:
  - name: nobody
"""


class AlertmanagerProcess:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, ready_within: float = 15.0) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: ./dev.sh setup installs it")
        config = self.state_dir / "alertmanager.yml"
        config.write_text(CONFIG)
        log = (self.state_dir / "alertmanager.log").open("wb")
        self._process = subprocess.Popen(
            [
                str(BINARY),
                f"--config.file={config}",
                f"--storage.path={self.state_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Alertmanager exited; see {self.state_dir}/alertmanager.log")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Alertmanager not ready within {ready_within} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` with query filters (``active='true'``, ``filter=...``)."""
        query = urllib.parse.urlencode(filters)
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=5) as response:
            result: list[dict[str, Any]] = json.loads(response.read())
            return result
