"""What the LLM client needs from HTTP: one POST, three ways to fail.

The client decides retries, failover and benching from the *kind* of failure, so
every implementation must raise the same three:

* :class:`TimeoutError` — no complete answer within the deadline;
* :class:`OSError` — the replica refused or reset the connection (it looks gone:
  the client benches it at once);
* :class:`ExchangeFailed` — the exchange broke off or the answer was not HTTP
  (retryable, but says nothing about the replica's health).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class ExchangeFailed(Exception):
    """The request was sent but no well-formed response came back."""


class HTTPClient(Protocol):
    """A pooled client bound to the running event loop."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]:
        """POST ``body``; the status and the whole response body."""
        ...

    async def close(self) -> None: ...
