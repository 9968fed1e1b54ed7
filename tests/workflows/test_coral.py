"""Coral's python steps: letter extraction and agreement."""

from __future__ import annotations

from typing import Any

import pytest

from matrixhpc.task import Task, Turn
from matrixhpc.workflows.coral import extract_answer, find_letter, match_answers

OPTS = {"roles": ["teacher", "student"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The correct answer is (C).", "C"),
        ("answer is: **B**", "B"),
        ("So the answer is - D", "D"),
        ("the correct answer is (c).", "C"),
        ("THE ANSWER IS A.", "A"),
        ("I think the answer is b", "B"),
        ("The answer is ( A )", "A"),
        ("My final answer is **(D)**", "D"),
        ("Option (A) looks tempting, but (C) is right.", "C"),  # last bracketed letter
        ("(D)", "D"),
        ("No letter here at all.", None),
        ("", None),
    ],
)
def test_find_letter_variants(text: str, expected: str | None) -> None:
    assert find_letter(text, "ABCD") == expected


def test_last_committed_answer_wins() -> None:
    text = "At first the answer is (A). After checking, the correct answer is (C)."
    assert find_letter(text, "ABCD") == "C"


def test_committed_beats_a_later_bracketed_mention() -> None:
    text = "The correct answer is (B). Your option (A) ignores the sign."
    assert find_letter(text, "ABCD") == "B"


def test_letters_outside_valid_are_ignored() -> None:
    assert find_letter("The answer is (E).", "ABCD") is None
    assert find_letter("The answer is (B). Later: the answer is (F).", "ABCD") == "B"
    assert find_letter("The answer is (G), see (C)", "ABCD") == "C"  # falls back to brackets
    assert find_letter("(A) or (Z)?", "ABCD") == "A"
    assert find_letter("The answer is (E).", "ABCDE") == "E"


def test_a_word_starting_with_a_letter_is_not_an_answer() -> None:
    assert find_letter("The answer is definitely (C).", "ABCD") == "C"
    assert find_letter("The answer is because of gravity.", "ABCD") is None


def test_the_article_a_is_not_a_commitment() -> None:
    assert find_letter("The answer is a bit subtle, but I pick (C).", "ABCD") == "C"


def _task(history: list[Turn], n_options: int = 4, answer: str = "B", **state: Any) -> Task:
    row = {"question": "q", "options": [str(i) for i in range(n_options)], "answer": answer}
    return Task(id="t", seed=0, row=row, origin="w0", history=history, state=dict(state))


def _apply(task: Task, updates: dict[str, Any]) -> dict[str, Any]:
    task.state.update(updates)
    return updates


def test_extract_answer_reads_the_last_speaker() -> None:
    task = _task(
        [
            {"role": "student", "content": "The correct answer is (A)."},
            {"role": "extractor", "content": "", "data": {}},
        ]
    )
    assert extract_answer(task, OPTS) == {"answers": {"student": "A"}, "extracted": "A"}


def test_extract_answer_with_no_speaker_yet() -> None:
    task = _task([{"role": "other", "content": "The answer is (B)."}], answers={"x": "C"})
    assert extract_answer(task, OPTS) == {"answers": {"x": "C"}, "extracted": None}


def test_extract_answer_keeps_a_sides_earlier_answer_when_a_turn_commits_to_nothing() -> None:
    task = _task([{"role": "student", "content": "The correct answer is (C)."}])
    _apply(task, extract_answer(task, OPTS))
    task.history.append({"role": "teacher", "content": "The correct answer is (B)."})
    _apply(task, extract_answer(task, OPTS))
    task.history.append({"role": "student", "content": "Hmm, let me think about it more."})
    out = _apply(task, extract_answer(task, OPTS))
    assert out == {"answers": {"student": "C", "teacher": "B"}, "extracted": None}


def test_extract_answer_updates_a_side_that_changes_its_mind() -> None:
    task = _task([{"role": "student", "content": "The correct answer is (C)."}])
    _apply(task, extract_answer(task, OPTS))
    task.history.append({"role": "student", "content": "You convinced me: the answer is (B)."})
    assert extract_answer(task, OPTS)["answers"] == {"student": "B"}


def test_extract_answer_does_not_mutate_state_in_place() -> None:
    task = _task([{"role": "teacher", "content": "The answer is (D)."}], answers={"student": "A"})
    before = task.state["answers"]
    out = extract_answer(task, OPTS)
    assert out["answers"] == {"student": "A", "teacher": "D"}
    assert before == {"student": "A"}


def test_extract_answer_valid_letters_follow_the_option_count() -> None:
    three = _task([{"role": "teacher", "content": "The answer is (D)."}], n_options=3)
    assert extract_answer(three, OPTS)["extracted"] is None
    no_options = Task(
        id="t",
        seed=0,
        row={},
        origin="w",
        history=[{"role": "teacher", "content": "The answer is (J)."}],
    )
    assert extract_answer(no_options, OPTS)["extracted"] == "J"  # up to 10 letters


def test_extract_answer_default_roles() -> None:
    task = _task([{"role": "teacher", "content": "The answer is (A)."}])
    assert extract_answer(task, {})["answers"] == {"teacher": "A"}


def test_match_answers_agreement_and_correctness() -> None:
    history: list[Turn] = [
        {"role": "student", "content": "x"},
        {"role": "extractor", "content": ""},
        {"role": "teacher", "content": "y"},
        {"role": "matcher", "content": ""},
    ]
    right = _task(history, answer="B", answers={"teacher": "B", "student": "B"})
    assert match_answers(right, OPTS) == {
        "turns": 2,
        "agreed": True,
        "final_answer": "B",
        "correct": True,
    }
    wrong = _task(history, answer="c ", answers={"teacher": "B", "student": "B"})
    assert match_answers(wrong, OPTS) == {
        "turns": 2,
        "agreed": True,
        "final_answer": "B",
        "correct": False,
    }


def test_match_answers_disagreement_and_missing_side() -> None:
    history: list[Turn] = [{"role": "student", "content": "x"}]
    apart = _task(history, answers={"teacher": "A", "student": "B"})
    assert match_answers(apart, OPTS) == {
        "turns": 1,
        "agreed": False,
        "final_answer": None,
        "correct": False,
    }
    one_side = _task(history, answers={"student": "B"})
    assert match_answers(one_side, OPTS)["agreed"] is False
    nobody = _task([], answers={})
    assert match_answers(nobody, OPTS) == {
        "turns": 0,
        "agreed": False,
        "final_answer": None,
        "correct": False,
    }


def test_match_answers_lowercase_truth() -> None:
    task = _task([], answer="d", answers={"teacher": "D", "student": "D"})
    assert match_answers(task, OPTS)["correct"] is True


def test_full_dialogue_through_both_steps() -> None:
    task = _task([], answer="C")
    turns = [
        ("student", "I believe the correct answer is (A)."),
        ("teacher", "No: the correct answer is (C)."),
        ("student", "Why?"),  # commits to nothing: student stays on A
        ("teacher", "Because of the chain rule. The correct answer is (C)."),
        ("student", "Right, the correct answer is (C)."),
    ]
    agreed_at = None
    for i, (role, text) in enumerate(turns, 1):
        task.history.append({"role": role, "content": text})
        _apply(task, extract_answer(task, OPTS))
        result = _apply(task, match_answers(task, OPTS))
        assert result["turns"] == i
        if result["agreed"] and agreed_at is None:
            agreed_at = i
    assert agreed_at == 5
    assert task.state["final_answer"] == "C"
    assert task.state["correct"] is True
