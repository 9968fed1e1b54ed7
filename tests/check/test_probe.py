"""The probe records a use of a missing name exactly when a strict render would fail on
it — no more (``is defined``, ``default``), no fewer — and goes on to find the others."""

from __future__ import annotations

import contextlib
from typing import Any

import jinja2
import pytest

from matrixhpc.agents.templates import template_environment
from matrixhpc.check.probe import recording

ROW = {"topic": "sky", "options": ["a", "b"], "meta": {"k": 1}}

TEMPLATES = [
    "{{ row.topic }}",
    "{{ row.topik }}",
    "{{ row.topik | default('x') }}",
    "{% if row.topik is defined %}{{ row.topik }}{% endif %}",
    "{% if row.topik %}yes{% endif %}",
    "{% for o in row.optons %}{{ o }}{% endfor %}",
    "{{ row.optons | length }}",
    "{{ row.topik == 'sky' }}",
    "{{ 'a' in row.topik }}",
    "{{ row.topik.deeper }}",
    "{{ row.topik[0] }}",
    "{{ row.level + 1 }}",
    "{{ row.options[5] }}",
    "{{ row.meta.k }} {{ row.meta.j is undefined }}",
    "{{ (row.topik or 'none') | upper }}",
]


def _strict_fails(source: str, names: dict[str, Any]) -> bool:
    env = template_environment()  # what the run uses
    try:
        env.from_string(source).render(names)
    except jinja2.UndefinedError:
        return True
    return False


@pytest.mark.parametrize("source", TEMPLATES)
def test_records_exactly_what_a_strict_render_fails_on(source: str) -> None:
    probe = recording()
    names = {"row": ROW}
    with contextlib.suppress(jinja2.UndefinedError):  # arithmetic: raised after recording
        template_environment(probe).from_string(source).render(names)
    assert bool(probe.sink) == _strict_fails(source, names)


def test_one_render_finds_every_missing_name() -> None:
    probe = recording()
    template = template_environment(probe).from_string(
        "{{ row.a }} {% for x in row.b %}{% endfor %}{% if row.c %}{% endif %} {{ row.topic }}"
    )
    assert template.render(row=ROW) == "  sky"
    assert [use.name for use in probe.sink] == ["a", "b", "c"]
    assert all(use.obj is ROW for use in probe.sink)


def test_each_recording_has_its_own_sink() -> None:
    first, second = recording(), recording()
    template_environment(first).from_string("{{ row.x }}").render(row={})
    assert len(first.sink) == 1
    assert second.sink == []
