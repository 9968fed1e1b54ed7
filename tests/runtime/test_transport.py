"""ZeroMQ transport over real sockets: a send never hangs on a dead peer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import zmq
import zmq.asyncio

from matrixhpc.runtime.transport import Inbox, Outbox, advertised_host


@pytest_asyncio.fixture
async def ctx() -> AsyncIterator[zmq.asyncio.Context]:
    context = zmq.asyncio.Context()
    yield context
    context.destroy(linger=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.asyncio
async def test_send_to_a_live_inbox(ctx: zmq.asyncio.Context) -> None:
    inbox = Inbox(ctx)
    outbox = Outbox(ctx)
    try:
        assert inbox.address.startswith("tcp://127.0.0.1:")
        frames = [b"\x01first", b"", b"\x02" + bytes(range(256)) * 100]
        for frame in frames:
            assert await asyncio.wait_for(outbox.send(inbox.address, frame), 5) is True
        got = [await asyncio.wait_for(inbox.recv(), 5) for _ in frames]
        assert got == frames  # in order, byte for byte
        assert len(outbox._socks) == 1  # one socket per peer, reused
    finally:
        outbox.close()
        inbox.close()


@pytest.mark.asyncio
async def test_send_to_nobody_returns_false_within_wait(ctx: zmq.asyncio.Context) -> None:
    outbox = Outbox(ctx)
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    try:
        sent = await asyncio.wait_for(outbox.send(address, b"lost?", wait=0.3), 5)
        elapsed = time.monotonic() - start
    finally:
        outbox.close()
    assert sent is False
    assert 0.25 <= elapsed < 1.5


@pytest.mark.asyncio
async def test_a_peer_that_comes_up_later_is_reached(ctx: zmq.asyncio.Context) -> None:
    outbox = Outbox(ctx)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    assert await outbox.send(address, b"early", wait=0.2) is False
    late = ctx.socket(zmq.PULL)
    late.setsockopt(zmq.LINGER, 0)
    late.bind(address)
    try:
        assert await asyncio.wait_for(outbox.send(address, b"late", wait=5.0), 10) is True
        assert await asyncio.wait_for(late.recv(), 5) == b"late"  # the early one was not queued
    finally:
        late.close()
        outbox.close()


@pytest.mark.parametrize(("bind", "expected"), [("127.0.0.1", "127.0.0.1"), ("node7", "node7")])
def test_advertised_host_of_a_named_bind(bind: str, expected: str) -> None:
    assert advertised_host(bind) == expected


@pytest.mark.parametrize("bind", ["*", "0.0.0.0", ""])
def test_advertised_host_of_a_wildcard_is_this_host(bind: str) -> None:
    assert advertised_host(bind) == socket.getfqdn()
