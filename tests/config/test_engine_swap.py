"""--engine [--url --model] as overrides: what each engine sets, and the flags' mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrixhpc.config import load_config
from matrixhpc.config.engine_swap import engine_overrides

CORAL = Path(__file__).resolve().parents[2] / "configs" / "coral.yaml"
URL = "http://gpu7:8000/v1?x=1#frag: y"  # YAML would read '#...' as a comment, ': ' as a map


def test_external_points_every_service_at_the_url_as_one_replica() -> None:
    overrides = engine_overrides(["a", "b"], "external", URL, None)
    cfg = load_config(CORAL, ["services.a.engine=vllm", "services.b.replicas=4", *overrides])
    for name in ("a", "b"):
        svc = cfg.services[name]
        assert (svc.engine, svc.url, svc.replicas, svc.model) == ("external", URL, 1, None)


def test_model_is_set_when_given_and_later_overrides_still_win() -> None:
    overrides = engine_overrides(["llm"], "external", URL, "llama-3.1-8b")
    cfg = load_config(CORAL, [*overrides, "services.llm.replicas=2"])
    assert (cfg.services["llm"].model, cfg.services["llm"].replicas) == ("llama-3.1-8b", 2)
    cfg = load_config(CORAL, engine_overrides(["llm"], "vllm", None, "/models/x"))
    assert (cfg.services["llm"].engine, cfg.services["llm"].model) == ("vllm", "/models/x")


def test_simulated_keeps_the_services_own_simulated_section() -> None:
    script = 'services.llm.simulated.script={student: {reply: "(B)"}}'
    cfg = load_config(CORAL, [script, *engine_overrides(["llm"], "simulated", None, None)])
    assert cfg.services["llm"].engine == "simulated"
    assert cfg.services["llm"].simulated.script["student"].reply == "(B)"
    assert engine_overrides(["llm"], None, None, None) == []


@pytest.mark.parametrize(
    ("engine", "url", "model", "message"),
    [
        ("external", None, None, "--engine external needs --url URL"),
        ("external", "", "m", "--engine external needs --url URL"),
        ("vllm", URL, None, "--url goes with --engine external"),
        (None, URL, None, "--url and --model go with --engine"),
        (None, None, "m", "--url and --model go with --engine"),
        ("gpt", None, None, "not one of simulated, llamacpp, vllm, external"),
    ],
)
def test_missing_or_stray_flags_are_errors(
    engine: str | None, url: str | None, model: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        engine_overrides(["llm"], engine, url, model)
