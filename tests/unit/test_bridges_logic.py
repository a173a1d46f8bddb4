"""The pure parts of the bridges: line framing, file fingerprints and positions, credentials,
body shapes and the per-client token bucket."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from ingest.receiver import ReceiverSettings
from ingest.receiver_auth import (
    Credentials,
    FormError,
    RateLimiter,
    RouteSettings,
    check_bitrix24,
    forwarded_client,
    freeswitch_cdr_problem,
    json_lines_problem,
    parse_form,
    retry_after,
)
from ingest.tailer import TailerSettings
from ingest.tailer_state import (
    FINGERPRINT_BYTES,
    Chunk,
    Position,
    StateStore,
    TailedFile,
    TailerStateError,
    find_rotated,
    fingerprint,
    frame,
    last_line_end,
    same_file,
)
from salespulse.models import SourceFamily


def cut(
    data: bytes, *, per: int = 3, line: int = 64, message: int = 256, final: bool = False
) -> list[Chunk]:
    return frame(
        data, lines_per_message=per, max_line_bytes=line, max_message_bytes=message, final=final
    )


# -- framing -------------------------------------------------------------------------------


def test_frame_groups_complete_lines_and_leaves_a_partial_one() -> None:
    chunks = cut(b"a\nb\nc\nd\ne\npartial")
    assert [(c.value, c.size, c.lines) for c in chunks] == [(b"a\nb\nc", 6, 3), (b"d\ne", 4, 2)]


def test_frame_keeps_line_endings_and_blank_lines_as_written() -> None:
    assert [c.value for c in cut(b"a\r\n\nb\r\n")] == [b"a\r\n\nb\r"]


def test_frame_sends_an_overlong_line_alone() -> None:
    long = b"x" * 100
    chunks = cut(b"a\n" + long + b"\nb\n")
    assert [c.value for c in chunks] == [b"a", long, b"b"]


def test_frame_respects_the_message_size() -> None:
    lines = [bytes([65 + n]) * 60 + b"\n" for n in range(6)]
    chunks = cut(b"".join(lines), per=10, message=130)
    assert [c.lines for c in chunks] == [2, 2, 2]
    assert all(len(c.value) <= 130 for c in chunks)


def test_frame_cuts_a_runaway_line_and_ships_the_rest_only_when_final() -> None:
    runaway = b"y" * 600
    chunks = cut(runaway)
    assert [c.value for c in chunks] == [b"y" * 256, b"y" * 256]
    assert [c.value for c in cut(b"a\ntail", final=True)] == [b"a", b"tail"]
    assert cut(b"") == []


@given(
    st.lists(st.binary(max_size=90).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.integers(1, 5),
    st.booleans(),
)
def test_frame_covers_the_bytes_exactly(
    lines: list[bytes], tail: bytes, per: int, final: bool
) -> None:
    data = b"".join(line + b"\n" for line in lines) + tail
    chunks = cut(data, per=per, final=final)
    offset = 0
    for chunk in chunks:
        covered = data[offset : offset + chunk.size]
        assert chunk.value == (covered[:-1] if covered.endswith(b"\n") else covered)
        assert chunk.lines <= per
        assert len(chunk.value) <= 256
        offset += chunk.size
    assert offset == (len(data) if final else len(data) - len(tail))


# -- file identity and positions -----------------------------------------------------------


def test_fingerprint_grows_with_what_was_shipped(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    data = bytes(range(256)) * 3
    path.write_bytes(data)
    opened = TailedFile(path)
    try:
        opened.advance(data[:100])
        assert opened.position().fingerprint == fingerprint(data[:100])
        opened.advance(data[100:600])
        position = opened.position()
        assert position.fingerprint_bytes == FINGERPRINT_BYTES
        assert position.fingerprint == fingerprint(data[:FINGERPRINT_BYTES])
        assert position.offset == 600
        reopened = TailedFile(path, 600)
        assert reopened.position() == position
        reopened.close()
    finally:
        opened.close()


def _position(path: Path, offset: int) -> Position:
    opened = TailedFile(path, offset)
    try:
        return opened.position()
    finally:
        opened.close()


def test_same_file_tells_appends_from_truncation_and_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_bytes(b"first line\nsecond line\n")
    position = _position(path, 11)
    fd = os.open(path, os.O_RDONLY)
    try:
        with path.open("ab") as file:
            file.write(b"third\n")
        assert same_file(fd, position)
        path.write_bytes(b"first")  # truncated below the offset
        assert not same_file(fd, position)
        path.write_bytes(b"other line\nand more lines\n")  # long enough, other first bytes
        assert not same_file(fd, position)
    finally:
        os.close(fd)


def test_find_rotated_prefers_the_inode_then_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_bytes(b"old line 1\nold line 2\n")
    position = _position(path, 11)
    (tmp_path / "Master.csv.2").write_bytes(b"older file\nolder line\n")
    (tmp_path / "other.csv").write_bytes(path.read_bytes())  # not a rotated name
    assert find_rotated(path, position) is None

    rotated = tmp_path / "Master.csv.1"
    shutil.copyfile(path, tmp_path / "Master.csv-copy")
    path.rename(rotated)
    path.write_bytes(b"new file\n")
    assert find_rotated(path, position) == rotated
    rotated.unlink()
    assert find_rotated(path, position) == tmp_path / "Master.csv-copy"


def test_find_rotated_without_fingerprint_trusts_only_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_bytes(b"")
    position = _position(path, 0)
    (tmp_path / "Master.csv.1").write_bytes(b"anything\n")
    assert find_rotated(path, position) is None


def test_last_line_end(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a\nbb\nccc")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert last_line_end(fd, 8, block=2) == 5
        assert last_line_end(fd, 1, block=2) == 0
    finally:
        os.close(fd)


# -- the state file ------------------------------------------------------------------------


def _saved_position(offset: int) -> Position:
    return Position(
        path="/x",
        device=1,
        inode=2,
        offset=offset,
        fingerprint=fingerprint(b""),
        fingerprint_bytes=0,
    )


def test_state_store_round_trip_and_atomic_failure(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state", "pbx-1-abc", Position)
    store.lock()
    try:
        assert store.load() is None
        store.save(_saved_position(10))
        assert store.load() == _saved_position(10)
        before = store.path.read_bytes()
        store.temp_path.mkdir()  # the temporary file cannot be written
        with pytest.raises(TailerStateError, match="cannot save position"):
            store.save(_saved_position(20))
        assert store.path.read_bytes() == before
        store.temp_path.rmdir()
        store.save(_saved_position(30))
        assert store.load() == _saved_position(30)
        assert not store.temp_path.exists()
    finally:
        store.unlock()


def test_state_store_refuses_a_corrupt_file_and_a_second_tailer(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "pbx-1-abc", Position)
    store.lock()
    try:
        with pytest.raises(TailerStateError, match="another bridge"):
            StateStore(tmp_path, "pbx-1-abc", Position).lock()
        store.path.write_text('{"offset": ')
        with pytest.raises(TailerStateError, match="not a saved position of this bridge"):
            store.load()
    finally:
        store.unlock()


def test_tailer_settings_validation() -> None:
    with pytest.raises(ValidationError, match="max_line_bytes"):
        TailerSettings(max_line_bytes=600_000, max_message_bytes=500_000)
    with pytest.raises(ValidationError, match="format"):
        TailerSettings(format="Asterisk CSV")


# -- credentials and bodies ----------------------------------------------------------------


CREDENTIALS = Credentials(SecretStr("tok"), "fs", SecretStr("pw"))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "allow_basic", "ok"),
    [
        ({"Authorization": "Bearer tok"}, False, True),
        ({"Authorization": "bearer tok"}, False, True),
        ({"X-Salespulse-Token": "tok"}, False, True),
        ({"Authorization": "Bearer to"}, False, False),
        ({}, True, False),
        ({"Authorization": _basic("fs", "pw")}, True, True),
        ({"Authorization": _basic("fs", "pw")}, False, False),
        ({"Authorization": _basic("fs", "pwx")}, True, False),
        ({"Authorization": _basic("fx", "pw")}, True, False),
        ({"Authorization": "Basic !!notbase64"}, True, False),
    ],
)
def test_credentials(headers: dict[str, str], allow_basic: bool, ok: bool) -> None:
    assert CREDENTIALS.check_headers(headers, allow_basic=allow_basic) is ok


def test_unconfigured_credentials_admit_nobody() -> None:
    nothing = Credentials()
    assert not nothing.check_headers({"Authorization": "Bearer "}, allow_basic=True)
    assert not nothing.check_headers({"Authorization": _basic("", "")}, allow_basic=True)
    assert not check_bitrix24({"auth[application_token]": ""}, None)


def test_bitrix24_form() -> None:
    form = parse_form(b"event=ONCRMDEALADD&auth%5Bapplication_token%5D=abc")
    assert check_bitrix24(form, SecretStr("abc"))
    assert not check_bitrix24(form, SecretStr("abd"))
    with pytest.raises(FormError):
        parse_form(b"\xff\xfe")
    with pytest.raises(FormError):
        parse_form(b"no equals sign")


CDR_JSON = '{"variables":{"uuid":"a1"}}'


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (CDR_JSON.encode(), True),
        (b"cdr=" + quote(CDR_JSON, safe="").encode(), True),
        (b"cdr=" + quote(CDR_JSON, safe="{}").encode(), True),
        (b"cdr=" + base64.b64encode(CDR_JSON.encode()), True),
        (b"[1, 2]", False),
        (b"cdr=%7Bnope", False),
        (b"cdr=***", False),
        (b"<xml/>", False),
        (b"[" * 100_000, False),
    ],
)
def test_freeswitch_bodies(body: bytes, ok: bool) -> None:
    assert (freeswitch_cdr_problem(body) is None) is ok


def test_json_lines_bodies() -> None:
    assert json_lines_problem(b'{"a": 1}\n\n{"b": 2}\n') is None
    assert json_lines_problem(b'{"a": 1}') is None
    assert json_lines_problem(b"") == "empty body"
    assert json_lines_problem(b'{\n"a": 1\n}') is not None
    assert json_lines_problem(b"[1]") is not None


def test_route_and_receiver_settings_validation() -> None:
    with pytest.raises(ValidationError, match="bitrix24-form"):
        RouteSettings(path="/x", format="f", family=SourceFamily.CRM, auth="bitrix24")
    route = RouteSettings(path="/x", format="f", family=SourceFamily.CRM)
    with pytest.raises(ValidationError, match="share a path"):
        ReceiverSettings(routes=[route, route])
    with pytest.raises(ValidationError, match="format name"):
        ReceiverSettings(generic_formats={"Chat Sessions": SourceFamily.CHAT})
    settings = ReceiverSettings(shared_token=SecretStr("do-not-print"))
    assert "do-not-print" not in repr(settings) + str(settings.model_dump())


# -- rate limiting -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("lines", "hops", "client"),
    [
        (["203.0.113.5"], 1, "203.0.113.5"),
        (["198.51.100.7, 203.0.113.5"], 1, "203.0.113.5"),
        # A client's own line comes first; the proxy's, appended, last.
        (["198.51.100.7", "203.0.113.5"], 1, "203.0.113.5"),
        (["10.0.0.1, 198.51.100.7", "203.0.113.5,192.0.2.10"], 2, "203.0.113.5"),
        (["2001:DB8::0:1"], 1, "2001:db8::1"),
        (["203.0.113.5"], 2, None),  # fewer entries than trusted proxies
        (["203.0.113.5, not-an-address"], 1, None),
        (["203.0.113.5, "], 1, None),
        (["203.0.113.5:4711"], 1, None),
        ([], 1, None),
    ],
)
def test_forwarded_client_is_the_entry_the_trusted_proxies_appended(
    lines: list[str], hops: int, client: str | None
) -> None:
    assert forwarded_client(lines, hops) == client


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0, "each client has its own bucket"
    clock.now += 0.5
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 60
    assert [limiter.take("a") for _ in range(4)][:3] == [0, 0, 0], "refills up to the burst only"


def test_token_bucket_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, max_clients=2, clock=clock)
    for client in ("a", "b", "c"):
        limiter.take(client)
    assert limiter.take("a") == 0, "the oldest bucket was dropped, so it starts full"
    assert limiter.take("c") > 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(2.2) == "3"
