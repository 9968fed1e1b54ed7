"""Chat-completions requests: parsing and validation, output length, and filler text."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any

from .profiles import SimProfile

DEFAULT_MAX_TOKENS = 4096  # output cap when a request sets no max_tokens
CHARS_PER_TOKEN = 4  # prompt-token estimate: characters / 4, the usual English rule of thumb
WORDS_PER_TOKEN = 0.75
ANSWER_PROBABILITY = 0.7  # chance to end a multiple-choice reply with an explicit answer


class BadRequest(ValueError):
    """A request the OpenAI API would reject with 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a chat-completions body that the simulation uses."""

    texts: list[str]  # message contents as plain text, in order
    roles: list[str]
    max_tokens: int | None
    min_tokens: int
    ignore_eos: bool
    seed: int | None


def _content_text(content: Any) -> str:
    """Plain text of a message content: a string, a list of parts, or None."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise BadRequest("message content must be a string, a list of parts or null", "messages")


def _opt_int(body: dict[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"'{key}' must be an integer >= {minimum}", key)
    return value


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a chat-completions body; raises :class:`BadRequest` like the OpenAI API."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("every message must be an object with a string 'role'", "messages")
    if body.get("stream"):
        raise BadRequest("stream=true is not supported by the simulated engine", "stream")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported by the simulated engine", "n")
    max_tokens = _opt_int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _opt_int(body, "max_tokens", 1)
    min_tokens = _opt_int(body, "min_tokens", 0) or 0
    if max_tokens is not None and min_tokens > max_tokens:
        raise BadRequest("'min_tokens' must not exceed 'max_tokens'", "min_tokens")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("'seed' must be an integer", "seed")
    return ChatRequest(
        texts=[_content_text(m.get("content")) for m in messages],
        roles=[m["role"] for m in messages],
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=bool(body.get("ignore_eos", False)),
        seed=seed,
    )


def estimate_prompt_tokens(texts: list[str]) -> int:
    """Characters / 4 over all messages, at least 1: close enough for English and cheap."""
    return max(1, sum(len(t) for t in texts) // CHARS_PER_TOKEN)


def request_rng(seed: int, req: ChatRequest, *salt: str | int | None) -> random.Random:
    """A generator fixed by the server seed, the message contents and the request's seed,
    so that the same request always gets the same answer (stable across processes).
    ``salt`` (who asks a script: role, task, turn) gives each its own stream; none: as before."""
    key = json.dumps([seed, req.texts, req.seed, *salt], separators=(",", ":"))
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def sample_output_tokens(
    profile: SimProfile, req: ChatRequest, rng: random.Random
) -> tuple[int, str]:
    """Output length and finish_reason: exactly the cap with ignore_eos, else log-normal."""
    cap = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS
    if req.ignore_eos:
        return cap, "length"
    sigma = profile.output_sigma
    mu = math.log(profile.mean_output_tokens) - sigma * sigma / 2  # so that E[n] = mean
    n = round(rng.lognormvariate(mu, sigma))
    n = min(max(n, 1, req.min_tokens), cap)
    return n, "length" if n >= cap else "stop"


_PAREN_OPTION = re.compile(r"\(([A-Z])\)")
_LINE_OPTION = re.compile(r"^\s*([A-Z])[.)]\s", re.MULTILINE)


def find_choice_letters(req: ChatRequest) -> list[str]:
    """Option letters of a multiple-choice question in the user/system messages.

    Only a run starting at A counts (A, B, C, ... up to the first gap), so that a stray
    "(I)" or "I. " in prose is not mistaken for options.
    """
    text = "\n".join(
        t for r, t in zip(req.roles, req.texts, strict=True) if r in ("user", "system")
    )
    found = set(_PAREN_OPTION.findall(text)) | set(_LINE_OPTION.findall(text))
    letters: list[str] = []
    for code in range(ord("A"), ord("Z") + 1):
        if chr(code) not in found:
            break
        letters.append(chr(code))
    return letters if len(letters) >= 2 else []


_VOCAB_TEXT = (
    "the of and to in is that for it as with was on be by this are from at or an have not "
    "which one all can has more also their if will about would there other when what some "
    "into only time these could first two may then any like our new well because very most "
    "model data answer result value number case point given each step both between since "
    "therefore however thus reason option consider second final evidence follows"
)
_VOCAB = _VOCAB_TEXT.split()


def generate_text(n_tokens: int, letters: list[str], rng: random.Random) -> str:
    """Filler words (~0.75 per token); a multiple-choice prompt usually gets an answer line,
    so that multi-turn debate workflows end plausibly in dry runs."""
    words = rng.choices(_VOCAB, k=max(1, int(n_tokens * WORDS_PER_TOKEN)))
    text = " ".join(words).capitalize() + "."
    if letters and rng.random() < ANSWER_PROBABILITY:
        text += f" The correct answer is ({rng.choice(letters)})."
    return text
