"""Stage entry point `sweep` (dvc.yaml: `alertclip sweep`): the Optuna sweep of ``lambda_region``,
``lambda_hard``, ``temperature`` and ``lr`` (params ``sweep``) for Alert-CLIP's run (``runs.full`` with ``tune``
applied: each trial trains it from its init with the sampled values), see :mod:`alertclip.sweep`. To train with the
best trial's values, give a row of ``runs`` those keys (``best.json``'s ``params``).

Outputs: ``results/sweep/{trials.parquet, best.json, optimization_history.png, param_importances.png}`` (no timings,
so reruns are byte-identical). The study lives in ``sweep.storage`` (default journal file
``data/.cache/sweep/journal.log``); rerunning the stage resumes it without repeating finished trials. SIGTERM during a
trial marks it FAIL and exits with status 143; the rerun retries it.
"""

from __future__ import annotations

import logging

from ..params import ALERT_CLIP_RUN, Params, run_settings
from ..sweep.objective import SweepInterrupted
from ..sweep.run import run_sweep
from ..threads import pin_threads

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True) -> None:
    pin_threads()  # identical bytes under Snakemake (OMP_NUM_THREADS set) and DVC
    try:
        base = run_settings(p.tune, p.runs[ALERT_CLIP_RUN], p.backbone.arch)
        run_sweep(p.sweep, base, progress=progress, snippet_len=p.frames.snippet_len)
    except SweepInterrupted as err:
        log.warning("sweep: %s; rerun the stage to resume", err)
        raise SystemExit(143) from None
