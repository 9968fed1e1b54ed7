"""Both HTTP clients honour one contract: status + body, or one of three failures.

The server is a raw asyncio socket server so that each test can answer exactly
the bytes it needs (chunked, ``Connection: close``, garbage, half an answer).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from matrixhpc.llm.engines.process import free_port
from matrixhpc.llm.http import ExchangeFailed, PooledHTTP
from matrixhpc.llm.http.aiohttp_client import AiohttpClient
from matrixhpc.llm.http.base import HTTPClient
from matrixhpc.llm.http.lean import LeanClient

Answer = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[None]]
pytestmark = pytest.mark.asyncio

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer k"}


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@dataclass
class Server:
    """Answers the n-th request (over all connections) with ``answer``."""

    answer: Answer
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def head(self, n: int) -> str:
        """The request line and headers of the n-th request (1-based)."""
        return self.requests[n - 1].split(b"\r\n\r\n")[0].decode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                await self.answer(len(self.requests), body, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


ServerFactory = Callable[[Answer], Awaitable[Server]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[ServerFactory]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> Server:
        srv = Server(answer, free_port())
        servers.append(await asyncio.start_server(srv.handle, "127.0.0.1", srv.port))
        return srv

    yield start
    for s in servers:
        s.close()


@pytest_asyncio.fixture(params=["lean", "aiohttp"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[HTTPClient]:
    c: HTTPClient = LeanClient() if request.param == "lean" else AiohttpClient()
    yield c
    await c.close()


async def echo(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
    w.write(ok(body))


async def test_roundtrip_and_keep_alive(serve: ServerFactory, client: HTTPClient) -> None:
    srv = await serve(echo)
    for i in range(5):
        status, body = await client.post(srv.url, b'{"n": %d}' % i, HEADERS, 5)
        assert (status, body) == (200, b'{"n": %d}' % i)
    assert srv.connections == 1, "sequential requests reuse one connection"
    head = srv.requests[0].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /v1/chat/completions HTTP/1.1")
    assert "Authorization: Bearer k" in head
    assert "Content-Type: application/json" in head


async def test_concurrent_requests_open_connections(
    serve: ServerFactory, client: HTTPClient
) -> None:
    async def slow(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        w.write(ok(body))

    srv = await serve(slow)
    answers = await asyncio.gather(*(client.post(srv.url, b"%d" % i, HEADERS, 5) for i in range(8)))
    assert sorted(b for _, b in answers) == sorted(b"%d" % i for i in range(8))
    assert srv.connections == 8


async def test_chunked_answer(serve: ServerFactory, client: HTTPClient) -> None:
    async def chunked(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        w.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    srv = await serve(chunked)
    assert await client.post(srv.url, b"{}", HEADERS, 5) == (200, b"hello world")
    assert await client.post(srv.url, b"{}", HEADERS, 5) == (200, b"hello world")


async def test_error_status_is_returned_not_raised(
    serve: ServerFactory, client: HTTPClient
) -> None:
    async def busy(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")

    srv = await serve(busy)
    assert await client.post(srv.url, b"{}", HEADERS, 5) == (503, b"busy")


async def test_connection_close_is_honoured(serve: ServerFactory, client: HTTPClient) -> None:
    async def close_after(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        w.write(ok(body, "Connection: close\r\n"))
        await w.drain()
        w.close()

    srv = await serve(close_after)
    for _ in range(3):
        assert (await client.post(srv.url, b"x", HEADERS, 5))[0] == 200
    assert srv.connections == 3


async def test_idle_connection_closed_by_server_is_replaced(
    serve: ServerFactory, client: HTTPClient
) -> None:
    async def answer_then_hang_up(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        w.write(ok(body))  # keep-alive promised, then the server drops it anyway
        await w.drain()
        w.close()

    srv = await serve(answer_then_hang_up)
    assert (await client.post(srv.url, b"a", HEADERS, 5))[0] == 200
    await asyncio.sleep(0.05)
    assert await client.post(srv.url, b"b", HEADERS, 5) == (200, b"b")
    assert srv.connections == 2


async def test_refused_is_an_oserror(client: HTTPClient) -> None:
    with pytest.raises(OSError, match="Connect call failed"):
        await client.post(f"http://127.0.0.1:{free_port()}/v1/x", b"{}", HEADERS, 5)


async def test_timeout_is_a_timeout_and_the_connection_is_not_reused(
    serve: ServerFactory, client: HTTPClient
) -> None:
    async def first_hangs(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        if n == 1:
            await asyncio.sleep(1.0)  # late: must never be read as the next answer
        w.write(ok(body))

    srv = await serve(first_hangs)
    with pytest.raises(TimeoutError):
        await client.post(srv.url, b"first", HEADERS, 0.2)
    assert await client.post(srv.url, b"second", HEADERS, 5) == (200, b"second")


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"half', id="truncated"),
        pytest.param(b"this is not HTTP\r\n\r\n", id="garbage"),
    ],
)
async def test_broken_answer_is_an_exchange_failure(
    serve: ServerFactory, client: HTTPClient, reply: bytes
) -> None:
    async def broken(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        w.write(reply)
        await w.drain()
        w.close()

    srv = await serve(broken)
    with pytest.raises(ExchangeFailed):
        await client.post(srv.url, b"{}", HEADERS, 5)


async def test_pooled_http_routes_by_scheme_and_env(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = await serve(echo)
    lean = PooledHTTP()
    assert await lean.post(srv.url, b"1", HEADERS, 5) == (200, b"1")
    assert lean._general is None, "plain http goes through the lean client"
    await lean.close()
    monkeypatch.setenv("MATRIXHPC_HTTP", "aiohttp")
    general = PooledHTTP()
    assert await general.post(srv.url, b"2", HEADERS, 5) == (200, b"2")
    assert general._lean is None
    assert general._general is not None
    await general.close()


async def _read_then_hang_up(w: asyncio.StreamWriter, reset: bool) -> None:
    """The server read the whole request (it may be generating), then the connection
    goes: a clean close, or a reset (the process was killed with data unread)."""
    if reset:
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()
    else:
        w.close()


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_post_the_server_read_is_never_resent(
    serve: ServerFactory, client: HTTPClient, reset: bool
) -> None:
    """On a pooled connection too: the transport must not repeat a request that may have
    been processed; the caller's retry policy decides."""

    async def second_is_read_then_dropped(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        if n == 2:
            await _read_then_hang_up(w, reset)
        else:
            w.write(ok(body))

    srv = await serve(second_is_read_then_dropped)
    assert await client.post(srv.url, b"first", HEADERS, 5) == (200, b"first")
    with pytest.raises((ExchangeFailed, OSError)):
        await client.post(srv.url, b"second", HEADERS, 5)
    assert [r.endswith(b"second") for r in srv.requests] == [False, True], "sent exactly once"
    assert await client.post(srv.url, b"third", HEADERS, 5) == (200, b"third")


async def test_a_clean_close_without_an_answer_is_an_exchange_failure(
    serve: ServerFactory, client: HTTPClient
) -> None:
    async def read_then_close(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        w.close()

    srv = await serve(read_then_close)
    with pytest.raises(ExchangeFailed):
        await client.post(srv.url, b"x", HEADERS, 5)
    assert len(srv.requests) == 1


@pytest.mark.parametrize("version", ["1.1", "1.0"])
@pytest.mark.parametrize("payload", [b'{"ok": true}', b""], ids=["body", "empty"])
async def test_close_delimited_answer(
    serve: ServerFactory, client: HTTPClient, version: str, payload: bytes
) -> None:
    """No Content-Length and not chunked: the body is everything up to the close."""

    async def until_close(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        w.write(f"HTTP/{version} 200 OK\r\nContent-Type: application/json\r\n\r\n".encode())
        w.write(payload)
        await w.drain()
        w.close()

    srv = await serve(until_close)
    for _ in range(2):
        assert await client.post(srv.url, b"{}", HEADERS, 5) == (200, payload)
    assert srv.connections == 2, "a close-delimited connection is never reused"


async def test_lean_takes_a_reset_during_a_close_delimited_body_as_a_failure(
    serve: ServerFactory,
) -> None:
    """Only a clean close ends a close-delimited body; a reset may have cut it short.
    (aiohttp accepts what it got: lean-only, stricter than the shared contract.)"""

    async def until_reset(n: int, body: bytes, w: asyncio.StreamWriter) -> None:
        w.write(b'HTTP/1.1 200 OK\r\n\r\n{"partial')
        await w.drain()
        await _read_then_hang_up(w, reset=True)

    srv = await serve(until_reset)
    lean = LeanClient()
    try:
        with pytest.raises(ExchangeFailed):
            await lean.post(srv.url, b"{}", HEADERS, 5)
    finally:
        await lean.close()


def _credentials_url(srv: Server) -> str:
    return f"http://us%40er:p%3Ass@127.0.0.1:{srv.port}/v1/chat/completions"


async def test_url_credentials_become_basic_auth_not_part_of_host(
    serve: ServerFactory, client: HTTPClient
) -> None:
    srv = await serve(echo)
    plain = {"Content-Type": "application/json"}
    assert await client.post(_credentials_url(srv), b"1", plain, 5) == (200, b"1")
    head = srv.head(1)
    assert f"\r\nHost: 127.0.0.1:{srv.port}\r\n" in head
    assert "us%40er" not in head
    assert "p%3Ass" not in head
    basic = base64.b64encode(b"us@er:p:ss").decode()
    assert f"\r\nAuthorization: Basic {basic}" in head


async def test_an_explicit_authorization_header_wins_over_url_credentials(
    serve: ServerFactory, client: HTTPClient
) -> None:
    srv = await serve(echo)
    assert await client.post(_credentials_url(srv), b"1", HEADERS, 5) == (200, b"1")
    head = srv.head(1)
    assert head.lower().count("\r\nauthorization:") == 1
    assert "Authorization: Bearer k" in head
    assert "us%40er" not in head


async def test_lean_does_not_reuse_a_connection_idle_past_max_idle(serve: ServerFactory) -> None:
    """A server closes idle keep-alive connections after its own timeout; one that might
    be closing under the next request is dropped instead of written to."""
    srv = await serve(echo)
    lean = LeanClient(max_idle=0.0)
    try:
        for i in range(3):
            assert await lean.post(srv.url, b"%d" % i, HEADERS, 5) == (200, b"%d" % i)
    finally:
        await lean.close()
    assert srv.connections == 3
