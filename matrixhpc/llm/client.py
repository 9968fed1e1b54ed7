"""Chat-completions client that balances one process's requests over a service's replicas.

Why it looks like this:

* One pooled HTTP client per process (:mod:`matrixhpc.llm.http`) with no
  connection cap of its own: the only cap is the explicit per-replica
  ``max_concurrency`` (a semaphore per replica), so what you configure is what you
  get. (aiohttp's default connector silently caps a session at 100 connections,
  which is what throttled many generation tools.)
* Which replica: :mod:`matrixhpc.llm.balance` (least outstanding, optional sticky
  consistent hashing, benching of replicas that refuse connections).
* Failover is part of every retry: a retry prefers a replica not yet tried, and a
  replica that refuses or resets connections is benched for a cooldown at once
  (even if the registry still lists it, which it will until its heartbeat expires).
* Client errors (4xx other than 408/429) are *not* retried: a prompt that is too
  long is a bad row, not a server problem, and retrying it only wastes capacity.
* Two budgets, two outcomes. A replica that was reached and answered badly (5xx,
  429, timeout, a dropped or malformed answer) uses up ``max_retries``; then the
  request fails with :class:`LLMError` and the agent records a failed step. A
  replica that cannot be reached at all (none listed, all benched, connections
  refused) is an *outage*: the request waits, up to ``wait_for_replica`` seconds
  with no replica reachable, for one to come (back), then raises
  :class:`ServiceUnavailable` so the runtime can stop resumably rather than write
  the task off. Killing every server, or Slurm requeueing them, is an outage.

The hot path does a few integer updates per request; nothing is logged per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import orjson

from .balance import Replica, Service
from .http import ExchangeFailed, PooledHTTP
from .metadata import to_headers
from .queue_depth import external_load
from .types import ChatResult, ClientPolicy, LLMError, ReplicaSource, ServiceUnavailable

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between looks at the source while no replica is usable
_DEFAULT_POLICY = ClientPolicy()


class _Retry(Exception):
    """An attempt failed in a way another attempt (preferably elsewhere) may fix."""

    def __init__(self, message: str, *, dead: bool = False) -> None:
        super().__init__(message)
        self.dead = dead  # the replica itself looks gone: bench it


class _Repick(Exception):
    """The chosen replica was benched while we queued for it; choose again for free."""


class _Attempts:
    """One request's history: failures so far, replicas tried, and the outage clock.

    ``since`` is when this request last lost sight of every replica (none usable at
    pick time, or the chosen one refused the connection); any answer from a replica,
    even a bad one, ends the outage.
    """

    __slots__ = ("answered_badly", "errors", "since", "tried")

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.tried: set[str] | None = None
        self.answered_badly = 0  # failures of replicas that were reached
        self.since: float | None = None

    def unreachable(self, now: float) -> None:
        if self.since is None:
            self.since = now

    def reached(self) -> None:
        self.since = None

    def outage(self, now: float) -> float:
        """Seconds since no replica could be reached (0 when one could)."""
        return 0.0 if self.since is None else now - self.since


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
        self._services: dict[str, Service] = {}
        self._http: PooledHTTP | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: list[asyncio.Task[None]] = []

    # -- public API ------------------------------------------------------------------

    async def chat(
        self,
        service: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        sticky_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ChatResult:
        """One chat completion, with balancing, retries and failover hidden inside.

        ``metadata`` goes as headers to the replicas that read it (ReplicaInfo's
        ``request_metadata``), to no other: the body is the same either way.

        Raises :class:`LLMError` on a client error (no retry) or when replicas
        answered badly ``max_retries + 1`` times: the step failed. Raises
        :class:`ServiceUnavailable` (not an ``LLMError``) when no replica could be
        reached for ``wait_for_replica`` seconds: an outage, not the task's fault.
        """
        http = self._session()
        svc = self._service(service)
        svc.requests += 1
        try:
            extra = to_headers(metadata) if metadata else None
            result = await self._run(http, svc, messages, params, sticky_key, extra)
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
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        if self._http is not None:
            await self._http.close()
        self._http = None

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals -------------------------------------------------------------------

    def _session(self) -> PooledHTTP:
        """The process's pooled HTTP client, created lazily inside the running loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new asyncio.run: start over
            self._loop = loop
            self._http = None
            self._services = {}
            self._watchers = []  # they belonged to the old loop
        if self._http is None:
            self._http = PooledHTTP()
        return self._http

    def _service(self, name: str) -> Service:
        svc = self._services.get(name)
        if svc is None:
            policy = self._policies.get(name, self._default_policy)
            svc = self._services[name] = Service(name, policy)
            if policy.queue_metrics > 0:
                self._watchers.append(asyncio.create_task(self._watch_queues(svc)))
        return svc

    async def _run(
        self,
        http: PooledHTTP,
        svc: Service,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        sticky_key: str | None,
        extra: dict[str, str] | None,
    ) -> ChatResult:
        """The retry loop: pick, attempt, on a retryable failure back off and fail over."""
        body = {"model": "", "messages": messages, **params}
        state = _Attempts()
        while True:
            rep = await self._pick(svc, state, sticky_key)
            if "model" not in params:
                body["model"] = rep.info.model
            try:
                result = await self._attempt(http, svc, rep, body, extra)
            except _Repick:
                continue
            except _Retry as exc:
                await self._after_failure(svc, rep, exc, state)
                continue
            result.attempts = len(state.errors) + 1
            result.errors = state.errors
            return result

    async def _after_failure(
        self, svc: Service, rep: Replica, exc: _Retry, state: _Attempts
    ) -> None:
        """Count a failed attempt against the right budget, or give up.

        A replica that answered badly costs one of ``max_retries`` (exhausted: an
        ordinary :class:`LLMError`, the step failed). A replica that could not be
        reached at all (refused / reset: benched) costs nothing from that budget; it
        belongs to an outage, bounded by ``wait_for_replica`` (exhausted:
        :class:`ServiceUnavailable`).
        """
        state.errors.append(f"{rep.name}: {exc}")
        state.tried = {rep.name} if state.tried is None else state.tried | {rep.name}
        if exc.dead:
            state.unreachable(time.monotonic())
            self._check_outage(svc, state)
            svc.retries += 1
            return  # the replica is benched: the next pick goes elsewhere or waits
        state.reached()
        state.answered_badly += 1
        policy = svc.policy
        if state.answered_badly > policy.max_retries:
            raise LLMError(
                f"service {svc.name}: {len(state.errors)} attempts failed; last: {state.errors[-1]}"
            )
        svc.retries += 1
        delay = min(policy.backoff_max, policy.backoff_base * 2.0 ** (state.answered_badly - 1))
        await asyncio.sleep(delay * random.random())

    def _check_outage(self, svc: Service, state: _Attempts) -> None:
        """Raise :class:`ServiceUnavailable` once no replica was reachable for the wait."""
        waited = state.outage(time.monotonic())
        if waited >= svc.policy.wait_for_replica:
            svc.unavailable += 1
            raise ServiceUnavailable(svc.name, waited, self._outage_detail(svc, state))

    @staticmethod
    def _outage_detail(svc: Service, state: _Attempts) -> str:
        if not svc.live:
            return "no replica listed"
        last = f"; {state.errors[-1]}" if state.errors else ""
        return f"{len(svc.live)} listed, none usable{last}"

    async def _pick(self, svc: Service, state: _Attempts, sticky_key: str | None) -> Replica:
        """Choose a replica and book it (``outstanding``) before yielding to the loop."""
        svc.refresh(self._source.replicas(svc.name))
        rep = svc.pick(state.tried, sticky_key)
        if rep is None:
            state.unreachable(time.monotonic())
            rep = await self._wait_for_replica(svc, state, sticky_key)
        rep.outstanding += 1
        return rep

    async def _wait_for_replica(
        self, svc: Service, state: _Attempts, sticky_key: str | None
    ) -> Replica:
        """Poll the source until a replica is listed and not benched, or the outage is over
        ``wait_for_replica`` old (:class:`ServiceUnavailable`)."""
        while True:
            self._check_outage(svc, state)
            remaining = svc.policy.wait_for_replica - state.outage(time.monotonic())
            await asyncio.sleep(max(0.0, min(POLL_INTERVAL, remaining)))
            svc.refresh(self._source.replicas(svc.name))
            rep = svc.pick(state.tried, sticky_key)
            if rep is not None:
                return rep

    async def _attempt(
        self,
        http: PooledHTTP,
        svc: Service,
        rep: Replica,
        body: dict[str, Any],
        extra: dict[str, str] | None,
    ) -> ChatResult:
        """One HTTP round trip under the replica's concurrency limit."""
        try:
            async with rep.sem:
                if rep.down_until > time.monotonic():
                    raise _Repick  # benched while we queued: don't waste an attempt on it
                rep.inflight += 1
                rep.requests += 1
                try:
                    return await self._post(http, svc, rep, body, extra)
                except _Retry:
                    rep.failures += 1
                    raise
                finally:
                    rep.inflight -= 1
        finally:
            rep.outstanding -= 1

    async def _post(
        self,
        http: PooledHTTP,
        svc: Service,
        rep: Replica,
        body: dict[str, Any],
        extra: dict[str, str] | None,
    ) -> ChatResult:
        """POST and classify the outcome: result, retryable failure, or client error."""
        headers = rep.headers
        if extra is not None and rep.info.request_metadata:
            headers = {**headers, **extra}
        start = time.monotonic()
        try:
            # orjson, not json.dumps: a dialogue's whole history is encoded on every
            # turn, and this was the client's largest cost
            status, raw = await http.post(
                rep.endpoint, orjson.dumps(body), headers, svc.policy.timeout
            )
        except TimeoutError:  # before OSError: TimeoutError is an OSError subclass
            raise _Retry(f"timeout after {svc.policy.timeout:g}s") from None
        except OSError as exc:  # refused / reset: the replica looks gone
            self._bench(rep, exc)
            raise _Retry(f"connection failed: {exc}", dead=True) from None
        except ExchangeFailed as exc:  # disconnects, truncated or malformed answers
            raise _Retry(str(exc)) from None
        if 200 <= status < 300:
            result = _parse(raw, rep.name, time.monotonic() - start)
            rep.streak = 0
            return result
        message = f"HTTP {status}: {_error_message(raw)}"
        if status >= 500 or status in (408, 429):
            raise _Retry(message)
        raise LLMError(f"service {svc.name}, replica {rep.name}: {message}")

    async def _watch_queues(self, svc: Service) -> None:
        """Every ``queue_metrics`` seconds, learn what each live replica holds for others."""
        http = self._session()
        timeout = max(1.0, svc.policy.queue_metrics)

        async def fetch(url: str, headers: Mapping[str, str]) -> str:
            return await http.get_text(url, headers, timeout)

        async def scrape(rep: Replica) -> None:
            rep.external = await external_load(fetch, rep.metrics_url, rep.headers, rep.inflight)

        while True:
            svc.refresh(self._source.replicas(svc.name))
            await asyncio.gather(*(scrape(rep) for rep in svc.live))
            await asyncio.sleep(svc.policy.queue_metrics)

    def _bench(self, rep: Replica, exc: BaseException) -> None:
        """Take a replica that refused/reset a connection out of rotation for a while."""
        now = time.monotonic()
        already = rep.down_until > now
        span = rep.bench(now, self._cooldown, self._cooldown_max)
        if not already:  # once per outage, not once per request
            log.warning("replica %s benched for %.1fs: %s", rep.name, span, exc)
