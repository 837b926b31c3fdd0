"""Stage entry point `sweep` (dvc.yaml: `alertclip sweep`): the Optuna sweep of stage 2's ``lambda_region``,
``lambda_hard``, ``temperature`` and ``lr`` (params ``sweep``; each trial starts from params ``stage2``), see
:mod:`alertclip.sweep`.

Outputs: ``results/sweep/{trials.parquet, best.json, optimization_history.png, param_importances.png}`` (no timings,
so reruns are byte-identical). The study lives in ``sweep.storage`` (default journal file
``data/.cache/sweep/journal.log``); rerunning the stage resumes it without repeating finished trials. SIGTERM during a
trial marks it FAIL and exits with status 143; the rerun retries it.
"""

from __future__ import annotations

import logging

from ..params import Params
from ..sweep.objective import SweepInterrupted
from ..sweep.run import run_sweep
from ..threads import pin_threads

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True) -> None:
    pin_threads()  # identical bytes under Snakemake (OMP_NUM_THREADS set) and DVC
    try:
        run_sweep(p.sweep, p.stage2, progress=progress, snippet_len=p.frames.snippet_len)
    except SweepInterrupted as err:
        log.warning("sweep: %s; rerun the stage to resume", err)
        raise SystemExit(143) from None
