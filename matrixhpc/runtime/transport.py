"""ZeroMQ transport: one PULL inbox per worker, lazily connected PUSH sockets to peers.

Knows frames as bytes and addresses as strings; nothing about tasks or LLMs.
PUSH/PULL gives fair-queued delivery with no broker; high-water marks bound
memory, and the receiver always drains its inbox (back-pressure is applied by
admission windows, not by blocking sockets, so peers cannot deadlock each other).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.asyncio

LINGER_MS = 5000  # let queued frames (returns to origins) leave on close
SEND_WAIT = 2.0  # seconds a send waits for a connection before giving up


@dataclass(frozen=True)
class CurveKeys:
    """The run's CURVE keypair (Z85). Every inbox is a CURVE server with it and every
    outbox a client: only processes that can read ``RUN_DIR/secrets`` (mode 0600, the
    run's owner) can connect, and all traffic between workers is encrypted."""

    public: bytes
    secret: bytes

    @classmethod
    def create(cls, path: Path) -> CurveKeys:
        """Load the run's keys, creating them (0600) on first use."""
        if not path.exists():
            public, secret = zmq.curve_keypair()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(public + b"\n" + secret + b"\n")
        public, secret = path.read_bytes().split()[:2]
        return cls(public, secret)


def advertised_host(bind_host: str) -> str:
    if bind_host in ("*", "0.0.0.0", ""):
        return os.environ.get("MATRIXHPC_ADVERTISE_HOST") or socket.getfqdn()
    return bind_host


class Inbox:
    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        host: str = "127.0.0.1",
        hwm: int = 100_000,
        curve: CurveKeys | None = None,
    ) -> None:
        self.sock = ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
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


class Outbox:
    def __init__(
        self, ctx: zmq.asyncio.Context, hwm: int = 100_000, curve: CurveKeys | None = None
    ) -> None:
        self.ctx = ctx
        self.hwm = hwm
        self.curve = curve
        self._socks: dict[str, zmq.asyncio.Socket] = {}

    def _socket(self, address: str) -> zmq.asyncio.Socket:
        sock = self._socks.get(address)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, self.hwm)
            sock.setsockopt(zmq.LINGER, LINGER_MS)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection
            if self.curve is not None:
                sock.curve_serverkey = self.curve.public
                sock.curve_publickey = self.curve.public
                sock.curve_secretkey = self.curve.secret
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
