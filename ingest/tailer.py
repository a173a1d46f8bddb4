"""Following a CDR file a PBX appends to, shipping complete lines to the raw topic.

Asterisk's ``cdr_csv`` (Master.csv) and FreeSWITCH's ``mod_cdr_csv`` write one CDR per line. The
tailer polls the file, cuts what was appended into chunks of up to ``lines_per_message`` complete
lines and sends each chunk as one Kafka message: exactly the bytes the PBX wrote, minus the
chunk's final newline (ADR 0002). A line still being written (no newline yet) waits for its end.
While a backlog waits (more than one read block), chunks are bounded by ``max_message_bytes``
alone, so that loading history is not paced by one acknowledgement per few hundred lines.

Delivery: a chunk's position is saved only after the broker acknowledged it, and the next chunk is
read only after the position is saved. A crash between the acknowledgement and the save re-sends
that one chunk after the restart; its records keep their deterministic event ids, so the copy
collapses in storage (ADR 0003). If the position cannot be saved (disk full, directory gone), the
tailer ships nothing more and retries the save, rather than ship lines it could not account for.

Rotation: after a rename (logrotate ``create``, FreeSWITCH's own rotation) the old file is
followed until it stayed quiet for a poll interval, then read to its end, an unterminated last line
included, before switching to the new file. After copytruncate (the file shrank or its first bytes
changed) the copy is read from the old offset when it can be found, then the truncated file from
its start. A restart finds a file rotated meanwhile by inode or fingerprint (``tailer_state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from ingest.bridge_metrics import BRIDGE_ERRORS, BRIDGE_RECONNECTS, BRIDGE_RECORDS
from ingest.raw_producer import ProduceError, RawProducer, RawRecordOut, serve_when_reachable
from ingest.tailer_state import (
    Chunk,
    Position,
    StateStore,
    TailedFile,
    TailerSettings,
    TailerStateError,
    find_rotated,
    frame,
    last_line_end,
    read_at,
    same_file,
    state_name,
)
from salespulse.backoff import Backoff
from salespulse.models import MAX_RECORDS_PER_MESSAGE

__all__ = ["FileTailer", "TailerSettings", "run_tailer"]

log = logging.getLogger(__name__)
_MAX_BACKOFF_SECONDS = 30.0
# Lines per message while behind; max_message_bytes is the usual bound, this one keeps a file
# of very short lines under the worker's records-per-message cap (it dead-letters a message
# with more as one).
BACKLOG_LINES = MAX_RECORDS_PER_MESSAGE // 2


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class FileTailer:
    def __init__(self, settings: TailerSettings, producer: RawProducer) -> None:
        self.settings = settings
        self._producer = producer
        self.store = StateStore(
            settings.state_dir, state_name(settings.source_key, settings.path), Position
        )
        self._current: TailedFile | None = None
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the file until ``stop`` is set; the chunk in flight is finished and recorded.

        Raises ``TailerStateError`` at once when the state directory cannot be used at start.
        """
        self._stop = stop
        self.store.lock()
        try:
            await self._resume()
            while not stop.is_set():
                if not await self._ship_available(self._file(), final=False):
                    await self._after_idle()
                    await _pause(stop, self.settings.poll_interval_seconds)
        finally:
            if self._current is not None:
                self._current.close()
                self._current = None
            self.store.unlock()

    def _file(self) -> TailedFile:
        assert self._current is not None
        return self._current

    async def _resume(self) -> None:
        saved = self.store.load()
        if saved is not None:
            with contextlib.suppress(FileNotFoundError):
                opened = TailedFile(self.settings.path, saved.offset)
                if (opened.device, opened.inode) == (saved.device, saved.inode) and same_file(
                    opened.fd, saved
                ):
                    self._current = opened
                    log.info("resuming %s at offset %d", opened.path, saved.offset)
                    return
                opened.close()
            rotated = find_rotated(self.settings.path, saved)
            if rotated is not None:
                log.info("finishing %s, rotated while stopped, from %d", rotated, saved.offset)
                old = TailedFile(rotated, saved.offset)
                try:
                    await self._drain(old)
                finally:
                    old.close()
            else:
                BRIDGE_ERRORS.labels("tailer", "rotated_file_missing").inc()
                log.warning(
                    "cannot find the rest of the file last read (%s, inode %d): lines written "
                    "to it after offset %d were not shipped",
                    saved.path,
                    saved.inode,
                    saved.offset,
                )
        if not await self._open_current(first_run=saved is None):
            return
        await self._save(self._file())

    async def _open_current(self, *, first_run: bool) -> bool:
        """Open the configured path, waiting for it to appear; False if stopped first."""
        waiting_logged = False
        while not self._stop.is_set():
            try:
                opened = TailedFile(self.settings.path)
            except FileNotFoundError:
                if not waiting_logged:
                    log.info("waiting for %s to appear", self.settings.path)
                    waiting_logged = True
                await _pause(self._stop, self.settings.poll_interval_seconds)
                continue
            if first_run and self.settings.start_at == "end":
                opened.reset(last_line_end(opened.fd, os.fstat(opened.fd).st_size))
            self._current = opened
            log.info("following %s from offset %d", opened.path, opened.offset)
            return True
        return False

    async def _after_idle(self) -> None:
        """At the end of the data: notice rotation by rename and truncation."""
        current = self._file()
        try:
            stat = os.stat(self.settings.path)
        except FileNotFoundError:
            return  # renamed, the new file not created yet: keep reading the old one
        if (stat.st_dev, stat.st_ino) != (current.device, current.inode):
            # A writer that keeps its descriptor (FreeSWITCH until its HUP) may go on appending
            # to the old file: follow it until it stayed quiet for a poll interval, and only
            # then take its unterminated last line, if any, as complete.
            size = os.fstat(current.fd).st_size
            await _pause(self._stop, self.settings.poll_interval_seconds)
            if self._stop.is_set() or os.fstat(current.fd).st_size != size:
                return
            if not await self._drain(current):
                return
            log.info("%s was rotated; following the new file", self.settings.path)
            current.close()
            self._current = None
            if await self._open_current(first_run=False):
                await self._save(self._file())
            return
        position = current.position()
        if same_file(current.fd, position):
            return
        await self._after_truncation(current, position)

    async def _after_truncation(self, current: TailedFile, position: Position) -> None:
        copy = find_rotated(self.settings.path, position) if position.fingerprint_bytes else None
        if copy is not None:
            log.info("%s was copied and truncated; finishing the copy %s", current.path, copy)
            old = TailedFile(copy, current.offset)
            try:
                if not await self._drain(old):
                    return
            finally:
                old.close()
        else:
            log.info("%s was truncated; reading it from the start", current.path)
        current.reset(0)
        await self._save(current)

    async def _drain(self, opened: TailedFile) -> bool:
        """Ship the rest of a file that will not grow; False if stopped before its end."""
        while await self._ship_available(opened, final=True):
            pass
        return opened.offset >= os.fstat(opened.fd).st_size

    async def _ship_available(self, opened: TailedFile, *, final: bool) -> bool:
        """Ship the complete lines of one block; True if anything was shipped."""
        if self._stop.is_set():
            return False
        block = self.settings.max_message_bytes
        data = await asyncio.to_thread(read_at, opened.fd, block, opened.offset)
        if data and not same_file(opened.fd, opened.position()):
            # Truncated and rewritten since the last look: these bytes are from the new
            # content at the old offset, not lines we have not read. The idle check sorts it out.
            return False
        # A full block read means more is waiting (history being loaded, a backlog after an
        # outage): then messages are as large as max_message_bytes allows, since each costs a
        # broker acknowledgement and a saved position. Following live, lines_per_message keeps
        # them small and prompt.
        behind = len(data) == block
        chunks = frame(
            data,
            lines_per_message=BACKLOG_LINES if behind else self.settings.lines_per_message,
            max_line_bytes=self.settings.max_line_bytes,
            max_message_bytes=self.settings.max_message_bytes,
            final=final and len(data) < block,
        )
        shipped = False
        start = 0
        for chunk in chunks:
            if not await self._send(chunk):
                break
            opened.advance(data[start : start + chunk.size])
            start += chunk.size
            shipped = True
            if not await self._save(opened) or self._stop.is_set():
                break
        return shipped

    async def _send(self, chunk: Chunk) -> bool:
        settings = self.settings
        record = RawRecordOut(
            settings.family, settings.format, settings.source_key.encode(), chunk.value
        )
        waits = Backoff(first=settings.poll_interval_seconds, cap=_MAX_BACKOFF_SECONDS)
        while True:
            try:
                await self._producer.send(record)
            except ProduceError as exc:
                BRIDGE_ERRORS.labels("tailer", "kafka").inc()
                log.warning("Kafka did not take a chunk of %s, retrying: %s", settings.path, exc)
                if self._stop.is_set():
                    return False
                await _pause(self._stop, waits.next())
                BRIDGE_RECONNECTS.labels("tailer").inc()
                continue
            BRIDGE_RECORDS.labels("tailer").inc(chunk.lines)
            return True

    async def _save(self, opened: TailedFile) -> bool:
        """Record the position, retrying until it is durable; False if stopped first."""
        waits = Backoff(first=self.settings.poll_interval_seconds, cap=_MAX_BACKOFF_SECONDS)
        failed = False
        while True:
            try:
                await asyncio.to_thread(self.store.save, opened.position())
            except TailerStateError as exc:
                BRIDGE_ERRORS.labels("tailer", "state_write").inc()
                log.error("%s; shipping paused until the position can be saved", exc)
                failed = True
                if self._stop.is_set():
                    log.error("stopping with the last chunk unrecorded: a restart re-sends it")
                    return False
                await _pause(self._stop, waits.next())
                continue
            if failed:
                log.info("position saved again; shipping resumes")
            return True


async def run_tailer(settings: TailerSettings, producer: RawProducer, stop: asyncio.Event) -> None:
    """The tailer bridge: starts ``producer`` (waiting for the broker), follows the file until
    ``stop`` is set, then stops the producer. The caller sets ``stop`` on SIGTERM/SIGINT."""
    await serve_when_reachable(
        producer, stop, "tailer", lambda: FileTailer(settings, producer).run(stop)
    )
