"""The asyncio engine: :class:`SimEngine` runs a :class:`BatchModel` on the event loop's clock."""

from __future__ import annotations

import asyncio
import math

from .batching import BatchModel
from .profiles import SimProfile


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
        assert self._model is not None
        assert self._loop is not None
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
