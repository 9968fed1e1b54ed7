"""Scripted dry runs with real processes: a `serve simulated --script` server answering per
role over HTTP, and `run --engine simulated` of a branching workflow whose branch depends on
what a checker says (VALID half of the time), reaching both branches, the same every time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import matrixhpc, records, wait_for

from matrixhpc.llm.engines.process import free_port
from matrixhpc.llm.metadata import ROLE, TASK, to_headers

SCRIPT = {
    "writer": {"template": "A draft about {{ last_user }}."},
    "checker": {"choice": [{"weight": 1, "reply": "VALID"}, {"reply": "INVALID: add an example"}]},
    "reviser": {"reply": "A revised draft, with an example."},
}


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _chat(url: str, content: str, headers: dict[str, str]) -> dict[str, Any]:
    body = {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": 50}
    request = urllib.request.Request(
        f"{url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


@pytest.fixture
def scripted_server(tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump(SCRIPT))
    port = free_port()
    argv = [sys.executable, "-m", "matrixhpc", "serve", "simulated", "--port", str(port),
            "--profile", "zero", "--script", str(script)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for(lambda: _get(f"{url}/models"), 60)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_served_script_answers_each_role_and_leaves_the_rest_filler(
    scripted_server: str,
) -> None:
    def as_role(role: str, task: str = "r0-t0") -> dict[str, str]:
        return to_headers({ROLE: role, TASK: task})

    draft = _chat(scripted_server, "tides", as_role("writer"))
    assert draft["choices"][0]["message"]["content"] == "A draft about tides."
    assert draft["usage"]["completion_tokens"] == 5  # 20 characters
    verdicts = {
        _chat(scripted_server, "A draft.", as_role("checker", f"r{i}-t0"))["choices"][0]["message"][
            "content"
        ]
        for i in range(30)
    }
    assert verdicts == {"VALID", "INVALID: add an example"}
    for headers in (as_role("solver"), {}):  # unscripted role; no role at all
        filler = _chat(scripted_server, "tides", headers)["choices"][0]["message"]["content"]
        assert filler not in verdicts
        assert not filler.startswith("A draft")


def test_a_bad_script_file_is_a_usage_error_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("checker: {template: '{{ state.valid }}'}\n")
    proc = matrixhpc("serve", "simulated", "--script", str(bad), timeout=60)
    assert proc.returncode == 2
    assert "script.checker.template: uses 'state'" in proc.stderr
    assert "Traceback" not in proc.stderr


STEPS = """
def verdict(task):
    reply = task.last_turn("checker")["content"]
    return {"valid": reply.startswith("VALID"), "feedback": reply.partition(":")[2].strip(),
            "rounds": task.state.get("rounds", 0) + 1}


def publish(task):
    return {"published": True}
"""


LATEST_DRAFT = "{{ (last('reviser') or last('writer')).content }}"


def _workflow(tmp_path: Path, rows: int) -> Path:
    """Write, check, revise: the checker's verdict (read by a python step) picks the branch.
    The config names llama.cpp: `--engine simulated` must bring the script along."""
    (tmp_path / "steps.py").write_text(textwrap.dedent(STEPS))
    data = tmp_path / "topics.jsonl"
    data.write_text("".join(json.dumps({"topic": f"topic {i}"}) + "\n" for i in range(rows)))
    cfg = {
        "name": "branching",
        "services": {
            "llm": {
                "engine": "llamacpp",
                "max_concurrency": 64,
                "simulated": {"profile": "zero", "script": SCRIPT},
            }
        },
        "roles": {
            "writer": {"service": "llm", "prompt": "{{ row.topic }}"},
            "checker": {"service": "llm", "prompt": LATEST_DRAFT},
            "verdict": {
                "kind": "python",
                "function": "steps:verdict",
                "sets": ["valid", "feedback", "rounds"],
            },
            "reviser": {"service": "llm", "prompt": "Fix: {{ state.feedback }}"},
            "publisher": {"kind": "python", "function": "steps:publish", "sets": ["published"]},
        },
        "routing": {
            "kind": "graph",
            "start": "writer",
            "edges": {
                "writer": "checker",
                "checker": "verdict",
                "verdict": [
                    {"when": "state.valid", "to": "publisher"},
                    {"when": "state.rounds < 3", "to": "reviser"},
                    {"to": "END"},
                ],
                "reviser": "checker",
                "publisher": "END",
            },
        },
        "dataset": {"path": str(data)},
        "workers": {"count": 2},
    }
    path = tmp_path / "branching.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _dry_run(cfg: Path, run_dir: Path) -> dict[str, list[tuple[str, str]]]:
    proc = matrixhpc("run", str(cfg), "--local", "--engine", "simulated", "--run-dir",
                     str(run_dir), cwd=cfg.parent)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    recs = records(run_dir)
    assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs]
    return {r["id"]: [(t["role"], t["content"]) for t in r["history"]] for r in recs}


def test_a_dry_run_takes_both_branches_of_a_content_routed_workflow(tmp_path: Path) -> None:
    cfg = _workflow(tmp_path, rows=30)
    first = _dry_run(cfg, tmp_path / "run1")
    assert len(first) == 30
    for tid, turns in first.items():
        roles = [role for role, _ in turns]
        assert turns[0] == ("writer", f"A draft about topic {tid[1:].split('-')[0]}.")
        verdicts = [text for role, text in turns if role == "checker"]
        assert set(verdicts) <= {"VALID", "INVALID: add an example"}
        if verdicts[-1] == "VALID":
            assert roles[-1] == "publisher"  # the valid branch
        else:
            assert (roles.count("checker"), roles[-1]) == (3, "verdict")  # three rounds: END
        assert roles.count("reviser") == len(verdicts) - 1  # the invalid branch loops back
    paths = {tuple(role for role, _ in turns) for turns in first.values()}
    assert ("writer", "checker", "verdict", "publisher") in paths  # VALID at once
    assert any("reviser" in path and path[-1] == "publisher" for path in paths)  # after revising
    # the same config dry-runs the same way: choices are seeded per task
    assert _dry_run(cfg, tmp_path / "run2") == first
