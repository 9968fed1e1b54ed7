"""Exceptions shared across layers; this module imports nothing of ours.

They live at the bottom so that a lower layer (the LLM client, the journal) can raise
what an upper layer (the worker) must tell apart from an ordinary step failure,
without either importing the other.
"""

from __future__ import annotations


class ResourceUnavailable(Exception):
    """A resource a step needs (an LLM service, a sandbox pool) has been unavailable for
    longer than configured. The step did not happen and the task is intact: the worker
    stops resumably and says why, instead of recording the task as failed."""


class StorageFailure(OSError):
    """Durable storage (the journal, an output shard) can no longer be written: the
    worker stops resumably, naming the path, rather than hang or lose data."""
