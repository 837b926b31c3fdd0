"""The experiment report: the paper's tables, figures and an honest summary, built from the evaluation outputs.

:func:`~alertclip.report.markdown.build_report` reads, under a root directory (the repository root in the pipeline),

* per backbone key ``K`` of params ``eval.backbones``: ``results/eval_{mss,zeroshot,weakly,openvocab,retention}/K/``
  (metrics JSON, MSS margins, snippet scores, ROC points) -- every one required; a missing file raises
  :class:`~alertclip.report.inputs.MissingResultError` naming it and the dvc.yaml stage (``eval_weakly@K``) that writes it;
* optionally the training summaries ``results/{backbone,stage1}/metrics.json`` and
  ``results/stage2/<variant>/metrics.json`` (a small training table);
* the test ground truth (params ``eval.test_annotations``) for the per-video score traces,

and writes ``results/report.md`` (markdown tables, "What this run shows", figure links),
``results/report/tables/<name>.csv`` (the same cells as the markdown plus a ``source`` column),
``results/report/figures/*.png`` (byte-identical for identical inputs) and ``results/report/index.json`` (every table
and figure with its sources and a caption). Every output is written atomically.

Number formats follow the paper: fractions (AUC, AP, R@k, shares) as percentages with 2 decimals, MSS with 4
decimals, seed statistics as ``mean ± std`` (sample std over ``eval_weakly.seeds``), 95% CIs as ``value [low, high]``.

When a gap is real: the MSS and zero-shot AUC/AP gaps between two backbones (each tuned one vs the reference, ``full``
vs ``stage1``, each ablation variant vs ``full``) count only when the 95% CI of a paired bootstrap over the test
videos (:func:`alertclip.eval.bootstrap.paired_bootstrap_mss`, :func:`~alertclip.eval.bootstrap.paired_bootstrap_auc_ap`;
params ``eval.bootstrap_samples`` resamples, seed ``eval.bootstrap_seed``) excludes 0, and read "no difference"
otherwise; the seeded heads' gaps count only when they exceed the larger seed std; retention, without per-image
results, is reported and not tested. Every draw is seeded, so the outputs stay byte-identical (DVC hashes them).

Modules, in the order the report is built: :mod:`~alertclip.report.inputs` (result paths, reading the evaluation
outputs), :mod:`~alertclip.report.formatting` (number formats), :mod:`~alertclip.report.bootstrap` (per-backbone and
paired CIs), :mod:`~alertclip.report.findings` ("What this run shows"), :mod:`~alertclip.report.tables`,
:mod:`~alertclip.report.figures` and :mod:`~alertclip.report.markdown` (report.md, the CSVs and index.json; the entry
:func:`~alertclip.report.markdown.build_report`).
"""
