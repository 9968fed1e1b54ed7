"""Request metadata as headers: names, percent-encoding both ways, keys that are refused."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from matrixhpc.llm.metadata import ROLE, TASK, from_headers, header_name, to_headers


def test_keys_become_prefixed_header_names() -> None:
    assert header_name(ROLE) == "X-Matrixhpc-Role"
    assert header_name("sub-task") == "X-Matrixhpc-Sub-Task"


@pytest.mark.parametrize("value", ["checker", "r12-t3", "jury member 2", "juré\r\nX-A: b", ""])
def test_values_round_trip_and_stay_one_latin1_header_line(value: str) -> None:
    headers = to_headers({ROLE: value, TASK: "t"})
    for raw in headers.values():
        raw.encode("latin-1")  # what the lean client writes
        assert not set(raw) & set("\r\n:")
    received = CIMultiDict((k.lower(), v) for k, v in headers.items())  # a server's view
    assert from_headers(received, ROLE) == value
    assert from_headers(received, TASK) == "t"
    assert from_headers(received, "absent") is None


@pytest.mark.parametrize("key", ["", "two words", "rôle", "x:y", "a\nb"])
def test_keys_that_cannot_be_a_header_name_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="request metadata key"):
        to_headers({key: "v"})
