"""Stage entry point `report` (dvc.yaml: `alertclip report`): the paper's tables, figures and an honest summary.

Reads every ``results/eval_*/<backbone>/<dataset>/`` output of the backbones in params ``eval.backbones`` on the
datasets of params ``eval.evaluate``, ``results/eval_retention/<backbone>/``, the checked test sets
``data/testsets/<dataset>/`` (plus the optional training summaries) and writes ``results/report.md``,
``results/report/tables/*.csv``, ``results/report/figures/*.png`` and ``results/report/index.json`` (see
:mod:`alertclip.report`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..params import Params
from ..report.markdown import build_report

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True) -> None:
    index = build_report(Path("."), p)
    log.info("report: %s (%d tables, %d figures)", index["report"], len(index["tables"]), len(index["figures"]))
