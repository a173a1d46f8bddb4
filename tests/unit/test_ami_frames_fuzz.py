"""What an AMI peer sends is outside input: whatever the bytes and however they are split into
TCP segments, the connection frames them into messages without losing or inventing a byte, ends
with an AmiError (never another exception) and never holds more than a bounded buffer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.ami_protocol import AmiConnection, AmiError, AmiProtocolError, fields_of
from tests.unit.fuzzing import fuzz_settings, mutated

BANNER = b"Asterisk Call Manager/7.0.3\r\n"
LOGIN_OK = (
    b"Response: Success\r\nActionID: salespulse-1\r\nMessage: Authentication accepted\r\n\r\n"
)
CDR = (
    b"Event: Cdr\r\nPrivilege: cdr,all\r\nSource: 79161234567\r\nDestination: 101\r\n"
    b"StartTime: 2026-11-26 09:15:02\r\nUniqueID: 1795673702.45\r\n\r\n"
)
FRAME_BYTES = st.sampled_from(
    [b"\r\n", b"\n", b"\r\n\r\n", b"\n\n", b"\r", b": ", b":", b"\xff", b"\x00", b"Event: Cdr"]
)
AMI_FUZZ = fuzz_settings(200)


@contextlib.asynccontextmanager
async def connected(peer_bytes: bytes, pieces: list[int]) -> AsyncIterator[AmiConnection]:
    """An AmiConnection on a real socket pair whose peer sends ``peer_bytes`` in segments of
    the sizes in ``pieces`` (cycled), then ends its side of the stream, as Asterisk does when
    it goes away; it still takes what the connection writes. The peer writes as the
    connection reads: tiny segments fill a socket's buffer long before their bytes do."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    _, peer = await asyncio.open_connection(sock=theirs)

    async def send() -> None:
        at = 0
        with contextlib.suppress(ConnectionError):  # the connection gave up reading first
            for size in itertools.cycle(pieces):
                if at >= len(peer_bytes):
                    break
                peer.write(peer_bytes[at : at + size])
                await peer.drain()
                at += size
            peer.write_eof()

    sending = asyncio.create_task(send())
    connection = AmiConnection(reader, writer)
    try:
        yield connection
    finally:
        await connection.close()
        await sending
        peer.close()
        with contextlib.suppress(ConnectionError):
            await peer.wait_closed()


async def read_all(peer_bytes: bytes, pieces: list[int]) -> tuple[list[bytes], AmiError]:
    messages: list[bytes] = []
    async with connected(peer_bytes, pieces) as connection:
        try:
            while True:
                messages += connection.messages()
                await connection.receive(5.0)
        except AmiError as exc:
            return messages, exc
    raise AssertionError("unreachable: the loop ends only with an AmiError")


def stream(draw: st.DrawFn) -> bytes:
    return draw(
        st.one_of(
            st.binary(max_size=400),
            st.lists(mutated([CDR, LOGIN_OK], FRAME_BYTES), max_size=4).map(b"".join),
        )
    )


@AMI_FUZZ
@given(data=st.data(), pieces=st.lists(st.integers(1, 50), min_size=1, max_size=5))
def test_framing_keeps_every_byte_and_ends_with_an_ami_error(
    data: st.DataObject, pieces: list[int]
) -> None:
    peer_bytes = stream(data.draw)
    messages, ended = asyncio.run(read_all(peer_bytes, pieces))
    assert type(ended) is AmiError, "the peer closing is a plain AmiError"
    for message in messages:
        assert message.endswith((b"\n\n", b"\r\n\r\n", b"\n\r\n", b"\r\n\n"))
        fields_of(message)  # never raises, whatever the bytes
    # Messages are the stream in order, byte for byte, less only the line breaks between them
    # and the unfinished tail the peer closed on.
    position = 0
    for message in messages:
        while peer_bytes[position : position + 1] in (b"\r", b"\n"):
            position += 1
        assert peer_bytes.startswith(message, position)
        position += len(message)


@AMI_FUZZ
@given(data=st.data())
def test_login_against_any_answer_succeeds_or_is_an_ami_error(data: st.DataObject) -> None:
    banner = data.draw(st.one_of(st.just(BANNER), mutated([BANNER], FRAME_BYTES)))
    answer = data.draw(st.one_of(st.just(LOGIN_OK), mutated([LOGIN_OK, CDR], FRAME_BYTES)))

    async def login() -> None:
        async with connected(banner + answer, [7]) as connection:
            await connection.login("user", "secret", events="cdr", seconds=5.0)

    try:
        asyncio.run(login())
    except AmiError as exc:
        problem = str(exc)
    else:
        problem = "logged in"
    assert problem, "a failed login says why"


def test_a_peer_that_never_ends_a_message_is_cut_off_at_a_megabyte() -> None:
    async def flood() -> AmiError:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        connection = AmiConnection(reader, writer)
        theirs.setblocking(False)
        line = b"Event: Cdr" + b"x" * 65_000 + b"\r\n"
        try:
            for _ in range(100):  # 6.5 MB offered; the connection must refuse long before
                with contextlib.suppress(BlockingIOError):  # full: the receiver must read
                    theirs.send(line)
                await connection.receive(0.5)
                connection.messages()
        except AmiError as exc:
            return exc
        finally:
            await connection.close()
            theirs.close()
        raise AssertionError("6.5 MB without an empty line were taken")

    with pytest.raises(AmiProtocolError, match="without the end of a message"):
        raise asyncio.run(flood())
