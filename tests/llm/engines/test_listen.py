"""Servers bound to a wildcard answer on every address family, on the advertised port.

The default ``slurm.bind_host: "*"`` used to bind IPv4 and IPv6 on two different random
ports and advertise one: every worker request to ``127.0.0.1`` was refused.
"""

from __future__ import annotations

import socket

import aiohttp
import pytest

from matrixhpc.llm.engines.listen import (
    asyncio_host,
    dual_stack,
    free_port,
    listen_sockets,
    loopback_hosts,
    single_socket_host,
    url_host,
)
from matrixhpc.llm.engines.simulated import PROFILES, create_app, start_server


async def _models(address: str, port: int) -> int:
    url = f"http://{url_host(address)}:{port}/v1/models"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status


@pytest.mark.asyncio
@pytest.mark.parametrize("host", ["*", "0.0.0.0", ""])
@pytest.mark.parametrize("fixed_port", [False, True], ids=["port0", "fixed"])
async def test_wildcard_server_answers_on_every_loopback(host: str, fixed_port: bool) -> None:
    port = free_port("*") if fixed_port else 0
    runner, bound = await start_server(create_app(PROFILES["zero"], time_scale=0), host, port)
    try:
        if fixed_port:
            assert bound == port
        for address in loopback_hosts():
            assert await _models(address, bound) == 200, f"{address}:{bound}"
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_a_named_host_listens_only_there() -> None:
    runner, bound = await start_server(create_app(PROFILES["zero"], time_scale=0), "127.0.0.1")
    try:
        assert await _models("127.0.0.1", bound) == 200
        if "::1" in loopback_hosts():
            with pytest.raises(aiohttp.ClientConnectionError):
                await _models("::1", bound)
    finally:
        await runner.cleanup()


def test_every_family_shares_the_port_and_sockets_are_released() -> None:
    socks = listen_sockets("*", 0)
    try:
        families = {s.family for s in socks}
        assert socket.AF_INET in families
        assert len({s.getsockname()[1] for s in socks}) == 1, "one port for every family"
    finally:
        for sock in socks:
            sock.close()


def test_engine_hosts_spell_every_family_their_own_way() -> None:
    """vLLM binds one socket itself (``::`` is dual-stack where the kernel allows it);
    uvicorn's default path (llama.cpp) goes through asyncio, where ``""`` is every family."""
    assert single_socket_host("*") == ("::" if dual_stack() else "0.0.0.0")
    assert single_socket_host("0.0.0.0") == single_socket_host("*")
    assert asyncio_host("*") == asyncio_host("0.0.0.0") == ""
    assert single_socket_host("node7") == asyncio_host("node7") == "node7"
    assert url_host("::1") == "[::1]"
    assert url_host("node7") == "node7"
