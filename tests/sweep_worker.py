"""Worker for tests/test_sweep.py (run as ``python tests/sweep_worker.py SPEC_JSON``, in a fresh process): one
:func:`alertclip.sweep.run_sweep` with the cheap fake objective below. Not a test module itself (no ``test_`` prefix).

SPEC_JSON: ``{"sweep": {...every SweepParams key...}, "out": DIR, "calls": FILE, "crash": "none"|"kill"|"raise",
"crash_call": N}``: the objective appends its params to ``calls`` (one JSON line per call) and, on its ``crash_call``-th
call in this process (1-based), after reporting the first epoch, SIGKILLs the process or raises. The settings the trials
start from are params.yaml's run ``full`` (tests/repo_params.py), with the sweep's epochs: tests/test_sweep.py's ``BASE``, so
a sweep the test runs on the same storage finds the workers' study.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path

EPOCHS = 3


def fake_value(params: dict, epoch: int) -> float:
    """A smooth bowl over the four swept params, improving with the epochs."""
    base = ((math.log10(params["lr"]) + 4.0) ** 2 + 0.2 * (params["lambda_region"] - 1.0) ** 2
            + 0.1 * (params["lambda_hard"] - 2.0) ** 2 + (math.log10(params["temperature"]) + 1.3) ** 2)
    return base + 1.0 / (epoch + 1)


def fake_objective(params: dict, report, epochs: int = EPOCHS, on_epoch=None) -> float:
    values = []
    for epoch in range(epochs):
        value = fake_value(params, epoch)
        values.append(value)
        report(epoch, value)
        if on_epoch is not None:
            on_epoch(epoch)
    return min(values)


def main(spec_json: str) -> None:
    import optuna
    from repo_params import repo_run  # tests/ is on sys.path: this script's folder

    from alertclip.params import SweepParams
    from alertclip.sweep.run import run_sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = json.loads(spec_json)
    cfg = SweepParams.model_validate(spec["sweep"])
    calls = Path(spec["calls"])
    n_calls = 0

    def objective(params: dict, report) -> float:
        nonlocal n_calls
        n_calls += 1
        with calls.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(params, sort_keys=True) + "\n")

        def crash(epoch: int) -> None:
            if n_calls != spec.get("crash_call") or epoch != 0:
                return
            if spec.get("crash") == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif spec.get("crash") == "raise":
                raise RuntimeError("worker: injected failure in the middle of a trial")

        return fake_objective(params, report, cfg.epochs or EPOCHS, crash)

    base = repo_run("full", epochs=cfg.epochs or EPOCHS).model_dump()
    run_sweep(cfg, base, objective, out_dir=Path(spec["out"]))


if __name__ == "__main__":
    main(sys.argv[1])
