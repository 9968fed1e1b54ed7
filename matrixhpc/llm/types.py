"""Types shared by the LLM client, the serving side and the agents that call them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class LLMError(RuntimeError):
    """A chat request that failed after every retry and failover."""


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """One live server of a service, as found in the registry."""

    name: str
    url: str  # base URL ending in /v1, e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = None
    max_concurrency: int | None = None  # the replica's own cap, if it declares one


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
    wait_for_replica: float = 120.0  # how long to wait when no replica is live
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
    ) -> ChatResult: ...
