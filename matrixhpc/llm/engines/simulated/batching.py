"""The scheduling math of the latency model (:class:`BatchModel`), driven by an injected clock."""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from .profiles import SimProfile

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
