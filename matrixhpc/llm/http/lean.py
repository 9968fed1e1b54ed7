"""A lean HTTP/1.1 keep-alive client for plain-``http://`` LLM servers.

Why by hand: with a zero-latency engine, aiohttp's request machinery (URL
objects, header multidicts, tracing hooks, stream readers, timers) was half of
the framework's CPU per hop. An LLM replica on a cluster is a known kind of
peer — one host, one path, JSON in and out, a ``Content-Length`` or chunked
answer — so a pool of keep-alive connections with ``httptools`` (the C parser
uvicorn uses) doing the parsing does the same exchange for about half the CPU
(``benchmarks/llm_client.py``). Everything else (HTTPS, proxies) goes through
aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from .base import ExchangeFailed


class _StaleConnection(Exception):
    """A pooled connection the server had closed before answering: try a new one."""


class _Target:
    """Where a URL goes and the constant part of every request to it."""

    __slots__ = ("head", "host", "idle", "port")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain-http URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        self.head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode("latin-1")
        self.idle: list[_Connection] = []


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.chunks: list[bytes] = []
        self.received = False  # any byte of the current answer
        self.closed = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not registered as an asyncio.Transport subclass
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ExchangeFailed(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.received:
            self._fail(_StaleConnection())
        else:
            self._fail(ExchangeFailed(f"server disconnected mid-response: {exc or 'EOF'}"))

    # -- httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body = b"".join(self.chunks)
        self.chunks = []
        if waiter is not None and not waiter.done():
            keep = bool(self.parser.should_keep_alive())
            waiter.set_result((self.parser.get_status_code(), body, keep))

    # -- ours
    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        if self.transport is None:
            raise _StaleConnection()
        self.received = False
        self.chunks = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """Keep-alive pools per URL; a connection is reused only after a complete answer."""

    def __init__(self) -> None:
        self._targets: dict[str, _Target] = {}
        self._open: set[_Connection] = set()

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = _Target(url)
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = b"%b%bContent-Length: %d\r\n\r\n%b" % (
            target.head,
            lines.encode("latin-1"),
            len(body),
            body,
        )
        async with asyncio.timeout(timeout):
            return await self._send(target, request)

    async def _send(self, target: _Target, request: bytes) -> tuple[int, bytes]:
        """On a pooled connection if one is open; once more on a new one if it was stale."""
        conn = self._pooled(target)
        if conn is not None:
            try:
                return await self._exchange(target, conn, request)
            except _StaleConnection:
                pass
        conn = await self._connect(target)
        try:
            return await self._exchange(target, conn, request)
        except _StaleConnection:
            raise ExchangeFailed("server closed the connection without answering") from None

    def _pooled(self, target: _Target) -> _Connection | None:
        while target.idle:
            conn = target.idle.pop()
            if conn.usable():
                return conn
            self._open.discard(conn)
        return None

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, target.host, target.port)
        self._open.add(conn)
        return conn

    async def _exchange(
        self, target: _Target, conn: _Connection, request: bytes
    ) -> tuple[int, bytes]:
        try:
            status, body, keep = await conn.exchange(request)
        except BaseException:  # failed, timed out or cancelled: the stream is unusable
            conn.close()
            self._open.discard(conn)
            raise
        if keep and conn.usable():
            target.idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)
        return status, body

    async def close(self) -> None:
        for conn in self._open:
            conn.close()
        self._open.clear()
        for target in self._targets.values():
            target.idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing
