"""ZeroMQ transport over real sockets: a send never hangs on a dead peer, and only
the run's own CURVE clients can deliver a frame."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import zmq
import zmq.asyncio

from matrixhpc.keys import CurveKeys
from matrixhpc.llm.engines.listen import loopback_hosts, url_host
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


def _loop_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(None, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional speed-up
        return factories
    return [*factories, pytest.param(uvloop.new_event_loop, id="uvloop")]


async def _overlapping_sends(count: int, wait: float) -> list[tuple[bool, float]]:
    """``count`` sends to one address nobody listens on, all started at once."""
    ctx = zmq.asyncio.Context()
    outbox = Outbox(ctx)
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()

    async def one() -> tuple[bool, float]:
        sent = await outbox.send(address, b"to nobody", wait=wait)
        return sent, time.monotonic() - start

    try:
        # the outer bound only keeps a regression from hanging the suite
        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), 10)
    finally:
        outbox.close()
        ctx.destroy(linger=0)


@pytest.mark.parametrize("loop_factory", _loop_factories())
@pytest.mark.parametrize("count", [2, 10])
def test_overlapping_sends_to_nobody_all_return_false_within_wait(
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None, count: int
) -> None:
    """After a restart the registry still lists a dead peer's old address: several hand-offs
    to it overlap. Each must give up after its own wait (the second used to hang forever)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        results = runner.run(_overlapping_sends(count, wait=0.3))
    assert [sent for sent, _ in results] == [False] * count
    assert all(0.25 <= elapsed < 1.5 for _, elapsed in results), results


@pytest.mark.asyncio
async def test_overlapping_sends_to_a_live_inbox_all_arrive(ctx: zmq.asyncio.Context) -> None:
    """Sends racing a pending wait on the same socket are delivered, none lost or doubled."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    outbox = Outbox(ctx)
    pending = [asyncio.ensure_future(outbox.send(address, b"%d" % i, wait=5)) for i in range(10)]
    await asyncio.sleep(0)  # every send is now waiting for the connection
    late = ctx.socket(zmq.PULL)
    late.setsockopt(zmq.LINGER, 0)
    late.bind(address)
    try:
        assert await asyncio.wait_for(asyncio.gather(*pending), 10) == [True] * 10
        got = {await asyncio.wait_for(late.recv(), 5) for _ in range(10)}
        assert got == {b"%d" % i for i in range(10)}
    finally:
        late.close()
        outbox.close()


async def _stranger_delivers(ctx: zmq.asyncio.Context, address: str, server_key: bytes) -> bool:
    """A client that knows the run's *server* key but has a keypair of its own: can it
    get a frame out within a second?"""
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)  # as the outbox: queue only on a live connection
    sock.curve_serverkey = server_key
    sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.connect(address)
    try:
        if not await sock.poll(1000, zmq.POLLOUT):  # type: ignore[call-arg]
            return False
        await sock.send(b"forged")
        return True
    finally:
        sock.close()


@pytest.mark.asyncio
async def test_only_the_runs_own_curve_client_can_deliver(
    ctx: zmq.asyncio.Context, tmp_path: Path
) -> None:
    keys = CurveKeys.create(tmp_path / "curve.key")
    inbox = Inbox(ctx, curve=keys)
    other = zmq.asyncio.Context()  # another process, as far as ZeroMQ is concerned
    member = Outbox(other, curve=keys)
    try:
        assert await _stranger_delivers(other, inbox.address, keys.public) is False
        assert await member.send(inbox.address, b"genuine", wait=5.0) is True
        assert await asyncio.wait_for(inbox.recv(), 5) == b"genuine"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(inbox.recv(), 0.3)  # the forged frame never arrives
    finally:
        member.close()
        other.destroy(linger=0)
        inbox.close()


@pytest.mark.asyncio
async def test_inboxes_share_one_gatekeeper_and_the_context_terminates(tmp_path: Path) -> None:
    """libzmq allows one ZAP handler per context; closing every inbox stops it, so a
    worker's ``Context.term()`` does not wait forever on the handler's socket."""
    keys = CurveKeys.create(tmp_path / "curve.key")
    ctx = zmq.asyncio.Context()
    first, second = Inbox(ctx, curve=keys), Inbox(ctx, curve=keys)
    member = Outbox(ctx, curve=keys)
    first.close()  # the other inbox still checks clients
    assert await member.send(second.address, b"still in", wait=5.0) is True
    assert await asyncio.wait_for(second.recv(), 5) == b"still in"
    member.close()
    second.close()
    await asyncio.wait_for(asyncio.to_thread(ctx.term), 10)


@pytest.mark.asyncio
async def test_an_inbox_on_the_wildcard_takes_every_address_family(
    ctx: zmq.asyncio.Context,
) -> None:
    """``slurm.bind_host: "*"`` advertises the node's name, which may resolve to IPv4 or
    IPv6: the inbox must answer on both."""
    inbox = Inbox(ctx, "*")
    outbox = Outbox(ctx)
    port = inbox.address.rsplit(":", 1)[1]
    try:
        for host in map(url_host, loopback_hosts()):
            address = f"tcp://{host}:{port}"
            assert await outbox.send(address, host.encode(), wait=5.0) is True, address
            assert await asyncio.wait_for(inbox.recv(), 5) == host.encode()
    finally:
        outbox.close()
        inbox.close()
