"""A real MariaDB server from Debian's package, as a plain process on a free loopback port, for
the tests of the CDR table follower: what FreePBX, Issabel and VitalPBX keep their CDRs in."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql

from salespulse.stack_settings import free_ports

MARIADBD = "/usr/sbin/mariadbd"
START_SECONDS = 60.0

# FreePBX's own table (asteriskcdrdb.cdr, as its installer creates it), with the indexes it
# creates: the follower may only use those.
FREEPBX_CDR_TABLE = """
CREATE TABLE cdr (
  calldate datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  clid varchar(80) NOT NULL DEFAULT '',
  src varchar(80) NOT NULL DEFAULT '',
  dst varchar(80) NOT NULL DEFAULT '',
  dcontext varchar(80) NOT NULL DEFAULT '',
  channel varchar(80) NOT NULL DEFAULT '',
  dstchannel varchar(80) NOT NULL DEFAULT '',
  lastapp varchar(80) NOT NULL DEFAULT '',
  lastdata varchar(80) NOT NULL DEFAULT '',
  duration int(11) NOT NULL DEFAULT '0',
  billsec int(11) NOT NULL DEFAULT '0',
  disposition varchar(45) NOT NULL DEFAULT '',
  amaflags int(11) NOT NULL DEFAULT '0',
  accountcode varchar(20) NOT NULL DEFAULT '',
  uniqueid varchar(32) NOT NULL DEFAULT '',
  userfield varchar(255) NOT NULL DEFAULT '',
  did varchar(50) NOT NULL DEFAULT '',
  recordingfile varchar(255) NOT NULL DEFAULT '',
  cnum varchar(80) NOT NULL DEFAULT '',
  cnam varchar(80) NOT NULL DEFAULT '',
  outbound_cnum varchar(80) NOT NULL DEFAULT '',
  outbound_cnam varchar(80) NOT NULL DEFAULT '',
  dst_cnam varchar(80) NOT NULL DEFAULT '',
  linkedid varchar(32) NOT NULL DEFAULT '',
  peeraccount varchar(80) NOT NULL DEFAULT '',
  sequence int(11) NOT NULL DEFAULT '0',
  KEY calldate (calldate),
  KEY dst (dst),
  KEY accountcode (accountcode)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


@dataclass(frozen=True)
class MariaDb:
    port: int

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", database=database, autocommit=True
        )

    def execute(self, sql: str, args: object = None, database: str | None = None) -> None:
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
        finally:
            connection.close()


@contextmanager
def running_mariadb(folder: Path) -> Iterator[MariaDb]:
    """A fresh server with its data in ``folder``, stopped on the way out."""
    data = folder / "data"
    data.mkdir(parents=True)
    install = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
        ],
        check=True,
        capture_output=True,
    )
    (port,) = free_ports(1)
    server = subprocess.Popen(
        [
            MARIADBD,
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={folder / 'sock'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            "--skip-name-resolve",
            f"--log-error={folder / 'error.log'}",
            f"--pid-file={folder / 'pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server_db = MariaDb(port)
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                server_db.connect().close()
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield server_db
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
