"""LLM client overhead per request, and the embedded engine's tokens/s.

1. Client overhead: the same zero-latency simulated engine (its own process) is
   driven (a) by a bare aiohttp loop — the usual way to do it; (b) by a bare loop
   over matrixhpc's lean keep-alive HTTP client (``matrixhpc.llm.http.lean``) —
   the least our transport can do; and (c) by matrixhpc's LLMClient (balancing,
   limits, retries, accounting, on the lean transport). Reported: requests/s and
   client-process CPU microseconds per request; (c) - (b) is what the client's
   features cost, (c) / (a) what a user gains over a plain aiohttp loop.
2. Embedded engine: llama.cpp serving SmolLM2-135M (the default engine), output
   tokens/s at concurrency 1 and 4 through LLMClient.

    python -m benchmarks.llm_client [--requests 4000] [--concurrency 64] [--skip-embedded]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from matrixhpc.llm.client import LLMClient
from matrixhpc.llm.engines.process import free_port
from matrixhpc.llm.http.lean import LeanClient
from matrixhpc.llm.replicas import StaticReplicaSource
from matrixhpc.llm.types import ClientPolicy, ReplicaInfo

RESULTS = Path(__file__).resolve().parent / "results" / "llm_client.json"
MESSAGES = [{"role": "user", "content": "Say something about the weather. " * 8}]


def start_server(engine: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "matrixhpc", "serve", engine, "--port", str(port), *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/models") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(url)


async def bounded(n: int, concurrency: int, call: Any) -> tuple[float, float]:
    """Run ``call()`` n times, at most ``concurrency`` at once; (wall s, cpu s)."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def raw_aiohttp(url: str, n: int, concurrency: int) -> tuple[float, float]:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 32}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def call() -> None:
            async with session.post(f"{url}/chat/completions", json=body) as resp:
                await resp.json()

        return await bounded(n, concurrency, call)


async def raw_lean(url: str, n: int, concurrency: int) -> tuple[float, float]:
    body = orjson.dumps({"model": "m", "messages": MESSAGES, "max_tokens": 32})
    headers = {"Content-Type": "application/json"}
    client = LeanClient()

    async def call() -> None:
        _, raw = await client.post(f"{url}/chat/completions", body, headers, 60)
        orjson.loads(raw)

    try:
        return await bounded(n, concurrency, call)
    finally:
        await client.close()


async def via_client(
    url: str, n: int, concurrency: int, model: str = "m", max_tokens: int = 32
) -> tuple[float, float]:
    source = StaticReplicaSource({"llm": [ReplicaInfo("r0", url, model)]})
    client = LLMClient(source, {"llm": ClientPolicy(max_concurrency=concurrency)})
    tokens = 0

    async def call() -> None:
        nonlocal tokens
        result = await client.chat("llm", MESSAGES, {"max_tokens": max_tokens})
        tokens += result.usage.get("completion_tokens", 0)

    wall, cpu = await bounded(n, concurrency, call)
    await client.close()
    via_client.tokens = tokens  # type: ignore[attr-defined]
    return wall, cpu


async def overhead(n: int, concurrency: int) -> dict[str, float]:
    port = free_port()
    proc = start_server("simulated", port, "--profile", "zero")
    url = f"http://127.0.0.1:{port}/v1"
    try:
        await wait_ready(url)
        await raw_aiohttp(url, 500, concurrency)  # warm-up
        raw_wall, raw_cpu = await raw_aiohttp(url, n, concurrency)
        lean_wall, lean_cpu = await raw_lean(url, n, concurrency)
        cli_wall, cli_cpu = await via_client(url, n, concurrency)
    finally:
        proc.terminate()
        proc.wait()
    return {
        "raw_requests_per_s": n / raw_wall,
        "lean_requests_per_s": n / lean_wall,
        "client_requests_per_s": n / cli_wall,
        "raw_cpu_us_per_request": 1e6 * raw_cpu / n,
        "lean_cpu_us_per_request": 1e6 * lean_cpu / n,
        "client_cpu_us_per_request": 1e6 * cli_cpu / n,
        "client_overhead_us_per_request": 1e6 * (cli_cpu - lean_cpu) / n,
        "client_vs_aiohttp_cpu": cli_cpu / raw_cpu,
    }


async def embedded(requests: int) -> dict[str, float]:
    port = free_port()
    proc = start_server("llamacpp", port)
    url = f"http://127.0.0.1:{port}/v1"
    out: dict[str, float] = {}
    try:
        await wait_ready(url)
        for concurrency in (1, 4):
            wall, _ = await via_client(url, requests, concurrency, model="llm", max_tokens=128)
            out[f"tokens_per_s_c{concurrency}"] = via_client.tokens / wall  # type: ignore[attr-defined]
    finally:
        proc.terminate()
        proc.wait()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--embedded-requests", type=int, default=12)
    parser.add_argument("--skip-embedded", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = asyncio.run(overhead(args.requests, args.concurrency))
    print(f"{'client':24} {'requests/s':>11} {'cpu us/req':>11}")
    print(
        f"{'raw aiohttp (baseline)':24} {result['raw_requests_per_s']:>11.0f} "
        f"{result['raw_cpu_us_per_request']:>11.0f}"
    )
    print(
        f"{'bare lean transport':24} {result['lean_requests_per_s']:>11.0f} "
        f"{result['lean_cpu_us_per_request']:>11.0f}"
    )
    print(
        f"{'matrixhpc LLMClient':24} {result['client_requests_per_s']:>11.0f} "
        f"{result['client_cpu_us_per_request']:>11.0f}"
    )
    print(
        f"client_overhead_us_per_request={result['client_overhead_us_per_request']:.0f} "
        f"client_cpu_vs_bare_aiohttp={result['client_vs_aiohttp_cpu']:.2f}"
    )
    if not args.skip_embedded:
        result["embedded"] = asyncio.run(embedded(args.embedded_requests))
        emb = result["embedded"]
        print(
            f"embedded llama.cpp SmolLM2-135M: {emb['tokens_per_s_c1']:.0f} tok/s at "
            f"concurrency 1, {emb['tokens_per_s_c4']:.0f} tok/s at 4"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
