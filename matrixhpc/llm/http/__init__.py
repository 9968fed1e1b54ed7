"""HTTP for the LLM client: a lean keep-alive client for ``http://``, aiohttp otherwise."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .aiohttp_client import AiohttpClient
from .base import ExchangeFailed, HTTPClient
from .lean import LeanClient

__all__ = ["ExchangeFailed", "HTTPClient", "PooledHTTP"]


class PooledHTTP:
    """One per process and event loop: each URL goes to the client that can take it.

    ``MATRIXHPC_HTTP=aiohttp`` sends everything through aiohttp (an escape hatch
    for a server the lean client does not understand).
    """

    def __init__(self) -> None:
        self._lean = LeanClient() if os.environ.get("MATRIXHPC_HTTP") != "aiohttp" else None
        self._general: AiohttpClient | None = None

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]:
        if self._lean is not None and url.startswith("http://"):
            return await self._lean.post(url, body, headers, timeout)
        return await self._aiohttp().post(url, body, headers, timeout)

    async def get_text(self, url: str, headers: Mapping[str, str], timeout: float) -> str:
        """Rare GETs (metrics) always go through aiohttp: not worth a lean path."""
        return await self._aiohttp().get_text(url, headers, timeout)

    def _aiohttp(self) -> AiohttpClient:
        if self._general is None:
            self._general = AiohttpClient()
        return self._general

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
        if self._general is not None:
            await self._general.close()
            self._general = None
