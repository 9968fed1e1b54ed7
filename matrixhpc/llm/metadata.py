"""Request metadata: who is asking (the workflow role, the task), carried beside the request.

Why not in the JSON body: vLLM, llama.cpp and external endpoints must receive exactly the
body they receive without it. The metadata travels as ``X-Matrixhpc-<Key>`` HTTP headers,
and only to replicas that declared they read them (``request_metadata`` in their registry
entry: the simulated engine, whose script answers per role). Agents never see a header:
they pass a plain mapping through :class:`~matrixhpc.llm.types.ChatClient`.

Values are percent-encoded, so a role name with spaces, non-ASCII letters or a newline can
neither break the request nor inject a header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

ROLE = "role"  # the workflow role that makes the call
TASK = "task"  # the id of the task it is working on
TURN = "turn"  # how many turns that task had before this call (a decimal integer)

HEADER_PREFIX = "X-Matrixhpc-"

_names: dict[str, str] = {}  # key -> header name, built once per key
# what quote() leaves alone anyway: role names, task ids and turns nearly always are, and
# matching is half the cost of quoting (this runs on every LLM call)
_plain = re.compile(r"[A-Za-z0-9._~-]*").fullmatch


def header_name(key: str) -> str:
    """``role`` -> ``X-Matrixhpc-Role``; a key must be letters, digits and ``-``."""
    name = _names.get(key)
    if name is None:
        if not key or not key.replace("-", "").isalnum() or not key.isascii():
            raise ValueError(f"request metadata key {key!r}: only ASCII letters, digits and '-'")
        name = _names[key] = HEADER_PREFIX + key.title()
    return name


def to_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """The headers that carry ``metadata`` (percent-encoded values)."""
    return {
        header_name(key): value if _plain(value) else quote(value, safe="")
        for key, value in metadata.items()
    }


def from_headers(headers: Mapping[str, str], key: str) -> str | None:
    """One metadata value from a request's headers (case-insensitive mapping), or None."""
    raw = headers.get(header_name(key))
    return None if raw is None else unquote(raw)
