"""Number formats of the report: percentages, MSS, ``mean ± std``, signed pp changes and ``value [low, high]``."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

PM = "±"
NA = "n/a"


def as_number(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def clean_round(x: float, nd: int) -> float:
    """``x`` rounded to ``nd`` decimals, with ``-0.0`` turned into ``0.0``."""
    return round(x, nd) + 0.0


def pct(x: Any) -> str:
    """A fraction as a percentage with 2 decimals (0.8932 -> ``89.32``); ``n/a`` for None/NaN."""
    v = as_number(x)
    return NA if v is None else f"{clean_round(100 * v, 2):.2f}"


def mss_fmt(x: Any) -> str:
    v = as_number(x)
    return NA if v is None else f"{clean_round(v, 4):.4f}"


def pct_pm(stat: Mapping[str, Any] | None) -> str:
    """``{"mean", "std"}`` fractions as ``81.23 ± 1.00``."""
    if not isinstance(stat, Mapping):
        return NA
    m, s = as_number(stat.get("mean")), as_number(stat.get("std"))
    if m is None:
        return NA
    return f"{pct(m)} {PM} {pct(s if s is not None else 0.0)}"


def signed_pp(delta: float | None) -> str:
    """A change in percentage points, always signed (``+1.23``, ``-0.50``, ``+0.00``)."""
    return NA if delta is None else f"{clean_round(delta, 2):+.2f}"


def with_ci(text: str, ci: Sequence[Any] | None, fmt: Callable[[Any], str]) -> str:
    """``value [low, high]`` (``0.0128 [-0.0060, 0.0310]``); the value alone without a CI."""
    if text == NA or ci is None or len(ci) != 2 or any(as_number(x) is None for x in ci):
        return text
    return f"{text} [{fmt(ci[0])}, {fmt(ci[1])}]"


def as_pp(x: Any) -> float | None:
    """A fraction as percentage points rounded like the tables (so text and tables agree)."""
    v = as_number(x)
    return None if v is None else clean_round(100 * v, 2)
