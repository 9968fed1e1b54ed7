"""The generated parts of ``docs/workflows.md``: the config reference (every key, its
type, default and meaning, from the schema) and the example files it shows.

The guide embeds the reference between two markers, and each example file in the fenced
block after an ``<!-- example: PATH -->`` line; a test compares them with what this
module makes, so a key added, renamed or given a new default, or an example edited,
without the guide following fails the suite instead of drifting. Regenerate with
``python -m matrixhpc.config.reference --write docs/workflows.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .schema import RunConfig

BEGIN = "<!-- config-reference: begin (generated: python -m matrixhpc.config.reference) -->"
END = "<!-- config-reference: end -->"
NAME = "<name>"  # the placeholder for a key the user chooses (a service, a role, a group)


def reference_markdown(model: type[BaseModel] = RunConfig) -> str:
    """One table row per key, sections in schema order."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [_row(key, field) for key, field in _walk(model, "")]
    return "\n".join(rows) + "\n"


def _walk(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    out: list[tuple[str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        nested = _model_of(field.annotation)
        if nested is not None:
            out += _walk(nested, key + ".")
            continue
        out.append((key, field))
        inner = _inner_model(field.annotation)
        if inner is not None:
            out += _walk(inner[0], f"{key}{inner[1]}.")
    return out


def _model_of(tp: Any) -> type[BaseModel] | None:
    """The section a field is (a model, or an optional model)."""
    leaves = [t for t in _union(tp) if t is not type(None)]
    if len(leaves) == 1 and isinstance(leaves[0], type) and issubclass(leaves[0], BaseModel):
        return leaves[0]
    return None


def _inner_model(tp: Any) -> tuple[type[BaseModel], str] | None:
    """The model inside a ``{name: Model}`` or ``[Model]`` field (services, roles, groups,
    graph edges), with the key suffix that reaches it (``.<name>``, ``[]``)."""
    for leaf in _union(tp):
        origin, args = typing.get_origin(leaf), typing.get_args(leaf)
        if origin is list and (model := _model_of(args[0])) is not None:
            return model, "[]"
        if origin is dict:
            if (model := _model_of(args[1])) is not None:
                return model, f".{NAME}"
            if (deeper := _inner_model(args[1])) is not None:
                return deeper[0], f".{NAME}{deeper[1]}"
    return None


def _union(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return " \\| ".join(json.dumps(v) for v in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(t) for t in typing.get_args(tp))
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is dict:
        key, value = typing.get_args(tp)
        inner = "{...}" if _model_of(value) is not None else _type_name(value)
        return f"map of {_type_name(key)} to {inner}"
    if origin is list:
        (item,) = typing.get_args(tp)
        inner = "{...}" if _model_of(item) is not None else _type_name(item)
        return f"list of {inner}"
    if isinstance(tp, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            tp.__name__, tp.__name__
        )
    return str(tp)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.default
    if value is PydanticUndefined:
        value = field.default_factory() if field.default_factory else None  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value, default=str)}`"


def _row(key: str, field: FieldInfo) -> str:
    meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
    return f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {meaning} |"


def embed(document: str, table: str) -> str:
    """``document`` with the text between the markers replaced by ``table``."""
    start, end = document.index(BEGIN) + len(BEGIN), document.index(END)
    return document[:start] + "\n\n" + table + "\n" + document[end:]


EXAMPLE = re.compile(r"(<!-- example: (\S+) -->\n```(\w*)\n)(.*?)(^```$)", re.DOTALL | re.MULTILINE)


def examples(document: str) -> list[str]:
    """The paths of the example files the document shows."""
    return [m.group(2) for m in EXAMPLE.finditer(document)]


def embed_examples(document: str, root: Path) -> str:
    """``document`` with each example block holding its file's current text."""

    def fill(m: re.Match[str]) -> str:
        text = (root / m.group(2)).read_text(encoding="utf-8")
        return m.group(1) + text + ("" if text.endswith("\n") else "\n") + m.group(5)

    return EXAMPLE.sub(fill, document)


def generated(document: str, root: Path) -> str:
    """The document with every generated part up to date."""
    return embed_examples(embed(document, reference_markdown()), root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--write", type=Path, help="replace the reference in this markdown file")
    args = ap.parse_args(argv)
    table = reference_markdown()
    if args.write is None:
        sys.stdout.write(table)
        return 0
    root = Path(__file__).resolve().parents[2]
    text = generated(args.write.read_text(encoding="utf-8"), root)
    args.write.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
