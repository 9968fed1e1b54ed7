"""LLMClient against real aiohttp servers on 127.0.0.1 (no mocks of the HTTP layer)."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from matrixhpc.errors import ResourceUnavailable
from matrixhpc.llm.client import LLMClient
from matrixhpc.llm.replicas import RegistryReplicaSource, StaticReplicaSource
from matrixhpc.llm.types import (
    ChatResult,
    ClientPolicy,
    LLMError,
    ReplicaInfo,
    ServiceUnavailable,
)
from matrixhpc.registry import Registry

MSG = [{"role": "user", "content": "hi"}]
FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05}


class FakeLLM:
    """A tiny OpenAI-style chat server that counts hits and peak concurrency.

    ``mode`` is how the first ``fail_first`` requests fail (all of them if None):
    "500", "429", "400" or "drop" (close the connection without answering).
    ``gate``: when given, every request is held until the event is set.
    """

    def __init__(
        self,
        name: str,
        *,
        delay: float = 0.0,
        mode: str = "ok",
        fail_first: int | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.name = name
        self.delay = delay
        self.mode = mode
        self.fail_first = fail_first
        self.tool_calls = tool_calls
        self.gate = gate
        self.hits = 0
        self.current = 0
        self.peak = 0
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.tags: list[dict[str, str]] = []  # the X-Matrixhpc-* headers of each request
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> FakeLLM:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def info(self, **kw: Any) -> ReplicaInfo:
        return ReplicaInfo(self.name, f"http://127.0.0.1:{self.port}/v1", f"m-{self.name}", **kw)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.bodies.append(await request.json())
        self.auth.append(request.headers.get("Authorization"))
        self.tags.append({k: v for k, v in request.headers.items() if k.startswith("X-Matrixhpc-")})
        failing = self.mode != "ok" and (self.fail_first is None or self.hits <= self.fail_first)
        if failing:
            return self.fail(request)
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            if self.gate is not None:
                await self.gate.wait()
            elif self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.current -= 1
        content = None if self.tool_calls else f"hello from {self.name}"
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return web.json_response(
            {
                "choices": [{"message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            }
        )

    def fail(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        status = int(self.mode)
        body = {"error": {"message": f"{self.name} says {status}", "type": "x"}}
        return web.json_response(body, status=status)


ServerFactory = Callable[..., Awaitable[FakeLLM]]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[ServerFactory]:
    started: list[FakeLLM] = []

    async def make(name: str, **kw: Any) -> FakeLLM:
        srv = await FakeLLM(name, **kw).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        await srv.stop()


async def dead_info(name: str) -> ReplicaInfo:
    """A replica whose port refuses connections: start a server, then stop it."""
    srv = await FakeLLM(name).start()
    await srv.stop()
    return srv.info()


def client_for(infos: list[ReplicaInfo], **policy: Any) -> tuple[LLMClient, StaticReplicaSource]:
    source = StaticReplicaSource({"svc": infos})
    client = LLMClient(source, {"svc": ClientPolicy(**{**FAST, **policy})}, cooldown=5.0)
    return client, source


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_roundtrip_body_auth_usage_and_stats(server: ServerFactory) -> None:
    a = await server("a")
    client, _ = client_for([a.info(api_key="sekret")])
    res = await client.chat("svc", MSG, {"temperature": 0.5, "max_tokens": 7})
    await client.close()
    assert res.text == "hello from a"
    assert res.replica == "a"
    assert res.finish_reason == "stop"
    assert res.usage["prompt_tokens"] == 3
    assert res.usage["completion_tokens"] == 5
    assert res.attempts == 1
    assert res.errors == []
    assert res.latency > 0
    assert res.tool_calls is None
    assert a.bodies[0] == {"model": "m-a", "messages": MSG, "temperature": 0.5, "max_tokens": 7}
    assert a.auth == ["Bearer sekret"]
    st = client.stats()["svc"]
    assert (st["requests"], st["failures"], st["retries"]) == (1, 0, 0)
    assert (st["tokens_in"], st["tokens_out"], st["outstanding"]) == (3, 5, 0)
    assert st["replicas"]["a"]["requests"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
async def test_metadata_reaches_only_replicas_that_read_it_and_never_the_body(
    server: ServerFactory, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    if transport == "aiohttp":
        monkeypatch.setenv("MATRIXHPC_HTTP", "aiohttp")
    reader, plain = await server("reader"), await server("plain")
    meta = {"role": "checker", "task": "r7-t1 ü\nX-Evil: 1"}
    params = {"max_tokens": 7, "seed": 3}
    for srv, reads in ((reader, True), (plain, False)):
        client, _ = client_for([srv.info(request_metadata=reads)])
        await client.chat("svc", MSG, params, metadata=meta)
        await client.chat("svc", MSG, params)
        await client.close()
    assert reader.tags[0] == {
        "X-Matrixhpc-Role": "checker",
        "X-Matrixhpc-Task": "r7-t1%20%C3%BC%0AX-Evil%3A%201",  # no header injection
    }
    assert reader.tags[1] == {}
    assert plain.tags == [{}, {}]
    expected = {"model": "", "messages": MSG, **params}
    for srv in (reader, plain):
        assert srv.bodies == [{**expected, "model": f"m-{srv.name}"}] * 2


@pytest.mark.asyncio
async def test_tool_calls_pass_through(server: ServerFactory) -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        }
    ]
    a = await server("a", tool_calls=calls)
    client, _ = client_for([a.info()])
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    res = await client.chat("svc", MSG, {"tools": tools, "tool_choice": "auto"})
    await client.close()
    assert res.text == ""
    assert res.tool_calls == calls
    assert a.bodies[0]["tools"] == tools
    assert a.bodies[0]["tool_choice"] == "auto"
    assert a.auth == [None]


@pytest.mark.asyncio
async def test_equal_replicas_share_a_burst(server: ServerFactory) -> None:
    a, b = await server("a", delay=0.05), await server("b", delay=0.05)
    client, _ = client_for([a.info(), b.info()])
    await asyncio.gather(*(client.chat("svc", MSG, {}) for _ in range(40)))
    await client.close()
    assert abs(a.hits - b.hits) <= 2
    assert a.hits + b.hits == 40


@pytest.mark.asyncio
async def test_slow_replica_gets_fewer_requests(server: ServerFactory) -> None:
    slow, fast = await server("slow", delay=0.2), await server("fast")
    client, _ = client_for([slow.info(), fast.info()])
    todo = iter(range(80))

    async def worker() -> None:
        for _ in todo:
            await client.chat("svc", MSG, {})

    await asyncio.gather(*(worker() for _ in range(8)))
    await client.close()
    assert slow.hits + fast.hits == 80
    assert slow.hits <= 20 < fast.hits


@pytest.mark.asyncio
async def test_per_replica_limit_is_exact(server: ServerFactory) -> None:
    gate = asyncio.Event()
    a, b = await server("a", gate=gate), await server("b", gate=gate)
    # a declares its own cap (3), below the policy's 5; b gets the policy's 5
    client, _ = client_for([a.info(max_concurrency=3), b.info()], max_concurrency=5)
    tasks = [asyncio.create_task(client.chat("svc", MSG, {})) for _ in range(30)]
    await wait_until(lambda: a.current == 3 and b.current == 5)
    await asyncio.sleep(0.2)  # would a 4th / 6th request get through?
    assert (a.peak, b.peak) == (3, 5)
    st = client.stats()["svc"]
    assert st["outstanding"] == 30
    assert st["replicas"]["a"]["inflight"] == 3
    assert st["replicas"]["b"]["inflight"] == 5
    gate.set()
    results = await asyncio.gather(*tasks)
    assert len(results) == 30
    assert (a.peak, b.peak) == (3, 5)
    assert client.stats()["svc"]["outstanding"] == 0
    await client.close()


@pytest.mark.asyncio
async def test_no_hidden_cap_below_the_limit(server: ServerFactory) -> None:
    gate = asyncio.Event()
    a = await server("a", gate=gate)
    client, _ = client_for([a.info()], max_concurrency=300)
    tasks = [asyncio.create_task(client.chat("svc", MSG, {})) for _ in range(350)]
    await wait_until(lambda: a.current == 300, timeout=15)
    await asyncio.sleep(0.2)
    assert a.peak == 300
    gate.set()
    assert len(await asyncio.gather(*tasks)) == 350
    await client.close()


@pytest.mark.asyncio
async def test_500_retries_on_another_replica(server: ServerFactory) -> None:
    bad, good = await server("bad", mode="500"), await server("good")
    client, _ = client_for([bad.info(), good.info()])
    # sequential: each first pick is a coin toss between the two
    results: list[ChatResult] = [await client.chat("svc", MSG, {}) for _ in range(20)]
    await client.close()
    assert all(r.replica == "good" for r in results)
    assert bad.hits >= 1  # P(never picked first) = 2**-20
    retried = [r for r in results if r.attempts > 1]
    assert len(retried) == bad.hits  # failover: never the failed replica twice
    assert all(r.attempts == 2 and r.errors[0].startswith("bad: HTTP 500") for r in retried)
    assert all("bad says 500" in r.errors[0] for r in retried)
    assert client.stats()["svc"]["retries"] == bad.hits


@pytest.mark.asyncio
async def test_retries_exhausted_raise(server: ServerFactory) -> None:
    bad = await server("bad", mode="500")
    client, _ = client_for([bad.info()], max_retries=2)
    with pytest.raises(LLMError, match=r"3 attempts failed.*bad says 500"):
        await client.chat("svc", MSG, {})
    await client.close()
    assert bad.hits == 3
    st = client.stats()["svc"]
    assert (st["failures"], st["retries"]) == (1, 2)


@pytest.mark.asyncio
async def test_429_and_dropped_connection_are_retried(server: ServerFactory) -> None:
    busy = await server("busy", mode="429", fail_first=1)
    drop = await server("drop", mode="drop", fail_first=1)
    for srv in (busy, drop):
        source = StaticReplicaSource({"svc": [srv.info()]})
        client = LLMClient(source, {"svc": ClientPolicy(**FAST)}, cooldown=0.05)
        res = await client.chat("svc", MSG, {})
        await client.close()
        assert res.attempts == 2
        assert res.replica == srv.name
        assert len(res.errors) == 1
    assert busy.hits == 2
    assert drop.hits == 2


@pytest.mark.asyncio
async def test_timeout_fails_over(server: ServerFactory) -> None:
    slow, fast = await server("slow", delay=3.0), await server("fast")
    client, _ = client_for([slow.info(), fast.info()], timeout=0.2, max_retries=1)
    results = await asyncio.gather(*(client.chat("svc", MSG, {}) for _ in range(4)))
    await client.close()
    assert all(r.replica == "fast" for r in results)
    timed_out = [r for r in results if r.attempts == 2]
    assert len(timed_out) == 2
    assert all("timeout" in r.errors[0] for r in timed_out)


@pytest.mark.asyncio
async def test_refused_replica_is_benched(server: ServerFactory) -> None:
    good = await server("good")
    client, _ = client_for([await dead_info("dead"), good.info()])
    first = await asyncio.gather(*(client.chat("svc", MSG, {}) for _ in range(10)))
    assert all(r.replica == "good" for r in first)
    assert sum(r.attempts == 2 for r in first) == 5  # the burst split 5/5, then failed over
    dead_stats = client.stats()["svc"]["replicas"]["dead"]
    assert dead_stats["failures"] == dead_stats["requests"] == 5
    assert dead_stats["cooldown"] > 3  # still listed by the source, but benched
    second = await asyncio.gather(*(client.chat("svc", MSG, {}) for _ in range(20)))
    await client.close()
    assert all(r.replica == "good" and r.attempts == 1 for r in second)
    assert client.stats()["svc"]["replicas"]["dead"]["requests"] == 5
    assert good.hits == 30


@pytest.mark.asyncio
async def test_cooldown_expires_and_doubles(server: ServerFactory) -> None:
    good = await server("good")
    source = StaticReplicaSource({"svc": [await dead_info("dead"), good.info()]})
    client = LLMClient(source, {"svc": ClientPolicy(**FAST)}, cooldown=0.2, cooldown_max=10)
    # a pair of concurrent requests always splits one per replica (least outstanding)
    await asyncio.gather(*(client.chat("svc", MSG, {}) for _ in range(2)))
    dead = client.stats()["svc"]["replicas"]["dead"]
    assert dead["requests"] == 1
    assert 0 < dead["cooldown"] <= 0.2
    await asyncio.sleep(0.3)
    await asyncio.gather(*(client.chat("svc", MSG, {}) for _ in range(2)))
    dead = client.stats()["svc"]["replicas"]["dead"]
    await client.close()
    assert dead["requests"] == 2
    assert 0.2 < dead["cooldown"] <= 0.4


@pytest.mark.asyncio
async def test_bad_request_is_not_retried(server: ServerFactory) -> None:
    a = await server("a", mode="400")
    client, _ = client_for([a.info()])
    with pytest.raises(LLMError, match="HTTP 400: a says 400"):
        await client.chat("svc", MSG, {})
    await client.close()
    assert a.hits == 1
    st = client.stats()["svc"]
    assert (st["failures"], st["retries"]) == (1, 0)


@pytest.mark.asyncio
async def test_no_replica_is_an_outage_after_waiting() -> None:
    client, _ = client_for([], wait_for_replica=0.3)
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="service 'svc' unavailable") as info:
        await client.chat("svc", MSG, {})
    assert 0.3 <= time.monotonic() - t0 < 3
    await client.close()
    assert not isinstance(info.value, LLMError)  # agents must not turn it into a failed turn
    assert isinstance(info.value, ResourceUnavailable)  # run_step re-raises it: stop resumably
    assert info.value.service == "svc"
    assert 0.3 <= info.value.waited < 3
    assert "no replica listed" in str(info.value)
    st = client.stats()["svc"]
    assert (st["unavailable"], st["failures"]) == (1, 0)


def test_default_wait_outlasts_a_requeued_server_job() -> None:
    assert ClientPolicy().wait_for_replica >= 3600


def test_service_unavailable_pickles_with_its_fields() -> None:
    exc = pickle.loads(pickle.dumps(ServiceUnavailable("llm", 12.5, "no replica listed")))
    assert (exc.service, exc.waited, exc.detail) == ("llm", 12.5, "no replica listed")
    assert str(exc) == str(ServiceUnavailable("llm", 12.5, "no replica listed"))


@pytest.mark.asyncio
async def test_every_replica_refusing_is_an_outage_not_a_failed_request() -> None:
    # killed servers stay listed until their heartbeat expires: connections are refused
    dead = [await dead_info("d0"), await dead_info("d1")]
    source = StaticReplicaSource({"svc": dead})
    policy = ClientPolicy(**FAST, max_retries=1, wait_for_replica=0.5)
    client = LLMClient(source, {"svc": policy}, cooldown=0.05, cooldown_max=0.1)
    with pytest.raises(ServiceUnavailable) as info:
        await client.chat("svc", MSG, {})
    await client.close()
    assert info.value.waited >= 0.5
    assert "2 listed, none usable" in str(info.value)
    assert "connection failed" in str(info.value)
    replicas = client.stats()["svc"]["replicas"]
    assert replicas["d0"]["requests"] + replicas["d1"]["requests"] > 2  # kept trying


@pytest.mark.asyncio
async def test_replicas_killed_mid_request_and_replaced_finish_the_request(
    server: ServerFactory,
) -> None:
    gate = asyncio.Event()
    old = await server("old", gate=gate)
    source = StaticReplicaSource({"svc": [old.info()]})
    policy = ClientPolicy(**FAST, max_retries=1, wait_for_replica=10)
    client = LLMClient(source, {"svc": policy}, cooldown=0.05, cooldown_max=0.1)
    task = asyncio.create_task(client.chat("svc", MSG, {}))
    await wait_until(lambda: old.current == 1)
    assert old.runner is not None
    await old.runner.cleanup()  # the server dies with the request in flight; still listed
    old.runner = None
    await wait_until(lambda: client.stats()["svc"]["replicas"]["old"]["requests"] >= 3)
    assert not task.done()  # refused again and again: waiting, not failed
    new = await server("new")
    source.set("svc", [new.info()])  # the requeued job registers elsewhere
    result = await asyncio.wait_for(task, 5)
    await client.close()
    assert result.replica == "new"
    assert result.attempts >= 3
    assert result.errors[0].startswith("old: ")
    assert all("connection failed" in e for e in result.errors[1:])


@pytest.mark.asyncio
async def test_refusals_do_not_spend_the_retry_budget_but_bad_answers_do(
    server: ServerFactory,
) -> None:
    bad = await server("bad", mode="500")
    source = StaticReplicaSource({"svc": [await dead_info("dead"), bad.info()]})
    policy = ClientPolicy(**FAST, max_retries=1, wait_for_replica=0.05)
    client = LLMClient(source, {"svc": policy}, cooldown=5.0)
    for _ in range(3):
        with pytest.raises(LLMError, match="bad says 500"):
            await client.chat("svc", MSG, {})
    await client.close()
    assert bad.hits == 6  # every request: two answers from the live-but-broken replica
    st = client.stats()["svc"]
    assert (st["failures"], st["unavailable"]) == (3, 0)


@pytest.mark.asyncio
async def test_answers_end_the_outage_clock(server: ServerFactory) -> None:
    # a replica that answers 500 keeps the service "reachable": with a wait far shorter
    # than the retries take, the request still fails as an ordinary LLMError
    bad = await server("bad", mode="500", delay=0.0)
    client, _ = client_for([bad.info()], max_retries=3, wait_for_replica=0.01)
    with pytest.raises(LLMError, match="4 attempts failed"):
        await client.chat("svc", MSG, {})
    await client.close()
    assert bad.hits == 4


@pytest.mark.asyncio
async def test_an_outage_reaches_run_step_raised_with_the_task_untouched() -> None:
    """The path to the runtime: LLMAgent turns an LLMError into an error turn, but lets
    ServiceUnavailable through, and run_step re-raises it (the worker stops resumably)."""
    from matrixhpc.agents.base import AgentContext
    from matrixhpc.agents.llm import LLMAgent
    from matrixhpc.runtime.stats import WorkerStats
    from matrixhpc.runtime.stepping import run_step
    from matrixhpc.task import Task

    agent = LLMAgent("student", service="svc", system=None, prompt="hi", dialogue=[], params={})
    client, _ = client_for([], wait_for_replica=0.05)
    task = Task(id="r0-t0", seed=1, row={}, origin="w0", next="student", hop=2)
    stats = WorkerStats()
    with pytest.raises(ServiceUnavailable, match="service 'svc' unavailable"):
        await run_step(agent, task, AgentContext(llm=client, worker="w0"), stats, "w0")
    await client.close()
    assert (task.hop, task.history, task.status, stats.step_errors) == (2, [], "running", 0)


@pytest.mark.asyncio
async def test_replica_registered_later_is_used(server: ServerFactory) -> None:
    a = await server("a")
    client, source = client_for([], wait_for_replica=10)
    task = asyncio.create_task(client.chat("svc", MSG, {}))
    await asyncio.sleep(0.2)
    assert not task.done()
    source.set("svc", [a.info()])
    res = await asyncio.wait_for(task, 5)
    await client.close()
    assert res.replica == "a"
    assert res.attempts == 1


@pytest.mark.asyncio
async def test_sticky_keys_are_consistent_and_move_minimally(server: ServerFactory) -> None:
    srvs = [await server(f"r{i}") for i in range(3)]
    client, source = client_for([s.info() for s in srvs], sticky=True)
    keys = [f"dialogue-{i}" for i in range(90)]

    async def route() -> dict[str, str]:
        res = await asyncio.gather(*(client.chat("svc", MSG, {}, sticky_key=k) for k in keys))
        return {k: r.replica for k, r in zip(keys, res, strict=True)}

    before = await route()
    assert await route() == before
    assert set(before.values()) == {"r0", "r1", "r2"}
    # a second client (another process) agrees: the hash is stable, not Python's hash()
    other, _ = client_for([s.info() for s in srvs], sticky=True)
    res = await other.chat("svc", MSG, {}, sticky_key=keys[0])
    assert res.replica == before[keys[0]]
    await other.close()

    source.set("svc", [srvs[0].info(), srvs[2].info()])  # r1 goes away
    after = await route()
    await client.close()
    for k in keys:
        if before[k] == "r1":
            assert after[k] in ("r0", "r2")
        else:
            assert after[k] == before[k]


@pytest.mark.asyncio
async def test_sticky_key_fails_over_from_a_dead_owner(server: ServerFactory) -> None:
    good = await server("good")
    client, _ = client_for([await dead_info("dead"), good.info()], sticky=True)
    results = [await client.chat("svc", MSG, {}, sticky_key=f"k{i}") for i in range(30)]
    await client.close()
    assert all(r.replica == "good" for r in results)
    assert sum(r.attempts == 2 for r in results) == 1  # the first owner-is-dead key only


@pytest.mark.asyncio
async def test_registry_source_end_to_end(server: ServerFactory, tmp_path: Path) -> None:
    a = await server("a")
    key_file = tmp_path / "key"
    key_file.write_text("  k-123\n")
    registry = Registry(tmp_path / "reg")
    url = f"http://127.0.0.1:{a.port}/v1"
    registry.register("llm/svc", "r0", {"url": url, "model": "m", "api_key_file": str(key_file)})
    registry.register(
        "llm/svc", "r1", {"url": "http://127.0.0.1:9/v1", "model": "m", "state": "starting"}
    )
    client = LLMClient(RegistryReplicaSource(registry), {})
    res = await client.chat("svc", MSG, {})
    await client.close()
    assert res.replica == "r0"
    assert a.auth == ["Bearer k-123"]
    assert a.bodies[0]["model"] == "m"


def _inflight(client: LLMClient, replica: str) -> int:
    replicas = client.stats().get("svc", {}).get("replicas", {})
    return int(replicas.get(replica, {}).get("inflight", 0))


async def _simulated(name: str) -> tuple[Any, ReplicaInfo]:
    from matrixhpc.llm.engines.simulated import PROFILES, create_app, start_server

    app = create_app(PROFILES["h100-llama3.1-8b"], time_scale=1.0, model="m")
    runner, port = await start_server(app)
    return runner, ReplicaInfo(name, f"http://127.0.0.1:{port}/v1", "m")


@pytest.mark.asyncio
@pytest.mark.parametrize("queue_metrics", [0.0, 0.05])
async def test_queue_metrics_steer_around_a_replica_loaded_by_others(
    queue_metrics: float,
) -> None:
    (runner_a, a), (runner_b, b) = await _simulated("a"), await _simulated("b")
    other = LLMClient(StaticReplicaSource({"svc": [a]}), {"svc": ClientPolicy()})
    ours, _ = client_for([a, b], queue_metrics=queue_metrics)
    try:  # another process keeps replica a busy with long replies
        load = [
            asyncio.create_task(other.chat("svc", MSG, {"max_tokens": 2000})) for _ in range(30)
        ]
        await wait_until(lambda: _inflight(other, "a") == 30)
        await ours.chat("svc", MSG, {"max_tokens": 1})  # starts the scraper with the service
        await asyncio.sleep(0.3)  # a few scrapes
        results = await asyncio.gather(
            *(ours.chat("svc", MSG, {"max_tokens": 5}) for _ in range(10))
        )
        on_a = sum(r.replica == "a" for r in results)
        if queue_metrics:
            assert on_a == 0, "a replica holding 30 requests for others must be avoided"
            assert ours.stats()["svc"]["replicas"]["a"]["external"] >= 25
        else:
            assert on_a == 5, "without metrics only this process's own load counts"
        for task in load:
            task.cancel()
    finally:
        await ours.close()
        await other.close()
        await runner_a.cleanup()
        await runner_b.cleanup()
