"""Exceptions shared across layers; this module imports nothing of ours.

They live at the bottom so that a lower layer (the LLM client, a sandbox pool) can raise
what an upper layer (the worker) must tell apart from an ordinary step failure,
without either importing the other.
"""

from __future__ import annotations


class ResourceUnavailable(Exception):
    """A resource a step needs (an LLM service, a sandbox pool) has been unavailable for
    longer than configured. The step did not happen and the task is intact: the worker
    stops resumably and says why, instead of recording the task as failed."""
