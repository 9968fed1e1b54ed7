"""ZeroMQ transport: one PULL inbox per worker, lazily connected PUSH sockets to peers.

Knows frames as bytes and addresses as strings; nothing about tasks or LLMs.
PUSH/PULL gives fair-queued delivery with no broker; high-water marks bound
memory, and the receiver always drains its inbox (back-pressure is applied by
admission windows, not by blocking sockets, so peers cannot deadlock each other).
"""

from __future__ import annotations

import socket

import zmq
import zmq.asyncio

LINGER_MS = 5000  # let queued frames (returns to origins) leave on close
SEND_WAIT = 2.0  # seconds a send waits for a connection before giving up


def advertised_host(bind_host: str) -> str:
    if bind_host in ("*", "0.0.0.0", ""):
        return socket.getfqdn()
    return bind_host


class Inbox:
    def __init__(self, ctx: zmq.asyncio.Context, host: str = "127.0.0.1", hwm: int = 100_000):
        self.sock = ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        bind = "*" if host in ("*", "0.0.0.0", "") else host
        port = self.sock.bind_to_random_port(f"tcp://{bind}")
        self.address = f"tcp://{advertised_host(host)}:{port}"

    async def recv(self) -> bytes:
        frame: bytes = await self.sock.recv(copy=True)
        return frame

    def close(self) -> None:
        self.sock.close()


class Outbox:
    def __init__(self, ctx: zmq.asyncio.Context, hwm: int = 100_000) -> None:
        self.ctx = ctx
        self.hwm = hwm
        self._socks: dict[str, zmq.asyncio.Socket] = {}

    def _socket(self, address: str) -> zmq.asyncio.Socket:
        sock = self._socks.get(address)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, self.hwm)
            sock.setsockopt(zmq.LINGER, LINGER_MS)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection
            sock.connect(address)
            self._socks[address] = sock
        return sock

    async def send(self, address: str, frame: bytes, wait: float = SEND_WAIT) -> bool:
        """Queue a frame for ``address``; False if the peer cannot take it within ``wait``
        seconds (not connected, dead, or its queue full). Never blocks for longer: the
        caller keeps the frame and retries, instead of a coroutine hanging on a dead peer."""
        sock = self._socket(address)
        try:
            await sock.send(frame, flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            pass
        if await sock.poll(timeout=int(wait * 1000), flags=zmq.POLLOUT):  # type: ignore[call-arg]
            try:
                await sock.send(frame, flags=zmq.NOBLOCK, copy=False)
                return True
            except zmq.Again:
                return False
        return False

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
