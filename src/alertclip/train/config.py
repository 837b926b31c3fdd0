"""Building a stage's frozen config dataclass from its params group (the typed model, a mapping or None)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from(cls: type[T], obj: Any, what: str) -> T:
    """``cls`` from ``None`` (defaults), a mapping, a pydantic model (``p.stage1``) or a dataclass; unknown keys raise
    naming ``what`` (the params group)."""
    if obj is None:
        return cls()
    if isinstance(obj, cls):
        return obj
    if hasattr(obj, "model_dump"):
        data = obj.model_dump()
    elif dataclasses.is_dataclass(obj):
        data = dataclasses.asdict(obj)
    else:
        data = dict(obj)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**data)
