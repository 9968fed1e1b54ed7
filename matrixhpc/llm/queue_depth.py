"""Replicas' own queue depth, scraped from their Prometheus ``/metrics``.

Why: least-outstanding balancing counts only *this process's* requests. With many
worker processes (or other users) sending to the same replicas, a replica can be
busy with requests this process never sees. vLLM reports how many requests it is
running and how many wait for a batch slot; llama.cpp's server does the same with
``--metrics``. Scraping that every few seconds lets each client steer around
replicas that others have loaded, at the cost of one small GET per replica per
interval (opt-in: ``services.<name>.queue_metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from .http.base import ExchangeFailed

log = logging.getLogger(__name__)

# requests a server holds: decoding now + waiting for a slot
QUEUE_SERIES = frozenset(
    {
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "llamacpp:requests_processing",
        "llamacpp:requests_deferred",
    }
)

Fetch = Callable[[str, Mapping[str, str]], Awaitable[str]]


def metrics_url(base_url: str) -> str:
    """``http://h:p/v1`` -> ``http://h:p/metrics`` (the servers expose it at the root)."""
    base = base_url.rstrip("/")
    return base.removesuffix("/v1") + "/metrics"


def _sample(line: str) -> tuple[str, str]:
    """A sample line's metric name and value field (``name{labels} value [ts]``)."""
    if "{" in line:
        return line[: line.index("{")], line[line.rindex("}") + 1 :]
    name, _, rest = line.partition(" ")
    return name, rest


def queue_depth(text: str) -> int | None:
    """Requests running + waiting, summed over label sets; None if the server reports neither."""
    total = 0.0
    seen = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, rest = _sample(line)
        if name not in QUEUE_SERIES:
            continue
        try:
            total += float(rest.split()[0])
        except (IndexError, ValueError):
            continue
        seen = True
    return int(total) if seen else None


async def external_load(fetch: Fetch, url: str, headers: Mapping[str, str], mine: int) -> int:
    """Requests the replica holds beyond ``mine`` (this process's own in flight).

    A failed or metric-less scrape counts as 0: a replica is never penalised on stale
    or missing information, balancing just falls back to this process's own view.
    """
    try:
        depth = queue_depth(await fetch(url, headers))
    except (OSError, ValueError, ExchangeFailed) as exc:  # TimeoutError is an OSError
        log.debug("no queue metrics from %s: %s", url, exc)
        return 0
    return max(0, depth - mine) if depth is not None else 0
