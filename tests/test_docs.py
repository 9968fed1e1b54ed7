"""The workflow guide cannot drift: its generated parts are current, its examples valid.

(The examples are also run end to end: tests/integration/test_docs_examples.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from matrixhpc.config import RunConfig, load_config
from matrixhpc.config.reference import examples, generated

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "workflows.md"
SNIPPET = re.compile(r"(?<!-->\n)```yaml\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def test_the_guide_is_what_the_schema_and_the_example_files_make() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert text == generated(text, ROOT), (
        "docs/workflows.md is out of date: python -m matrixhpc.config.reference "
        "--write docs/workflows.md"
    )


def test_every_example_config_loads() -> None:
    configs = [p for p in examples(GUIDE.read_text(encoding="utf-8")) if p.endswith(".yaml")]
    assert len(configs) >= 2
    for path in configs:
        assert load_config(ROOT / path, []).roles


def test_snippets_are_valid_config_and_routing_ones_are_shipped() -> None:
    """A snippet shown on its own (not a whole example file) holds config keys only, and
    a routing snippet is the routing of a shipped config, so that the guide shows what
    runs."""
    shipped = [yaml.safe_load(p.read_text()) for p in (ROOT / "configs").glob("*.yaml")]
    snippets = [yaml.safe_load(s) for s in SNIPPET.findall(GUIDE.read_text(encoding="utf-8"))]
    assert any("routing" in snippet for snippet in snippets)
    for snippet in snippets:
        assert set(snippet) <= set(RunConfig.model_fields), snippet
        routing = snippet.get("routing")
        if routing is not None:
            shown = [{k: cfg["routing"].get(k) for k in routing} for cfg in shipped]
            assert routing in shown, snippet


def test_the_readme_links_the_guide() -> None:
    assert "docs/workflows.md" in (ROOT / "README.md").read_text(encoding="utf-8")
