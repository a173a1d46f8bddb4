"""ZooKeeper, the coordinator behind a ClickHouse cluster: where Debian's jars are, its config,
the command line that starts it, and whether it answers.

Replicated tables and ``ON CLUSTER`` DDL need ZooKeeper. Debian's ``zookeeper`` package (3.8)
ships the server as jars whose manifests name every dependency, so ``java -cp zookeeper.jar
ZooKeeperServerMain zoo.cfg`` runs a standalone server as a plain process, like every other piece
of the stack: its own data dir and client port, bound to loopback, the admin web server (a fixed
port 8080 by default) off. The packaged init scripts and /etc/zookeeper are not used.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from salespulse.stack_clickhouse import LISTEN_HOST, StackError
from salespulse.stack_packages import apt_install, can_apt_install

ZOOKEEPER_PACKAGES = ("zookeeper",)
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
# A logger binding beside the jar, so the server's log reaches its stdout log; without one
# slf4j logs nothing at all.
_LOGGER_JAR = Path("/usr/share/java/slf4j-simple.jar")
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
INSTALL_HINT = "apt-get install -y zookeeper"


def find_java() -> Path:
    java = shutil.which("java")
    if java is None:
        raise StackError(f"ZooKeeper needs `java` on PATH; `{INSTALL_HINT}` brings one")
    return Path(java)


def find_zookeeper_jar(explicit: Path | None = None, *, install_missing: bool = True) -> Path:
    """Debian's zookeeper.jar: ``explicit``, else the packaged one, installed via apt if allowed."""
    jar = explicit or ZOOKEEPER_JAR
    if not jar.is_file() and explicit is None and install_missing and can_apt_install():
        apt_install(ZOOKEEPER_PACKAGES)
    if jar.is_file():
        return jar
    raise StackError(
        f"ZooKeeper (needed by a ClickHouse cluster) was not found at {jar}; `{INSTALL_HINT}`"
    )


def zookeeper_classpath(jar: Path) -> str:
    return ":".join(str(path) for path in (jar, _LOGGER_JAR) if path.is_file())


def render_zookeeper_config(directory: Path, client_port: int) -> Path:
    """Write ``zoo.cfg`` for a standalone server keeping its data under ``directory``."""
    target = directory.resolve()
    data_dir = target / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        # Short ticks: sessions of a stopped ClickHouse expire in seconds, not half a minute.
        "tickTime=500",
        f"dataDir={data_dir}",
        f"clientPort={client_port}",
        f"clientPortAddress={LISTEN_HOST}",
        "admin.enableServer=false",
        "4lw.commands.whitelist=ruok,srvr",
        "maxClientCnxns=0",
        # Snapshots and logs of a development server are not worth keeping around.
        "autopurge.snapRetainCount=3",
        "autopurge.purgeInterval=1",
    ]
    config = target / "zoo.cfg"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def zookeeper_args(jar: Path, config: Path) -> tuple[str, ...]:
    """The java command line after ``java`` itself."""
    return ("-Xmx256m", "-cp", zookeeper_classpath(jar), MAIN_CLASS, str(config.resolve()))


def zookeeper_answers(port: int, timeout: float = 1.0) -> bool:
    """True when the server serves requests: its ``srvr`` report names its mode. (``ruok`` says
    ``imok`` as soon as the port is open, before sessions are served; a ClickHouse connecting
    then gets no handshake and its DDL worker gives up.)"""
    try:
        with socket.create_connection((LISTEN_HOST, port), timeout=timeout) as conn:
            conn.sendall(b"srvr")
            report = b""
            while chunk := conn.recv(4096):
                report += chunk
    except OSError:
        return False
    return b"Mode: " in report
