"""The one simulated LLM server both frameworks share, and its counters.

``matrixhpc serve simulated`` (standalone: no run directory, no API key) exposes
Prometheus counters at ``/metrics``: output tokens and requests served to completion, and
gauges of the requests holding a batch slot and waiting for one. Throughput is read from
these counters, not from either framework's own records, so both are measured by the
same instrument. :class:`CounterPoller` samples them on a thread while a run goes on.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from benchmarks.llm_client import start_server, wait_ready
from matrixhpc.llm.engines.listen import free_port

COUNTERS = {
    "sim_generation_tokens_total": "tokens",
    "sim_requests_total": "requests",
    "vllm:prompt_tokens_total": "prompt_tokens",
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
}


@dataclass(frozen=True, slots=True)
class Counters:
    """One scrape of the server: cumulative output tokens, requests and prompt tokens of
    finished requests; the running and waiting gauges."""

    t: float
    tokens: float = 0.0
    requests: float = 0.0
    prompt_tokens: float = 0.0
    running: float = 0.0
    waiting: float = 0.0

    @property
    def busy(self) -> bool:
        return self.running > 0 or self.waiting > 0


def parse_metrics(text: str, t: float) -> Counters:
    """The series of :data:`COUNTERS` from Prometheus text (summed over label sets)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{") if "{" in line else line.partition(" ")
        key = COUNTERS.get(name)
        if key is None:
            continue
        try:
            value = float(rest.rsplit("}", 1)[-1].split()[0])
        except (IndexError, ValueError):
            continue
        values[key] = values.get(key, 0.0) + value
    return Counters(t, **values)


@dataclass
class SimServer:
    """``matrixhpc serve simulated`` on a free port, with a profile and a time scale."""

    profile: str
    time_scale: float
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> SimServer:
        extra = ("--profile", self.profile, "--time-scale", str(self.time_scale))
        self.proc = start_server("simulated", self.port, *extra)
        asyncio.run(wait_ready(self.url))
        return self

    def scrape(self) -> Counters:
        metrics = self.url.removesuffix("/v1") + "/metrics"
        with urllib.request.urlopen(metrics, timeout=5) as resp:
            return parse_metrics(resp.read().decode(), time.time())

    def wait_idle(self, timeout: float = 60.0) -> Counters:
        """The counters once nothing runs or waits (a previous run's requests are gone)."""
        deadline = time.monotonic() + timeout
        while (now := self.scrape()).busy:
            if time.monotonic() > deadline:
                raise TimeoutError(f"server still busy after {timeout:.0f}s: {now}")
            time.sleep(0.2)
        return now

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None


@dataclass
class CounterPoller:
    """Scrapes a server every ``interval`` seconds on a thread until stopped."""

    server: SimServer
    interval: float = 0.05
    samples: list[Counters] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> CounterPoller:
        self.samples.append(self.server.scrape())
        self._thread = threading.Thread(target=self._loop, name="counter-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Counters]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self.server.scrape())
        return self.samples

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self.server.scrape())
            except OSError:  # a scrape that timed out under load: the next one counts
                continue
