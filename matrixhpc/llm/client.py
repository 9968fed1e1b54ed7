"""Chat-completions client that balances one process's requests over a service's replicas.

Why it looks like this:

* One pooled :class:`aiohttp.ClientSession` per process with an *unlimited* connector.
  aiohttp's default connector silently caps a session at 100 connections, which is
  what throttled many generation tools; here the only cap is the explicit per-replica
  ``max_concurrency`` (a semaphore per replica), so what you configure is what you get.
* Least-outstanding balancing (in flight + queued in this client) rather than
  round-robin: a slow or overloaded replica naturally receives fewer requests, and
  a queue never builds in front of one replica while another idles.
* Optional consistent hashing on a sticky key so that the turns of one dialogue land
  on the same replica (prefix-cache reuse), and only the keys of a vanished replica
  move when the set changes.
* Failover is part of every retry: a retry prefers a replica not yet tried, and a
  replica that refuses or resets connections is benched for a cooldown at once
  (even if the registry still lists it, which it will until its heartbeat expires).
* Client errors (4xx other than 408/429) are *not* retried: a prompt that is too
  long is a bad row, not a server problem, and retrying it only wastes capacity.

The hot path does a few integer updates per request; nothing is logged per request.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import logging
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp
import orjson

from .types import ChatResult, ClientPolicy, LLMError, ReplicaInfo, ReplicaSource

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between looks at the source while no replica is usable
VNODES = 64  # virtual nodes per replica on the consistent-hash ring
_TRIED_PENALTY = 1 << 40  # makes an already-tried replica lose every least-load comparison
_DEFAULT_POLICY = ClientPolicy()


class _Retry(Exception):
    """An attempt failed in a way another attempt (preferably elsewhere) may fix."""

    def __init__(self, message: str, *, dead: bool = False) -> None:
        super().__init__(message)
        self.dead = dead  # the replica itself looks gone: bench it


class _Repick(Exception):
    """The chosen replica was benched while we queued for it; choose again for free."""


class _Replica:
    """Load and health of one replica, as seen by this process.

    ``outstanding`` counts requests assigned here (queued on the semaphore or in
    flight); it is incremented at pick time, before any await, so thousands of
    concurrent picks see each other and spread out.
    """

    __slots__ = (
        "down_until",
        "endpoint",
        "failures",
        "headers",
        "inflight",
        "info",
        "limit",
        "name",
        "outstanding",
        "requests",
        "sem",
        "streak",
    )

    def __init__(self, info: ReplicaInfo, policy: ClientPolicy) -> None:
        self.info = info
        self.name = info.name
        self.endpoint = info.url.rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json"}
        if info.api_key:
            self.headers["Authorization"] = f"Bearer {info.api_key}"
        limit = policy.max_concurrency
        if info.max_concurrency is not None:
            limit = min(limit, info.max_concurrency)
        self.limit = max(1, limit)
        self.sem = asyncio.Semaphore(self.limit)
        self.outstanding = 0
        self.inflight = 0
        self.down_until = 0.0  # monotonic time until which the replica gets no requests
        self.streak = 0  # consecutive "dead" failures; doubles the cooldown
        self.requests = 0
        self.failures = 0

    def bench(self, now: float, base: float, cap: float) -> float:
        """Start (or extend) a cooldown; concurrent failures of one outage count once."""
        if self.down_until > now:
            return self.down_until - now
        self.streak += 1
        span = min(cap, base * 2.0 ** (self.streak - 1))
        self.down_until = now + span
        return span

    def stats(self, now: float) -> dict[str, Any]:
        return {
            "outstanding": self.outstanding,
            "inflight": self.inflight,
            "limit": self.limit,
            "requests": self.requests,
            "failures": self.failures,
            "cooldown": max(0.0, self.down_until - now),
        }


def _hash64(text: str) -> int:
    """A hash that is the same in every process (unlike ``hash()``), so all clients agree."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class _HashRing:
    """Consistent hashing over replica *names*: a restarted replica keeps its keys."""

    __slots__ = ("_owners", "_points")

    def __init__(self, replicas: Sequence[_Replica], vnodes: int = VNODES) -> None:
        pts = sorted(
            (_hash64(f"{rep.name}#{i}"), idx)
            for idx, rep in enumerate(replicas)
            for i in range(vnodes)
        )
        self._points = [p for p, _ in pts]
        self._owners = [replicas[i] for _, i in pts]

    def walk(self, key: str) -> Iterator[_Replica]:
        """Replicas clockwise from the key's point; the first one is the key's owner."""
        n = len(self._points)
        start = bisect.bisect(self._points, _hash64(key))
        for j in range(n):
            yield self._owners[(start + j) % n]


class _Service:
    """The replicas of one service as last listed by the source, and how to choose one."""

    def __init__(self, name: str, policy: ClientPolicy) -> None:
        self.name = name
        self.policy = policy
        self.timeout = aiohttp.ClientTimeout(total=policy.timeout)
        self.infos: list[ReplicaInfo] = []
        self.live: list[_Replica] = []
        self.known: dict[str, _Replica] = {}  # every replica seen, for stats
        self.ring: _HashRing | None = None
        self.requests = 0
        self.failures = 0
        self.retries = 0
        self.tokens_in = 0
        self.tokens_out = 0

    def refresh(self, infos: list[ReplicaInfo]) -> None:
        """Adopt the source's current list; cheap when unchanged (identity-first compare)."""
        if infos == self.infos:
            return
        live = []
        for info in infos:
            rep = self.known.get(info.name)
            if rep is None or rep.info != info:  # new, or restarted elsewhere: fresh state
                fresh = _Replica(info, self.policy)
                if rep is not None:
                    fresh.requests, fresh.failures = rep.requests, rep.failures
                rep = self.known[info.name] = fresh
            live.append(rep)
        self.infos = list(infos)
        self.live = live
        self.ring = _HashRing(live) if self.policy.sticky and live else None

    def pick(self, tried: set[str] | None, sticky_key: str | None) -> _Replica | None:
        """A usable replica, preferring untried ones; None if none is usable right now."""
        now = time.monotonic()
        if self.ring is not None and sticky_key is not None:
            return self._pick_sticky(sticky_key, tried, now)
        best: _Replica | None = None
        best_load = 0
        ties = 0
        for rep in self.live:
            if rep.down_until > now:
                continue
            load = rep.outstanding
            if tried and rep.name in tried:
                load += _TRIED_PENALTY
            if best is None or load < best_load:
                best, best_load, ties = rep, load, 1
            elif load == best_load:
                ties += 1
                if random.randrange(ties) == 0:  # reservoir sampling: uniform among ties
                    best = rep
        return best

    def _pick_sticky(self, key: str, tried: set[str] | None, now: float) -> _Replica | None:
        assert self.ring is not None
        fallback: _Replica | None = None
        for rep in self.ring.walk(key):
            if rep.down_until > now:
                continue
            if not tried or rep.name not in tried:
                return rep
            if fallback is None:
                fallback = rep
        return fallback

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        live = {rep.name for rep in self.live}
        replicas = {}
        for name, rep in self.known.items():
            replicas[name] = rep.stats(now)
            replicas[name]["live"] = name in live
        return {
            "requests": self.requests,
            "failures": self.failures,
            "retries": self.retries,
            "outstanding": sum(rep.outstanding for rep in self.known.values()),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "replicas": replicas,
        }


def _error_message(raw: bytes) -> str:
    """The server's own words: OpenAI-style ``{"error": {"message": ...}}`` or the text."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            for field in ("message", "detail", "msg"):
                if err.get(field):
                    return str(err[field])[:500]
        elif err:
            return str(err)[:500]
    return text[:500]


def _parse(raw: bytes, replica: str, latency: float) -> ChatResult:
    """Turn a 200 body into a result; a malformed body is retryable (proxy hiccup)."""
    try:
        data = orjson.loads(raw)
        choice = data["choices"][0]
        message = choice.get("message") or {}
        server_usage = data.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _Retry(f"malformed response: {exc!r}") from None
    usage = {k: v for k, v in server_usage.items() if isinstance(v, int)}
    usage.setdefault("prompt_tokens", 0)
    usage.setdefault("completion_tokens", 0)
    return ChatResult(
        text=message.get("content") or "",
        usage=usage,
        finish_reason=choice.get("finish_reason") or "",
        replica=replica,
        latency=latency,
        tool_calls=message.get("tool_calls") or None,
    )


class LLMClient:
    """Implements :class:`~matrixhpc.llm.types.ChatClient`; create one per process.

    ``cooldown`` / ``cooldown_max``: how long a replica that refused or reset a
    connection is benched (doubling per repeated outage, reset by a success).
    The client belongs to one event loop at a time; used from a new loop (a second
    ``asyncio.run``) it starts over with a new session and fresh replica state.
    """

    def __init__(
        self,
        source: ReplicaSource,
        policies: dict[str, ClientPolicy],
        *,
        default_policy: ClientPolicy = _DEFAULT_POLICY,
        cooldown: float = 5.0,
        cooldown_max: float = 60.0,
    ) -> None:
        self._source = source
        self._policies = dict(policies)
        self._default_policy = default_policy
        self._cooldown = cooldown
        self._cooldown_max = cooldown_max
        self._services: dict[str, _Service] = {}
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- public API ------------------------------------------------------------------

    async def chat(
        self,
        service: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        sticky_key: str | None = None,
    ) -> ChatResult:
        """One chat completion, with balancing, retries and failover hidden inside.

        Raises :class:`LLMError` on a client error (no retry), when every attempt
        failed, or when no replica became usable within ``wait_for_replica``.
        """
        http = self._session()
        svc = self._service(service)
        svc.requests += 1
        try:
            result = await self._run(http, svc, messages, params, sticky_key)
        except LLMError:
            svc.failures += 1
            raise
        svc.tokens_in += result.usage["prompt_tokens"]
        svc.tokens_out += result.usage["completion_tokens"]
        return result

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per service: requests, failures, retries, tokens, and load/health per replica."""
        return {name: svc.stats() for name, svc in self._services.items()}

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals -------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        """The process's pooled session, created lazily inside the running loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new asyncio.run: start over
            self._loop = loop
            self._http = None
            self._services = {}
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
            self._http = aiohttp.ClientSession(connector=connector)
        return self._http

    def _service(self, name: str) -> _Service:
        svc = self._services.get(name)
        if svc is None:
            policy = self._policies.get(name, self._default_policy)
            svc = self._services[name] = _Service(name, policy)
        return svc

    async def _run(
        self,
        http: aiohttp.ClientSession,
        svc: _Service,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        sticky_key: str | None,
    ) -> ChatResult:
        """The retry loop: pick, attempt, on a retryable failure back off and fail over."""
        policy = svc.policy
        body = {"model": "", "messages": messages, **params}
        errors: list[str] = []
        tried: set[str] | None = None
        attempt = 0
        while True:
            rep = await self._pick(svc, tried, sticky_key)
            if "model" not in params:
                body["model"] = rep.info.model
            try:
                result = await self._attempt(http, svc, rep, body)
            except _Repick:
                continue
            except _Retry as exc:
                errors.append(f"{rep.name}: {exc}")
                tried = {rep.name} if tried is None else tried | {rep.name}
                attempt += 1
                if attempt > policy.max_retries:
                    raise LLMError(
                        f"service {svc.name}: {attempt} attempts failed; last: {errors[-1]}"
                    ) from None
                svc.retries += 1
                delay = min(policy.backoff_max, policy.backoff_base * 2.0 ** (attempt - 1))
                await asyncio.sleep(delay * random.random())
                continue
            result.attempts = attempt + 1
            result.errors = errors
            return result

    async def _pick(
        self, svc: _Service, tried: set[str] | None, sticky_key: str | None
    ) -> _Replica:
        """Choose a replica and book it (``outstanding``) before yielding to the loop."""
        svc.refresh(self._source.replicas(svc.name))
        rep = svc.pick(tried, sticky_key)
        if rep is None:
            rep = await self._wait_for_replica(svc, tried, sticky_key)
        rep.outstanding += 1
        return rep

    async def _wait_for_replica(
        self, svc: _Service, tried: set[str] | None, sticky_key: str | None
    ) -> _Replica:
        """Poll the source until a replica is listed and not benched, or give up."""
        deadline = time.monotonic() + svc.policy.wait_for_replica
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LLMError(
                    f"no live replica of service {svc.name} "
                    f"({len(svc.live)} listed, none usable) "
                    f"after {svc.policy.wait_for_replica:g}s"
                )
            await asyncio.sleep(min(POLL_INTERVAL, remaining))
            svc.refresh(self._source.replicas(svc.name))
            rep = svc.pick(tried, sticky_key)
            if rep is not None:
                return rep

    async def _attempt(
        self, http: aiohttp.ClientSession, svc: _Service, rep: _Replica, body: dict[str, Any]
    ) -> ChatResult:
        """One HTTP round trip under the replica's concurrency limit."""
        try:
            async with rep.sem:
                if rep.down_until > time.monotonic():
                    raise _Repick  # benched while we queued: don't waste an attempt on it
                rep.inflight += 1
                rep.requests += 1
                try:
                    return await self._post(http, svc, rep, body)
                except _Retry:
                    rep.failures += 1
                    raise
                finally:
                    rep.inflight -= 1
        finally:
            rep.outstanding -= 1

    async def _post(
        self, http: aiohttp.ClientSession, svc: _Service, rep: _Replica, body: dict[str, Any]
    ) -> ChatResult:
        """POST and classify the outcome: result, retryable failure, or client error."""
        start = time.monotonic()
        try:
            # orjson, not aiohttp's json.dumps: a dialogue's whole history is encoded
            # on every turn, and this was the client's largest cost
            async with http.post(
                rep.endpoint, data=orjson.dumps(body), headers=rep.headers, timeout=svc.timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:  # before OSError: TimeoutError is an OSError subclass
            raise _Retry(f"timeout after {svc.policy.timeout:g}s") from None
        except OSError as exc:  # refused / reset (aiohttp.ClientOSError is an OSError)
            self._bench(rep, exc)
            raise _Retry(f"connection failed: {exc}", dead=True) from None
        except aiohttp.ClientError as exc:  # disconnects, truncated bodies
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            result = _parse(raw, rep.name, time.monotonic() - start)
            rep.streak = 0
            return result
        message = f"HTTP {status}: {_error_message(raw)}"
        if status >= 500 or status in (408, 429):
            raise _Retry(message)
        raise LLMError(f"service {svc.name}, replica {rep.name}: {message}")

    def _bench(self, rep: _Replica, exc: BaseException) -> None:
        """Take a replica that refused/reset a connection out of rotation for a while."""
        now = time.monotonic()
        already = rep.down_until > now
        span = rep.bench(now, self._cooldown, self._cooldown_max)
        if not already:  # once per outage, not once per request
            log.warning("replica %s benched for %.1fs: %s", rep.name, span, exc)
