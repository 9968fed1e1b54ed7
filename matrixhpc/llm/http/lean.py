"""A lean HTTP/1.1 keep-alive client for plain-``http://`` LLM servers.

Why by hand: with a zero-latency engine, aiohttp's request machinery (URL
objects, header multidicts, tracing hooks, stream readers, timers) was half of
the framework's CPU per hop. An LLM replica on a cluster is a known kind of
peer — one host, one path, JSON in and out — so a pool of keep-alive connections
with ``httptools`` (the C parser uvicorn uses) doing the parsing does the same
exchange for about half the CPU (``benchmarks/llm_client.py``). Everything else
(HTTPS, proxies) goes through aiohttp.

What it must get right, as aiohttp does:

* A POST is never resent by the transport once any of it was written: the server
  may have read it (and, for an LLM, be generating), so "the connection broke
  before an answer" is an :class:`ExchangeFailed` and the LLM client's retry policy
  decides. Only a pooled connection already known to be closed is skipped, and
  pooled connections idle longer than :data:`MAX_IDLE` are not reused, so a
  server's keep-alive timeout (uvicorn: 5 s) rarely closes one under a request.
* A body is delimited by ``Content-Length``, chunked encoding, or (neither) the
  server closing the connection after it.
* ``http://user:pass@host/`` sends ``Host: host`` and the credentials as Basic
  ``Authorization``, unless the caller sets ``Authorization`` itself (it wins).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import cast
from urllib.parse import unquote, urlsplit

import httptools

from .base import ExchangeFailed

MAX_IDLE = 4.0  # seconds a pooled connection may sit unused and still be reused


def _basic_auth(username: str, password: str | None) -> str:
    """``Authorization`` for URL credentials (percent-decoded, as aiohttp does)."""
    pair = f"{unquote(username)}:{unquote(password or '')}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


class _Target:
    """Where a URL goes and the constant part of every request to it."""

    __slots__ = ("auth", "head", "host", "idle", "port")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain-http URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        authority = parts.netloc.rpartition("@")[2]  # never the userinfo
        self.head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n".encode("latin-1")
        auth = _basic_auth(parts.username, parts.password) if parts.username is not None else ""
        self.auth = f"Authorization: {auth}\r\n".encode("latin-1") if auth else b""
        self.idle: list[_Connection] = []

    def header_lines(self, headers: Mapping[str, str]) -> bytes:
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
        if self.auth and not any(k.lower() == "authorization" for k in headers):
            return self.auth + lines
        return lines


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.chunks: list[bytes] = []
        self.received = False  # any byte of the current answer
        self.headers_done = False
        self.framed = False  # Content-Length or Transfer-Encoding: not ended by close
        self.closed = False
        self.idle_since = 0.0

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
        if self.waiter is None:
            return
        if exc is None and self.headers_done and not self.framed:
            self._complete(keep=False)  # a close-delimited body ends here, complete
        elif not self.received:
            self._fail(ExchangeFailed("server closed the connection without answering"))
        else:
            self._fail(ExchangeFailed(f"server disconnected mid-response: {exc or 'EOF'}"))

    # -- httptools callbacks
    def on_header(self, name: bytes, _value: bytes) -> None:
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self._complete(bool(self.parser.should_keep_alive()))

    # -- ours
    def _complete(self, keep: bool) -> None:
        waiter, self.waiter = self.waiter, None
        body = b"".join(self.chunks)
        self.chunks = []
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body, keep))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        assert self.transport is not None  # connected before any exchange
        self.received = self.headers_done = self.framed = False
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

    def __init__(self, max_idle: float = MAX_IDLE) -> None:
        self.max_idle = max_idle
        self._targets: dict[str, _Target] = {}
        self._open: set[_Connection] = set()

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = _Target(url)
        request = b"%b%bContent-Length: %d\r\n\r\n%b" % (
            target.head,
            target.header_lines(headers),
            len(body),
            body,
        )
        async with asyncio.timeout(timeout):
            conn = self._pooled(target) or await self._connect(target)
            return await self._exchange(target, conn, request)

    def _pooled(self, target: _Target) -> _Connection | None:
        """The most recently used idle connection that is open and not too old to trust.

        Nothing is written to a connection known to be closed, so a request is never
        sent twice: what fails after writing fails to the caller."""
        oldest = asyncio.get_running_loop().time() - self.max_idle
        while target.idle:
            conn = target.idle.pop()
            if conn.usable() and conn.idle_since >= oldest:
                return conn
            conn.close()
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
            conn.idle_since = asyncio.get_running_loop().time()
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
