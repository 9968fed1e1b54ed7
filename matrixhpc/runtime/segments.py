"""The bytes of a journal segment: a versioned header, then framed records.

Segment: ``SEGMENT_HEADER`` (8 bytes: ``c1 'MJSEG' 00`` and the format version),
written with the segment's first group, then records. Record frame, little-endian::

    magic c1 'MJR' | u32 length | u32 crc32(body) | msgpack body

Why a magic per record: a length field alone cannot be trusted once one byte is
wrong, so a reader that only follows lengths must give up at the first bad record
and lose every valid record behind it. With a marker the reader resynchronises:
after a record that does not verify it searches forward for the next ``c1 'MJR'``
whose length fits and whose checksum matches, and carries on from there. ``0xc1``
is never a msgpack type byte and never occurs in UTF-8, so the marker rarely
appears inside a body; when it does, the checksum rejects the false match. (Only
a complete valid frame embedded in a binary field, which task records do not
carry, could pass for a record, and only when it follows a bad region.)

A bad region followed by a valid record is *corruption*: skipped and reported,
never cut. A bad region with nothing valid after it is a *torn tail* (a write cut
short by a crash or a failed write): the journal may cut it off.

Versions: format 1 (before this header existed) had neither header nor markers
(``u32 length | u32 crc32 | body``). A segment without a header in which no
format-2 record verifies but which starts with a valid format-1 record raises
:class:`FormatError` (the journal reports it; nothing is cut or deleted): a run
journaled by an older matrixhpc has to be finished with that version. A header
with another version number is refused the same way. A segment without a header
and with nothing valid in any format (a header cut short, zeros left by a node
crash) is all torn tail.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from matrixhpc.codec import CodecError, unpack

VERSION = 2
SEGMENT_MAGIC = b"\xc1MJSEG\x00"
SEGMENT_HEADER = SEGMENT_MAGIC + bytes((VERSION,))
MAGIC = b"\xc1MJR"
FRAME = struct.Struct("<III")  # magic, length, crc32
_MAGIC_WORD = int.from_bytes(MAGIC, "little")
_FORMAT_1 = struct.Struct("<II")  # length, crc32: the frame before format 2


class FormatError(ValueError):
    """A segment this version cannot read (older or newer format, or not a segment)."""


@dataclass
class Scan:
    """What reading one segment found."""

    end: int  # just past the last valid record (or the header): where a torn tail starts
    corrupt: list[tuple[int, int]] = field(default_factory=list)  # (offset, bytes) skipped
    records: int = 0


def frame(body: bytes) -> bytes:
    """One framed record (the hot path: one struct pack, one crc, one concatenation)."""
    return FRAME.pack(_MAGIC_WORD, len(body), zlib.crc32(body)) + body


def scan(data: bytes) -> Generator[list[Any], None, Scan]:
    """Yield every valid record of a segment's bytes, skipping bad regions; return
    where the valid data ends and which regions were skipped."""
    if data.startswith(SEGMENT_HEADER):
        return (yield from _records(data, len(SEGMENT_HEADER)))
    if SEGMENT_HEADER.startswith(data):  # empty, or the header itself was cut short
        return Scan(end=0)
    if data.startswith(SEGMENT_MAGIC):
        raise FormatError(
            f"journal format version {data[len(SEGMENT_MAGIC)]}; this reads {VERSION}"
        )
    result = yield from _records(data, 0)  # a damaged header: the records may be fine
    if not result.records and _is_format_1(data):
        raise FormatError(
            f"a journal segment of format 1, this reads format {VERSION}: a run journaled "
            "by an older matrixhpc must be finished with that version"
        )
    return result  # nothing valid at all (e.g. zeros after a node crash): a torn tail


def _is_format_1(data: bytes) -> bool:
    """Does a format-1 record (``u32 length | u32 crc32 | body``, no header) start it?"""
    if len(data) < _FORMAT_1.size:
        return False
    length, crc = _FORMAT_1.unpack_from(data)
    body = data[_FORMAT_1.size : _FORMAT_1.size + length]
    return bool(0 < length == len(body) and zlib.crc32(body) == crc)  # zeros are not one


def _records(data: bytes, start: int) -> Generator[list[Any], None, Scan]:
    result = Scan(end=start)
    offset, bad = start, -1
    while offset < len(data):
        record, end = _decode_at(data, offset)
        if record is None:
            bad = offset if bad < 0 else bad
            offset = data.find(MAGIC, offset + 1)
            if offset < 0:
                break  # nothing valid after the bad region: a torn tail
            continue
        if bad >= 0:
            result.corrupt.append((bad, offset - bad))
            bad = -1
        yield record
        result.records += 1
        offset = result.end = end
    return result


def _decode_at(data: bytes, offset: int) -> tuple[list[Any] | None, int]:
    """The record framed at ``offset`` and the offset after it, or (None, 0)."""
    if offset + FRAME.size > len(data):
        return None, 0
    magic, length, crc = FRAME.unpack_from(data, offset)
    start = offset + FRAME.size
    end = start + length
    if magic != _MAGIC_WORD or end > len(data):
        return None, 0
    body = data[start:end]
    if zlib.crc32(body) != crc:
        return None, 0
    try:
        record = unpack(body)
    except CodecError:
        return None, 0
    if not isinstance(record, list) or not record:
        return None, 0
    return record, end
