"""ZeroMQ transport: one PULL inbox per worker, lazily connected PUSH sockets to peers.

Knows frames as bytes and addresses as strings; nothing about tasks or LLMs.
PUSH/PULL gives fair-queued delivery with no broker; high-water marks bound
memory, and the receiver always drains its inbox (back-pressure is applied by
admission windows, not by blocking sockets, so peers cannot deadlock each other).
"""

from __future__ import annotations

import asyncio
import os
import socket
import weakref
from typing import Any

import zmq
import zmq.asyncio
from zmq.auth.thread import ThreadAuthenticator

from matrixhpc.keys import CurveKeys

LINGER_MS = 5000  # let queued frames (returns to origins) leave on close
SEND_WAIT = 2.0  # seconds a send waits for a connection before giving up


def advertised_host(bind_host: str) -> str:
    if bind_host in ("*", "0.0.0.0", ""):
        return os.environ.get("MATRIXHPC_ADVERTISE_HOST") or socket.getfqdn()
    return bind_host


class _Gatekeeper:
    """ZeroMQ's ZAP handler for one context: a CURVE client is let in only if its public
    key is one of the run's own client keys.

    Without a ZAP handler libzmq accepts every client that knows the *server* key, so
    anyone who once saw an inbox's public key could deliver frames. The handler runs in
    a thread (pyzmq's ``ThreadAuthenticator``): it binds the context's ZAP endpoint
    synchronously, so no connection is accepted unchecked even before the event loop
    runs, and a busy event loop does not delay handshakes. One per context (libzmq
    allows one ZAP endpoint per context); shared by every inbox in it and stopped with
    the last one, so ``Context.term`` never waits on the ZAP socket.
    """

    _by_context: weakref.WeakKeyDictionary[zmq.Context[Any], _Gatekeeper] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, ctx: zmq.Context[Any]) -> None:
        self.allowed: dict[bytes, int] = {}  # Z85 client key -> inboxes that allow it
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve_callback("*", self)

    @classmethod
    def admit(cls, ctx: zmq.Context[Any], key: bytes) -> _Gatekeeper:
        """The context's gatekeeper (started on first use), now also admitting ``key``."""
        keeper = cls._by_context.get(ctx)
        if keeper is None:
            keeper = cls._by_context[ctx] = cls(ctx)
        keeper.allowed[key] = keeper.allowed.get(key, 0) + 1
        return keeper

    def release(self, key: bytes) -> None:
        """One inbox fewer admits ``key``; the last one out stops the handler thread."""
        left = self.allowed.get(key, 0) - 1
        if left > 0:
            self.allowed[key] = left
        else:
            self.allowed.pop(key, None)
        if not self.allowed:
            self.auth.stop()
            self._by_context.pop(self.auth.context, None)

    def callback(self, _domain: str, key: bytes) -> bool:
        """pyzmq's credentials-provider hook: ``key`` is the client's Z85 public key."""
        return key in self.allowed


class Inbox:
    """This worker's PULL socket. With ``curve``, a CURVE server that admits only clients
    presenting the run's own client key (``client_keys``, default: ``curve.public``)."""

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        host: str = "127.0.0.1",
        hwm: int = 100_000,
        curve: CurveKeys | None = None,
        client_keys: tuple[bytes, ...] | None = None,
    ) -> None:
        self.sock = ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        # "*" is every address family: IPv6 on makes libzmq bind a dual-stack socket
        # (IPv4 alone where the machine has no IPv6), so the advertised host name works
        # whichever family it resolves to
        self.sock.setsockopt(zmq.IPV6, 1)
        self._gate: list[tuple[_Gatekeeper, bytes]] = []
        if curve is not None:
            for key in client_keys or (curve.public,):
                self._gate.append((_Gatekeeper.admit(ctx, key), key))
            self.sock.curve_secretkey = curve.secret
            self.sock.curve_publickey = curve.public
            self.sock.curve_server = True
        bind = "*" if host in ("*", "0.0.0.0", "") else host
        port = self.sock.bind_to_random_port(f"tcp://{bind}")
        self.address = f"tcp://{advertised_host(host)}:{port}"

    async def recv(self) -> bytes:
        frame: bytes = await self.sock.recv(copy=True)
        return frame

    def close(self) -> None:
        self.sock.close()
        for keeper, key in self._gate:
            keeper.release(key)
        self._gate.clear()


class _Peer:
    """The PUSH socket to one peer, as an asyncio socket (to wait for room) and a plain
    shadow of the same socket (to send).

    Sends never go through the asyncio socket: pyzmq queues an asyncio ``send`` behind
    any pending ``poll`` on the same socket, even with ``NOBLOCK``, and such a send
    waits for ``POLLOUT`` forever (a NOBLOCK send only fails fast when nothing else
    waits). Two overlapping sends to an unreachable peer therefore hung the second one;
    a plain non-blocking send cannot wait at all.
    """

    __slots__ = ("plain", "sock")

    def __init__(self, sock: zmq.asyncio.Socket) -> None:
        self.sock = sock
        self.plain: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)

    def try_send(self, frame: bytes) -> bool:
        try:
            self.plain.send(frame, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        return True


class Outbox:
    def __init__(
        self, ctx: zmq.asyncio.Context, hwm: int = 100_000, curve: CurveKeys | None = None
    ) -> None:
        self.ctx = ctx
        self.hwm = hwm
        self.curve = curve
        self._socks: dict[str, _Peer] = {}

    def _peer(self, address: str) -> _Peer:
        peer = self._socks.get(address)
        if peer is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, self.hwm)
            sock.setsockopt(zmq.LINGER, LINGER_MS)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection
            sock.setsockopt(zmq.IPV6, 1)  # a peer's host name may resolve to IPv6
            if self.curve is not None:
                sock.curve_serverkey = self.curve.public
                sock.curve_publickey = self.curve.public
                sock.curve_secretkey = self.curve.secret
            sock.connect(address)
            peer = self._socks[address] = _Peer(sock)
        return peer

    async def send(self, address: str, frame: bytes, wait: float = SEND_WAIT) -> bool:
        """Queue a frame for ``address``; False if the peer cannot take it within ``wait``
        seconds (not connected, dead, or its queue full). Never blocks for longer, however
        many sends to the same peer overlap: the caller keeps the frame and retries,
        instead of a coroutine hanging on a dead peer."""
        peer = self._peer(address)
        if peer.try_send(frame):
            return True
        try:
            async with asyncio.timeout(wait):
                while True:  # room may be taken by an overlapping send before ours
                    await peer.sock.poll(flags=zmq.POLLOUT)  # type: ignore[call-arg]
                    if peer.try_send(frame):
                        return True
        except TimeoutError:
            return False

    def close(self) -> None:
        for peer in self._socks.values():
            peer.sock.close()
        self._socks.clear()
