"""Build the hard-negative table: upstream negatives, topped up by rules then (optionally) the LLM, all validated."""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any

import polars as pl

from ..data.captions import norm_caption
from ..params import HardnegParams
from ..synth import world
from .inverter import invert
from .lexicon import find_matches
from .llm import LLMClient
from .validator import REASONS, validate

log = logging.getLogger(__name__)


SOURCES = ("upstream", "rules", "llm")
HARDNEG_SCHEMA = {"clip_key": pl.Utf8, "rank": pl.Int32, "negative": pl.Utf8, "source": pl.Utf8}
STANDARD_SCHEMA = {"clip_key": pl.Utf8, "rank": pl.Int32, "negative": pl.Utf8, "negative_clip_key": pl.Utf8}
REQUIRED = ("clip_key", "split", "abnormal", "region_caption", "hard_negative")


def _names_event(text: str, event: str) -> bool:
    return any(m.phrase.event == event for m in find_matches(text))


def _synth_event_of(text: str) -> str | None:
    events = {m.phrase.event for m in find_matches(text) if m.phrase.event is not None}
    return events.pop() if len(events) == 1 else None


def standard_negatives(clips: pl.DataFrame, k: int, seed: int) -> pl.DataFrame:
    """The "standard negatives" ablation: ``k`` region captions of other clips of the opposite label, same split.

    Deterministic: each clip draws from the pool sorted by clip_key with ``random.Random(f"{seed}:{clip_key}")``,
    so the result does not depend on row order. Captions equal to the positive are skipped; no duplicates.
    """
    rows: list[dict[str, Any]] = []
    table = clips.select("clip_key", "split", "abnormal", "region_caption").sort("clip_key")
    pools: dict[tuple[str, bool], list[tuple[str, str]]] = {}
    for r in table.iter_rows(named=True):
        pools.setdefault((r["split"], bool(r["abnormal"])), []).append((r["clip_key"], r["region_caption"]))
    for r in table.iter_rows(named=True):
        pool = pools.get((r["split"], not r["abnormal"]), [])
        rng = random.Random(f"{seed}:{r['clip_key']}")
        order = rng.sample(range(len(pool)), len(pool))
        seen = {norm_caption(r["region_caption"])}
        rank = 0
        for i in order:
            key, caption = pool[i]
            if norm_caption(caption) in seen:
                continue
            seen.add(norm_caption(caption))
            rows.append({"clip_key": r["clip_key"], "rank": rank, "negative": caption, "negative_clip_key": key})
            rank += 1
            if rank == k:
                break
    return pl.DataFrame(rows, schema=STANDARD_SCHEMA, orient="row")


def build(clips: pl.DataFrame, params: HardnegParams,
          llm: LLMClient | None = None) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """``(hardneg_df, standard_df, stats)`` for the curated clips (see the module docstring)."""
    missing = [c for c in REQUIRED if c not in clips.columns]
    if missing:
        raise ValueError(f"clips table lacks column(s) {missing}; expected at least {list(REQUIRED)}")
    k = params.k
    if llm is None and params.llm.enabled:
        llm = LLMClient(params.llm)
    rejected: Counter[str] = Counter({r: 0 for r in REASONS})
    rejected_by_source: dict[str, Counter[str]] = {s: Counter() for s in SOURCES}
    per_source: Counter[str] = Counter({s: 0 for s in SOURCES})
    rows: list[dict[str, Any]] = []
    short: list[dict[str, Any]] = []
    synth_total = synth_naming = empty_lists = 0
    for r in clips.iter_rows(named=True):
        positive, abnormal, key = r["region_caption"], bool(r["abnormal"]), r["clip_key"]
        kept: list[tuple[str, str]] = []

        def offer(candidates: list[str] | None, source: str) -> None:
            for neg in candidates or []:
                if len(kept) >= k:
                    return
                ok, reason = validate(positive, neg, abnormal, seen=[n for n, _ in kept],
                                      min_shared_content=params.min_shared_content)
                if ok:
                    kept.append((neg, source))
                else:
                    rejected[reason] += 1
                    rejected_by_source[source][reason] += 1

        upstream = list(r["hard_negative"] or [])
        empty_lists += not upstream
        offer(upstream, "upstream")
        if len(kept) < k:
            rng = random.Random(f"{params.seed}:{key}:rules")
            before = len(kept)
            offer(invert(positive, k + len(kept), rng), "rules")
            event = _synth_event_of(positive)
            if event is not None:
                target = world.EVENT_BY_NAME[event].counterpart
                for neg, src in kept[before:]:
                    synth_total += 1
                    synth_naming += _names_event(neg, target)
        if len(kept) < k and llm is not None:
            offer(llm.negatives(positive, abnormal, k), "llm")
        for rank, (neg, source) in enumerate(kept):
            rows.append({"clip_key": key, "rank": rank, "negative": neg, "source": source})
            per_source[source] += 1
        if len(kept) < k:
            short.append({"clip_key": key, "have": len(kept)})
    n = clips.height
    stats: dict[str, Any] = {
        "k": k,
        "clips": n,
        "clips_with_k": n - len(short),
        "coverage": (n - len(short)) / n if n else 0.0,
        "negatives": len(rows),
        "by_source": dict(per_source),
        "rejected": dict(rejected),
        "upstream_empty_lists": empty_lists,
        "rejected_by_source": {s: dict(c) for s, c in rejected_by_source.items()},
        "clips_short_of_k": len(short),
        "short_of_k_by_count": {str(h): c for h, c in sorted(Counter(s["have"] for s in short).items())},
        "short_examples": [s["clip_key"] for s in short[:20]],
        "llm": {"enabled": llm is not None,
                "requests": getattr(llm, "requests_made", 0), "cache_hits": getattr(llm, "cache_hits", 0)},
        "synth_rule_negatives": synth_total,
        "synth_counterpart_share": (synth_naming / synth_total) if synth_total else None,
    }
    if short:
        log.warning("hardneg: %d of %d clips have fewer than k=%d valid hard negatives (by count kept: %s); "
                    "no duplicates were added", len(short), n, k, stats["short_of_k_by_count"])
    hard = pl.DataFrame(rows, schema=HARDNEG_SCHEMA, orient="row")
    return hard, standard_negatives(clips, k, params.seed), stats
