"""The only module that knows bytes: frames on the wire and task records inside them.

A frame is one type-tag byte followed by a msgpack body. A task travels as a
positional array (smaller and faster than a map; the field order is the schema).
Anything that does not decode raises :class:`CodecError` so that a receiver can
drop and count it instead of crashing.
"""

from __future__ import annotations

import enum
from typing import Any

import msgpack

from matrixhpc.task import Task


class CodecError(ValueError):
    """A frame or record that cannot be decoded."""


class FrameType(enum.IntEnum):
    TASK = 1  # a task handed to a peer for its next step
    ACK = 2  # a receiver has taken a task (id, token, attempt, hop)
    RETURN = 3  # a finished task going back to its origin
    CONTROL = 4  # run-level messages: [sender, op, payload]


class Control(enum.StrEnum):
    """Operations of CONTROL frames."""

    RENEW = "renew"  # holder -> origin: these [id, token, attempt] are moving; extend leases


_TASK_FIELDS = (
    "id",
    "seed",
    "row",
    "origin",
    "next",
    "attempt",
    "token",
    "hop",
    "status",
    "history",
    "state",
    "error",
    "created",
    "updated",
    "ended",  # the last field: frames and journals from before it (one field short) decode
)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CodecError(f"undecodable msgpack: {exc}") from exc


def task_to_wire(task: Task) -> list[Any]:
    return [getattr(task, name) for name in _TASK_FIELDS]


def task_from_wire(body: Any) -> Task:
    if not isinstance(body, list) or len(body) not in (len(_TASK_FIELDS), len(_TASK_FIELDS) - 1):
        raise CodecError("task body is not a task array")
    fields = dict(zip(_TASK_FIELDS, body, strict=False))
    for name, kind in _FIELD_TYPES:
        if not isinstance(fields[name], kind) or isinstance(fields[name], bool):
            raise CodecError(f"task body field {name!r} has the wrong type")
    if not isinstance(fields.get("ended"), (str, type(None))):
        raise CodecError("task body field 'ended' has the wrong type")
    return Task(**fields)


# checked on every decode (a hostile or buggy peer must not crash a receiver later)
_FIELD_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("id", str),
    ("origin", str),
    ("next", str),
    ("attempt", int),
    ("token", int),
    ("hop", int),
    ("history", list),
    ("row", dict),
    ("state", dict),
)


def encode_task(task: Task, kind: FrameType = FrameType.TASK, sender: str = "") -> bytes:
    """A TASK or RETURN frame; ``sender`` is the worker the receiver ACKs."""
    return bytes((kind,)) + pack([sender, task_to_wire(task)])


def encode_ack(task_id: str, token: int, attempt: int, hop: int) -> bytes:
    return bytes((FrameType.ACK,)) + pack([task_id, token, attempt, hop])


def encode_renew(sender: str, leases: list[tuple[str, int, int]]) -> bytes:
    """A CONTROL frame telling an origin that these (id, token, attempt) are moving."""
    return bytes((FrameType.CONTROL,)) + pack([sender, Control.RENEW.value, leases])


def encode(kind: FrameType, body: Any) -> bytes:
    return bytes((kind,)) + pack(body)


def decode(frame: bytes) -> tuple[FrameType, Any]:
    """Split a frame into its type and body: TASK/RETURN -> (sender, Task);
    ACK -> (id, token, attempt, hop); CONTROL -> (sender, Control, payload);
    anything malformed raises CodecError."""
    if not frame:
        raise CodecError("empty frame")
    try:
        kind = FrameType(frame[0])
    except ValueError as exc:
        raise CodecError(f"unknown frame type {frame[0]}") from exc
    body = unpack(frame[1:])
    if kind in (FrameType.TASK, FrameType.RETURN):
        if not (isinstance(body, list) and len(body) == 2 and isinstance(body[0], str)):
            raise CodecError("task frame is not [sender, task]")
        return kind, (body[0], task_from_wire(body[1]))
    if kind is FrameType.ACK:
        if not (isinstance(body, list) and len(body) == 4 and isinstance(body[0], str)):
            raise CodecError("ack frame is not [id, token, attempt, hop]")
        return kind, (body[0], *_ints(body[1:], "ack"))
    return kind, _control(body)


def _ints(values: list[Any], what: str) -> list[int]:
    if not all(type(v) is int for v in values):
        raise CodecError(f"{what}: expected integers")
    return values


def _control(body: Any) -> tuple[str, Control, Any]:
    if not (isinstance(body, list) and len(body) == 3 and isinstance(body[0], str)):
        raise CodecError("control frame is not [sender, op, payload]")
    try:
        op = Control(body[1])
    except ValueError as exc:
        raise CodecError(f"unknown control operation {body[1]!r}") from exc
    return body[0], op, _renewals(body[2])


def _renewals(payload: Any) -> list[tuple[str, int, int]]:
    if not isinstance(payload, list):
        raise CodecError("renew payload is not a list")
    out: list[tuple[str, int, int]] = []
    for item in payload:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
            raise CodecError("renew item is not [id, token, attempt]")
        token, attempt = _ints(item[1:], "renew item")
        out.append((item[0], token, attempt))
    return out
