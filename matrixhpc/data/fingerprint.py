"""A fingerprint of the input: resuming on changed data must be refused, not mixed."""

from __future__ import annotations

import hashlib

from matrixhpc.data.readers import expand_paths


def input_fingerprint(pattern: str) -> str:
    """sha256 over every dataset file's name and content, in reading order."""
    digest = hashlib.sha256()
    for path in expand_paths(pattern):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]
