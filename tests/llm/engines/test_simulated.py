"""The simulated engine: the batching math against an independent reference, then the real
HTTP server over loopback sockets with a real aiohttp client."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from matrixhpc.llm.engines.simulated import (
    PROFILES,
    BatchModel,
    Script,
    SimProfile,
    create_app,
    serve_forever,
    start_server,
)
from matrixhpc.llm.metadata import ROLE, TASK, to_headers

H100 = PROFILES["h100-llama3.1-8b"]


def _profile(**changes: Any) -> SimProfile:
    """A small profile with round numbers, so expected times are easy to write down."""
    base = SimProfile(
        name="test",
        single_stream_tps=100.0,
        saturated_tps=1000.0,
        max_batch=4,
        prefill_tps=1000.0,
        base_latency=0.0,
        mean_output_tokens=50.0,
        output_sigma=0.5,
    )
    return replace(base, **changes)


def _finish_times(model: BatchModel) -> dict[int, float]:
    """Step the model event by event until idle; returns id -> finish time."""
    done: dict[int, float] = {}
    while (t := model.next_event_time()) is not None:
        for sid in model.advance(t):
            done[sid] = t
    return done


# -- BatchModel ----------------------------------------------------------------------------


def test_rate_curve_starts_at_single_stream_and_saturates() -> None:
    p = _profile(max_batch=100_000)
    assert p.decode_rate(1) == pytest.approx(100.0)
    aggregates = [p.aggregate_tps(b) for b in (1, 2, 8, 64, 1024, 65536)]
    assert aggregates == sorted(aggregates)
    assert all(a < p.saturated_tps for a in aggregates)
    assert aggregates[-1] > 0.99 * p.saturated_tps
    assert p.decode_rate(0) == 0.0


def test_single_sequence_pays_prefill_then_decodes_at_single_speed() -> None:
    p = _profile(base_latency=0.05)
    model = BatchModel(p)
    sid = model.add(prompt_tokens=200, n_tokens=50, now=0.0)
    assert (model.running, model.waiting) == (1, 0)
    assert _finish_times(model) == {sid: pytest.approx(200 / 1000 + 0.05 + 50 / 100)}
    assert (model.running, model.waiting) == (0, 0)
    assert model.next_event_time() is None


def test_two_concurrent_sequences_are_each_slower() -> None:
    p = _profile()
    model = BatchModel(p)
    a = model.add(0, 100, 0.0)
    b = model.add(0, 100, 0.0)
    expected = 100 / p.decode_rate(2)
    assert expected > 100 / p.decode_rate(1)
    assert _finish_times(model) == {a: pytest.approx(expected), b: pytest.approx(expected)}


def test_aggregate_throughput_approaches_saturation() -> None:
    p = _profile(max_batch=10_000)
    model = BatchModel(p)
    n, count = 100, 5000
    for _ in range(count):
        model.add(0, n, 0.0)
    makespan = max(_finish_times(model).values())
    achieved = n * count / makespan
    assert achieved == pytest.approx(p.aggregate_tps(count))
    assert achieved > 0.95 * p.saturated_tps


def test_requests_beyond_max_batch_wait_fifo() -> None:
    p = _profile(max_batch=2)
    model = BatchModel(p)
    ids = [model.add(0, 100, 0.0) for _ in range(3)]
    assert (model.running, model.waiting) == (2, 1)
    first = 100 / p.decode_rate(2)
    done = _finish_times(model)
    assert done[ids[0]] == pytest.approx(first)
    assert done[ids[1]] == pytest.approx(first)
    assert done[ids[2]] == pytest.approx(first + 100 / p.decode_rate(1))


def test_departure_speeds_up_the_rest() -> None:
    p = _profile()
    model = BatchModel(p)
    short = model.add(0, 10, 0.0)
    long = model.add(0, 100, 0.0)
    t_short = 10 / p.decode_rate(2)
    done = _finish_times(model)
    assert done[short] == pytest.approx(t_short)
    assert done[long] == pytest.approx(t_short + 90 / p.decode_rate(1))


def test_removed_sequence_frees_its_slot_and_speeds_up_the_rest() -> None:
    p = _profile(max_batch=2)
    model = BatchModel(p)
    a = model.add(0, 100, 0.0)
    b = model.add(0, 100, 0.0)
    c = model.add(0, 100, 0.0)
    d = model.add(0, 100, 0.0)
    assert model.remove(c, 0.1)  # waiting: just leaves the queue
    assert (model.running, model.waiting) == (2, 1)
    assert model.remove(b, 0.2)  # decoding: d takes its slot, a keeps the same rate
    assert (model.running, model.waiting) == (2, 0)
    assert model.advance(0.2) == []
    done = _finish_times(model)
    a_done = 0.2 + (100 - 0.2 * p.decode_rate(2)) / p.decode_rate(2)
    assert done[a] == pytest.approx(a_done)
    d_left = 100 - (a_done - 0.2) * p.decode_rate(2)
    assert done[d] == pytest.approx(a_done + d_left / p.decode_rate(1))
    assert not model.remove(a, 10.0)


def _reference_finish_times(
    p: SimProfile, arrivals: list[tuple[float, int, int]]
) -> dict[int, float]:
    """A direct simulation that tracks every sequence's remaining tokens (no virtual time),
    to check the virtual-progress trick against."""
    pending = sorted(range(len(arrivals)), key=lambda i: arrivals[i][0])
    queue: list[int] = []
    prefill: dict[int, float] = {}  # id -> time prefill ends
    remaining: dict[int, float] = {}  # decoding id -> tokens left
    done: dict[int, float] = {}
    now = 0.0
    while pending or queue or prefill or remaining:
        rate = p.decode_rate(len(remaining))
        candidates = [arrivals[pending[0]][0]] if pending else []
        candidates += list(prefill.values())
        candidates += [now + left / rate for left in remaining.values()]
        t = min(candidates)
        for sid in remaining:
            remaining[sid] -= (t - now) * rate
        now = t
        for sid in [s for s, left in remaining.items() if left <= 1e-9]:
            del remaining[sid]
            done[sid] = now
        for sid in [s for s, end in prefill.items() if end <= now]:
            del prefill[sid]
            remaining[sid] = arrivals[sid][2]
        while pending and arrivals[pending[0]][0] <= now:
            queue.append(pending.pop(0))
        while queue and len(prefill) + len(remaining) < p.max_batch:
            sid = queue.pop(0)
            prefill[sid] = now + p.prefill_seconds(arrivals[sid][1])
    return done


def test_virtual_progress_matches_a_direct_simulation() -> None:
    p = _profile(max_batch=3, base_latency=0.01)
    rng = random.Random(7)
    t = 0.0
    arrivals: list[tuple[float, int, int]] = []
    for _ in range(60):
        t += rng.expovariate(4.0)
        arrivals.append((t, rng.randint(0, 500), rng.randint(1, 80)))
    model = BatchModel(p)
    ids: dict[int, int] = {}
    got: dict[int, float] = {}
    for i, (at, prompt, n) in enumerate(arrivals):
        while (ev := model.next_event_time()) is not None and ev <= at:
            got.update(dict.fromkeys(model.advance(ev), ev))
        ids[model.add(prompt, n, at)] = i
    got.update(_finish_times(model))
    expected = _reference_finish_times(p, arrivals)
    assert {ids[sid]: t for sid, t in got.items()} == pytest.approx(expected)


# -- HTTP ----------------------------------------------------------------------------------


@asynccontextmanager
async def serve(profile: SimProfile = H100, **kwargs: Any) -> AsyncIterator[tuple[str, Any]]:
    """A real server on a free loopback port and a client session for it."""
    runner, port = await start_server(create_app(profile, **kwargs))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            yield f"http://127.0.0.1:{port}", session
    finally:
        await runner.cleanup()


def _chat_body(content: str = "Hello there, how are you?", **params: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **params}


async def _post(
    session: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any
) -> tuple[int, Any]:
    async with session.post(f"{url}/v1/chat/completions", json=body, **kwargs) as resp:
        return resp.status, await resp.json()


async def _metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            values[name_labels.split("{", 1)[0]] = float(value)
    return values


async def _wait_for(
    session: aiohttp.ClientSession, url: str, running: int, waiting: int, timeout: float = 10.0
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        m = await _metrics(session, url)
        got = (m["vllm:num_requests_running"], m["vllm:num_requests_waiting"])
        if got == (running, waiting) or time.monotonic() > deadline:
            assert got == (running, waiting)
            return m
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_health_and_models() -> None:
    async with serve(model="llama-sim") as (url, session):
        async with session.get(f"{url}/health") as resp:
            assert resp.status == 200
        async with session.get(f"{url}/v1/models") as resp:
            body = await resp.json()
        assert body["object"] == "list"
        assert [card["id"] for card in body["data"]] == ["llama-sim"]


@pytest.mark.asyncio
async def test_chat_completion_shape_and_usage() -> None:
    content = "x" * 400
    async with serve(time_scale=0.001, model="llama-sim") as (url, session):
        status, body = await _post(
            session, url, _chat_body(content, max_tokens=300, min_tokens=20, temperature=0.7)
        )
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "llama-sim"
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == 100
    assert 20 <= usage["completion_tokens"] <= 300
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    expected_reason = "length" if usage["completion_tokens"] == 300 else "stop"
    assert choice["finish_reason"] == expected_reason


@pytest.mark.asyncio
async def test_ignore_eos_gives_exactly_max_tokens() -> None:
    async with serve(time_scale=0.001) as (url, session):
        _, a = await _post(session, url, _chat_body(max_tokens=37, ignore_eos=True))
        _, b = await _post(session, url, _chat_body(max_completion_tokens=5, ignore_eos=True))
    assert a["usage"]["completion_tokens"] == 37
    assert a["choices"][0]["finish_reason"] == "length"
    assert b["usage"]["completion_tokens"] == 5


@pytest.mark.asyncio
async def test_api_key_is_required_on_v1_routes() -> None:
    async with serve(time_scale=0, api_key="s3cret") as (url, session):
        status, body = await _post(session, url, _chat_body())
        assert status == 401
        assert body["error"]["type"] == "invalid_request_error"
        wrong = {"Authorization": "Bearer nope"}
        assert (await _post(session, url, _chat_body(), headers=wrong))[0] == 401
        async with session.get(f"{url}/v1/models") as resp:
            assert resp.status == 401
        good = {"Authorization": "Bearer s3cret"}
        assert (await _post(session, url, _chat_body(), headers=good))[0] == 200
        async with session.get(f"{url}/health") as resp:
            assert resp.status == 200


@pytest.mark.asyncio
async def test_bad_requests_get_openai_style_400() -> None:
    async with serve(time_scale=0) as (url, session):
        async with session.post(
            f"{url}/v1/chat/completions",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400
            body = await resp.json()
        assert body["error"]["type"] == "invalid_request_error"
        assert "JSON" in body["error"]["message"]
        bad_bodies: list[Any] = [
            {"model": "m"},
            {"messages": []},
            {"messages": "hi"},
            [1, 2],
            _chat_body(stream=True),
            _chat_body(max_tokens=0),
            _chat_body(max_tokens="ten"),
            _chat_body(max_tokens=5, min_tokens=9),
        ]
        for bad in bad_bodies:
            status, body = await _post(session, url, bad)
            assert status == 400, bad
            assert body["error"]["type"] == "invalid_request_error"
            assert body["error"]["message"]


@pytest.mark.asyncio
async def test_metrics_in_flight_and_disconnect_frees_the_batch() -> None:
    slow = _profile(max_batch=2, single_stream_tps=10.0, saturated_tps=20.0)
    async with serve(slow, time_scale=1.0) as (url, session):
        body = _chat_body(max_tokens=1000, ignore_eos=True)  # ~100 s each: never finishes here
        tasks = [asyncio.create_task(_post(session, url, body)) for _ in range(5)]
        await _wait_for(session, url, running=2, waiting=3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        m = await _wait_for(session, url, running=0, waiting=0)
        assert m["sim_requests_total"] == 0
        status, _ = await _post(session, url, _chat_body(max_tokens=2, ignore_eos=True))
        assert status == 200
        m = await _metrics(session, url)
        assert m["sim_requests_total"] == 1
        assert m["sim_generation_tokens_total"] == 2


@pytest.mark.asyncio
async def test_two_thousand_concurrent_requests_complete() -> None:
    count, n = 2000, 16
    async with serve(H100, time_scale=0.01) as (url, session):
        body = _chat_body(max_tokens=n, ignore_eos=True)
        results = await asyncio.gather(*(_post(session, url, body) for _ in range(count)))
        m = await _metrics(session, url)
    assert all(status == 200 for status, _ in results)
    assert sum(r["usage"]["completion_tokens"] for _, r in results) == count * n
    assert m["sim_requests_total"] == count
    assert m["sim_generation_tokens_total"] == count * n
    assert (m["vllm:num_requests_running"], m["vllm:num_requests_waiting"]) == (0, 0)


@pytest.mark.asyncio
async def test_latency_is_at_least_what_the_model_predicts() -> None:
    scale, n = 0.5, 40
    content = "y" * 400  # 100 prompt tokens
    async with serve(H100, time_scale=scale) as (url, session):
        body = _chat_body(content, max_tokens=n, ignore_eos=True)
        start = time.monotonic()
        await _post(session, url, body)
        single = time.monotonic() - start
        start = time.monotonic()
        await asyncio.gather(_post(session, url, body), _post(session, url, body))
        pair = time.monotonic() - start
    predicted_single = (H100.prefill_seconds(100) + n / H100.decode_rate(1)) * scale
    predicted_pair = (H100.prefill_seconds(100) + n / H100.decode_rate(2)) * scale
    assert predicted_single * 0.9 <= single < predicted_single + 2.0
    assert predicted_pair * 0.9 <= pair < predicted_pair + 2.0


@pytest.mark.asyncio
async def test_same_request_same_answer_and_seeds_change_it() -> None:
    body = _chat_body("Tell me about batching.", max_tokens=200)
    async with serve(time_scale=0, seed=1) as (url, session):
        _, a = await _post(session, url, body)
        _, b = await _post(session, url, body)
        _, c = await _post(session, url, {**body, "seed": 99})
    async with serve(time_scale=0, seed=2) as (url, session):
        _, d = await _post(session, url, body)
    text = [r["choices"][0]["message"]["content"] for r in (a, b, c, d)]
    assert text[0] == text[1]
    assert a["usage"] == b["usage"]
    assert text[2] != text[0]
    assert text[3] != text[0]


@pytest.mark.asyncio
async def test_multiple_choice_prompts_usually_get_an_answer() -> None:
    question = "Which is prime?\n(A) 4\n(B) 6\n(C) 7\n(D) 9\nAnswer with a letter."
    answer = re.compile(r"The correct answer is \(([A-Z])\)\.$")
    async with serve(time_scale=0) as (url, session):
        results = await asyncio.gather(
            *(_post(session, url, _chat_body(question, max_tokens=30, seed=s)) for s in range(60))
        )
        _, plain = await _post(session, url, _chat_body("No options here (really).", seed=1))
    letters = [
        m.group(1)
        for _, r in results
        if (m := answer.search(r["choices"][0]["message"]["content"]))
    ]
    assert 25 <= len(letters) <= 55  # expected 42 of 60
    assert set(letters) <= {"A", "B", "C", "D"}
    assert len(set(letters)) > 1
    assert "correct answer" not in plain["choices"][0]["message"]["content"]


@pytest.mark.asyncio
async def test_zero_profile_answers_at_once() -> None:
    async with serve(PROFILES["zero"]) as (url, session):
        start = time.monotonic()
        status, body = await _post(session, url, _chat_body(max_tokens=4000, ignore_eos=True))
    assert status == 200
    assert body["usage"]["completion_tokens"] == 4000
    assert time.monotonic() - start < 2.0


@pytest.mark.asyncio
async def test_serve_forever_reports_its_port_and_stops_on_cancel() -> None:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_forever(H100, time_scale=0, model="m", on_ready=ready.set_result)
    )
    port = await asyncio.wait_for(ready, 10)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/health") as resp:
            assert resp.status == 200
        status, _ = await _post(session, f"http://127.0.0.1:{port}", _chat_body())
        assert status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- scripted replies ------------------------------------------------------------------------

SCRIPT = Script.from_spec(
    {
        "checker": {"choice": [{"weight": 1, "reply": "VALID"}, {"reply": "INVALID: redo"}]},
        "writer": {"template": "Draft for {{ task_id }}: {{ last_user | upper }}"},
        "broken": {"template": "{{ messages[9].content }}"},
    }
)


def _as(role: str, task: str = "r1-t0") -> dict[str, str]:
    return to_headers({ROLE: role, TASK: task})


@pytest.mark.asyncio
async def test_scripted_roles_get_their_replies_others_filler() -> None:
    body = _chat_body("explain tides", max_tokens=100)
    async with serve(time_scale=0, script=SCRIPT) as (url, session):
        _, writer = await _post(session, url, body, headers=_as("writer"))
        verdicts = [
            (await _post(session, url, body, headers=_as("checker", f"r{i}-t0")))[1]
            for i in range(40)
        ]
        _, other = await _post(session, url, body, headers=_as("solver"))
        _, anonymous = await _post(session, url, body)
        m = await _metrics(session, url)
    text = writer["choices"][0]["message"]["content"]
    assert text == "Draft for r1-t0: EXPLAIN TIDES"
    assert writer["usage"]["completion_tokens"] == -(-len(text) // 4)  # honest usage
    assert writer["choices"][0]["finish_reason"] == "stop"
    said = {v["choices"][0]["message"]["content"] for v in verdicts}
    assert said == {"VALID", "INVALID: redo"}  # 40 draws at 50 %: both
    filler = [r["choices"][0]["message"]["content"] for r in (other, anonymous)]
    assert all(t not in said and not t.startswith("Draft") for t in filler)
    replies = [writer, *verdicts, other, anonymous]
    decoded = sum(r["usage"]["completion_tokens"] for r in replies)
    assert m["sim_generation_tokens_total"] == decoded  # what was decoded is what is reported


@pytest.mark.asyncio
async def test_a_scripted_reply_is_truncated_by_max_tokens_and_decoded_in_model_time() -> None:
    scale = 0.5
    script = Script.from_spec({"writer": {"reply": "x" * 400}})  # 100 tokens
    async with serve(H100, time_scale=scale, script=script) as (url, session):
        start = time.monotonic()
        _, cut = await _post(
            session, url, _chat_body("y" * 400, max_tokens=40), headers=_as("writer")
        )
        took = time.monotonic() - start
    assert cut["choices"][0]["message"]["content"] == "x" * 160
    assert cut["usage"]["completion_tokens"] == 40
    assert cut["choices"][0]["finish_reason"] == "length"
    predicted = (H100.prefill_seconds(100) + 40 / H100.decode_rate(1)) * scale
    assert predicted * 0.9 <= took < predicted + 2.0


@pytest.mark.asyncio
async def test_a_failing_reply_template_is_a_400_naming_the_role() -> None:
    async with serve(time_scale=0, script=SCRIPT) as (url, session):
        status, body = await _post(session, url, _chat_body(), headers=_as("broken"))
    assert status == 400
    assert body["error"]["code"] == "script_error"
    assert "script of role 'broken'" in body["error"]["message"]
