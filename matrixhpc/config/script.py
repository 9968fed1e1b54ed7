"""The schema of a simulated engine's script: ``services.<name>.simulated.script``.

Per role, exactly one of::

    checker: {reply: "VALID"}                                   # a canned reply
    writer:  {template: "About {{ last_user[:40] }}: ..."}      # Jinja over the request
    judge:   {choice: [{weight: 3, reply: "4"}, {reply: "2"}]}  # a weighted, seeded choice

Why strict: a script exists to make a dry run take particular branches; an entry that is
ambiguous (a ``reply`` and a ``template``), a template that does not compile or reads a
name it cannot see, or (checked with the roles, :mod:`.checks`) a role that does not exist
would quietly leave the dry run on filler text and the branch untested.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from matrixhpc.llm.engines.simulated.script import (
    TEMPLATE_NAMES,
    ScriptError,
    compile_reply_template,
)


class ReplyConfig(BaseModel):
    """One reply: ``reply`` (the text as is) or ``template`` (Jinja over the request)."""

    # like schema.Strict; numbers are text here (``reply: 4`` is the reply "4")
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    _KINDS: ClassVar[tuple[str, ...]] = ("reply", "template")

    reply: str | None = Field(None, description="the reply, as is")
    template: str | None = Field(
        None,
        description=f"Jinja over the request: {', '.join(TEMPLATE_NAMES)}",
    )

    @field_validator("template")
    @classmethod
    def _compiles(cls, source: str | None) -> str | None:
        if source is not None:
            try:
                compile_reply_template(source)
            except ScriptError as exc:
                raise ValueError(str(exc)) from None
        return source

    @model_validator(mode="after")
    def _exactly_one(self) -> ReplyConfig:
        given = [kind for kind in self._KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            got = " and ".join(given) or "none"
            raise ValueError(f"give exactly one of {', '.join(self._KINDS)} (got {got})")
        return self


class ChoiceConfig(ReplyConfig):
    """One branch of a choice: a reply or a template, drawn with probability weight / sum."""

    weight: float = Field(
        1.0,
        strict=True,
        gt=0.0,
        le=1e9,
        allow_inf_nan=False,
        description="relative chance of this reply (> 0)",
    )


class RoleScriptConfig(ReplyConfig):
    """What one role says: a reply, a template, or a choice among several."""

    _KINDS: ClassVar[tuple[str, ...]] = ("reply", "template", "choice")

    choice: list[ChoiceConfig] | None = Field(
        None, min_length=1, description="weighted replies, drawn per request (seeded)"
    )
