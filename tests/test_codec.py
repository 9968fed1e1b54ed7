"""The codec: frames and task records; anything undecodable is a CodecError."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest

from matrixhpc.codec import (
    _TASK_FIELDS,
    CodecError,
    Control,
    FrameType,
    decode,
    encode,
    encode_ack,
    encode_renew,
    encode_task,
    pack,
    task_from_wire,
    task_to_wire,
)
from matrixhpc.task import Task


def _rich_task() -> Task:
    state: dict[Any, Any] = {
        "answers": {"student": "B"},
        "turns": 1,
        "flags": [True, False],
        "ratio": 0.125,
        "bytes": b"\x00\xff",
        7: "int key",
    }
    return Task(
        id="tâsk-0001-😀",
        seed=2**40 + 3,
        row={
            "question": "¿Qué es π?",
            "options": ["3.14", "22/7", "√10"],
            "nested": {"a": [1, {"b": None}]},
        },
        origin="worker-3",
        next="teacher",
        attempt=2,
        token=(1 << 61) | 12345,
        hop=17,
        status="running",
        history=[
            {
                "role": "student",
                "content": "I think (B) — 因为…",
                "usage": {"prompt_tokens": 12, "completion_tokens": 30},
                "timings": {"start": 1.5, "end": 2.25},
                "error": None,
                "replica": "r0",
                "finish_reason": "stop",
            },
            {
                "role": "extractor",
                "content": "",
                "data": {"answers": {"student": "B"}, "empty": {}, "list": []},
            },
        ],
        state=state,
        error=None,
        created=1700000000.123456,
        updated=1700000001.5,
    )


@pytest.mark.parametrize("kind", [FrameType.TASK, FrameType.RETURN])
def test_task_round_trip_keeps_every_field(kind: FrameType) -> None:
    task = _rich_task()
    frame = encode_task(task, kind, "wörker-7")
    assert frame[0] == int(kind)
    got_kind, (sender, got) = decode(frame)
    assert got_kind is kind
    assert sender == "wörker-7"  # the worker the receiver ACKs
    assert isinstance(got, Task)
    assert got == task
    assert got is not task
    # spot checks that would survive a broken __eq__
    state: dict[Any, Any] = got.state  # msgpack maps may have int keys
    assert state[7] == "int key"
    assert state["bytes"] == b"\x00\xff"
    assert got.history[0]["content"] == "I think (B) — 因为…"
    assert got.created == 1700000000.123456
    assert got.token == (1 << 61) | 12345


def test_default_kind_is_task_and_default_sender_is_empty() -> None:
    kind, (sender, task) = decode(encode_task(_rich_task()))
    assert kind is FrameType.TASK
    assert sender == ""
    assert task == _rich_task()


def test_task_frame_is_a_sender_and_task_array() -> None:
    task = _rich_task()
    frame = encode_task(task, FrameType.RETURN, "w3")
    assert msgpack.unpackb(frame[1:], raw=False, strict_map_key=False) == [
        "w3",
        task_to_wire(task),
    ]


def test_wire_is_a_positional_array_in_schema_order() -> None:
    task = _rich_task()
    wire = task_to_wire(task)
    assert isinstance(wire, list)
    assert len(wire) == len(_TASK_FIELDS)
    assert wire == [getattr(task, name) for name in _TASK_FIELDS]
    # every Task field travels: a field missing from the schema would be lost on a hop
    assert set(_TASK_FIELDS) == set(Task.__dataclass_fields__)
    assert task_from_wire(wire) == task


def test_renew_frames_round_trip() -> None:
    leases = [("t-1", 77, 0), ("ü", 2**62, 3)]
    frame = encode_renew("w3", leases)
    assert frame[0] == int(FrameType.CONTROL)
    assert decode(frame) == (FrameType.CONTROL, ("w3", Control.RENEW, leases))
    assert decode(encode_renew("w3", [])) == (FrameType.CONTROL, ("w3", Control.RENEW, []))


@pytest.mark.parametrize(
    "body",
    [
        {"op": "stop"},
        None,
        [1, "renew", []],  # sender not a string
        ["w0", "explode", []],  # unknown operation
        ["w0", "renew", {"t": 1}],  # payload not a list
        ["w0", "renew", [["t", 1]]],  # item too short
        ["w0", "renew", [["t", "1", 0]]],  # token not an int
        ["w0", "renew", [[1, 1, 0]]],  # id not a string
        ["w0", "renew", [["t", True, 0]]],  # a bool is not an int
    ],
)
def test_bad_control_frames_are_refused(body: Any) -> None:
    with pytest.raises(CodecError):
        decode(encode(FrameType.CONTROL, body))


@pytest.mark.parametrize(
    ("task_id", "token", "attempt", "hop"), [("t-1", 77, 0, 3), ("ü-😀", 2**62, 7, 2**40)]
)
def test_ack_round_trip_is_a_tuple(task_id: str, token: int, attempt: int, hop: int) -> None:
    frame = encode_ack(task_id, token, attempt, hop)
    assert frame[0] == int(FrameType.ACK)
    kind, body = decode(frame)
    assert kind is FrameType.ACK
    assert body == (task_id, token, attempt, hop)
    assert isinstance(body, tuple)  # usable as a (id, token, attempt, hop) key as-is
    assert encode(FrameType.ACK, [task_id, token, attempt, hop]) == frame


@pytest.mark.parametrize(
    "body",
    [
        {"ids": [["a", 1, 2]]},  # a map
        ["t-1", 1, 0],  # too short
        ["t-1", 1, 0, 3, 4],  # too long
        [7, 1, 0, 3],  # id not a string
        ["t-1", 1, "0", 3],  # attempt not an int
        ["t-1", 1, 0, 3.5],  # hop not an int
        ["t-1", 1, 0, None],
        "t-1",
        None,
        [],
    ],
    ids=[
        "map",
        "short",
        "long",
        "id-int",
        "attempt-str",
        "hop-float",
        "hop-nil",
        "str",
        "nil",
        "empty",
    ],
)
def test_bad_ack_bodies(body: Any) -> None:
    with pytest.raises(CodecError, match="ack"):
        decode(encode(FrameType.ACK, body))


def test_every_frame_type_is_covered_and_distinct() -> None:
    assert {int(k) for k in FrameType} == {1, 2, 3, 4}
    bodies: dict[FrameType, Any] = {
        FrameType.TASK: ["w0", task_to_wire(_rich_task())],
        FrameType.RETURN: ["w0", task_to_wire(_rich_task())],
        FrameType.ACK: ["t", 1, 0, 1],
        FrameType.CONTROL: ["w0", "renew", []],
    }
    assert set(bodies) == set(FrameType)
    for kind in FrameType:
        got_kind, _ = decode(encode(kind, bodies[kind]))
        assert got_kind is kind


def test_empty_frame() -> None:
    with pytest.raises(CodecError, match="empty"):
        decode(b"")


@pytest.mark.parametrize("tag", [0, 5, 99, 255])
def test_unknown_type_byte(tag: int) -> None:
    with pytest.raises(CodecError, match="unknown frame type"):
        decode(bytes((tag,)) + pack([1, 2]))


def test_type_byte_without_body() -> None:
    with pytest.raises(CodecError):
        decode(bytes((FrameType.ACK,)))


def test_truncated_msgpack() -> None:
    frame = encode_task(_rich_task())
    for cut in (2, len(frame) // 2, len(frame) - 1):
        with pytest.raises(CodecError):
            decode(frame[:cut])


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(CodecError):
        decode(encode_ack("t", 5, 0, 1) + b"\x01")


def test_random_garbage_only_ever_raises_codec_error() -> None:
    rng = random.Random(12345)
    decoded = failed = 0
    valid_frame = encode_task(_rich_task(), FrameType.TASK, "w0")
    for i in range(600):
        if i % 3 == 0:
            # a valid type byte followed by garbage: exercises the msgpack and task paths
            frame = bytes((rng.choice([1, 2, 3, 4]),)) + rng.randbytes(rng.randint(0, 64))
        elif i % 3 == 1:
            frame = rng.randbytes(rng.randint(1, 64))
        else:
            # a valid frame with a few flipped bytes
            buf = bytearray(valid_frame)
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(1, len(buf))] = rng.randrange(256)
            frame = bytes(buf[: rng.randint(1, len(buf))])
        try:
            kind, _ = decode(frame)
        except CodecError:
            failed += 1
        else:
            assert isinstance(kind, FrameType)
            decoded += 1
    assert failed > 100  # the loop really hit the error paths


def _wire(**changes: Any) -> list[Any]:
    wire = task_to_wire(_rich_task())
    for name, value in changes.items():
        wire[_TASK_FIELDS.index(name)] = value
    return wire


@pytest.mark.parametrize(
    "body",
    [
        _wire()[:-2],  # two fields short (one short is a body from before "ended")
        [*_wire(), "extra"],  # one too many
        [],
        {"id": "t"},  # a map, not an array
        "task",
        None,
        _wire(id=42),
        _wire(history={"role": "a"}),
        _wire(row=["not", "a", "dict"]),
        _wire(state="nope"),
        _wire(ended=3),
    ],
    ids=[
        "short",
        "long",
        "empty",
        "map",
        "str",
        "nil",
        "id-int",
        "history-map",
        "row-list",
        "state-str",
        "ended-int",
    ],
)
@pytest.mark.parametrize("kind", [FrameType.TASK, FrameType.RETURN])
def test_bad_task_bodies(kind: FrameType, body: Any) -> None:
    frame = bytes((kind,)) + msgpack.packb(["w0", body], use_bin_type=True)
    with pytest.raises(CodecError, match="task body"):
        decode(frame)


@pytest.mark.parametrize(
    "envelope",
    [
        _wire(),  # a bare task array, no sender
        [_wire()],
        ["w0", _wire(), "extra"],
        [None, _wire()],
        [3, _wire()],
        {"sender": "w0", "task": _wire()},
        "w0",
        None,
    ],
    ids=["bare", "one", "three", "sender-nil", "sender-int", "map", "str", "nil"],
)
@pytest.mark.parametrize("kind", [FrameType.TASK, FrameType.RETURN])
def test_bad_task_envelopes(kind: FrameType, envelope: Any) -> None:
    with pytest.raises(CodecError, match=r"\[sender, task\]"):
        decode(encode(kind, envelope))


def test_a_task_from_before_the_ended_field_still_decodes() -> None:
    """Journals and peers of the previous version send one field fewer."""
    task = task_from_wire(_wire()[:-1])
    assert task.ended is None
    assert task.id == _rich_task().id
    flagged = _rich_task()
    flagged.ended = "max_steps"
    assert task_from_wire(task_to_wire(flagged)).ended == "max_steps"
