"""aiohttp behind :class:`~matrixhpc.llm.http.base.HTTPClient`: HTTPS, proxies, anything.

Used for the URLs the lean client does not take (``https://``), and everywhere
when ``MATRIXHPC_HTTP=aiohttp``.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from yarl import URL

from .base import ExchangeFailed


def _without_credentials(url: str) -> str:
    return str(URL(url).with_user(None)) if "@" in url else url


def _target(url: str, headers: Mapping[str, str]) -> str:
    """The URL to request. Credentials in it become Basic auth (aiohttp's own rule) unless
    the caller sets ``Authorization``, which wins, as in the lean client (aiohttp itself
    would refuse the request: it will not combine the two)."""
    if any(k.lower() == "authorization" for k in headers):
        return _without_credentials(url)
    return url


class AiohttpClient:
    def __init__(self) -> None:
        # limit=0: aiohttp's default connector silently caps a session at 100
        # connections; the LLM client's per-replica limits are the only cap
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]:
        try:
            async with self._session.post(
                _target(url, headers),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                return resp.status, await resp.read()
        except OSError:  # aiohttp.ClientOSError: refused / reset
            raise
        except aiohttp.ClientError as exc:  # disconnects, truncated or malformed answers
            raise ExchangeFailed(f"{type(exc).__name__}: {exc}") from None

    async def get_text(self, url: str, headers: Mapping[str, str], timeout: float) -> str:
        """GET a text page (metrics); a non-200 answer is an :class:`ExchangeFailed`."""
        try:
            async with self._session.get(
                _target(url, headers), headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                if resp.status != 200:
                    raise ExchangeFailed(f"HTTP {resp.status} from {_without_credentials(url)}")
                return await resp.text()
        except OSError:
            raise
        except aiohttp.ClientError as exc:
            raise ExchangeFailed(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        await self._session.close()
