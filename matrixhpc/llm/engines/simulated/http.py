"""The HTTP layer: the aiohttp application, its handlers and ``/metrics``, and the server."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ...metadata import ROLE, TASK, TURN, from_headers
from ..listen import listen_sockets
from .engine import EngineClosed, SimEngine
from .profiles import SimProfile
from .requests import (
    BadRequest,
    ChatRequest,
    estimate_prompt_tokens,
    find_choice_letters,
    generate_text,
    parse_chat_request,
    request_rng,
    sample_output_tokens,
)
from .script import Answer, Asker, Script, ScriptFailed


@dataclass(frozen=True, slots=True)
class _Settings:
    model: str
    api_key: str | None
    seed: int
    script: Script


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


async def _health(_request: web.Request) -> web.Response:
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
    try:
        answer = _answer(settings, engine.profile, request, req)
    except ScriptFailed as exc:
        return _error(400, str(exc), code="script_error")
    prompt_tokens = estimate_prompt_tokens(req.texts)
    text, n, finish_reason = answer.text, answer.completion_tokens, answer.finish_reason
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


def _answer(
    settings: _Settings, profile: SimProfile, request: web.Request, req: ChatRequest
) -> Answer:
    """The role's scripted reply when the script names the asking role, else filler."""
    if settings.script:
        scripted = settings.script.answer(_asker(request), req, settings.seed)
        if scripted is not None:
            return scripted
    rng = request_rng(settings.seed, req)
    n, finish_reason = sample_output_tokens(profile, req, rng)
    return Answer(generate_text(n, find_choice_letters(req), rng), n, finish_reason)


def _asker(request: web.Request) -> Asker:
    """Who asks, from the request's metadata headers (a malformed turn counts as none)."""
    turn = from_headers(request.headers, TURN)
    return Asker(
        role=from_headers(request.headers, ROLE),
        task_id=from_headers(request.headers, TASK),
        turn=int(turn) if turn is not None and turn.isascii() and turn.isdecimal() else None,
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
    script: Script | None = None,
) -> web.Application:
    """The simulated server as an aiohttp application; ``script`` answers roles it names.

    Serve it with :func:`start_server`: another runner must enable ``handler_cancellation``
    or a disconnected client keeps its batch slot until its simulated reply is done.
    """
    app = web.Application(middlewares=[_auth_middleware], client_max_size=64 * 1024 * 1024)
    app[ENGINE_KEY] = SimEngine(profile, time_scale)
    app[_SETTINGS_KEY] = _Settings(
        model=model, api_key=api_key, seed=seed, script=script or Script()
    )
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

    Listens on every address ``host`` resolves to (a wildcard: every IPv4 and IPv6
    address), all on the one port that is advertised (:func:`..listen.listen_sockets`).
    Handler cancellation is on so that a client that disconnects mid-request frees its batch
    slot at once; the backlog is large because thousands of clients connect at the same time.
    """
    socks = listen_sockets(host, port)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=5.0)
    try:
        await runner.setup()
        for sock in socks:
            await web.SockSite(runner, sock, backlog=4096).start()
    except BaseException:
        for sock in socks:
            sock.close()
        await runner.cleanup()
        raise
    return runner, int(socks[0].getsockname()[1])


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
    script: Script | None = None,
) -> None:
    """Serve until cancelled; ``on_ready`` gets the bound port once requests are accepted."""
    app = create_app(
        profile, time_scale=time_scale, model=model, api_key=api_key, seed=seed, script=script
    )
    runner, bound = await start_server(app, host, port)
    try:
        if on_ready is not None:
            on_ready(bound)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
