"""A Jinja ``Undefined`` that records every use the run would fail on, and goes on.

At run time templates and conditions are strict (``StrictUndefined``): printing,
iterating, comparing or testing the truth of a missing name raises, while ``is
defined`` and ``| default(...)`` do not. :class:`Probe` records exactly the uses
that raise there, then behaves like jinja's ``ChainableUndefined`` so that one render
finds every missing name, not only the first. Arithmetic on a missing name still
raises (there is no sensible value to go on with): what was recorded until then stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2


@dataclass(frozen=True)
class Use:
    """A missing ``name`` of ``obj`` (jinja's ``missing`` for an unknown top-level name)."""

    obj: Any
    name: Any
    message: str


class Probe(jinja2.ChainableUndefined):
    __slots__ = ()
    sink: list[Use] = []  # replaced per render by :func:`recording`

    def _record(self) -> None:
        self.sink.append(Use(self._undefined_obj, self._undefined_name, self._undefined_message))

    def __getattr__(self, name: str) -> Probe:
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        self._record()
        return self


def _recorded(method: Callable[..., Any]) -> Callable[..., Any]:
    def use(self: Probe, *args: Any, **kwargs: Any) -> Any:
        self._record()
        return method(self, *args, **kwargs)

    return use


def _contains_nothing(_self: Probe, _item: Any) -> bool:
    return False


# what StrictUndefined fails on: record it, then do what ChainableUndefined does
# (``in`` finds nothing in it, as in an empty container)
for _name in dir(jinja2.StrictUndefined):
    if getattr(jinja2.StrictUndefined, _name) is jinja2.Undefined._fail_with_undefined_error:
        lenient = getattr(jinja2.ChainableUndefined, _name, _contains_nothing)
        setattr(Probe, _name, _recorded(lenient))


def recording() -> type[Probe]:
    """A Probe class with its own sink: give it to an environment, read ``.sink``."""
    return type("Probe", (Probe,), {"__slots__": (), "sink": []})
