"""Parsing servers' queue depth out of Prometheus text, and what a failed scrape means."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from matrixhpc.llm.queue_depth import external_load, metrics_url, queue_depth

VLLM = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 7.0
vllm:num_requests_running{engine="1",model_name="llama"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 12.0
vllm:num_requests_waiting_by_reason{reason="capacity"} 99.0
vllm:generation_tokens_total{model_name="llama"} 123456.0
"""

LLAMACPP = """\
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
llamacpp:requests_deferred 4
"""


def test_vllm_running_plus_waiting_over_every_engine() -> None:
    assert queue_depth(VLLM) == 22


def test_llamacpp_series_without_labels() -> None:
    assert queue_depth(LLAMACPP) == 5


@pytest.mark.parametrize("text", ["", "# nothing here\n", "other_metric 5\n"])
def test_no_queue_series_is_none_not_zero(text: str) -> None:
    assert queue_depth(text) is None


def test_malformed_values_are_skipped() -> None:
    assert queue_depth('vllm:num_requests_running{a="}"} NaNx\nvllm:num_requests_waiting 2\n') == 2


def test_metrics_url_from_the_api_base() -> None:
    assert metrics_url("http://h:8000/v1") == "http://h:8000/metrics"
    assert metrics_url("http://h:8000/v1/") == "http://h:8000/metrics"
    assert metrics_url("https://proxy/llm") == "https://proxy/llm/metrics"


@pytest.mark.asyncio
async def test_external_load_subtracts_our_own_and_forgets_on_failure() -> None:
    async def ok(url: str, headers: Mapping[str, str]) -> str:
        return VLLM

    async def refused(url: str, headers: Mapping[str, str]) -> str:
        raise ConnectionRefusedError(url)

    async def plain(url: str, headers: Mapping[str, str]) -> str:
        return "no metrics\n"

    assert await external_load(ok, "u", {}, mine=5) == 17
    assert await external_load(ok, "u", {}, mine=40) == 0
    assert await external_load(refused, "u", {}, mine=0) == 0
    assert await external_load(plain, "u", {}, mine=0) == 0
