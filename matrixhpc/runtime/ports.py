"""The two ends of the worker's transport, as the worker uses them.

The worker needs only this much from a transport: an inbox that yields frames and has
an address peers can reach, and an outbox that tries to deliver a frame to an address
within a bounded wait and says whether it could. The ZeroMQ classes
(:mod:`matrixhpc.runtime.transport`) match it, and so does the in-process transport
(:mod:`matrixhpc.runtime.memory_transport`) that unit tests run several workers on.
"""

from __future__ import annotations

from typing import Protocol


class FrameInbox(Protocol):
    address: str  # where peers send to (advertised in the registry)

    async def recv(self) -> bytes:
        """The next frame (waits until one arrives)."""
        ...

    def close(self) -> None: ...


class FrameOutbox(Protocol):
    async def send(self, address: str, frame: bytes, wait: float = ...) -> bool:
        """Queue ``frame`` for ``address``; False if it cannot be taken within ``wait``
        seconds. Never blocks for longer: the caller keeps the frame and retries."""
        ...

    def close(self) -> None: ...
