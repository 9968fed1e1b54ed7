"""An engine server as a child process: start, wait for health, watch, stop.

What users of other tools ask for, done here: fail fast (with the server's last
log lines) when the server dies during start-up instead of waiting out the
deadline; register only once healthy; deregister and exit non-zero when the
server dies; forward SIGTERM/SIGINT to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import aiohttp

from .listen import free_port as free_port  # re-exported: tests and benchmarks use it


class ServerFailed(RuntimeError):
    """The engine process died or never became healthy."""


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_bytes()[-20000:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class EngineProcess:
    def __init__(
        self,
        argv: list[str],
        log: Path,
        health_url: str,
        api_key: str | None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.env = env or {}
        self.log = log
        self.health_url = health_url
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
            )

    def _died(self) -> ServerFailed:
        code = self.proc.poll() if self.proc else None
        return ServerFailed(
            f"engine exited with code {code} during start-up; last lines of {self.log}:\n"
            + log_tail(self.log)
        )

    async def wait_healthy(self, timeout: float) -> None:
        """Poll the health URL; raise at once if the process exits, or at the deadline."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise self._died()
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(self.health_url, headers=self.headers) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.25)
        raise ServerFailed(
            f"engine not healthy after {timeout:.0f}s; last lines of {self.log}:\n"
            + log_tail(self.log)
        )

    async def wait_exit(self) -> int:
        """Return the exit code when the server dies (it should not while serving)."""
        assert self.proc is not None
        # a Popen child's exit has no asyncio event (it was not started by the loop): poll it
        while (code := self.proc.poll()) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        return code

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def check_external(base_url: str, api_key: str | None, timeout: float) -> list[str]:
    """An external endpoint must answer ``GET /models`` (with the key) within ``timeout``;
    returns the ids of the models it lists (an unparsable list is no model, not an error:
    the endpoint answered, and a configured model name needs no list)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout
    last = "no answer"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{base_url}/models", headers=headers) as resp:
                    if resp.status == 200:
                        return _model_ids(await resp.read())
                    last = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                    if resp.status in (401, 403):
                        break  # a wrong key will not fix itself
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(1.0)
    raise ServerFailed(f"external endpoint {base_url} is not usable: {last}")


def _model_ids(raw: bytes) -> list[str]:
    """``{"data": [{"id": ...}, ...]}`` (OpenAI's model list) -> the ids, in order."""
    try:
        cards = json.loads(raw).get("data")
        return [str(card["id"]) for card in cards if isinstance(card, dict) and "id" in card]
    except (ValueError, AttributeError, TypeError):
        return []
