"""Capacity of the simulated engine: does the server reproduce its own latency model under load?

For each concurrency ``c``, ``c`` closed-loop clients send fixed-length requests
(``ignore_eos``, fixed ``max_tokens``) over real loopback HTTP to an engine started in this
process. Achieved output tok/s and latencies are converted to simulated time (real /
time_scale) and compared with the model's closed-loop prediction
(:meth:`SimProfile.closed_loop_tps`; predicted latency by Little's law, ``c * n / tps``).
A ratio well below 1 means the single-core HTTP layer, not the model, is the bottleneck.
It also measures the raw framework overhead: requests/s with the instant ``zero`` profile.

Run from the repository root::

    python -m benchmarks.simulated_capacity [--concurrency 1,8,64] [--time-scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from matrixhpc.llm.engines.simulated import (
    DEFAULT_PROFILE,
    PROFILES,
    SimProfile,
    create_app,
    start_server,
)

RESULTS = Path(__file__).resolve().parent / "results" / "simulated_capacity.json"


@dataclass(frozen=True, slots=True)
class LevelResult:
    concurrency: int
    requests: int
    wall_seconds: float
    tok_s: float  # achieved output tokens per simulated second
    predicted_tok_s: float
    ratio: float
    p50_latency: float  # simulated seconds
    p99_latency: float
    predicted_latency: float


async def _closed_loop(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], clients: int, total: int
) -> tuple[float, list[float], int]:
    """``clients`` workers send ``total`` requests back to back; returns wall time, real
    latencies and output tokens."""
    latencies: list[float] = []
    tokens = 0
    sent = 0

    async def worker() -> None:
        nonlocal sent, tokens
        while sent < total:
            sent += 1
            start = time.perf_counter()
            async with session.post(url, json=body) as resp:
                resp.raise_for_status()
                reply = await resp.json()
            latencies.append(time.perf_counter() - start)
            tokens += reply["usage"]["completion_tokens"]

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - start, latencies, tokens


async def _measure_level(
    session: aiohttp.ClientSession,
    url: str,
    profile: SimProfile,
    args: argparse.Namespace,
    concurrency: int,
) -> LevelResult:
    total = args.requests or max(2 * concurrency, 16)
    body = {
        "messages": [{"role": "user", "content": "x" * args.prompt_chars}],
        "max_tokens": args.max_tokens,
        "ignore_eos": True,
    }
    wall, latencies, tokens = await _closed_loop(session, url, body, concurrency, total)
    scale = args.time_scale
    predicted = profile.closed_loop_tps(concurrency, args.prompt_chars // 4, args.max_tokens)
    tok_s = tokens / (wall / scale)
    sim_lat = sorted(lat / scale for lat in latencies)
    return LevelResult(
        concurrency=concurrency,
        requests=total,
        wall_seconds=round(wall, 3),
        tok_s=round(tok_s, 1),
        predicted_tok_s=round(predicted, 1),
        ratio=round(tok_s / predicted, 3),
        p50_latency=round(statistics.median(sim_lat), 3),
        p99_latency=round(sim_lat[min(len(sim_lat) - 1, int(0.99 * len(sim_lat)))], 3),
        predicted_latency=round(concurrency * args.max_tokens / predicted, 3),
    )


async def _serve(profile: SimProfile, time_scale: float) -> tuple[aiohttp.web.AppRunner, str]:
    runner, port = await start_server(create_app(profile, time_scale=time_scale))
    return runner, f"http://127.0.0.1:{port}/v1/chat/completions"


async def _overhead(requests: int, concurrency: int) -> float:
    """Requests/s through client and server in this one process with zero model latency."""
    runner, url = await _serve(PROFILES["zero"], 0.0)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            wall, _, _ = await _closed_loop(session, url, body, concurrency, requests)
    finally:
        await runner.cleanup()
    return requests / wall


async def run(args: argparse.Namespace) -> dict[str, Any]:
    profile = PROFILES[args.profile]
    runner, url = await _serve(profile, args.time_scale)
    levels: list[LevelResult] = []
    try:
        timeout = aiohttp.ClientTimeout(total=None)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for c in args.concurrency:
                levels.append(await _measure_level(session, url, profile, args, c))
                _print_row(levels[-1])
    finally:
        await runner.cleanup()
    overhead = await _overhead(args.overhead_requests, 256)
    print(f"framework overhead (zero profile, 256 clients, same process): {overhead:,.0f} req/s")
    return {
        "profile": asdict(profile),
        "time_scale": args.time_scale,
        "max_tokens": args.max_tokens,
        "prompt_tokens": args.prompt_chars // 4,
        "levels": [asdict(level) for level in levels],
        "zero_profile_req_per_s": round(overhead, 1),
    }


_HEADER = (
    f"{'conc':>6} {'reqs':>6} {'tok/s':>9} {'pred tok/s':>10} {'ratio':>6} "
    f"{'p50 lat':>8} {'pred lat':>8} {'p99 lat':>8} {'wall s':>7}"
)


def _print_row(r: LevelResult) -> None:
    print(
        f"{r.concurrency:>6} {r.requests:>6} {r.tok_s:>9,.0f} {r.predicted_tok_s:>10,.0f} "
        f"{r.ratio:>6.3f} {r.p50_latency:>8.2f} {r.predicted_latency:>8.2f} "
        f"{r.p99_latency:>8.2f} {r.wall_seconds:>7.2f}",
        flush=True,
    )


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=_int_list, default=[1, 8, 64, 256, 1024, 4096])
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument(
        "--requests", type=int, default=None, help="per level (default: 2 x concurrency, >= 16)"
    )
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--prompt-chars", type=int, default=400)
    parser.add_argument("--profile", choices=sorted(PROFILES), default=DEFAULT_PROFILE)
    parser.add_argument("--overhead-requests", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.time_scale <= 0 or PROFILES[args.profile].instant:
        parser.error("capacity needs a finite profile and --time-scale > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    profile = PROFILES[args.profile]
    print(
        f"profile {profile.name}: single {profile.single_stream_tps:g} tok/s, saturated "
        f"{profile.saturated_tps:g} tok/s, max_batch {profile.max_batch}; time_scale "
        f"{args.time_scale:g}; {args.max_tokens} output / {args.prompt_chars // 4} prompt tokens;"
        " tok/s and latencies in simulated seconds"
    )
    print(_HEADER)
    results = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
