"""The curate stage's library: apply the rules to every training clip, write the curated clip table, a per-clip
report, a summary and (on the synthetic world) a quality report against the injected defects."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..data import vagta
from ..data.frames import open_frames
from ..data.sources import Layout
from ..io import atomic_path, write_json
from ..params import CurateParams
from .rules import RULES, ClipCase, Finding, apply_per_clip, check_leakage, near_duplicates, phash_frames, repeated_caption

#: injected defect kind -> the rule that must catch it (hardneg kinds belong to the hardneg stage).
KIND_RULE = {
    "digit_in_word": "digit_typo", "non_english": "non_english", "zero_length_span": "too_short",
    "category_mismatch": "category_mismatch", "weak_caption": "weak_caption", "repeated_caption": "repeated_caption",
    "bbox_out_of_range": "box_out_of_range", "bbox_inverted": "box_inverted", "abnormal_without_boxes": "no_boxes",
    "truncated_media": "media_unreadable", "zero_length_media": "media_unreadable",
    "missing_media": "media_unreadable", "reencoded_duplicate": "near_duplicate",
}

CLIP_SCHEMA = {
    "clip_key": pl.String, "video": pl.String, "split": pl.String, "label": pl.String, "abnormal": pl.Boolean,
    "category": pl.String, "global_caption": pl.String, "region_caption": pl.String,
    "hard_negative": pl.List(pl.String), "start": pl.Int64, "end": pl.Int64, "frames": pl.List(pl.Int64),
    "boxes": pl.List(pl.List(pl.Float32)), "shard": pl.Int64, "row": pl.Int64,
}
REPORT_SCHEMA = {
    "clip_key": pl.String, "item_index": pl.Int64, "video": pl.String, "split": pl.String, "category": pl.String,
    "kept": pl.Boolean, "reasons": pl.List(pl.String), "repairs": pl.List(pl.String), "detail": pl.String,
}


def _tracks(entries: list[vagta.Entry]) -> tuple[dict[tuple[str, int], list], dict[Any, str]]:
    """track key (video, region, timestamps) -> keyframes; video and (video, timestamps) -> global caption."""
    tracks: dict[tuple, list] = {}
    global_caption: dict[Any, str] = {}
    for e in entries:
        global_caption.setdefault(e.video, e.global_caption)
        if e.timestamps is not None:
            global_caption.setdefault((e.video, tuple(e.timestamps)), e.global_caption)
        for r, track in enumerate(e.box_infos):
            if track:
                tracks.setdefault(e.track_key(r), track)
    return tracks, global_caption


def _test_hashes(frames_dir: Path) -> dict[str, np.ndarray]:
    path = frames_dir / "snippets.parquet"
    if not path.exists():
        return {}
    snip = pl.read_parquet(path).filter(pl.col("split") == "test")
    shards = open_frames(frames_dir, "snippets")
    out: dict[str, np.ndarray] = {}
    for (video,), g in snip.group_by("video", maintain_order=True):
        frames = np.stack([shards[s][r] for s, r in zip(g["shard"], g["row"])])
        out[video] = phash_frames(frames)
    return out


def curate(layout: Layout, frames_dir: Path, params: CurateParams, truth_path: Path | None = None
           ) -> tuple[pl.DataFrame, pl.DataFrame, dict, dict | None]:
    """Curate the training clips. Returns (curated clips, per-clip report, summary, quality or None).

    Raises :class:`~alertclip.curation.rules.LeakageError` when a training clip leaks test data.
    """
    frames_dir = Path(frames_dir)
    items = vagta.load(layout.path(layout.train_items)).items or []
    train_box = layout.path(layout.train_annotations)
    train_entries = (vagta.load(train_box).entries or []) if train_box.exists() else []
    tracks, global_caption = _tracks(train_entries)
    test_entries = vagta.load(layout.path(layout.test_annotations)).entries or []

    media = pl.read_parquet(frames_dir / "media.parquet") if (frames_dir / "media.parquet").exists() else None
    status = {} if media is None else {r["path"]: (r["status"], r["reason"] or "") for r in media.iter_rows(named=True)}
    clips = pl.read_parquet(frames_dir / "clips.parquet")
    clip_row = {r["item_index"]: r for r in clips.iter_rows(named=True)}

    # Leakage, before anything else: fail loudly.
    test_videos = {e.video for e in test_entries}
    if media is not None:
        test_videos |= set(media.filter(pl.col("split") == "test")["path"].to_list())
    check_leakage(sorted({it.video for it in items}), sorted(test_videos))

    cases: list[ClipCase] = []
    for i, it in enumerate(items):
        st, reason = status.get(it.video, ("missing", "video not in the frames stage's media table"))
        if st == "ok" and i not in clip_row:
            st, reason = "unreadable", "no frames extracted for this clip"
        row = clip_row.get(i)
        cases.append(ClipCase(
            clip_key=it.clip_key, item_index=i, video=it.video, region_index=it.region_index,
            caption=it.region_caption, category=it.category, abnormal=it.is_abnormal,
            frames_25=tuple(it.frames_25) if it.frames_25 else None,
            timestamps=tuple(it.timestamps) if it.timestamps else None,
            media_status=st, media_reason=reason, track=tracks.get(it.track_key),
            sampled_boxes=None if row is None else np.array(row["boxes"], np.float32),
        ))
    for c in cases:
        apply_per_clip(c, params)
    repeated_caption(cases)

    # Near-duplicates (train) and frame-level leakage (train vs test), on pHashes of the extracted frames.
    with_frames = [c for c in cases if c.item_index in clip_row and c.media_status == "ok"]
    shards = open_frames(frames_dir, "clips")
    hashes = np.stack([phash_frames(shards[clip_row[c.item_index]["shard"]][clip_row[c.item_index]["row"]])
                       for c in with_frames]) if with_frames else np.zeros((0, 1, 4), np.uint64)
    check_leakage([], [], {c.clip_key + f"[{c.item_index}]": (c.video, h) for c, h in zip(with_frames, hashes)},
                  _test_hashes(frames_dir), params.phash_distance)
    dups = near_duplicates([c.clip_key for c in with_frames], [c.video for c in with_frames], hashes,
                           params.phash_distance)
    for i, (j, d) in dups.items():
        with_frames[i].findings.append(Finding(
            "near_duplicate", "drop", f"mean pHash distance {d:.1f} <= {params.phash_distance} to "
            f"{with_frames[j].clip_key} ({with_frames[j].video})"))

    split = {v: s for v, (s,) in zip(media["path"], media.select("split").iter_rows())} if media is not None else {}
    report_rows, clip_rows = [], []
    for c, it in zip(cases, items):
        drops = sorted({f.rule for f in c.findings if f.action == "drop"}, key=RULES.index)
        repairs = sorted({f.rule for f in c.findings if f.action == "repair"}, key=RULES.index)
        kept = not drops
        report_rows.append({
            "clip_key": c.clip_key, "item_index": c.item_index, "video": c.video,
            "split": split.get(c.video, "train"), "category": c.category, "kept": kept, "reasons": drops,
            "repairs": repairs, "detail": "; ".join(f"{f.rule} ({f.action}): {f.detail}" for f in c.findings),
        })
        if kept:
            row = clip_row[c.item_index]
            clip_rows.append({
                "clip_key": c.clip_key, "video": c.video, "split": split.get(c.video, "train"),
                "label": "abnormal" if c.abnormal else "normal", "abnormal": c.abnormal, "category": c.category,
                "global_caption": global_caption.get((c.video, c.timestamps), global_caption.get(c.video)), "region_caption": c.text,
                "hard_negative": list(it.hard_negative), "start": row["start"], "end": row["end"],
                "frames": row["frames"], "boxes": row["boxes"], "shard": row["shard"], "row": row["row"],
            })
    report = pl.DataFrame(report_rows, schema=REPORT_SCHEMA)
    curated = pl.DataFrame(clip_rows, schema=CLIP_SCHEMA)
    summary = summarize(report)
    quality = None
    if truth_path is not None and Path(truth_path).exists():
        truth = json.loads(Path(truth_path).read_text(encoding="utf-8"))
        quality = measure_quality(truth, items, cases, Path(layout.train_items).name, Path(layout.train_annotations).name,
                                  train_entries)
    return curated, report, summary, quality


# --------------------------------------------------------------------------------------------------------------
# Summary and quality
# --------------------------------------------------------------------------------------------------------------


def summarize(report: pl.DataFrame) -> dict[str, Any]:
    rows = report.to_dicts()
    def counts(key: str) -> dict[str, dict[str, int]]:
        out: dict[str, Counter] = defaultdict(Counter)
        for r in rows:
            out[r[key]]["kept" if r["kept"] else "dropped"] += 1
        return {k: {"kept": v["kept"], "dropped": v["dropped"]} for k, v in sorted(out.items())}
    return {
        "clips": len(rows), "kept": sum(r["kept"] for r in rows), "dropped": sum(not r["kept"] for r in rows),
        "dropped_by_reason": dict(sorted(Counter(x for r in rows for x in r["reasons"]).items())),
        "repaired_by_rule": dict(sorted(Counter(x for r in rows if r["kept"] for x in r["repairs"]).items())),
        "by_category": counts("category"), "by_split": counts("split"),
    }


def summary_markdown(summary: dict, quality: dict | None = None) -> str:
    lines = ["# Curation summary", "",
             f"{summary['clips']} input clips: {summary['kept']} kept, {summary['dropped']} dropped.", "",
             "| reason | dropped |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in summary["dropped_by_reason"].items()]
    lines += ["", "| repair (kept clips) | count |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in summary["repaired_by_rule"].items()]
    for title, key in (("category", "by_category"), ("split", "by_split")):
        lines += ["", f"| {title} | kept | dropped |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {v['kept']} | {v['dropped']} |" for k, v in summary[key].items()]
    if quality:
        lines += ["", "## Quality against injected defects", "",
                  "| kind | rule | injected | caught | recall | precision |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for kind, q in quality["kinds"].items():
            prec = "n/a" if q["precision"] is None else f"{q['precision']:.3f}"
            rec = "n/a" if q["recall"] is None else f"{q['recall']:.3f}"
            lines.append(f"| {kind} | {q['rule']} | {q['injected']} | {q['caught']} | {rec} | {prec} |")
    return "\n".join(lines) + "\n"


_REGION = re.compile(r"box_infos\[(\d+)\]")


def measure_quality(truth: list[dict], items: list[vagta.TrainItem], cases: list[ClipCase],
                    items_file: str, train_box_file: str, entries: list[vagta.Entry] | None = None) -> dict[str, Any]:
    """Per injected kind: recall of its rule on the clips the kind hit, and the rule's precision (share of the
    clips it fired on that carry one of the kinds it owns). Truth rows of the test box file touch no training clip
    and are counted as ``out_of_scope``."""
    by_video: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        by_video[it.video].append(i)
    hit: dict[str, set[int]] = defaultdict(set)
    out_of_scope: Counter = Counter()
    for rec in truth:
        kind = rec["kind"]
        if kind not in KIND_RULE:
            continue
        if rec["index"] < 0:
            hit[kind] |= set(by_video.get(rec["video"], []))
        elif rec["file"] == items_file:
            hit[kind].add(rec["index"])
        elif rec["file"] == train_box_file:
            m = _REGION.search(rec["field"])
            idx = by_video.get(rec["video"], [])
            if entries is not None and rec["index"] < len(entries):  # the entry's own segment (region 0 is not unique)
                entry = entries[rec["index"]]
                regions = range(len(entry.box_infos)) if m is None else [int(m.group(1))]
                keys = {entry.track_key(r) for r in regions}
                hit[kind] |= {i for i in idx if items[i].track_key in keys}
            else:
                hit[kind] |= {i for i in idx if m is None or items[i].region_index == int(m.group(1))}
        else:
            out_of_scope[kind] += 1
    # A re-encoded copy carries its original's annotation defects too (the items were copied verbatim).
    for rec in truth:
        if rec["kind"] == "reencoded_duplicate" and rec["file"] == items_file and rec["index"] >= 0:
            copy = items[rec["index"]]
            orig = rec["detail"].removeprefix("re-encode of ")
            for j in by_video.get(orig, []):
                o = items[j]
                if (o.region_index, o.frames_25, o.timestamps) == (copy.region_index, copy.frames_25, copy.timestamps):
                    for kind, idx in list(hit.items()):
                        if j in idx and kind not in ("truncated_media", "zero_length_media", "missing_media"):
                            idx.add(rec["index"])
    fired: dict[str, set[int]] = defaultdict(set)
    for c in cases:
        for f in c.findings:
            fired[f.rule].add(c.item_index)
    kinds: dict[str, Any] = {}
    for kind, rule in KIND_RULE.items():
        truth_set = hit.get(kind, set())
        owned = set().union(*(hit.get(k, set()) for k, r in KIND_RULE.items() if r == rule))
        flagged = fired.get(rule, set())
        caught = len(truth_set & flagged)
        kinds[kind] = {
            "rule": rule, "injected": len(truth_set), "caught": caught,
            "recall": caught / len(truth_set) if truth_set else None,
            "precision": len(flagged & owned) / len(flagged) if flagged else None,
            "false_positives": sorted(flagged - owned), "missed": sorted(truth_set - flagged),
            "out_of_scope": out_of_scope.get(kind, 0),
        }
    return {"kinds": kinds, "note": "precision is the rule's: flagged clips carrying any kind the rule owns"}


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def write_outputs(curated: pl.DataFrame, report: pl.DataFrame, summary: dict, quality: dict | None,
                  curated_dir: Path, results_dir: Path) -> None:
    """``curated_dir/clips.parquet``; ``results_dir/{report.parquet, summary.md, summary.json, quality.json}``
    (quality.json always written: ``{"kinds": {}, "note": ...}`` without truth, so it can be a dvc out)."""
    for df, path in ((curated, Path(curated_dir) / "clips.parquet"), (report, Path(results_dir) / "report.parquet")):
        with atomic_path(path) as tmp:
            df.write_parquet(tmp)
    write_json(Path(results_dir) / "summary.json", summary)
    with atomic_path(Path(results_dir) / "summary.md") as tmp:
        tmp.write_text(summary_markdown(summary, quality), encoding="utf-8")
    write_json(Path(results_dir) / "quality.json",
               quality if quality is not None else {"kinds": {}, "note": "no ground truth for this source"})
