"""Scripted replies: the simulated engine answers a workflow role from a script, not filler.

Why: with filler text a dry run can never take a branch that depends on what the LLM said
(a checker's VALID, a judge's grade), so a workflow's logic could only be rehearsed on real
GPUs. A script gives a role a canned ``reply``, a Jinja ``template`` over the request, or a
weighted ``choice`` among such replies. The choice is drawn from a generator fixed by the
server seed, the role, the task id and turn, the request's ``seed`` and its messages, so one
task's dry run is the same every time, while different tasks (and trials, and rounds of a
loop) spread over the choices.

The timing model is unchanged: the reply's length in tokens (characters / 4, at least 1,
the rule the prompt estimate uses) is what the engine decodes; ``max_tokens`` truncates
it (``finish_reason: length``); usage reports what was decoded. ``ignore_eos`` and
``min_tokens`` do not pad a scripted reply: the script says what the model says.

Who asks (:class:`Asker`) comes as request metadata (:mod:`matrixhpc.llm.metadata`), never
in the body; a request without a role, or from a role the script does not name, gets filler.

The shape, as ``services.<name>.simulated.script`` in a config (validated there, with
:func:`compile_reply_template` for the templates)::

    {role: {reply: TEXT} | {template: JINJA} | {choice: [{weight: W, reply|template: ...}]}}
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import jinja2
import jinja2.meta

from .requests import (
    CHARS_PER_TOKEN,
    DEFAULT_MAX_TOKENS,
    ChatRequest,
    find_choice_letters,
    generate_text,
    request_rng,
)

#: What a reply template sees (besides Jinja's own globals, e.g. ``range``).
TEMPLATE_NAMES = {
    "role": "the workflow role that asks",
    "task_id": "the id of its task (None when the caller sent none)",
    "turn": "turns the task had before this call: 0 at its first step (None when not sent)",
    "seed": "the request's seed (None when unset)",
    "messages": "the chat messages, each {role, content}",
    "last_user": "the text of the last user message ('' when none)",
    "system": "the text of the system message ('' when none)",
    "letters": "the option letters of a multiple-choice prompt (['A', 'B', ...] or [])",
    "filler": "filler(n): about n tokens of filler words",
}


class ScriptError(ValueError):
    """A script that cannot be used: a template that does not compile, an unknown name."""


class ScriptFailed(RuntimeError):
    """A reply template failed while answering one request (an error of that request)."""


@jinja2.pass_context
def _seeded_random(ctx: jinja2.runtime.Context, seq: Any) -> Any:
    """Jinja's ``random`` filter, drawn from the request's generator: reproducible."""
    items = list(seq)
    return ctx["_rng"].choice(items) if items else ctx.environment.undefined("empty sequence")


# StrictUndefined: a template that reads a missing message or field fails that request
# loudly (an error turn naming the role), not a reply rendered with a silent blank
_env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
_env.filters["random"] = _seeded_random
_VISIBLE = frozenset(TEMPLATE_NAMES) | frozenset(_env.globals)


def compile_reply_template(source: str) -> jinja2.Template:
    """Compile a reply template; :class:`ScriptError` says why one cannot be used.

    Names a template reads are checked here, at config time: ``{{ state.valid }}`` would
    otherwise pass validation and then fail every request of the dry run."""
    try:
        ast = _env.parse(source)
        unknown = sorted(jinja2.meta.find_undeclared_variables(ast) - _VISIBLE)
        template = _env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise ScriptError(f"does not compile: {exc.message}") from None
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ScriptError(
            f"uses {names}, which a reply template does not see (it sees: "
            f"{', '.join(TEMPLATE_NAMES)})"
        )
    return template


@dataclass(frozen=True, slots=True)
class Asker:
    """Who sent a request (its metadata): the role, its task, the task's turns so far."""

    role: str | None = None
    task_id: str | None = None
    turn: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One possible reply: a fixed text, or a template rendered per request."""

    text: str = ""
    template: jinja2.Template | None = None

    def render(self, context: Callable[[], dict[str, Any]]) -> str:
        return self.text if self.template is None else self.template.render(context())


@dataclass(frozen=True, slots=True)
class RoleScript:
    """What one role says: one reply, or a weighted choice among several."""

    replies: tuple[Reply, ...]
    cum_weights: tuple[float, ...]

    def pick(self, rng: random.Random) -> Reply:
        if len(self.replies) == 1:
            return self.replies[0]
        return rng.choices(self.replies, cum_weights=self.cum_weights)[0]


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply as the engine serves it: the text, the tokens decoded, why it ended."""

    text: str
    completion_tokens: int
    finish_reason: str


def reply_tokens(text: str) -> int:
    """Tokens a reply costs to decode: characters / 4 rounded up, at least 1 (the end)."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def fit_reply(text: str, max_tokens: int | None) -> Answer:
    """The reply as decoded under ``max_tokens``: whole (``stop``) or cut (``length``)."""
    cap = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
    n = reply_tokens(text)
    if n <= cap:
        return Answer(text, n, "stop")
    return Answer(text[: cap * CHARS_PER_TOKEN], cap, "length")


def _reply(entry: Mapping[str, Any]) -> Reply:
    template = entry.get("template")
    if template is not None:
        return Reply(template=compile_reply_template(str(template)))
    return Reply(text=str(entry.get("reply") or ""))


def _role_script(entry: Mapping[str, Any]) -> RoleScript:
    choice = entry.get("choice")
    if not choice:
        return RoleScript((_reply(entry),), (1.0,))
    weights = [float(item.get("weight", 1.0)) for item in choice]
    return RoleScript(tuple(_reply(item) for item in choice), tuple(accumulate(weights)))


class Script:
    """Per-role replies; a role it does not name keeps the filler text."""

    def __init__(self, roles: Mapping[str, RoleScript] | None = None) -> None:
        self.roles = dict(roles or {})

    @classmethod
    def from_spec(cls, spec: Mapping[str, Mapping[str, Any]] | None) -> Script:
        """From the config's shape (already validated: ``services.<name>.simulated.script``)."""
        return cls({role: _role_script(entry) for role, entry in (spec or {}).items()})

    def __bool__(self) -> bool:
        return bool(self.roles)

    def answer(self, asker: Asker, req: ChatRequest, seed: int) -> Answer | None:
        """The scripted reply of ``asker.role`` to ``req``, or None (not scripted: filler).

        Raises :class:`ScriptFailed` when its template fails on this request."""
        role = asker.role
        script = self.roles.get(role) if role is not None else None
        if script is None:
            return None
        rng = request_rng(seed, req, role, asker.task_id, asker.turn)
        reply = script.pick(rng)
        try:
            text = reply.render(lambda: _context(asker, req, rng))
        # a user's template: any failure of it is this request's error, not the server's
        except Exception as exc:  # noqa: BLE001
            raise ScriptFailed(
                f"script of role {role!r}: the reply template failed: {type(exc).__name__}: {exc}"
            ) from None
        return fit_reply(text, req.max_tokens)


def _context(asker: Asker, req: ChatRequest, rng: random.Random) -> dict[str, Any]:
    pairs = list(zip(req.roles, req.texts, strict=True))
    return {
        "role": asker.role,
        "task_id": asker.task_id,
        "turn": asker.turn,
        "seed": req.seed,
        "messages": [{"role": r, "content": t} for r, t in pairs],
        "last_user": next((t for r, t in reversed(pairs) if r == "user"), ""),
        "system": next((t for r, t in pairs if r == "system"), ""),
        "letters": find_choice_letters(req),
        "filler": lambda n: generate_text(int(n), [], rng),
        "_rng": rng,
    }
