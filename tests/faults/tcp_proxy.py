"""A TCP proxy the fault tests put between the bridges and the broker, to make it unreachable.

Freezing the broker (SIGSTOP) gives a hung peer: connections are accepted by the kernel and
requests are never answered. This proxy gives the other kind of outage, the one a restarted or
firewalled broker gives: ``refuse()`` stops listening, so that new connections are refused
(ECONNREFUSED), and resets every connection already open mid-stream; ``accept()`` listens on the
same port again. Clients reach the broker only through the proxy because the broker advertises
the proxy's address in its metadata: ``ProxiedBroker`` starts such a Tansu, and freezes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from salespulse.stack_settings import free_ports
from salespulse.stack_tansu import find_tansu, kafka_answers

_CHUNK = 65536


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_port``; ``async with`` starts and stops it."""

    def __init__(self, port: int, upstream_port: int) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.connections = 0  # accepted since start, for the test's own checks
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpProxy:
        await self.accept()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.refuse()

    @property
    def refusing(self) -> bool:
        return self._server is None

    async def accept(self) -> None:
        """Listen (again) on ``port``."""
        if self._server is None:
            # SO_REUSEADDR (asyncio's default here) lets the port be taken again at once,
            # with the connections reset by refuse() still in TIME_WAIT.
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, family=socket.AF_INET
            )

    async def refuse(self) -> None:
        """Stop listening and reset every open connection, both ends."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            # abort() sends RST rather than FIN: the client sees its request fail mid-stream, as
            # when a broker's host goes away, not a polite end of the conversation.
            writer.transport.abort()
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        if server is not None:
            # Waits for the connection handlers too (Python 3.12+): after the resets above.
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            # Either direction ending ends the connection, as a real middlebox would see it.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._pipes.difference_update(pipes)
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await end.wait_closed()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()


class ProxiedBroker:
    """A Tansu of the test's own that clients reach only through a ``TcpProxy``: it listens on
    one port and advertises the proxy's, so that metadata sends every client back through it.

    ``freeze()``/``thaw()`` make it a hung broker (SIGSTOP/SIGCONT); ``proxy.refuse()`` and
    ``proxy.accept()`` an unreachable one. Memory-only, like every Tansu here: stopping it would
    lose what it holds, so an outage is never a restart.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.broker_port, proxy_port = free_ports(2)
        self.proxy = TcpProxy(proxy_port, self.broker_port)
        self.bootstrap = f"127.0.0.1:{proxy_port}"
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ProxiedBroker:
        listen = f"tcp://127.0.0.1:{self.broker_port}"
        argv = [str(find_tansu()), "broker", "--listener-url", listen]
        argv += ["--advertised-listener-url", f"tcp://{self.bootstrap}"]
        argv += ["--storage-engine", "memory://tansu/"]
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "tansu.log").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *argv, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + 30
            while not await asyncio.to_thread(kafka_answers, self.broker_port):
                assert self._process.returncode is None, f"Tansu exited; see {self.directory}"
                assert time.monotonic() < deadline, "Tansu did not answer within 30 s"
                await asyncio.sleep(0.05)
            await self.proxy.accept()
        except BaseException:
            await self._kill()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.proxy.refuse()
        await self._kill()

    async def _kill(self) -> None:
        if self._process is None:
            return
        self.thaw()  # a stopped process would not act on SIGTERM before SIGCONT anyway
        self._process.terminate()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        self._process = None

    def freeze(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None and self._process.returncode is None:
            os.kill(self._process.pid, signal.SIGCONT)
