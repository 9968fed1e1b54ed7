"""The replicas' saturated capacity, measured by a pure load generator.

The runtime's own HTTP transport, bare (``matrixhpc.llm.http.PooledHTTP``: the lean
keep-alive client for ``http://``; each body encoded with orjson per request, as any
client must and as ``LLMClient`` does), no balancing, retries or agents:
``2 x replicas x max_batch`` closed-loop clients (so every replica's batch stays full
and a queue waits behind it) replay the workload's request shapes (output length
``tokens[i]`` with ``ignore_eos``; a prompt as long as turn ``i``'s: the question plus
the dialogue so far) against the same engines. Output tokens/s over the steady part of
the run is the denominator of every design's LLM utilisation.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson

from benchmarks.metrics import Span, rate_in_window
from matrixhpc.llm.engines.simulated import generate_text
from matrixhpc.llm.http import PooledHTTP
from matrixhpc.llm.types import ReplicaInfo

WARMUP = 0.2  # share of the run before the steady window


@dataclass(frozen=True, slots=True)
class Shape:
    prompt_chars: int
    output_tokens: int


def shapes(rows: list[dict[str, Any]], system_chars: int, limit: int, seed: int) -> list[Shape]:
    """Turn shapes of the dataset: turn ``i`` carries the question and the turns before it.

    Characters per output token are those of the engine's own filler text, so the prompt
    lengths match what the designs send (the engine counts characters / 4).
    """
    per_token = len(generate_text(10_000, [], random.Random(seed))) / 10_000
    out = []
    for row in rows:
        history = 0
        for tokens in row["tokens"]:
            out.append(Shape(system_chars + len(row["question"]) + int(history), tokens))
            history += tokens * per_token
    random.Random(seed).shuffle(out)
    return out[:limit]


def _bodies(model: str, items: list[Shape], seed: int) -> list[dict[str, Any]]:
    text = generate_text(400_000, [], random.Random(seed))
    bodies = []
    for i, shape in enumerate(items):
        start = (i * 7919) % (len(text) - shape.prompt_chars - 1)
        body = {
            "model": model,
            "messages": [{"role": "user", "content": text[start : start + shape.prompt_chars]}],
            "max_tokens": shape.output_tokens,
            "ignore_eos": True,
            "seed": i,
        }
        bodies.append(body)
    return bodies


async def measure(
    replicas: list[ReplicaInfo], items: list[Shape], concurrency: int, seconds: float
) -> dict[str, float]:
    """Closed-loop load for ``seconds``; output tokens/s over the steady window."""
    spans: list[Span] = []
    per_replica = [_bodies(r.model, items, k) for k, r in enumerate(replicas)]
    stop_at = time.time() + seconds
    http = PooledHTTP()
    try:

        async def client(j: int) -> None:
            k = j % len(replicas)
            rep, bodies = replicas[k], per_replica[k]
            headers = {"Content-Type": "application/json"}
            if rep.api_key:
                headers["Authorization"] = f"Bearer {rep.api_key}"
            url = f"{rep.url}/chat/completions"
            n = j // len(replicas)
            while time.time() < stop_at:
                body = bodies[n % len(bodies)]
                n += concurrency
                start = time.time()
                _, raw = await http.post(url, orjson.dumps(body), headers, 600.0)
                reply = orjson.loads(raw)
                spans.append(Span(start, time.time(), reply["usage"]["completion_tokens"]))

        t0, cpu0 = time.time(), time.process_time()
        await asyncio.gather(*(client(j) for j in range(concurrency)))
        t1, cpu1 = time.time(), time.process_time()
    finally:
        await http.close()
    window = (t0 + WARMUP * seconds, stop_at)
    return {
        "tokens_per_s": rate_in_window(spans, *window),
        "requests": len(spans),
        "concurrency": concurrency,
        "seconds": t1 - t0,
        "client_cpu_us_per_request": 1e6 * (cpu1 - cpu0) / max(1, len(spans)),
    }
