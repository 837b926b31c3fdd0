"""The "What this run shows" section: each gap between two backbones judged by its paired CI or seed noise, in words.

One block of sections per dataset (a sub-heading each when the report shows several), in params ``eval.datasets``
order: MSS, zero-shot (each headline metric of the dataset), the weakly supervised and open-vocabulary heads (its first
headline metric); then retention (per backbone, no dataset) and model selection.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .bootstrap import BOOT_METRICS, comparison_pairs, dataset_metrics, paired_ci, videos_text_all
from .formatting import NA, as_number, as_pp, clean_round
from .inputs import METRIC_LABELS, Results


def n_seeds_of(stat: Any) -> int | None:
    if isinstance(stat, Mapping) and isinstance(stat.get("per_seed"), list):
        return len(stat["per_seed"])
    return None


def mss4(x: Any) -> float | None:
    """An MSS rounded like the tables (so text and tables agree)."""
    v = as_number(x)
    return None if v is None else clean_round(v, 4)


def compare_sentence(what: str, key: str, ref: str, v: float | None, v0: float | None, unit: str, nd: int,
                     noise: float | None = None, n_seeds: int | None = None, ci: tuple[float, float] | None = None,
                     untested: str | None = None) -> tuple[str, str]:
    """One comparison of ``key`` against ``ref`` on already rounded values; returns (verdict, sentence).

    What decides whether the gap counts, by what the metric has:

    * ``ci``: the paired-bootstrap 95% CI of ``key - ref`` (same units as the values, unrounded): the gap counts only
      when the CI excludes 0 on the side of the gap; otherwise ``nodiff`` ("no difference (CI [..])");
    * ``n_seeds``: seed statistics; the gap counts only when it exceeds ``noise`` (the larger seed std), else
      ``noise``; with fewer than 2 seeds the noise is unknown and the gap is ``untested``;
    * ``untested``: why the metric cannot be tested (no per-item results); the gap is described, not counted.

    verdict: ``beats`` / ``worse`` (the gap counts) / ``nodiff`` / ``noise`` / ``untested`` / ``ties`` / ``n/a``.
    """
    if v is None or v0 is None:
        return NA, f"{what}: `{key}` vs `{ref}` not computed (a value is missing or NaN)."
    fmt = f"{{:.{nd}f}}"
    gap = clean_round(v - v0, nd)
    vals = f"({fmt.format(v)} vs {fmt.format(v0)})"
    mag = f"{fmt.format(abs(gap))}{unit}"
    spread = ""
    if ci is not None:
        interval = f"[{clean_round(ci[0], nd):+.{nd}f}, {clean_round(ci[1], nd):+.{nd}f}]{unit}"
        if (gap > 0 and ci[0] > 0) or (gap < 0 and ci[1] < 0):
            spread = f"; the paired 95% CI of the gap, {interval}, excludes 0"
        else:
            return "nodiff", (f"{what}: `{key}` vs `{ref}`: no difference (CI {interval}); the gap of "
                              f"{gap:+.{nd}f}{unit} {vals} does not survive resampling the test videos.")
    elif noise is not None and abs(gap) <= noise:
        return "noise", (f"{what}: `{key}` vs `{ref}` differ by {gap:+.{nd}f}{unit} {vals} — within seed noise "
                         f"(the larger seed std is {fmt.format(noise)}{unit} over {n_seeds} seeds).")
    elif noise is not None:
        spread = f"; the gap exceeds the larger seed std ({fmt.format(noise)}{unit} over {n_seeds} seeds)"
    elif n_seeds is not None and n_seeds < 2:
        untested = "a single seed, so the seed noise is unknown"
    if untested is not None:
        if gap == 0:
            return "ties", f"{what}: `{key}` ties with `{ref}` {vals}."
        side = f"beats `{ref}` by" if gap > 0 else f"is worse than `{ref}` by"
        return "untested", f"{what}: `{key}` {side} {mag} {vals}; not tested ({untested}), so the gap is not counted."
    if gap > 0:
        return "beats", f"{what}: `{key}` beats `{ref}` by {mag} {vals}{spread}."
    if gap < 0:
        return "worse", f"{what}: `{key}` is worse than `{ref}` by {mag} {vals}{spread}."
    return "ties", f"{what}: `{key}` ties with `{ref}` {vals}{spread}."


def _seed_noise(stat: Mapping, stat0: Mapping) -> tuple[float | None, int | None]:
    """The larger of the two seed stds in percentage points (None with fewer than 2 seeds) and the seed count."""
    n = min(n_seeds_of(stat) or 0, n_seeds_of(stat0) or 0) or None
    if n is None or n < 2:
        return None, n
    s = [as_pp(stat.get("std")), as_pp(stat0.get("std"))]
    s = [x for x in s if x is not None]
    return (max(s) if s else None), n


def _tally(what: str, verdicts: list[str], ref: str, others: Sequence[str] = ()) -> str:
    """The section's headline: verdicts against the reference, then how many of the other pairs' gaps count."""
    n = len(verdicts)
    counts = {v: verdicts.count(v) for v in ("beats", "worse", "nodiff", "noise", "untested", "ties", NA)}
    parts = [f"{counts['beats']} of {n} tuned backbone(s) beat `{ref}`"]
    for verdict, text in (("worse", "worse"), ("nodiff", "no difference (CI includes 0)"),
                          ("noise", "within seed noise"), ("untested", "not tested"), ("ties", "tie"),
                          (NA, "not computed")):
        if counts[verdict]:
            parts.append(f"{counts[verdict]} {text}")
    line = f"**{what}** — " + ", ".join(parts) + "."
    if others:
        real = sum(v in ("beats", "worse") for v in others)
        line += f" Other pairs: the gap counts in {real} of {len(others)}."
    return line


RETENTION_FINDINGS = (  # (block or None, metric, section title, label): blocks only when some backbone has them
    (None, "i2t_r1", "Retention i2t R@1", "i2t R@1"),
    ("imagenet", "acc1", "Retention, ImageNet zero-shot acc@1", "ImageNet acc@1"),
    ("coco", "i2t_r1", "Retention, COCO i2t R@1", "COCO i2t R@1"),
)


def _optional(r: Results, key: str, block: str, metric: str) -> Any:
    """A metric of an optional retention block (``imagenet``, ``coco``); None when the backbone has none."""
    node = r.block("eval_retention", key, None).get(block)
    return node.get(metric) if isinstance(node, Mapping) else None


def has_block(r: Results, block: str) -> bool:
    """Whether some backbone's retention metrics hold the optional ``block`` (``imagenet``, ``coco``)."""
    return any(isinstance(r.block("eval_retention", k, None).get(block), Mapping) for k in r.backbones)


def _seed_counts(r: Results) -> list[int]:
    return sorted({n for ds in r.on("eval_weakly") for k in r.backbones
                   for n in [n_seeds_of(r.need("eval_weakly", k, ds, r.datasets[ds].primary))] if n is not None})


def findings(r: Results) -> list[str]:
    """Markdown lines of the "What this run shows" section, derived only from the numbers."""
    ref, tuned = r.reference, r.tuned
    lines: list[str] = []
    if not tuned:
        return [f"Only the reference backbone `{ref}` was evaluated: there is nothing to compare it against."]
    pairs = comparison_pairs(r)
    others = [f"`{k}` vs `{b}`" for k, b in pairs if b != ref]
    seed_counts = _seed_counts(r)
    seeds_txt = "/".join(str(n) for n in seed_counts) or "an unknown number of"
    booted_keys = [ds for ds in r.shown if dataset_metrics(r, ds)]
    on = ", ".join(r.label(ds) for ds in r.shown) or "no dataset"
    videos = videos_text_all(r, booted_keys) if booted_keys else "the test videos"
    lines.append(f"Tuned backbones {', '.join(f'`{k}`' for k in tuned)} against the reference `{ref}` "
                 f"(params eval.reference) on {on}"
                 + (f"; also {', '.join(others)}" if others else "") + ". "
                 f"MSS and zero-shot AUC/AP are single deterministic runs: a gap counts only when the 95% CI of a "
                 f"paired bootstrap over {videos} excludes 0 ({r.n_bootstrap} resamples with replacement, "
                 f"seed {r.bootstrap_seed}, the same videos for both backbones), and reads \"no difference\" "
                 "otherwise. The weakly supervised and open-vocabulary heads were trained "
                 f"with {seeds_txt} seed(s) per backbone (params eval_weakly.seeds: {r.seeds}); a gap counts only when "
                 "it exceeds the larger of the two seed stds. Retention keeps no per-image results, so its gaps are "
                 "reported but not tested.")
    if any(n != len(r.seeds) for n in seed_counts) and r.seeds:
        lines.append(f"Warning: the metrics files hold {seeds_txt} seeds but params eval_weakly.seeds lists "
                     f"{len(r.seeds)}: some results are stale.")
    if seed_counts and seed_counts[0] < 3:
        lines.append(f"With only {seed_counts[0]} seed(s), the seed std is a rough estimate of the noise.")

    def section(title: str, items: list[tuple[str, str]]) -> None:
        lines.append("")
        lines.append(_tally(title, [v for (v, _), (_, b) in zip(items, pairs) if b == ref], ref,
                            [v for (v, _), (_, b) in zip(items, pairs) if b != ref]))
        lines.extend(f"- {s}" for _, s in items)

    def booted(metric: str, ds: str):
        stage, name, _, label = BOOT_METRICS[metric]
        rnd, raw, unit, nd = (mss4, (lambda x: x), "", 4) if metric == "mss" else (as_pp, (lambda x: 100 * x), " pp", 2)
        out = []
        for k, b in pairs:
            ci = paired_ci(r, metric, k, b, ds)
            out.append(compare_sentence(label, k, b, rnd(r.need(stage, k, ds, name)), rnd(r.need(stage, b, ds, name)),
                                        unit, nd, ci=(raw(ci.low), raw(ci.high))))
        return out

    def seeded(stage: str, ds: str, metric: tuple[str, ...], label: str):
        out = []
        for k, b in pairs:
            s, s0 = r.need(stage, k, ds, *metric), r.need(stage, b, ds, *metric)
            noise, n = _seed_noise(s, s0)
            out.append(compare_sentence(label, k, b, as_pp(s.get("mean")), as_pp(s0.get("mean")), " pp", 2, noise, n))
        return out

    def untested(values: dict[str, Any], label: str, why: str):
        return [compare_sentence(label, k, b, as_pp(values[k]), as_pp(values[b]), " pp", 2, untested=why) for k, b in pairs]

    for ds in r.shown:
        if r.multi:
            lines += ["", f"### {r.label(ds)} — dataset `{ds}`"]
        for metric in dataset_metrics(r, ds):
            section(BOOT_METRICS[metric][3], booted(metric, ds))
        m = r.datasets[ds].primary
        ml = METRIC_LABELS[m]
        if ds in r.on("eval_weakly"):
            section(f"Weakly supervised {ml}", seeded("eval_weakly", ds, (m,), f"Weakly {ml}"))
        if ds in r.on("eval_openvocab"):
            section(f"Open vocabulary, novel-category {ml}", seeded("eval_openvocab", ds, ("novel", m), f"Novel {ml}"))
            section(f"Open vocabulary, base-category {ml}", seeded("eval_openvocab", ds, ("base", m), f"Base {ml}"))
    if r.multi:
        lines += ["", "### Retention (per backbone) and model selection"]
    why = "no per-image results, so no CI"
    for block, metric, title, label in RETENTION_FINDINGS:
        if block is None:
            if not any(metric in r.block("eval_retention", k, None) for k in r.backbones):
                continue  # a real source: no held-out stills, the benchmarks' blocks only
            values = {k: r.need("eval_retention", k, None, metric) for k in r.backbones}
        elif has_block(r, block):
            values = {k: _optional(r, k, block, metric) for k in r.backbones}
        else:
            continue
        section(title, untested(values, label, why))

    heads = [(s, ds) for s in ("eval_weakly", "eval_openvocab") for ds in r.on(s)]
    selections = sorted({str(r.info(s, k, ds).get("selection")) for s, ds in heads
                         for k in r.backbones if r.info(s, k, ds).get("selection")})
    n_val = sorted({r.info("eval_weakly", k, ds).get("n_val_videos") for ds in r.on("eval_weakly")
                    for k in r.backbones} - {None})
    lines.append("")
    lines.append("**Model selection** — the weakly supervised and open-vocabulary heads (their kind, and for the "
                 "VadCLIP-style head the epoch kept for each seed) were chosen on a validation split of the *training* "
                 "videos"
                 + (f" ({'/'.join(str(n) for n in n_val)} videos)" if n_val else "")
                 + (f"; recorded selection: {', '.join(selections)}" if selections else "")
                 + ". VadCLIP selects its checkpoint on the test set, so its published numbers are not directly "
                   "comparable (they are optimistic by construction).")
    return lines
