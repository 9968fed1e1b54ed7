"""The run's secrets, in one place: the CURVE keypair of its sockets and the API key of
each LLM service, both in ``RUN_DIR/secrets`` (mode 0600, the run's owner only).

Any process of a run may be the first to need a key (the launcher, a worker started by
hand, a server job Slurm started early), so every key is made by
:func:`matrixhpc.files.create_once`: two processes that race both end up with the
winner's key, and none reads a half-written one. Below ``rundir`` and the runtime,
which both use it, so neither needs the other for a key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import zmq

from matrixhpc.files import create_once

CURVE_FILE = "curve.key"


class KeyFileError(ValueError):
    """A key file exists but does not hold a key (damaged or edited by hand)."""


@dataclass(frozen=True)
class CurveKeys:
    """The run's CURVE keypair (Z85). Every inbox is a CURVE server with it and every
    outbox a client: only processes that can read ``RUN_DIR/secrets`` (mode 0600, the
    run's owner) can connect, and all traffic between workers is encrypted."""

    public: bytes
    secret: bytes

    @classmethod
    def create(cls, path: Path) -> CurveKeys:
        """Load the run's keys, creating them (0600) on first use."""
        words = create_once(path, _new_keypair).split()
        if len(words) < 2:
            raise KeyFileError(
                f"{path}: not a CURVE keypair (two Z85 lines expected); the file is damaged: "
                "remove it and restart every process of the run"
            )
        return cls(words[0], words[1])


def service_key(secrets_dir: Path, service: str) -> Path:
    """The file of the per-run API key of LLM service ``service``, created (0600) on first
    use; the servers require it and the run's clients send it."""
    path = secrets_dir / f"{service}.key"
    create_once(path, _new_api_key)
    return path


def _new_keypair() -> bytes:
    public, secret = zmq.curve_keypair()
    return public + b"\n" + secret + b"\n"


def _new_api_key() -> bytes:
    return secrets.token_urlsafe(32).encode()
