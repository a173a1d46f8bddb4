"""The Asterisk Manager Interface on the wire: banner, actions out, messages in.

AMI is line-oriented text over TCP: on connect the server sends one banner line
(``Asterisk Call Manager/x.y.z``); after that both sides exchange messages, each a block of
``Key: Value`` lines ending in CRLF and terminated by an empty line. Actions carry an
``ActionID`` that the server echoes in its ``Response``, which is how answers are told from the
events interleaved with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections import deque

from processors.parsers.asterisk_ami_cdr import message_fields
from salespulse.errors import SourceError

BANNER_PREFIX = b"Asterisk Call Manager/"
_CHUNK = 65_536
# An AMI message is a few hundred bytes; a megabyte without an empty line is not AMI.
_MAX_MESSAGE_BYTES = 1_048_576
_MESSAGE_END = re.compile(rb"\r?\n\r?\n")
_LOGOFF_SECONDS = 1.0


class AmiError(SourceError):
    """A session ended in a way worth a log line and a reconnect; ``reason`` labels metrics."""

    reason = "connection"


class AmiAuthError(AmiError):
    reason = "auth"


class AmiProtocolError(AmiError):
    reason = "protocol"


def fields_of(message: bytes) -> dict[str, str]:
    """A received message's fields, leniently: the bridge only looks, the worker judges."""
    return message_fields(message.decode("utf-8", "replace"), strict=False)


class AmiConnection:
    """One TCP connection to the AMI. Not safe for concurrent use; one task drives it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()
        self._pending: deque[bytes] = deque()
        self._action_ids = itertools.count(1)

    @classmethod
    async def open(cls, host: str, port: int, *, seconds: float) -> AmiConnection:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), seconds)
        return cls(reader, writer)

    async def login(self, username: str, secret: str, *, events: str, seconds: float) -> None:
        """Check the banner, log in, and ask for the ``events`` classes only."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > 256:
                raise AmiProtocolError("no AMI banner line")
            await self.receive(seconds)
        banner = bytes(self._buffer[: end + 1]).rstrip()
        del self._buffer[: end + 1]
        if not banner.startswith(BANNER_PREFIX):
            # No credentials for a peer that is not AMI.
            raise AmiProtocolError(f"not an Asterisk Manager Interface: banner {banner[:60]!r}")
        login = await self.action(
            "Login", seconds=seconds, Username=username, Secret=secret, Events=events
        )
        while True:
            messages = self.messages()
            for index, message in enumerate(messages):
                fields = fields_of(message)
                if "response" in fields and fields.get("actionid", login) == login:
                    # Whatever came after the answer belongs to the stream.
                    self._pending.extend(messages[index + 1 :])
                    if fields["response"].lower() != "success":
                        why = fields.get("message") or "no reason given"
                        raise AmiAuthError(f"login as {username!r} refused: {why}")
                    return
            await self.receive(seconds)

    def messages(self) -> list[bytes]:
        """Every complete message received so far, byte for byte with its closing empty line."""
        messages = list(self._pending)
        self._pending.clear()
        buffer = self._buffer
        position = 0
        while True:
            # Stray line breaks between messages belong to none of them.
            while position < len(buffer) and buffer[position] in b"\r\n":
                position += 1
            match = _MESSAGE_END.search(buffer, position)
            if match is None:
                break
            messages.append(bytes(buffer[position : match.end()]))
            position = match.end()
        del buffer[:position]
        if len(buffer) > _MAX_MESSAGE_BYTES:
            raise AmiProtocolError(f"{len(buffer)} bytes without the end of a message")
        return messages

    async def receive(self, seconds: float) -> None:
        """Wait up to ``seconds`` for more bytes. Cancelling a pending read loses none: the
        stream reader hands out bytes only when the read completes."""
        try:
            data = await asyncio.wait_for(self._reader.read(_CHUNK), max(seconds, 0.0))
        except TimeoutError:
            return
        if not data:
            raise AmiError("Asterisk closed the connection")
        self._buffer += data

    async def action(self, name: str, *, seconds: float, **headers: str) -> str:
        """Send an action and return its ActionID. The text is never logged: Login carries the
        secret."""
        action_id = f"salespulse-{next(self._action_ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await asyncio.wait_for(self._writer.drain(), seconds)
        return action_id

    async def logoff(self) -> None:
        """Log off so Asterisk records a clean goodbye; a peer that does not close the connection
        within a second is left to ``close``."""

        async def goodbye() -> None:
            await self.action("Logoff", seconds=_LOGOFF_SECONDS)
            while await self._reader.read(_CHUNK):
                pass

        with contextlib.suppress(OSError):  # includes TimeoutError
            await asyncio.wait_for(goodbye(), _LOGOFF_SECONDS)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await asyncio.wait_for(self._writer.wait_closed(), _LOGOFF_SECONDS)
