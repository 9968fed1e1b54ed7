"""Config loading: the shipped configs, typo'd keys, cross checks, overrides, paths."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from matrixhpc.config import ConfigError, RunConfig, load_config, parse_override, validate

ROOT = Path(__file__).resolve().parents[2]
CORAL = ROOT / "configs" / "coral.yaml"
HELLO = ROOT / "configs" / "hello.yaml"


def _hello() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(HELLO.read_text())
    return data


def _problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        validate(data)
    return info.value.problems


def _keys(problems: list[tuple[str, str]]) -> list[str]:
    return [key for key, _ in problems]


# ------------------------------------------------------------------ shipped configs


def test_coral_config_validates() -> None:
    cfg = load_config(CORAL)
    assert cfg.name == "coral"
    assert set(cfg.roles) == {"student", "teacher", "extractor", "matcher"}
    assert cfg.roles["extractor"].kind == "python"
    assert cfg.roles["student"].service == "llm"
    assert cfg.routing.kind == "sequential"
    assert cfg.routing.repeat
    assert cfg.services["llm"].sticky is True
    assert Path(cfg.dataset.path).is_absolute()
    assert Path(cfg.dataset.path) == (CORAL.parent / "data" / "mcq.jsonl").resolve()
    assert Path(cfg.dataset.path).is_file()


def test_hello_config_validates() -> None:
    cfg = load_config(HELLO)
    assert cfg.name == "hello"
    assert cfg.routing.order == ["writer", "editor"]
    assert cfg.workers.count == 2
    assert cfg.dataset.required == ["topic"]
    assert Path(cfg.dataset.path) == (HELLO.parent / "data" / "hello.jsonl").resolve()


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    data = _hello()
    del data["name"]
    path = tmp_path / "my-run.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).name == "my-run"


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


# ------------------------------------------------------------------ typos


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("workers.cont=3", "count"),
        ("dataset.limt=5", "limit"),
        ("output.shard_record=10", "shard_records"),
        ("nme=x", "name"),
    ],
)
def test_misspelled_key_is_named_with_a_suggestion(override: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CORAL, [override])
    problems = info.value.problems
    typo = override.partition("=")[0]
    assert len(problems) == 1
    got_key, reason = problems[0]
    assert got_key == typo
    assert "unknown key" in reason
    assert f"did you mean {suggestion!r}" in reason
    assert typo in str(info.value)


@pytest.mark.parametrize("override", ["services.llm.replics=2", "roles.student.promt=hi"])
def test_misspelled_key_inside_a_named_section_is_named_in_full(override: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CORAL, [override])
    (key, reason), *_ = info.value.problems
    assert key == override.partition("=")[0]
    assert reason.startswith("unknown key")


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [("services.llm.replics=2", "replicas"), ("roles.student.promt=hi", "prompt")],
)
def test_misspelled_key_inside_a_named_section_gets_a_suggestion(
    override: str, suggestion: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CORAL, [override])
    (_, reason), *_ = info.value.problems
    assert f"did you mean {suggestion!r}" in reason


def test_typo_under_a_role_whose_name_starts_with_str() -> None:
    data = _hello()
    data["roles"]["strategist"] = data["roles"].pop("writer")
    data["routing"]["order"] = ["strategist", "editor"]
    data["roles"]["strategist"]["promt"] = "x"
    assert _keys(_problems(data)) == ["roles.strategist.promt"]


def test_misspelled_key_in_yaml_file(tmp_path: Path) -> None:
    data = _hello()
    data["workers"]["windw"] = 3
    data["dataset"]["limt"] = 1
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = dict(info.value.problems)
    assert "did you mean 'window'" in problems["workers.windw"]
    assert "did you mean 'limit'" in problems["dataset.limt"]


def test_wrong_types_and_ranges_are_reported_by_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CORAL, ["workers.count=0", "services.llm.replicas=many"])
    keys = _keys(info.value.problems)
    assert "workers.count" in keys
    assert "services.llm.replicas" in keys


def test_missing_required_sections() -> None:
    data = _hello()
    del data["routing"]
    assert "routing" in _keys(_problems(data))


# ------------------------------------------------------------------ cross checks


def test_role_with_unknown_service() -> None:
    data = _hello()
    data["roles"]["writer"]["service"] = "gpt"
    problems = _problems(data)
    assert ("roles.writer.service", "no service named 'gpt'") in problems


def test_llm_role_without_service_or_prompt() -> None:
    data = _hello()
    del data["roles"]["writer"]["service"]
    del data["roles"]["writer"]["prompt"]
    keys = _keys(_problems(data))
    assert "roles.writer.service" in keys
    assert "roles.writer.prompt" in keys


def test_python_and_custom_roles_need_their_import_path() -> None:
    data = _hello()
    data["roles"]["writer"] = {"kind": "python"}
    data["roles"]["editor"] = {"kind": "custom"}
    keys = _keys(_problems(data))
    assert "roles.writer.function" in keys
    assert "roles.editor.class" in keys


def test_dialogue_naming_unknown_role() -> None:
    data = _hello()
    data["roles"]["editor"]["dialogue"] = ["writer", "ghost"]
    assert ("roles.editor.dialogue", "no role named 'ghost'") in _problems(data)


def test_routing_naming_unknown_role() -> None:
    data = _hello()
    data["routing"]["order"] = ["writer", "edtor"]
    problems = _problems(data)
    assert ("routing.order.1", "no role named 'edtor' (did you mean 'editor'?)") in problems


def test_graph_routing_unknown_roles_and_end() -> None:
    data = _hello()
    data["routing"] = {
        "kind": "graph",
        "start": "writer",
        "edges": {"writer": [{"when": "state.ok", "to": "END"}, {"to": "ghost"}], "editor": "end"},
    }
    problems = _problems(data)
    assert [r for _, r in problems] == ["no role named 'ghost'"]


def test_graph_routing_needs_start_and_sequential_needs_order() -> None:
    data = _hello()
    data["routing"] = {"kind": "graph", "edges": {"writer": "editor"}}
    assert "routing.start" in _keys(_problems(data))
    data["routing"] = {"kind": "sequential"}
    assert "routing.order" in _keys(_problems(data))
    data["routing"] = {"kind": "function"}
    assert "routing.function" in _keys(_problems(data))


def test_bad_jinja_in_prompt_and_system() -> None:
    data = _hello()
    data["roles"]["writer"]["prompt"] = "Explain {{ row.topic "
    data["roles"]["editor"]["system"] = "{% if x %}never closed"
    problems = dict(_problems(data))
    assert problems["roles.writer.prompt"].startswith("does not compile")
    assert problems["roles.editor.system"].startswith("does not compile")


def test_bad_jinja_in_stop_when_and_edge_condition() -> None:
    data = _hello()
    data["routing"]["stop_when"] = "state.turns >="
    problems = dict(_problems(data))
    assert problems["routing.stop_when"].startswith("does not compile")
    data = _hello()
    data["routing"] = {
        "kind": "graph",
        "start": "writer",
        "edges": {"writer": [{"when": "state.x ==", "to": "editor"}]},
    }
    assert _keys(_problems(data)) == ["routing.edges.writer.0.when"]


def test_all_cross_problems_are_reported_together() -> None:
    data = _hello()
    data["roles"]["writer"]["service"] = "nope"
    data["routing"]["stop_when"] = "(("
    keys = _keys(_problems(data))
    assert "roles.writer.service" in keys
    assert "routing.stop_when" in keys


def test_external_engine_needs_url() -> None:
    data = _hello()
    data["services"]["llm"]["engine"] = "external"
    assert "services.llm.url" in _keys(_problems(data))
    data["services"]["llm"]["url"] = "http://example.invalid/v1"
    validate(data)


def _grouped(groups: dict[str, Any], count: int) -> dict[str, Any]:
    data = _hello()
    data["workers"] = {"count": count, "groups": groups}
    return data


def test_groups_must_cover_every_role() -> None:
    problems = _problems(_grouped({"w": {"count": 2, "roles": ["writer"]}}, 2))
    assert problems == [("workers.groups", "roles hosted by no group: editor")]


def test_groups_naming_unknown_role() -> None:
    groups = {"w": {"count": 1, "roles": ["writer", "editor"]}, "x": {"count": 1, "roles": ["x"]}}
    assert _problems(_grouped(groups, 2)) == [("workers.groups.x.roles", "no role named 'x'")]


def test_groups_count_mismatch() -> None:
    groups = {"w": {"count": 2, "roles": ["writer"]}, "e": {"count": 3, "roles": ["editor"]}}
    problems = _problems(_grouped(groups, 4))
    assert problems == [("workers.count", "is 4 but the groups add up to 5")]


# ------------------------------------------------------------------ group_of


def test_group_of_without_groups_hosts_everything() -> None:
    cfg = validate(_hello())
    assert cfg.group_of(0) == ("all", ["writer", "editor"])
    assert cfg.group_of(1) == ("all", ["writer", "editor"])


def test_group_of_maps_indexes_in_declaration_order() -> None:
    groups = {
        "writers": {"count": 2, "roles": ["writer"]},
        "editors": {"count": 1, "roles": ["editor"]},
        "both": {"count": 2, "roles": ["writer", "editor"]},
    }
    cfg = validate(_grouped(groups, 5))
    got = [cfg.group_of(i)[0] for i in range(5)]
    assert got == ["writers", "writers", "editors", "both", "both"]
    assert cfg.group_of(2) == ("editors", ["editor"])
    with pytest.raises(IndexError):
        cfg.group_of(5)


# ------------------------------------------------------------------ overrides


def test_overrides_are_typed() -> None:
    cfg = load_config(
        CORAL,
        [
            "dataset.limit=20",
            "services.llm.sticky=false",
            "services.llm.timeout=1.5",
            "dataset.required=[question, answer]",
            "routing.order=[student, teacher]",
            "name=my run",
            "workers.count=3",
        ],
    )
    assert cfg.dataset.limit == 20
    assert cfg.services["llm"].sticky is False
    assert cfg.services["llm"].timeout == 1.5
    assert cfg.dataset.required == ["question", "answer"]
    assert cfg.routing.order == ["student", "teacher"]
    assert cfg.name == "my run"
    assert cfg.workers.count == 3


def test_override_can_add_a_known_key_in_a_new_section() -> None:
    cfg = load_config(HELLO, ["services.llm.simulated.time_scale=0", "output.shard_records=7"])
    assert cfg.services["llm"].simulated.time_scale == 0
    assert cfg.output.shard_records == 7


def test_override_with_value_containing_equals() -> None:
    cfg = load_config(HELLO, ["roles.writer.prompt=a=b {{ row.topic }}"])
    assert cfg.roles["writer"].prompt == "a=b {{ row.topic }}"


@pytest.mark.parametrize("override", ["workers.foo=1", "nosuch.section.key=1", "dataset.path.x=1"])
def test_override_creating_unknown_key_is_rejected(override: str) -> None:
    with pytest.raises(ConfigError):
        load_config(HELLO, [override])


def test_override_unknown_key_names_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(HELLO, ["workers.foo=1"])
    assert _keys(info.value.problems) == ["workers.foo"]


@pytest.mark.parametrize("override", ["dataset.limit", "", "workers.count 3"])
def test_malformed_override_without_equals(override: str) -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(HELLO, [override])


@pytest.mark.parametrize("override", ["workers..count=1", ".x=1", "=3"])
def test_override_with_empty_component(override: str) -> None:
    with pytest.raises(ConfigError, match="empty component"):
        parse_override(override)


def test_override_value_that_does_not_parse() -> None:
    with pytest.raises(ConfigError, match="does not parse"):
        parse_override("routing.order=[a, b")


def test_parse_override_values() -> None:
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a={x: 1}") == (["a"], {"x": 1})
    assert parse_override("a=") == (["a"], "")
    assert parse_override(" a.b =text") == (["a", "b"], "text")


def test_override_into_a_scalar_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(HELLO, ["name.sub=1"])
    assert _keys(info.value.problems) == ["name"]


def test_overrides_do_not_touch_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(HELLO.read_text())
    load_config(path, ["workers.count=5"])
    assert load_config(path).workers.count == 2


# ------------------------------------------------------------------ dataset path


def test_relative_dataset_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "elsewhere").mkdir()
    data = _hello()
    data["dataset"]["path"] = "rows/*.jsonl"
    path = tmp_path / "cfg" / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = load_config(path)
    assert cfg.dataset.path == str((tmp_path / "cfg" / "rows" / "*.jsonl").resolve())


def test_relative_dataset_path_override_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "here").mkdir()
    path = tmp_path / "cfg" / "c.yaml"
    path.write_text(HELLO.read_text())
    monkeypatch.chdir(tmp_path / "here")
    cfg = load_config(path, ["dataset.path=mine.jsonl"])
    assert cfg.dataset.path == str((tmp_path / "here" / "mine.jsonl").resolve())
    # even when the override repeats the file's own relative spelling
    cfg = load_config(path, ["dataset.path=data/hello.jsonl"])
    assert cfg.dataset.path == str((tmp_path / "here" / "data" / "hello.jsonl").resolve())


def test_absolute_dataset_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs.jsonl"
    cfg = load_config(HELLO, [f"dataset.path={target}"])
    assert cfg.dataset.path == str(target)


def test_home_in_dataset_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(HELLO, ["dataset.path=~/d.jsonl"])
    assert cfg.dataset.path == str(tmp_path / "d.jsonl")


# ------------------------------------------------------------------ python_path


def _config_in(directory: Path, **top: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    data = {**_hello(), "dataset": {"path": str(ROOT / "configs" / "data" / "hello.jsonl")}}
    path = directory / "wf.yaml"
    path.write_text(yaml.safe_dump({**data, **top}))
    return path


def test_python_path_starts_with_the_config_directory(tmp_path: Path) -> None:
    assert load_config(_config_in(tmp_path / "a")).python_path == [str(tmp_path / "a")]


def test_python_path_entries_are_relative_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _config_in(tmp_path / "proj" / "configs", python_path=["..", "../lib", "/opt/x"])
    proj = tmp_path / "proj"
    assert load_config(path).python_path == [
        str(proj / "configs"),
        str(proj),
        str(proj / "lib"),
        "/opt/x",
    ]


def test_python_path_override_is_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _config_in(tmp_path / "c")
    cfg = load_config(path, ["python_path=[mine]"])
    assert cfg.python_path == [str(tmp_path / "c"), str(tmp_path / "mine")]


def test_python_path_of_a_config_dir_given_again_is_listed_once(tmp_path: Path) -> None:
    assert load_config(_config_in(tmp_path, python_path=["."])).python_path == [str(tmp_path)]


def test_python_path_must_be_a_list_of_strings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config_in(tmp_path, python_path="lib"))
    assert _keys(info.value.problems) == ["python_path"]


# ------------------------------------------------------------------ state and sets


def test_initial_state_must_be_json_values() -> None:
    data = _hello()
    data["state"] = {"ok": True, "when": __import__("datetime").date(2024, 1, 1)}
    assert _keys(_problems(data)) == ["state.when"]


def test_trial_is_matrixhpcs_own_state_key() -> None:
    data = _hello()
    data["state"] = {"trial": 3}
    assert _problems(data) == [("state.trial", "is set by matrixhpc: the task's trial number")]


def test_a_role_declares_the_state_keys_it_sets() -> None:
    data = _hello()
    data["roles"]["writer"]["sets"] = ["draft"]
    assert validate(data).roles["writer"].sets == ["draft"]
    data["roles"]["writer"]["sets"] = "draft"
    assert _keys(_problems(data)) == ["roles.writer.sets"]


@pytest.mark.parametrize(
    "expr", ["not state.valid and and", "state.a or or state.b", "state.x if", "not"]
)
def test_an_operator_with_nothing_after_it_does_not_compile(expr: str) -> None:
    """jinja reads the dangling operator as a variable of that name: no syntax error."""
    data = _hello()
    data["routing"]["stop_when"] = expr
    ((key, reason),) = _problems(data)
    assert key == "routing.stop_when"
    assert reason.startswith("does not compile")


# ------------------------------------------------------------------ fingerprint


def test_fingerprint_is_stable() -> None:
    a = load_config(CORAL)
    b = load_config(CORAL)
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 16
    assert a.fingerprint() == a.fingerprint()


def test_fingerprint_survives_a_dump_and_reload(tmp_path: Path) -> None:
    from matrixhpc.config import dump_config

    cfg = load_config(CORAL)
    out = tmp_path / "resolved.yaml"
    dump_config(cfg, out)
    assert load_config(out, resolved=True).fingerprint() == cfg.fingerprint()
    # read as a user's config, the dump's own directory joins its python_path
    assert load_config(out).python_path == [str(tmp_path), *cfg.python_path]


@pytest.mark.parametrize(
    "override", ["dataset.limit=3", "seed=1", "roles.student.params.temperature=0.1"]
)
def test_fingerprint_changes_with_the_config(override: str) -> None:
    assert load_config(CORAL, [override]).fingerprint() != load_config(CORAL).fingerprint()


def test_fingerprint_independent_of_key_order() -> None:
    data = _hello()
    data["dataset"]["path"] = "/abs/hello.jsonl"
    reordered = dict(reversed(list(copy.deepcopy(data).items())))
    assert validate(data).fingerprint() == validate(reordered).fingerprint()


def test_validate_returns_a_run_config() -> None:
    assert isinstance(validate(_hello()), RunConfig)


def test_graph_edges_given_as_a_list_say_what_the_shape_is() -> None:
    """The first guess of a new user (a list of {from, to, when}) is refused with the
    shape that works."""
    edges = "routing.edges=[{from: writer, to: editor}]"
    with pytest.raises(ConfigError) as info:
        load_config(HELLO, ["routing.kind=graph", "routing.start=writer", edges])
    reason = dict(info.value.problems)["routing.edges"]
    assert "{writer: checker}" in reason
    assert "not a list" in reason
