"""A sweep's outputs (results/sweep/): trials table, best.json (a row of runs sets its values to train with them), plots."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..io import atomic_path, write_json
from ..params import SWEPT, SweepParams

if TYPE_CHECKING:
    import optuna

from .best import BEST_FILE, DEFAULT_OUT
from .study import finished_states, selected_trials, trial_counts

log = logging.getLogger(__name__)


OBJECTIVE = "min over epochs of the unweighted validation loss global + hard"

def trials_table(trials: list):
    """One row per trial: number, state, value, best_epoch, params_<name> (one column per swept key), epoch_values
    (the reported per-epoch objective, in epoch order)."""
    import polars as pl

    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        steps = sorted(t.intermediate_values)
        curve = [float(t.intermediate_values[s]) for s in steps]
        best_epoch = steps[min(range(len(curve)), key=curve.__getitem__)] if curve else None
        row = {"number": t.number, "state": t.state.name, "value": t.value, "best_epoch": best_epoch,
               "n_epochs": len(curve)}
        row.update({f"params_{k}": t.params.get(k) for k in SWEPT})
        row["epoch_values"] = curve
        rows.append(row)
    schema = {"number": pl.Int64, "state": pl.String, "value": pl.Float64, "best_epoch": pl.Int64, "n_epochs": pl.Int64,
              **{f"params_{k}": pl.Float64 for k in SWEPT}, "epoch_values": pl.List(pl.Float64)}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def _savefig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def _text_figure(text: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def _importance_evaluator(seed: int):
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(seed=seed)


def importances(study: "optuna.Study", seed: int) -> dict[str, float] | None:
    """fANOVA importances (seeded, rounded) of the swept params; None with fewer than 2 COMPLETE trials."""
    import optuna

    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        imp = optuna.importance.get_param_importances(study, evaluator=_importance_evaluator(seed))
    return {k: round(float(v), 6) for k, v in sorted(imp.items())}


def render_plots(study: "optuna.Study", out_dir: Path, seed: int = 0) -> list[Path]:
    """``optimization_history.png`` and ``param_importances.png`` (matplotlib Agg; deterministic bytes)."""
    import matplotlib

    matplotlib.use("Agg")  # headless; the sweep never shows a window
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    out_dir = Path(out_dir)
    paths = [out_dir / "optimization_history.png", out_dir / "param_importances.png"]
    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    # optuna's plots switch the global style to ggplot: start every render from the same (restored) rc state
    style = plt.style.context(["default", "ggplot", {"figure.figsize": (9, 4.5)}])
    with warnings.catch_warnings(), style:
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if n_complete:
            fig = ovm.plot_optimization_history(study, target_name="val global + hard").figure
        else:
            fig = _text_figure("No COMPLETE trial: nothing to plot")
        fig.tight_layout()
        _savefig(fig, paths[0])
        plt.close(fig)
        if n_complete >= 2:
            fig = ovm.plot_param_importances(study, evaluator=_importance_evaluator(seed)).figure
        else:
            fig = _text_figure(f"Parameter importances need at least 2 COMPLETE trials (this study has {n_complete})")
        fig.tight_layout()
        _savefig(fig, paths[1])
        plt.close(fig)
    return paths


def _view(study: "optuna.Study", trials: list) -> "optuna.Study":
    """An in-memory study holding ``trials`` only (for the plots and importances of the selected trials)."""
    import optuna

    view = optuna.create_study(study_name=study.study_name, direction="minimize",
                               storage=optuna.storages.InMemoryStorage())
    view.add_trials([t for t in trials if t.state in finished_states()])
    return view


def write_outputs(study: "optuna.Study", cfg: SweepParams, out_dir: Path = DEFAULT_OUT) -> dict:
    """``trials.parquet``, ``best.json``, the two PNGs (from the first ``n_trials`` finished trials); returns best."""
    import optuna

    out_dir = Path(out_dir)
    trials = selected_trials(study, cfg.n_trials)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"sweep: no COMPLETE trial in study {study.study_name!r} ({trial_counts(trials)}): no best")
    best_t = min(complete, key=lambda t: (t.value, t.number))
    view = _view(study, trials)
    table = trials_table(trials)
    with atomic_path(out_dir / "trials.parquet") as tmp:
        table.write_parquet(tmp)
    curve = [best_t.intermediate_values[s] for s in sorted(best_t.intermediate_values)]
    best = {"objective": OBJECTIVE, "study": study.study_name, "n_trials": cfg.n_trials, **trial_counts(trials),
            "best_trial": best_t.number, "value": float(best_t.value), "params": {k: best_t.params[k] for k in SWEPT},
            "best_epoch": sorted(best_t.intermediate_values)[curve.index(min(curve))] if curve else None}
    imp = importances(view, cfg.seed)
    if imp is not None:
        best["importances"] = imp
    write_json(out_dir / BEST_FILE, best)
    render_plots(view, out_dir, cfg.seed)
    return best
