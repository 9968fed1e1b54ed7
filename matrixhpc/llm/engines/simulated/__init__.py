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

Scripted replies: a :class:`Script` answers the roles it names (a canned reply, a Jinja
template over the request, or a seeded weighted choice) instead of filler, so a dry run takes
the branches a workflow's content decides; the timing model is the same (:mod:`.script`).

Modules: :mod:`.profiles` (:class:`SimProfile`, :data:`PROFILES`), :mod:`.batching`
(:class:`BatchModel`, the pure math), :mod:`.engine` (:class:`SimEngine`), :mod:`.requests`
(request parsing, output length, filler text), :mod:`.script` (scripted replies) and
:mod:`.http` (the aiohttp layer). Everything public is re-exported here.
"""

from __future__ import annotations

from .batching import BatchModel
from .engine import EngineClosed, SimEngine
from .http import ENGINE_KEY, Handler, create_app, serve_forever, start_server
from .profiles import DEFAULT_PROFILE, PROFILES, SimProfile
from .requests import (
    ANSWER_PROBABILITY,
    CHARS_PER_TOKEN,
    DEFAULT_MAX_TOKENS,
    WORDS_PER_TOKEN,
    BadRequest,
    ChatRequest,
    estimate_prompt_tokens,
    find_choice_letters,
    generate_text,
    parse_chat_request,
    request_rng,
    sample_output_tokens,
)
from .script import (
    TEMPLATE_NAMES,
    Answer,
    Asker,
    Script,
    ScriptError,
    ScriptFailed,
    compile_reply_template,
)

__all__ = [
    "ANSWER_PROBABILITY",
    "CHARS_PER_TOKEN",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PROFILE",
    "ENGINE_KEY",
    "PROFILES",
    "TEMPLATE_NAMES",
    "WORDS_PER_TOKEN",
    "Answer",
    "Asker",
    "BadRequest",
    "BatchModel",
    "ChatRequest",
    "EngineClosed",
    "Handler",
    "Script",
    "ScriptError",
    "ScriptFailed",
    "SimEngine",
    "SimProfile",
    "compile_reply_template",
    "create_app",
    "estimate_prompt_tokens",
    "find_choice_letters",
    "generate_text",
    "parse_chat_request",
    "request_rng",
    "sample_output_tokens",
    "serve_forever",
    "start_server",
]
