"""Engine command lines carry no secret; the real llama.cpp server enforces the key it
got through its environment.

Every user of a node can read every process's argv (``ps``); only the owner can read
its environment. The llama.cpp test starts the real embedded engine (SmolLM2-135M on
CPU, a few seconds) through :func:`serve_engine`, as ``matrixhpc serve llamacpp`` does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from matrixhpc.llm.engines.commands import (
    EngineCommand,
    EngineLaunch,
    EngineUnavailable,
    embedded_model,
    llamacpp_command,
    vllm_command,
)
from matrixhpc.llm.engines.listen import free_port, loopback_hosts, url_host
from matrixhpc.llm.serve import ReplicaSpec, serve_engine

KEY = "s3cret-Key-0123456789"


LAUNCH = EngineLaunch(
    model="/models/m.gguf",
    served_name="llm",
    host="node7",
    port=8123,
    api_key=KEY,
    args={"max_model_len": 4096, "api_key": "from-args", "api-key": "dashed"},
    python=sys.executable,
)
Builder = Callable[[EngineLaunch], EngineCommand]


@pytest.mark.parametrize(
    ("build", "variable"), [(llamacpp_command, "API_KEY"), (vllm_command, "VLLM_API_KEY")]
)
def test_the_key_is_in_the_environment_never_on_argv(build: Builder, variable: str) -> None:
    command = build(LAUNCH)
    line = " ".join(command.argv)
    assert KEY not in line
    assert "from-args" not in line
    assert "dashed" not in line
    assert "api_key" not in line
    assert "api-key" not in line
    assert command.env[variable] == KEY
    assert command.argv[command.argv.index("--host") + 1] == "node7"


def test_without_a_key_nothing_secret_is_set() -> None:
    for build in (llamacpp_command, vllm_command):
        command = build(replace(LAUNCH, api_key=None))
        assert "API_KEY" not in command.env
        assert "VLLM_API_KEY" not in command.env


def test_llamacpp_pins_host_and_port_in_its_environment() -> None:
    """llama_cpp.server lets ``HOST``/``PORT`` from the environment override ``--host``."""
    command = llamacpp_command(LAUNCH)
    assert command.env["HOST"] == "node7"
    assert command.env["PORT"] == "8123"


def _children_cmdline_and_environ(marker: bytes) -> tuple[bytes, bytes]:
    """argv and environment of this process's child whose argv contains ``marker``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
            if ppid == os.getpid() and marker in cmdline:
                return cmdline, (proc / "environ").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
    raise AssertionError(f"no child process running {marker!r}")


async def _status(session: aiohttp.ClientSession, url: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with session.get(url, headers=headers) as resp:
        return resp.status


async def _until_healthy(url: str, server: asyncio.Task[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and not server.done():
            try:
                if await _status(session, url, KEY) == 200:
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise AssertionError(f"llama.cpp never became healthy at {url}")


@pytest_asyncio.fixture
async def llamacpp(tmp_path: Path) -> AsyncIterator[int]:
    """The embedded llama.cpp engine started by :func:`serve_engine` on ``*``; its port."""
    try:
        embedded_model()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    key_file = tmp_path / "llm.key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    port = free_port("*")
    spec = ReplicaSpec("llm", "r0", "smollm2", "*", port, key_file, log_dir=tmp_path)
    stop = asyncio.Event()

    async def finished() -> None:
        await stop.wait()

    server = asyncio.create_task(
        serve_engine(spec, "llamacpp", None, {"n_ctx": 256}, 120, finished=finished)
    )
    try:
        await _until_healthy(f"http://127.0.0.1:{port}/v1/models", server, 120)
        yield port
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 30) == 0


@pytest.mark.asyncio
async def test_llamacpp_enforces_the_key_it_got_by_environment(llamacpp: int) -> None:
    cmdline, environ = _children_cmdline_and_environ(b"llama_cpp.server")
    assert KEY.encode() not in cmdline, "the API key is readable by every user via ps"
    assert b"API_KEY=" + KEY.encode() in environ.split(b"\0")
    async with aiohttp.ClientSession() as session:
        for address in loopback_hosts():  # bound to "*": every family answers
            url = f"http://{url_host(address)}:{llamacpp}/v1/models"
            assert await _status(session, url, None) == 401
            assert await _status(session, url, "wrong") == 401
            assert await _status(session, url, KEY) == 200
