"""Where the client learns which replicas of a service exist.

:class:`RegistryReplicaSource` reads the file registry that serving jobs heartbeat
into; :class:`StaticReplicaSource` is for fixed URLs (external endpoints, tests).
Both are called on every request, so they must be cheap: the registry already
caches its directory scans, and this module caches the derived ``ReplicaInfo``
list briefly and keeps the *same objects* while nothing changed, which lets the
client notice "unchanged" with identity comparisons.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from matrixhpc.registry import Registry

from .types import ReplicaInfo

log = logging.getLogger(__name__)


class StaticReplicaSource:
    """A fixed mapping ``service -> replicas``; :meth:`set` replaces one service's list."""

    def __init__(self, mapping: dict[str, list[ReplicaInfo]] | None = None) -> None:
        self._mapping = {k: list(v) for k, v in (mapping or {}).items()}

    def replicas(self, service: str) -> list[ReplicaInfo]:
        return self._mapping.get(service, [])

    def set(self, service: str, replicas: list[ReplicaInfo]) -> None:
        self._mapping[service] = list(replicas)


class RegistryReplicaSource:
    """Replicas registered under ``llm/<service>`` that are alive and ``ready``.

    Entries that are still ``starting`` (loading weights) are ignored, so a client
    never sends requests to a server that cannot answer yet. API keys are read from
    ``api_key_file`` once per path (keys live on the shared filesystem and reading
    them per request would hammer it); an unreadable key file hides the replica
    rather than turning every request into a 401 "bad row".
    """

    def __init__(self, registry: Registry, *, cache_seconds: float = 0.5) -> None:
        self._registry = registry
        self._cache_seconds = cache_seconds
        self._keys: dict[str, str] = {}
        self._lists: dict[str, tuple[float, list[ReplicaInfo]]] = {}
        self._infos: dict[tuple[str, str], ReplicaInfo] = {}  # (service, name) -> last info
        self._warned: set[str] = set()

    def replicas(self, service: str) -> list[ReplicaInfo]:
        now = time.monotonic()
        cached = self._lists.get(service)
        if cached is not None and now < cached[0]:
            return cached[1]
        entries = self._registry.entries(f"llm/{service}")
        found = []
        for name in sorted(entries):
            info = self._info(service, name, entries[name])
            if info is not None:
                found.append(info)
        if cached is not None and found == cached[1]:
            found = cached[1]  # keep the identical list object: "nothing changed"
        self._lists[service] = (now + self._cache_seconds, found)
        return found

    def _info(self, service: str, name: str, entry: dict[str, Any]) -> ReplicaInfo | None:
        if entry.get("state", "ready") != "ready":
            return None
        url, model = entry.get("url"), entry.get("model")
        if not isinstance(url, str) or not url or not isinstance(model, str):
            return None
        api_key = None
        key_file = entry.get("api_key_file")
        if key_file:
            api_key = self._api_key(str(key_file))
            if api_key is None:
                return None
        info = ReplicaInfo(
            name=name,
            url=url.rstrip("/"),
            model=model,
            api_key=api_key,
            max_concurrency=_positive_int(entry.get("max_concurrency")),
            request_metadata=entry.get("request_metadata") is True,
        )
        old = self._infos.get((service, name))
        if old == info:
            return old
        self._infos[(service, name)] = info
        return info

    def _api_key(self, path: str) -> str | None:
        key = self._keys.get(path)
        if key is None:
            try:
                key = Path(path).read_text().strip()
            except OSError as exc:
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("cannot read api_key_file %s: %s", path, exc)
                return None
            self._keys[path] = key
        return key


def _positive_int(value: Any) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None
