"""The tailer's state directory on a real full or read-only filesystem.

The directory is a tmpfs of 64 KiB mounted for the test (the suite runs as root, in CI too):
filled to the last page it gives a real ENOSPC, remounted read-only a real EROFS, which no
permission bit would give root. The tailer runs as ``salespulse tail`` runs. It must say what
fails and where, keep the position file it has (the previous position, still readable), ship
nothing it could not record, and go on by itself once the disk takes writes again; stopped
meanwhile, it re-sends at most the one chunk whose position it could not save.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from ingest.tailer_state import Position
from tests.faults.tcp_proxy import ProxiedBroker
from tests.faults.test_broker_outage import (
    RECORDS,
    TOPICS,
    TailedCdrFile,
    copies,
    read_topic,
    report,
    timed,
)
from tests.faults.test_broker_outage import broker as broker  # a fixture
from tests.integration.test_tailer import lines

pytestmark = pytest.mark.integration

Fault = Literal["full", "read-only"]
LINES_PER_MESSAGE = 50
TAILER_ENV = {"SALESPULSE_TAILER__LINES_PER_MESSAGE": str(LINES_PER_MESSAGE)}
STATE_ERRORS = "salespulse_bridge_errors_total"
SIZE_BYTES = 64 * 1024


@contextlib.contextmanager
def small_filesystem(path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs at ``path`` for the body of the ``with``, unmounted after whatever
    happened (lazily, if a process the test failed to stop still holds a file there)."""
    path.mkdir(parents=True)
    options = f"size={SIZE_BYTES}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        while path.is_mount():  # a read-only view left on top by a failed test, then the tmpfs
            if subprocess.run(["umount", str(path)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Take every free page of the filesystem: the next write there fails with ENOSPC."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as file:
        file.write(b"\0" * SIZE_BYTES)  # a short write: what fits
        with pytest.raises(OSError, match="No space left on device"):
            file.write(b"\0")
    return filler


def read_only_view(path: Path) -> None:
    """Put a read-only view of ``path`` over it: every write there fails with EROFS, as on a
    filesystem remounted read-only after an error. (Remounting the tmpfs itself is refused
    while the tailer holds its lock file open for writing; the kernel's own remount is not.)"""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)


def break_disk(state_dir: Path, fault: Fault) -> Path | None:
    """Make the state directory refuse writes; the filler file to delete for ``full``."""
    if fault == "full":
        return fill(state_dir)
    read_only_view(state_dir)
    return None


def mend_disk(state_dir: Path, filler: Path | None) -> None:
    if filler is None:
        subprocess.run(["umount", str(state_dir)], check=True)  # the read-only view
    else:
        filler.unlink()


CAUSES = {"full": "No space left on device", "read-only": "Read-only file system"}


@pytest.mark.parametrize("fault", ["full", "read-only"])
async def test_unwritable_state_pauses_shipping_keeps_the_position_and_resumes(
    broker: ProxiedBroker, tmp_path: Path, fault: Fault
) -> None:
    with timed() as elapsed, small_filesystem(tmp_path / "state") as state_dir:
        cdr_file = TailedCdrFile(tmp_path, state_dir, broker, **TAILER_ENV)
        async with cdr_file.tailer() as bridge:
            cdr_file.append(100)
            await cdr_file.all_recorded(bridge)
            saved = cdr_file.store.path.read_bytes()
            filler = break_disk(state_dir, fault)
            try:
                cdr_file.append(300)  # six chunks
                await bridge.until_logged("shipping paused until the position can be saved")
                error = next(line for line in bridge.log().splitlines() if " ERROR " in line)
                assert str(cdr_file.store.path) in error
                assert CAUSES[fault] in error
                shipped = await bridge.counter(RECORDS, bridge="tailer")
                # A few more save attempts, however slowly they come on a busy machine.
                await bridge.until_counted(STATE_ERRORS, 3, 30, reason="state_write")
                # One chunk acknowledged whose position could not be saved, then nothing more:
                # fewer lines than a chunk holds when the tailer read the append half written.
                assert 100 < shipped <= 100 + LINES_PER_MESSAGE
                assert await bridge.counter(RECORDS, bridge="tailer") == shipped
                assert cdr_file.store.path.read_bytes() == saved
                assert Position.model_validate_json(saved).offset == len(lines(0, 100))
            finally:
                mend_disk(state_dir, filler)
            with timed() as resumed:
                await cdr_file.all_recorded(bridge)
                resumed_seconds = resumed()
            assert "position saved again; shipping resumes" in bridge.log()
            assert await bridge.stop() == 0
        values = await read_topic(broker, TOPICS.raw_pbx, cdr_file.shipped_whole)
    assert cdr_file.shipped_whole(values)
    assert copies(values) == 0
    report(
        f"tailer/state-{fault}",
        lines=cdr_file.written,
        duplicates=0,
        resumed_after_mend_s=round(resumed_seconds, 2),
        test_s=round(elapsed(), 1),
    )


async def test_stopped_while_the_disk_is_full_it_resends_at_most_one_chunk(
    broker: ProxiedBroker, tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "state") as state_dir:
        cdr_file = TailedCdrFile(tmp_path, state_dir, broker, **TAILER_ENV)
        async with cdr_file.tailer() as bridge:
            cdr_file.append(100)
            await cdr_file.all_recorded(bridge)
            filler = fill(state_dir)
            cdr_file.append(300)
            await bridge.until_logged("shipping paused until the position can be saved")
            # The chunk acknowledged but not recorded: the lines from 100 on, as many as the
            # tailer had read. A whole chunk's worth, unless it read the append half written
            # (a writer descheduled mid-write on a busy machine): then fewer, and the restart
            # cuts its chunks differently, so that the copy is not one of them.
            unrecorded = int(await bridge.counter(RECORDS, bridge="tailer")) - 100
            assert 0 < unrecorded <= LINES_PER_MESSAGE
            assert await bridge.stop() == 0
        assert "stopping with the last chunk unrecorded: a restart re-sends it" in bridge.log()
        position = cdr_file.store.load()
        assert position is not None
        assert position.offset == len(lines(0, 100))
        filler.unlink()
        async with cdr_file.tailer() as bridge:
            await cdr_file.all_recorded(bridge)
            assert await bridge.stop() == 0
    # The copy is the chunk right after the saved position.
    copy = lines(100, unrecorded)[:-1]

    def file_and_the_copy(values: list[bytes]) -> bool:
        """The file's lines exactly once, and besides them the copy once."""
        if copy not in values:
            return False
        rest = list(values)
        rest.remove(copy)
        return b"".join(value + b"\n" for value in rest) == cdr_file.path.read_bytes()

    values = await read_topic(broker, TOPICS.raw_pbx, file_and_the_copy)
    assert file_and_the_copy(values)
