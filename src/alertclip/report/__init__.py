"""The experiment report: the paper's tables, figures and an honest summary, built from the evaluation outputs.

:func:`~alertclip.report.markdown.build_report` reads, under a root directory (the repository root in the pipeline),

* per backbone key ``K`` of params ``eval.backbones`` and dataset key ``D`` of params ``eval.datasets`` listed for the
  evaluation in params ``eval.evaluate``: ``results/eval_{mss,zeroshot,weakly,openvocab}/K/D/`` (metrics JSON, MSS
  margins, snippet scores, ROC points), and per backbone ``results/eval_retention/K/`` (optionally with ImageNet / COCO
  blocks) -- every one required; all missing files are reported at once by
  :class:`~alertclip.report.inputs.MissingResultError`, each with the dvc.yaml stage writing it (``eval_weakly@K-D``,
  ``eval_retention@K``);
* the checked test set ``data/testsets/D/`` (stage ``testset@D``, read by :func:`alertclip.eval.testsets.load_testset`)
  of each dataset whose zero-shot or weakly supervised scores are rebuilt (paired bootstraps, score traces);
* optionally the training summaries ``results/backbone/metrics.json`` and ``results/tune/<run>/metrics.json`` (a
  small training table),

and writes ``results/report.md`` (markdown tables, "What this run shows", figure links),
``results/report/tables/<name>.csv`` (the same cells as the markdown plus a ``source`` column),
``results/report/figures/*.png`` (byte-identical for identical inputs) and ``results/report/index.json`` (every table
and figure with its sources and a caption). Every output is written atomically.

The evaluation tables have one column group per dataset, headed by its name and showing its headline metrics
(params ``eval.datasets.<key>.metrics``); findings and figures come per dataset (figure names suffixed ``_<key>``
only when the report shows more than one dataset). With a single dataset the tables keep their long-standing columns
and the figures their names.

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
