"""Types shared by the LLM client, the serving side and the agents that call them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from matrixhpc.errors import ResourceUnavailable


class LLMError(RuntimeError):
    """A chat request that failed after every retry and failover.

    A replica accepted the request and answered badly (HTTP 5xx/429/408 every time,
    a timeout, a dropped or malformed answer), or refused it outright (4xx): the
    task's step failed, and the agent records an error turn.
    """


class ServiceUnavailable(ResourceUnavailable):
    """No replica of ``service`` could be reached for ``waited`` seconds: an outage.

    A :class:`~matrixhpc.errors.ResourceUnavailable`, so ``run_step`` re-raises it
    with the task untouched and the worker stops resumably; and not an
    :class:`LLMError`, on purpose: an agent that turns ``LLMError`` into an error
    turn lets this through, so no final ``failed`` record is written for a task that
    did nothing wrong. Raised when every replica stayed unlisted, benched, or refused
    connections for the service's ``replica_wait``; ``detail`` says which.
    """

    def __init__(self, service: str, waited: float, detail: str = "") -> None:
        self.service = service
        self.waited = waited
        self.detail = detail
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"service {service!r} unavailable: no replica reachable for {waited:.1f}s{why}"
        )

    def __reduce__(self) -> tuple[type[ServiceUnavailable], tuple[str, float, str]]:
        """Picklable with its fields (the default would pass only the message)."""
        return (type(self), (self.service, self.waited, self.detail))


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """One live server of a service, as found in the registry."""

    name: str
    url: str  # base URL ending in /v1, e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = None
    max_concurrency: int | None = None  # the replica's own cap, if it declares one
    # the server reads request metadata (:mod:`matrixhpc.llm.metadata`): only such a
    # replica gets the X-Matrixhpc-* headers; every other sees exactly the plain request
    request_metadata: bool = False


class ReplicaSource(Protocol):
    """Where the client learns which replicas of a service are alive (cached, cheap)."""

    def replicas(self, service: str) -> list[ReplicaInfo]: ...


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """How the client treats one service: explicit limits, no hidden caps."""

    max_concurrency: int = 64  # per replica; requests beyond it wait in the client
    timeout: float = 600.0  # seconds per attempt
    max_retries: int = 3  # extra attempts after the first
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    sticky: bool = False  # consistent hashing on sticky_key (prefix-cache reuse)
    # how long a request waits while no replica can be reached (none listed, all benched,
    # all refusing connections) before it raises ServiceUnavailable; long enough by
    # default for a requeued Slurm server job to get back through the queue
    wait_for_replica: float = 3600.0
    queue_metrics: float = 0.0  # seconds between scrapes of servers' queue depth; 0: off


@dataclass(slots=True)
class ChatResult:
    text: str
    usage: dict[str, int]
    finish_reason: str
    replica: str
    latency: float
    attempts: int = 1
    tool_calls: list[dict[str, Any]] | None = None
    errors: list[str] = field(default_factory=list)  # retried failures on the way


class ChatClient(Protocol):
    """What an LLM agent needs: one call, retries and balancing hidden behind it."""

    async def chat(
        self,
        service: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        sticky_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ChatResult:
        """``metadata``: who asks (:data:`~matrixhpc.llm.metadata.ROLE`,
        :data:`~matrixhpc.llm.metadata.TASK`), for engines that answer by it (the simulated
        engine's script); never part of the request body."""
        ...
