"""The CDR file tailer's settings, where it stands and how it cuts lines; the position is saved
so that a restart neither loses nor repeats lines. Nothing here imports ``salespulse.settings``,
so the main settings can include ``TailerSettings``.

A position names the file by device and inode (a rotated file keeps both while renamed) and by a
fingerprint: the SHA-256 of its first bytes, up to ``FINGERPRINT_BYTES`` of what was already
shipped. Bytes already shipped never change in an append-only file, so the fingerprint tells a
reused inode, a truncated file or a copy apart from the file we were reading. Only the hash is
saved: the state directory holds no CDR content.

The state file is replaced atomically (temporary file, fsync, rename, fsync of the directory), so
a crash or a full disk leaves either the old position or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from pathlib import Path
from typing import Generic, Literal, NamedTuple, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from salespulse.errors import ConfigurationError
from salespulse.locations import state_root
from salespulse.models import SourceFamily

FINGERPRINT_BYTES = 256
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_FORMAT = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")


class TailerSettings(BaseModel):
    # A misspelt key (STATEDIR) is refused rather than leaving the default state folder.
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(
        default=Path("/var/log/asterisk/cdr-csv/Master.csv"), description="the CDR file to follow"
    )
    format: str = Field(default="asterisk-cdr-csv", description="sp-format header of each message")
    family: SourceFamily = SourceFamily.PBX
    source_key: str = Field(
        default="pbx-1",
        min_length=1,
        max_length=255,
        description="Kafka key: one PBX's lines stay in order on one partition",
    )
    state_dir: Path = Field(
        default_factory=lambda: state_root() / "tailer", description="where the position is kept"
    )
    poll_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    lines_per_message: int = Field(default=200, ge=1, le=100_000)
    max_line_bytes: int = Field(
        default=65_536, ge=256, description="longer lines travel alone (the worker rejects them)"
    )
    max_message_bytes: int = Field(
        default=524_288, ge=1024, le=1_048_576, description="largest message, and read block"
    )
    start_at: Literal["beginning", "end"] = Field(
        default="beginning", description="where the first run starts in an existing file"
    )

    @field_validator("format")
    @classmethod
    def _format_name(cls, value: str) -> str:
        if not _FORMAT.match(value):
            raise ValueError(f"not a format name: {value!r}")
        return value

    @model_validator(mode="after")
    def _line_fits_message(self) -> TailerSettings:
        if self.max_line_bytes > self.max_message_bytes:
            raise ValueError("max_line_bytes must not exceed max_message_bytes")
        return self


class TailerStateError(ConfigurationError):
    """The state directory cannot be read or written; the message says which path and why."""


class Position(BaseModel):
    path: str
    device: int
    inode: int
    offset: int = Field(ge=0, description="file offset just after the last shipped line")
    fingerprint: str = Field(description="SHA-256 hex of the file's first fingerprint_bytes")
    fingerprint_bytes: int = Field(ge=0)


def fingerprint(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


def fingerprint_length(offset: int) -> int:
    """How many leading bytes identify a file read up to ``offset``: only bytes already shipped,
    which an appending writer never changes."""
    return min(FINGERPRINT_BYTES, offset)


def read_at(fd: int, length: int, offset: int) -> bytes:
    """Up to ``length`` bytes at ``offset``; fewer only at the end of the file."""
    parts: list[bytes] = []
    while length > 0:
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        length -= len(part)
        offset += len(part)
    return b"".join(parts)


def same_file(fd: int, position: Position) -> bool:
    """Whether the open file still holds what ``position`` was read from: not shorter than the
    offset, and its first bytes unchanged."""
    if os.fstat(fd).st_size < position.offset:
        return False
    head = read_at(fd, position.fingerprint_bytes, 0)
    return len(head) == position.fingerprint_bytes and fingerprint(head) == position.fingerprint


def find_rotated(path: Path, position: Position) -> Path | None:
    """The file ``position`` was read from, now under another name next to ``path``.

    Rotation renames ``Master.csv`` to ``Master.csv.1``, ``Master.csv-20260324`` or (FreeSWITCH)
    ``Master.csv.2026-03-24-10-00-00``; copytruncate leaves a copy under such a name. Only names
    that start with the file's name are opened. The same inode wins; otherwise a copy whose first
    bytes match and which is long enough (a copy gets a new inode). An empty fingerprint matches
    anything, so without one only the inode counts.
    """
    same_inode: Path | None = None
    copies: list[tuple[int, Path]] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return None
    for entry in entries:
        if entry.name == path.name or not entry.name.startswith(path.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            is_same_inode = (stat.st_dev, stat.st_ino) == (position.device, position.inode)
            if not is_same_inode and position.fingerprint_bytes == 0:
                continue
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if same_file(fd, position):
                if is_same_inode:
                    same_inode = Path(entry.path)
                else:
                    copies.append((stat.st_size, Path(entry.path)))
        finally:
            os.close(fd)
    if same_inode is not None:
        return same_inode
    # Copies with the same first bytes are snapshots of one file; the longest has the most lines.
    return max(copies)[1] if copies else None


def last_line_end(fd: int, size: int, block: int = 65536) -> int:
    """The offset just after the last newline before ``size`` (0 if there is none)."""
    end = size
    while end > 0:
        start = max(0, end - block)
        data = read_at(fd, end - start, start)
        newline = data.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def state_name(source_key: str, path: Path) -> str:
    """One state file per (source, file) pair, readable in a directory listing."""
    digest = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', source_key)[:64]}-{digest}"


StateT = TypeVar("StateT", bound=BaseModel)


class StateStore(Generic[StateT]):
    """The position file of one bridge (a tailer, a CDR table follower), with an exclusive lock
    so two bridges never share it. Saved atomically and durably: a crash leaves the old
    position or the new one, never a torn file."""

    def __init__(self, directory: Path, name: str, model: type[StateT]) -> None:
        self.model = model
        self.directory = directory
        self.path = directory / f"{name}.json"
        self.temp_path = directory / f".{name}.json.tmp"
        self._lock_path = directory / f"{name}.lock"
        self._lock_fd: int | None = None

    def lock(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise TailerStateError(f"cannot use state directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise TailerStateError(
                f"another bridge holds {self._lock_path}; one bridge per source and state"
            ) from exc
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def load(self) -> StateT | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TailerStateError(f"cannot read {self.path}: {exc}") from exc
        try:
            return self.model.model_validate_json(data)
        except ValidationError as exc:
            # Starting over would re-send the whole source; a person must decide.
            raise TailerStateError(
                f"{self.path} is not a saved position of this bridge; move it away to start over"
            ) from exc

    def save(self, position: StateT) -> None:
        data = position.model_dump_json().encode()
        try:
            fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.temp_path, self.path)
            directory = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(directory)  # makes the rename itself durable
            finally:
                os.close(directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(self.temp_path)
            raise TailerStateError(f"cannot save position to {self.path}: {exc}") from exc


class Chunk(NamedTuple):
    value: bytes  # the lines, without the last one's newline
    size: int  # bytes of the file the chunk covers, that newline included
    lines: int


def frame(
    data: bytes,
    *,
    lines_per_message: int,
    max_line_bytes: int,
    max_message_bytes: int,
    final: bool = False,
) -> list[Chunk]:
    """Cut ``data`` (read from a line start) into chunks of complete lines.

    A line longer than ``max_line_bytes`` travels alone, so that the worker dead-letters only it,
    not its neighbours with it. Trailing bytes without a newline stay unread, unless ``final``
    (the file will not grow) or they reach ``max_message_bytes``: then they are shipped as they
    are, so that a runaway line can neither block the file nor grow memory without bound.
    """
    chunks: list[Chunk] = []
    start = pos = lines = 0

    def flush() -> None:
        nonlocal start, lines
        if lines:
            chunks.append(Chunk(data[start : pos - 1], pos - start, lines))
        start, lines = pos, 0

    while pos < len(data):
        newline = data.find(b"\n", pos)
        if newline < 0:
            rest = len(data) - pos
            if final or rest >= max_message_bytes:
                flush()
                size = min(rest, max_message_bytes)
                chunks.append(Chunk(data[pos : pos + size], size, 1))
                pos = start = pos + size
                continue
            break
        if newline - pos > max_line_bytes:
            flush()
            chunks.append(Chunk(data[pos:newline], newline + 1 - pos, 1))
            pos = start = newline + 1
            continue
        if lines and (lines >= lines_per_message or newline - start > max_message_bytes):
            flush()
        lines += 1
        pos = newline + 1
    flush()
    return chunks


class TailedFile:
    """A file being read, by descriptor: it stays readable after a rename or an unlink."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        stat = os.fstat(self.fd)
        self.device, self.inode = stat.st_dev, stat.st_ino
        self.reset(offset)

    def reset(self, offset: int) -> None:
        self.offset = offset
        # The first bytes as they were when shipped: compared later to notice a truncation.
        self.head = read_at(self.fd, fingerprint_length(offset), 0)

    def advance(self, shipped: bytes) -> None:
        """Move past ``shipped``, the bytes just read at the current offset."""
        missing = fingerprint_length(self.offset + len(shipped)) - len(self.head)
        if missing > 0:
            self.head += shipped[:missing]
        self.offset += len(shipped)

    def position(self) -> Position:
        return Position(
            path=str(self.path),
            device=self.device,
            inode=self.inode,
            offset=self.offset,
            fingerprint=fingerprint(self.head),
            fingerprint_bytes=len(self.head),
        )

    def close(self) -> None:
        os.close(self.fd)
