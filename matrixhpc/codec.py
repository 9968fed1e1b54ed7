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
    ACK = 2  # a receiver has taken a task (id, attempt, hop)
    RETURN = 3  # a finished task going back to its origin
    CONTROL = 4  # run-level messages (stop, ping)


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
    if not isinstance(body, list) or len(body) != len(_TASK_FIELDS):
        raise CodecError("task body is not a task array")
    fields = dict(zip(_TASK_FIELDS, body, strict=True))
    if not isinstance(fields["id"], str) or not isinstance(fields["history"], list):
        raise CodecError("task body has wrong field types")
    if not isinstance(fields["row"], dict) or not isinstance(fields["state"], dict):
        raise CodecError("task body has wrong field types")
    return Task(**fields)


def encode_task(task: Task, kind: FrameType = FrameType.TASK, sender: str = "") -> bytes:
    """A TASK or RETURN frame; ``sender`` is the worker the receiver ACKs."""
    return bytes((kind,)) + pack([sender, task_to_wire(task)])


def encode_ack(task_id: str, attempt: int, hop: int) -> bytes:
    return bytes((FrameType.ACK,)) + pack([task_id, attempt, hop])


def encode(kind: FrameType, body: Any) -> bytes:
    return bytes((kind,)) + pack(body)


def decode(frame: bytes) -> tuple[FrameType, Any]:
    """Split a frame into its type and body: TASK/RETURN -> (sender, Task);
    ACK -> (id, attempt, hop); anything malformed raises CodecError."""
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
        if not (
            isinstance(body, list)
            and len(body) == 3
            and isinstance(body[0], str)
            and all(isinstance(x, int) for x in body[1:])
        ):
            raise CodecError("ack frame is not [id, attempt, hop]")
        return kind, (body[0], body[1], body[2])
    return kind, body
