"""Latency profiles: :class:`SimProfile` (one model on one accelerator) and :data:`PROFILES`.

The latency model the numbers feed is described in the package docstring
(:mod:`matrixhpc.llm.engines.simulated`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimProfile:
    """Performance of one model on one accelerator; see the package docstring for formulas."""

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
