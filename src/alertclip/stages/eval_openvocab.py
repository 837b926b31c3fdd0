"""Stage entry point `eval_openvocab@<backbone>-<dataset>`: the weakly supervised head trained on BASE categories only (the
novel ones of the source's ``novel_classes.txt`` are held out, as in training of training), AUC/AP on base vs novel test videos
(see :mod:`alertclip.eval.weakly`).

Output: ``results/eval_openvocab/<backbone>/<dataset>/metrics.json`` ({dataset: {base: {...}, novel: {...}}}).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.sources import read_novel_classes
from ..eval.pair import eval_inputs
from ..eval.weakly import open_vocabulary_subsets, weakly_supervised
from ..io import write_json
from ..params import Params
from ..paths import NOVEL_CLASSES

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    ev = eval_inputs(p, variant, "eval_openvocab")
    test, testset = ev.test(p), ev.testset
    lowered = read_novel_classes(NOVEL_CLASSES)
    if not lowered:
        where = "" if p.data.source == "synthetic" else f" (params.yaml: data.sources.{p.data.source}.novel_classes)"
        raise ValueError(f"{NOVEL_CLASSES}: no novel classes listed{where}; the open-vocabulary split needs some")
    train = ev.train()
    cats = {c for c in (Path(v).parent.name for v in list(train) + list(test))}
    novel = {c for c in cats if c.casefold() in lowered}
    res = weakly_supervised(train, test, testset.truth, ev.clip, ev.tokenizer, p.eval_weakly.head_params,
                            p.eval_weakly.seeds, p.eval_weakly.val_fraction, p.eval.protocol, ev.frame_counts,
                            exclude=novel, subsets=open_vocabulary_subsets(test, novel),
                            class_prompts=p.eval.datasets[ev.dataset].class_prompts,
                            prompts_key=f"params.yaml: eval.datasets.{ev.dataset}.class_prompts", clip_len=p.frames.snippet_len)
    info = {**res["info"], "novel_classes": sorted(novel),
            "n_test_videos": {k: len(v) for k, v in open_vocabulary_subsets(test, novel).items()}}
    write_json(ev.out / "metrics.json",
               {testset.name: res["metrics"], "info": info})
    m = res["metrics"]
    log.info("eval_openvocab@%s: base AUC %.4f, novel AUC %.4f", variant, m["base"]["auc"]["mean"],
             m["novel"]["auc"]["mean"])
