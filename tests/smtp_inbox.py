"""A real SMTP server's mailbox for tests: aiosmtpd hands it every message delivered."""

from __future__ import annotations

import asyncio
import email
import threading
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword


class Inbox:
    """aiosmtpd handler: keeps every message; answers 451 to the first ``refuse`` of them."""

    def __init__(self, refuse: int = 0) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse = refuse
        self.logins: list[bytes] = []
        # Set from the SMTP server's own thread and event loop.
        self._arrived = threading.Event()

    async def first(self, seconds: float) -> None:
        """Wait until a message has arrived (``TimeoutError`` after ``seconds``)."""
        if not await asyncio.to_thread(self._arrived.wait, seconds):
            raise TimeoutError(f"no message in {seconds} s")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        self._arrived.set()
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"reports",
            b"s3cret",
        )
        if good:
            self.logins.append(data.login)
        return AuthResult(success=good)
