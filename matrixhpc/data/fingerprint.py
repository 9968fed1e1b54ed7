"""A fingerprint of the input: resuming on changed data must be refused, not mixed."""

from __future__ import annotations

import hashlib

from matrixhpc.data.readers import DatasetError, expand_paths


def input_fingerprint(pattern: str) -> str:
    """sha256 over every dataset file's name and content, in reading order.

    A file that cannot be opened (permissions, vanished since the glob) is a
    :class:`DatasetError` naming it, which the CLI prints, not a traceback."""
    digest = hashlib.sha256()
    for path in expand_paths(pattern):
        digest.update(path.name.encode() + b"\0")
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise DatasetError(f"dataset.path: {path} cannot be read: {exc.strerror}") from None
    return digest.hexdigest()[:16]
