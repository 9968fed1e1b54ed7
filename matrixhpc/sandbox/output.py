"""Bounded capture of a stream: the first and the last bytes, and how many there were.

A sandboxed program may print gigabytes; the turn keeps ``limit`` bytes of each stream,
half from the head (where tracebacks of early failures and headers are) and half from
the tail (where the final error or result is), with the full size beside them.
"""

from __future__ import annotations

import asyncio

CHUNK = 65536


class HeadTail:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit // 2 + self.limit % 2 - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            keep = self.limit // 2
            if len(self.tail) > keep:
                del self.tail[: len(self.tail) - keep]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def bytes(self) -> bytes:
        """Everything, if it fitted; else the head and the tail joined (no marker)."""
        return bytes(self.head + self.tail)

    def text(self) -> str:
        """The capture as text, with a marker naming the bytes left out in the middle."""
        if not self.truncated:
            return self.bytes().decode("utf-8", "replace")
        omitted = self.total - len(self.head) - len(self.tail)
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        return f"{head}\n[... {omitted} bytes omitted of {self.total} ...]\n{tail}"

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(CHUNK):
            self.feed(chunk)
