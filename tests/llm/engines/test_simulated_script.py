"""The simulated engine's script: compiling replies, picking one per request, rendering it,
and fitting it to max_tokens (the HTTP side is in test_simulated.py)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from matrixhpc.llm.engines.simulated import (
    CHARS_PER_TOKEN,
    Asker,
    Script,
    ScriptError,
    ScriptFailed,
    compile_reply_template,
    parse_chat_request,
)
from matrixhpc.llm.engines.simulated.requests import ChatRequest
from matrixhpc.llm.engines.simulated.script import fit_reply, reply_tokens

QUESTION = "Which is prime?\n(A) 4\n(B) 6\n(C) 7\n(D) 9"


def _req(
    *turns: tuple[str, str], seed: int | None = 5, max_tokens: int | None = None
) -> ChatRequest:
    body: dict[str, Any] = {"messages": [{"role": r, "content": c} for r, c in turns]}
    if seed is not None:
        body["seed"] = seed
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return parse_chat_request(body)


USER = _req(("system", "You check."), ("user", "Draft one"))


def _answer(
    spec: dict[str, Any],
    role: str | None = "checker",
    task: str | None = "r0-t0",
    req: ChatRequest = USER,
    turn: int | None = None,
) -> str:
    answer = Script.from_spec(spec).answer(Asker(role, task, turn), req, seed=0)
    assert answer is not None
    return answer.text


# -- compiling ---------------------------------------------------------------------------


def test_a_template_that_does_not_compile_is_a_script_error() -> None:
    with pytest.raises(ScriptError, match="does not compile"):
        compile_reply_template("{{ last_user ")
    with pytest.raises(ScriptError, match="does not compile"):
        compile_reply_template("{{ last_user | no_such_filter }}")


def test_a_template_reading_a_name_it_cannot_see_is_a_script_error() -> None:
    with pytest.raises(ScriptError, match=r"uses 'row', 'state', which a reply template does not"):
        compile_reply_template("{{ state.valid }} {{ row.topic }} {{ role }}")
    compile_reply_template("{% for i in range(2) %}{{ i }}{% endfor %}{% set x = 1 %}{{ x }}")


# -- picking and rendering ----------------------------------------------------------------


def test_roles_the_script_does_not_name_and_requests_without_a_role_get_none() -> None:
    script = Script.from_spec({"checker": {"reply": "VALID"}})
    assert script.answer(Asker("writer", "r0-t0"), USER, seed=0) is None
    assert script.answer(Asker(None, "r0-t0"), USER, seed=0) is None
    assert not Script.from_spec(None)
    assert script


def test_a_canned_reply_is_returned_as_is_with_its_token_count() -> None:
    answer = Script.from_spec({"checker": {"reply": "VALID: all good"}}).answer(
        Asker("checker"), USER, seed=0
    )
    assert answer is not None
    assert (answer.text, answer.completion_tokens, answer.finish_reason) == (
        "VALID: all good",
        math.ceil(len("VALID: all good") / CHARS_PER_TOKEN),
        "stop",
    )


def test_a_template_sees_the_request_role_task_turn_and_seed() -> None:
    req = _req(("system", QUESTION), ("user", "first"), ("assistant", "mine"), ("user", "last"))
    template = (
        "{{ role }}|{{ task_id }}|{{ turn }}|{{ seed }}|{{ system[:15] }}|{{ last_user }}|"
        "{{ messages | length }}:{{ messages[2].role }}|{{ letters | join }}"
    )
    text = _answer({"judge": {"template": template}}, "judge", "r3-t1", req, turn=4)
    assert text == "judge|r3-t1|4|5|Which is prime?|last|4:assistant|ABCD"
    empty = _req(("assistant", "only"), seed=None)
    spec = {"j": {"template": "[{{ system }}][{{ last_user }}][{{ seed }}][{{ turn }}]"}}
    assert _answer(spec, "j", None, empty) == "[][][None][None]"


def test_a_template_can_fail_the_first_round_and_pass_the_next_by_turn() -> None:
    spec = {"checker": {"template": "{{ 'INVALID: again' if turn < 3 else 'VALID' }}"}}
    assert [_answer(spec, turn=t) for t in (1, 4)] == ["INVALID: again", "VALID"]


def test_filler_and_random_in_templates_are_seeded_by_the_request() -> None:
    spec = {"student": {"template": "{{ filler(30) }} The answer is ({{ letters | random }})."}}
    req = _req(("user", QUESTION))
    texts = [_answer(spec, "student", f"r{i}-t0", req) for i in range(40)]
    assert texts == [_answer(spec, "student", f"r{i}-t0", req) for i in range(40)]
    picks = Counter(t[-3] for t in texts)
    assert set(picks) == {"A", "B", "C", "D"}  # 40 draws of 4 letters: each turns up
    assert len({t.split(" The answer")[0] for t in texts}) == 40


def test_a_weighted_choice_follows_its_weights_and_is_reproducible_per_task() -> None:
    spec = {
        "checker": {
            "choice": [
                {"weight": 3, "reply": "VALID"},
                {"weight": 1, "template": "INVALID: {{ task_id }}"},
            ]
        }
    }

    def picks(script: Script, req: ChatRequest = USER) -> list[str | None]:
        answers = [script.answer(Asker("checker", f"r{i}-t0"), req, seed=0) for i in range(2000)]
        return [a.text if a else None for a in answers]

    first = picks(Script.from_spec(spec))
    valid = first.count("VALID")
    assert abs(valid - 1500) < 5 * math.sqrt(2000 * 0.75 * 0.25)  # binomial, 5 sigma
    assert all(p in ("VALID", f"INVALID: r{i}-t0") for i, p in enumerate(first))
    assert picks(Script.from_spec(spec)) == first  # another server, the same dry run
    # the draw also depends on the messages: the same task asked again later may differ
    later = _req(("system", "You check."), ("user", "Draft two"))
    assert picks(Script.from_spec(spec), later) != first
    # and on the turn: a loop that asks the very same thing again draws again
    script = Script.from_spec(spec)
    rounds = [script.answer(Asker("checker", "r0-t0", t), USER, seed=0) for t in range(1, 40, 3)]
    assert {a.text for a in rounds if a} == {"VALID", "INVALID: r0-t0"}


def test_a_template_that_fails_on_a_request_raises_script_failed_naming_the_role() -> None:
    script = Script.from_spec({"checker": {"template": "{{ messages[5].content }}"}})
    with pytest.raises(ScriptFailed, match=r"script of role 'checker': .*UndefinedError"):
        script.answer(Asker("checker", "r0-t0"), USER, seed=0)


# -- fitting to max_tokens ----------------------------------------------------------------


def test_reply_tokens_round_up_and_count_at_least_one() -> None:
    assert [reply_tokens("x" * n) for n in (0, 1, 4, 5, 8, 9)] == [1, 1, 1, 2, 2, 3]


def test_max_tokens_truncates_a_reply_and_says_length() -> None:
    text = "word " * 40  # 200 characters: 50 tokens
    whole = fit_reply(text, 50)
    assert (whole.text, whole.completion_tokens, whole.finish_reason) == (text, 50, "stop")
    cut = fit_reply(text, 7)
    assert (cut.text, cut.completion_tokens, cut.finish_reason) == (text[:28], 7, "length")
    capped = _req(("user", "x"), max_tokens=3)
    assert _answer({"c": {"reply": text}}, "c", None, capped) == text[:12]
