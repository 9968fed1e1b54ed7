"""A simulated OpenAI-compatible LLM server whose latency follows a continuous-batching model.

Why it exists: dry runs and benchmarks of whole workflows need an engine that *behaves* like a
GPU server under load (per-request latency that grows with the batch, a throughput ceiling, a
queue once the batch is full) without a GPU, and that can hold thousands of open requests on
one CPU core so the framework, not the engine, is what gets measured.

Latency model
-------------
A :class:`SimProfile` describes one model on one accelerator:

* ``S`` = ``saturated_tps``: the aggregate decode ceiling (tokens/s over all sequences);
* ``s1`` = ``single_stream_tps``: decode speed of one sequence alone;
* ``B`` = ``max_batch``: sequences admitted at once; later requests wait FIFO;
* ``P`` = ``prefill_tps`` and ``L`` = ``base_latency``.

With ``b`` sequences decoding, every one of them advances at::

    r(b) = S / (b + k),    k = S / s1 - 1

so ``r(1) = s1`` and the aggregate ``b * r(b) = S * b / (b + k)`` rises with ``b`` and
saturates towards ``S`` (decode is memory-bound at small batches and compute-bound at large
ones; this hyperbola is the simplest curve with both ends right).

A request with ``p`` prompt tokens and ``n`` output tokens:

1. waits in the FIFO queue until fewer than ``B`` sequences hold a slot;
2. holds a slot for ``prefill = p / P + L`` seconds (prefills do not slow each other or the
   decoders: prefill is cheap next to decode at these batch sizes);
3. decodes: its progress ``x(t)`` obeys ``dx/dt = r(b(t))`` where ``b(t)`` is the number of
   sequences decoding at time ``t``; it leaves when ``x = n``, freeing its slot.

Every duration is multiplied by ``time_scale`` (0.01 runs 100x faster; 0 answers at once,
which measures pure framework overhead). The ``"zero"`` profile has infinite speeds and
behaves like ``time_scale = 0``.

Closed-loop prediction: ``c`` clients sending fixed-length requests one after another keep
``b = min(c, B)`` slots busy in lock-step, so the aggregate output rate is
``b * n / (p / P + L + n / r(b))`` (:meth:`SimProfile.closed_loop_tps`).

Implementation: all decoding sequences advance at the same rate, so instead of one timer per
token or per request the engine keeps a *virtual progress* ``V(t)`` with ``dV/dt = r(b(t))``
(the tokens a sequence would have decoded since the engine started). A sequence joining at
``V_j`` finishes when ``V = V_j + n``; finish points sit in a heap, and at each arrival or
departure ``V`` is advanced by ``elapsed * r(b)`` and ONE loop timer is set for the earliest
event. Each event costs ``O(log n)``. :class:`BatchModel` holds that math with an injected
clock; :class:`SimEngine` ties it to asyncio; :func:`create_app` is the HTTP layer.

HTTP: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (non-streaming),
``GET /metrics`` (Prometheus, vLLM-compatible gauge names). With ``api_key`` set, ``/v1/*``
requires ``Authorization: Bearer <key>``; ``/health`` and ``/metrics`` stay open, as in vLLM.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import json
import math
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

DEFAULT_MAX_TOKENS = 4096  # output cap when a request sets no max_tokens
CHARS_PER_TOKEN = 4  # prompt-token estimate: characters / 4, the usual English rule of thumb
WORDS_PER_TOKEN = 0.75
ANSWER_PROBABILITY = 0.7  # chance to end a multiple-choice reply with an explicit answer


@dataclass(frozen=True, slots=True)
class SimProfile:
    """Performance of one model on one accelerator; see the module docstring for formulas."""

    name: str
    single_stream_tps: float  # decode tok/s of one sequence alone
    saturated_tps: float  # aggregate decode tok/s ceiling (approached as the batch grows)
    max_batch: int  # sequences holding a slot at once; more wait FIFO
    prefill_tps: float  # prompt tokens/s
    base_latency: float  # fixed seconds per request (scheduling, tokenization, network)
    mean_output_tokens: float  # mean of the log-normal output length
    output_sigma: float  # sigma of log(output length)
    source: str = ""  # where the numbers come from

    def __post_init__(self) -> None:
        if not (self.single_stream_tps > 0 and self.prefill_tps > 0):
            raise ValueError("single_stream_tps and prefill_tps must be > 0")
        if not self.saturated_tps >= self.single_stream_tps:
            raise ValueError("saturated_tps must be >= single_stream_tps")
        if self.max_batch < 1 or self.base_latency < 0:
            raise ValueError("max_batch must be >= 1 and base_latency >= 0")
        if self.mean_output_tokens < 1 or self.output_sigma < 0:
            raise ValueError("mean_output_tokens must be >= 1 and output_sigma >= 0")

    @property
    def instant(self) -> bool:
        """True when decoding is infinitely fast: no model to run, answer at once."""
        return math.isinf(self.single_stream_tps)

    @property
    def k(self) -> float:
        """The batch offset in ``r(b) = S / (b + k)`` that makes ``r(1)`` the single speed."""
        return self.saturated_tps / self.single_stream_tps - 1.0

    def decode_rate(self, b: int) -> float:
        """Tokens/s of each of ``b`` sequences decoding together (0 when none decode)."""
        if b <= 0:
            return 0.0
        if self.instant:
            return math.inf
        return self.saturated_tps / (b + self.k)

    def aggregate_tps(self, b: int) -> float:
        """Decode tokens/s summed over a batch of ``b`` (capped at ``max_batch``)."""
        b = min(b, self.max_batch)
        return b * self.decode_rate(b)

    def prefill_seconds(self, prompt_tokens: int) -> float:
        """Seconds a request holds its slot before it starts decoding."""
        return prompt_tokens / self.prefill_tps + self.base_latency

    def closed_loop_tps(self, concurrency: int, prompt_tokens: int, output_tokens: int) -> float:
        """Predicted output tok/s of ``concurrency`` clients sending identical requests back to
        back: ``min(c, B)`` slots run in lock-step waves of prefill then decode."""
        b = min(concurrency, self.max_batch)
        if b <= 0 or self.instant:
            return math.inf if b > 0 else 0.0
        cycle = self.prefill_seconds(prompt_tokens) + output_tokens / self.decode_rate(b)
        return b * output_tokens / cycle


PROFILES: dict[str, SimProfile] = {
    p.name: p
    for p in (
        SimProfile(
            name="h100-llama3.1-8b",
            single_stream_tps=100.0,
            saturated_tps=12_000.0,
            max_batch=256,
            prefill_tps=30_000.0,
            base_latency=0.02,
            mean_output_tokens=256.0,
            output_sigma=0.6,
            source=(
                "Public vLLM figures for Llama-3.1-8B bf16 on one H100 80GB: ~100 tok/s for a "
                "single stream (~10 ms/token), a few thousand to ~12k output tok/s saturated; "
                "S=12k gives ~8.2k tok/s at the 256-sequence batch cap. Prefill ~30k tok/s is "
                "~50% MFU of 990 dense bf16 TFLOP/s at 2*8e9 FLOP/token."
            ),
        ),
        SimProfile(
            name="a100-llama3.1-8b",
            single_stream_tps=65.0,
            saturated_tps=6_000.0,
            max_batch=256,
            prefill_tps=10_000.0,
            base_latency=0.02,
            mean_output_tokens=256.0,
            output_sigma=0.6,
            source=(
                "Scaled from the H100 profile: A100 80GB has ~0.6x the HBM bandwidth (single "
                "stream is bandwidth-bound) and ~0.3x the bf16 FLOP/s (prefill, saturation)."
            ),
        ),
        SimProfile(
            name="zero",
            single_stream_tps=math.inf,
            saturated_tps=math.inf,
            max_batch=1 << 30,
            prefill_tps=math.inf,
            base_latency=0.0,
            mean_output_tokens=256.0,
            output_sigma=0.6,
            source="Infinitely fast: measures the framework's own overhead.",
        ),
    )
}
DEFAULT_PROFILE = "h100-llama3.1-8b"

_WAITING, _PREFILL, _DECODE = 0, 1, 2


@dataclass(slots=True)
class _Seq:
    prompt_tokens: int
    n_tokens: int
    state: int = _WAITING
    finish_v: float = 0.0


class BatchModel:
    """The scheduling math of the latency model, driven by an injected clock (seconds).

    The caller tells it the time at every call; it never reads a clock, so tests can step it
    exactly. Finished sequences are returned by :meth:`advance`; :meth:`next_event_time`
    says when to call it next.
    """

    def __init__(self, profile: SimProfile, start: float = 0.0) -> None:
        if profile.instant:
            raise ValueError("an instant profile has no schedule to model")
        self.profile = profile
        self._now = start
        self._v = 0.0  # virtual progress: tokens one sequence decoded since the start
        self._seqs: dict[int, _Seq] = {}
        self._queue: deque[int] = deque()  # FIFO of waiting ids (removed ones skipped lazily)
        self._prefill_heap: list[tuple[float, int]] = []  # (time prefill ends, id)
        self._decode_heap: list[tuple[float, int]] = []  # (finish V, id)
        self._done: list[int] = []
        self._next_id = 0
        self.waiting = 0
        self.prefilling = 0
        self.decoding = 0

    @property
    def running(self) -> int:
        """Sequences holding a batch slot (prefilling or decoding)."""
        return self.prefilling + self.decoding

    @property
    def now(self) -> float:
        return self._now

    def add(self, prompt_tokens: int, n_tokens: int, now: float) -> int:
        """Enqueue a request at ``now``; returns its id."""
        self._run_until(now)
        sid = self._next_id
        self._next_id += 1
        self._seqs[sid] = _Seq(prompt_tokens, n_tokens)
        self._queue.append(sid)
        self.waiting += 1
        self._admit()
        return sid

    def remove(self, sid: int, now: float) -> bool:
        """Drop a request (client gone) at ``now``; False if it had already finished."""
        self._run_until(now)
        seq = self._seqs.pop(sid, None)
        if seq is None:
            return False
        if seq.state == _WAITING:
            self.waiting -= 1
        elif seq.state == _PREFILL:
            self.prefilling -= 1
        else:
            self.decoding -= 1
        self._admit()
        return True

    def advance(self, now: float) -> list[int]:
        """Run the schedule up to ``now``; returns the ids that finished decoding."""
        self._run_until(now)
        done, self._done = self._done, []
        return done

    def next_event_time(self) -> float | None:
        """When something next happens if nothing is added or removed; None if idle."""
        if self._done:
            return self._now
        event = self._peek()
        return None if event is None else event[0]

    # -- internals ---------------------------------------------------------------------

    def _run_until(self, t: float) -> None:
        t = max(t, self._now)
        while (event := self._peek()) is not None and event[0] <= t:
            if event[1] == _PREFILL:
                self._end_prefills(event[0])
            else:
                self._end_decodes(event[0])
        self._advance_v(t)

    def _advance_v(self, t: float) -> None:
        if t > self._now:
            self._v += (t - self._now) * self.profile.decode_rate(self.decoding)
            self._now = t

    def _peek(self) -> tuple[float, int] | None:
        """The earliest pending event as (time, kind), dropping stale heap entries."""
        best: tuple[float, int] | None = None
        if self._clean_top(self._prefill_heap, _PREFILL):
            best = (self._prefill_heap[0][0], _PREFILL)
        if self._clean_top(self._decode_heap, _DECODE):
            rate = self.profile.decode_rate(self.decoding)
            t = self._now + max(0.0, self._decode_heap[0][0] - self._v) / rate
            if best is None or t < best[0]:
                best = (t, _DECODE)
        return best

    def _clean_top(self, heap: list[tuple[float, int]], state: int) -> bool:
        while heap:
            seq = self._seqs.get(heap[0][1])
            if seq is not None and seq.state == state:
                return True
            heapq.heappop(heap)
        return False

    def _end_prefills(self, t: float) -> None:
        self._advance_v(t)
        heap = self._prefill_heap
        while self._clean_top(heap, _PREFILL) and heap[0][0] <= t:
            sid = heapq.heappop(heap)[1]
            seq = self._seqs[sid]
            seq.state = _DECODE
            seq.finish_v = self._v + seq.n_tokens
            heapq.heappush(self._decode_heap, (seq.finish_v, sid))
            self.prefilling -= 1
            self.decoding += 1

    def _end_decodes(self, t: float) -> None:
        # Snap V to the finish point instead of integrating, so rounding never leaves a
        # sequence a hair short of its target.
        self._now = max(self._now, t)
        self._v = max(self._v, self._decode_heap[0][0])
        heap = self._decode_heap
        while self._clean_top(heap, _DECODE) and heap[0][0] <= self._v:
            sid = heapq.heappop(heap)[1]
            del self._seqs[sid]
            self.decoding -= 1
            self._done.append(sid)
        self._admit()

    def _admit(self) -> None:
        """Move waiting requests into free slots, FIFO, starting their prefill now."""
        while self._queue and self.running < self.profile.max_batch:
            sid = self._queue.popleft()
            seq = self._seqs.get(sid)
            if seq is None or seq.state != _WAITING:
                continue
            seq.state = _PREFILL
            self.waiting -= 1
            self.prefilling += 1
            ready = self._now + self.profile.prefill_seconds(seq.prompt_tokens)
            heapq.heappush(self._prefill_heap, (ready, sid))


class EngineClosed(RuntimeError):
    """The engine shut down while a request was still being served."""


class SimEngine:
    """Runs a :class:`BatchModel` against the event loop's clock with a single timer.

    Simulated time is ``(loop.time() - t0) / time_scale``; the one timer is re-armed for the
    model's next event after every arrival, departure and expiry.
    """

    def __init__(self, profile: SimProfile, time_scale: float = 1.0) -> None:
        if not (time_scale >= 0 and math.isfinite(time_scale)):
            raise ValueError(f"time_scale must be finite and >= 0, got {time_scale}")
        self.profile = profile
        self.time_scale = time_scale
        self.instant = time_scale == 0 or profile.instant
        self._model = None if self.instant else BatchModel(profile)
        self._futures: dict[int, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # simulated time the timer is armed for
        self._closed = False
        self.requests_total = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0

    @property
    def running(self) -> int:
        return 0 if self._model is None else self._model.running

    @property
    def waiting(self) -> int:
        return 0 if self._model is None else self._model.waiting

    async def generate(self, prompt_tokens: int, output_tokens: int) -> None:
        """Wait as long as the model says this request takes; counts it once finished.

        Cancellation (a client that went away) removes the sequence from the batch at once,
        so the others speed up and nothing leaks.
        """
        if self._closed:
            raise EngineClosed("engine is shut down")
        if self._model is not None:
            await self._wait_model(self._model, prompt_tokens, output_tokens)
        self.requests_total += 1
        self.prompt_tokens_total += prompt_tokens
        self.generation_tokens_total += output_tokens

    async def _wait_model(self, model: BatchModel, prompt_tokens: int, n: int) -> None:
        loop = self._bind_loop()
        now = self._sim_now()
        self._resolve(model.advance(now))
        sid = model.add(prompt_tokens, n, now)
        fut: asyncio.Future[None] = loop.create_future()
        self._futures[sid] = fut
        self._rearm()
        try:
            await fut
        except asyncio.CancelledError:
            if self._futures.pop(sid, None) is not None:
                self._resolve(model.advance(self._sim_now()))
                model.remove(sid, self._sim_now())
                self._rearm()
            raise

    def close(self) -> None:
        """Fail every pending request so that a server shutdown does not wait on them."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        futures, self._futures = self._futures, {}
        for fut in futures.values():
            if not fut.done():
                fut.set_exception(EngineClosed("engine is shutting down"))

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop, self._t0 = loop, loop.time()
        elif self._loop is not loop:
            raise RuntimeError("a SimEngine serves one event loop")
        return loop

    def _sim_now(self) -> float:
        assert self._loop is not None
        return (self._loop.time() - self._t0) / self.time_scale

    def _resolve(self, finished: list[int]) -> None:
        for sid in finished:
            fut = self._futures.pop(sid, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _rearm(self) -> None:
        """Point the single timer at the model's next event (or disarm it when idle)."""
        assert self._model is not None and self._loop is not None
        t = self._model.next_event_time()
        if self._timer is not None:
            if t == self._timer_at:
                return
            self._timer.cancel()
            self._timer = None
        if t is not None:
            self._timer_at = t
            self._timer = self._loop.call_at(self._t0 + t * self.time_scale, self._on_timer)

    def _on_timer(self) -> None:
        assert self._model is not None
        self._timer = None
        # The loop may fire a hair early (clock resolution); the event is due regardless.
        self._resolve(self._model.advance(max(self._sim_now(), self._timer_at)))
        self._rearm()


# -- request handling ----------------------------------------------------------------------


class BadRequest(ValueError):
    """A request the OpenAI API would reject with 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a chat-completions body that the simulation uses."""

    texts: list[str]  # message contents as plain text, in order
    roles: list[str]
    max_tokens: int | None
    min_tokens: int
    ignore_eos: bool
    seed: int | None


def _content_text(content: Any) -> str:
    """Plain text of a message content: a string, a list of parts, or None."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise BadRequest("message content must be a string, a list of parts or null", "messages")


def _opt_int(body: dict[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"'{key}' must be an integer >= {minimum}", key)
    return value


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a chat-completions body; raises :class:`BadRequest` like the OpenAI API."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("every message must be an object with a string 'role'", "messages")
    if body.get("stream"):
        raise BadRequest("stream=true is not supported by the simulated engine", "stream")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported by the simulated engine", "n")
    max_tokens = _opt_int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _opt_int(body, "max_tokens", 1)
    min_tokens = _opt_int(body, "min_tokens", 0) or 0
    if max_tokens is not None and min_tokens > max_tokens:
        raise BadRequest("'min_tokens' must not exceed 'max_tokens'", "min_tokens")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("'seed' must be an integer", "seed")
    return ChatRequest(
        texts=[_content_text(m.get("content")) for m in messages],
        roles=[m["role"] for m in messages],
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=bool(body.get("ignore_eos", False)),
        seed=seed,
    )


def estimate_prompt_tokens(texts: list[str]) -> int:
    """Characters / 4 over all messages, at least 1: close enough for English and cheap."""
    return max(1, sum(len(t) for t in texts) // CHARS_PER_TOKEN)


def request_rng(seed: int, req: ChatRequest) -> random.Random:
    """A generator fixed by the server seed, the message contents and the request's seed,
    so that the same request always gets the same answer (stable across processes)."""
    key = json.dumps([seed, req.texts, req.seed], separators=(",", ":"))
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def sample_output_tokens(
    profile: SimProfile, req: ChatRequest, rng: random.Random
) -> tuple[int, str]:
    """Output length and finish_reason: exactly the cap with ignore_eos, else log-normal."""
    cap = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS
    if req.ignore_eos:
        return cap, "length"
    sigma = profile.output_sigma
    mu = math.log(profile.mean_output_tokens) - sigma * sigma / 2  # so that E[n] = mean
    n = round(rng.lognormvariate(mu, sigma))
    n = min(max(n, 1, req.min_tokens), cap)
    return n, "length" if n >= cap else "stop"


_PAREN_OPTION = re.compile(r"\(([A-Z])\)")
_LINE_OPTION = re.compile(r"^\s*([A-Z])[.)]\s", re.MULTILINE)


def find_choice_letters(req: ChatRequest) -> list[str]:
    """Option letters of a multiple-choice question in the user/system messages.

    Only a run starting at A counts (A, B, C, ... up to the first gap), so that a stray
    "(I)" or "I. " in prose is not mistaken for options.
    """
    text = "\n".join(
        t for r, t in zip(req.roles, req.texts, strict=True) if r in ("user", "system")
    )
    found = set(_PAREN_OPTION.findall(text)) | set(_LINE_OPTION.findall(text))
    letters: list[str] = []
    for code in range(ord("A"), ord("Z") + 1):
        if chr(code) not in found:
            break
        letters.append(chr(code))
    return letters if len(letters) >= 2 else []


_VOCAB_TEXT = (
    "the of and to in is that for it as with was on be by this are from at or an have not "
    "which one all can has more also their if will about would there other when what some "
    "into only time these could first two may then any like our new well because very most "
    "model data answer result value number case point given each step both between since "
    "therefore however thus reason option consider second final evidence follows"
)
_VOCAB = _VOCAB_TEXT.split()


def generate_text(n_tokens: int, letters: list[str], rng: random.Random) -> str:
    """Filler words (~0.75 per token); a multiple-choice prompt usually gets an answer line,
    so that multi-turn debate workflows end plausibly in dry runs."""
    words = rng.choices(_VOCAB, k=max(1, int(n_tokens * WORDS_PER_TOKEN)))
    text = " ".join(words).capitalize() + "."
    if letters and rng.random() < ANSWER_PROBABILITY:
        text += f" The correct answer is ({rng.choice(letters)})."
    return text


# -- HTTP ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Settings:
    model: str
    api_key: str | None
    seed: int


ENGINE_KEY = web.AppKey("sim_engine", SimEngine)
_SETTINGS_KEY = web.AppKey("sim_settings", _Settings)


def _error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> web.Response:
    err_type = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": err_type, "param": param, "code": code}}
    return web.json_response(body, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer-token check on /v1/* only; /health and /metrics stay open, as in vLLM."""
    key = request.app[_SETTINGS_KEY].api_key
    if key is not None and request.path.startswith("/v1"):
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return _error(401, "invalid or missing API key", code="invalid_api_key")
    return await handler(request)


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _models(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS_KEY]
    card = {
        "id": settings.model,
        "object": "model",
        "created": 0,
        "owned_by": "matrixhpc-simulated",
    }
    return web.json_response({"object": "list", "data": [card]})


async def _chat(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS_KEY]
    engine = request.app[ENGINE_KEY]
    try:
        req = parse_chat_request(json.loads(await request.read()))
    except BadRequest as exc:
        return _error(400, str(exc), exc.param)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return _error(400, f"request body is not valid JSON: {exc}")
    rng = request_rng(settings.seed, req)
    prompt_tokens = estimate_prompt_tokens(req.texts)
    n, finish_reason = sample_output_tokens(engine.profile, req, rng)
    text = generate_text(n, find_choice_letters(req), rng)
    try:
        await engine.generate(prompt_tokens, n)
    except EngineClosed as exc:
        return _error(503, str(exc))
    return web.json_response(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": settings.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": n,
                "total_tokens": prompt_tokens + n,
            },
        }
    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def _metrics(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    labels = f'{{model_name="{_label(request.app[_SETTINGS_KEY].model)}"}}'
    series = (
        ("vllm:num_requests_running", "gauge", "Requests holding a batch slot.", engine.running),
        ("vllm:num_requests_waiting", "gauge", "Requests queued for a slot.", engine.waiting),
        (
            "vllm:prompt_tokens_total",
            "counter",
            "Prompt tokens of finished requests.",
            engine.prompt_tokens_total,
        ),
        (
            "vllm:generation_tokens_total",
            "counter",
            "Output tokens of finished requests.",
            engine.generation_tokens_total,
        ),
        (
            "sim_generation_tokens_total",
            "counter",
            "Output tokens of finished requests.",
            engine.generation_tokens_total,
        ),
        ("sim_requests_total", "counter", "Requests served to completion.", engine.requests_total),
    )
    lines: list[str] = []
    for name, kind, help_text, value in series:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{labels} {value}"]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def _close_engine(app: web.Application) -> None:
    app[ENGINE_KEY].close()


def create_app(
    profile: SimProfile,
    *,
    time_scale: float = 1.0,
    model: str = "simulated",
    api_key: str | None = None,
    seed: int = 0,
) -> web.Application:
    """The simulated server as an aiohttp application.

    Serve it with :func:`start_server`: another runner must enable ``handler_cancellation``
    or a disconnected client keeps its batch slot until its simulated reply is done.
    """
    app = web.Application(middlewares=[_auth_middleware], client_max_size=64 * 1024 * 1024)
    app[ENGINE_KEY] = SimEngine(profile, time_scale)
    app[_SETTINGS_KEY] = _Settings(model=model, api_key=api_key, seed=seed)
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/metrics", _metrics)
    app.on_shutdown.append(_close_engine)
    return app


async def start_server(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (``await runner.cleanup()`` to stop) and the bound
    port (``port=0`` picks a free one).

    Handler cancellation is on so that a client that disconnects mid-request frees its batch
    slot at once; the backlog is large because thousands of clients connect at the same time.
    """
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = int(runner.addresses[0][1])
    return runner, bound


async def serve_forever(
    profile: SimProfile,
    host: str = "127.0.0.1",
    port: int = 0,
    time_scale: float = 1.0,
    model: str = "simulated",
    api_key: str | None = None,
    on_ready: Callable[[int], None] | None = None,
    *,
    seed: int = 0,
) -> None:
    """Serve until cancelled; ``on_ready`` gets the bound port once requests are accepted."""
    app = create_app(profile, time_scale=time_scale, model=model, api_key=api_key, seed=seed)
    runner, bound = await start_server(app, host, port)
    try:
        if on_ready is not None:
            on_ready(bound)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
