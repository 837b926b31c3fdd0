"""Pick a tuning run's learning rate on VALIDATION data only (clips of held-out training videos; never the test set).

For each ``--lr`` (and each ``--set`` variant of other settings), trains the run exactly as the pipeline does
(params.yaml, with only those settings replaced), keeps the epoch with the best validation zero-shot AUC
(``select_on``), and prints that AUC and the validation losses side by side. Nothing under data/ or results/ is
written; ``--save DIR`` keeps each run's model in ``DIR/<run>`` (for ``benchmarks/probe_signal.py``).

    python benchmarks/select_lr.py --run stage1 --lr 1e-3 3e-4 1e-4
    python benchmarks/select_lr.py --run stage1 --lr 1e-3 --set train_text=all train_text=frozen
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alertclip.params import RunSettings, load_params, run_settings
from alertclip.threads import pin_threads
from alertclip.tune.checkpoints import save_tuned
from alertclip.tune.run import tune


def overrides(text: str, base: RunSettings) -> dict:
    """``"a=1,b=frozen"`` -> ``{"a": 1, "b": "frozen"}``, each value cast to the type of the config's own field."""
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=", 1)
        if not hasattr(base, key):
            raise SystemExit(f"--set {item}: the run settings have no field {key!r}")
        current = getattr(base, key)
        out[key] = value if isinstance(current, str) or current is None else type(current)(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="stage1", help="a key of params runs")
    ap.add_argument("--lr", type=float, nargs="+", required=True)
    ap.add_argument("--epochs", type=int, default=None, help="default: the run's")
    ap.add_argument("--set", nargs="+", default=[""], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="variants of other settings, each tried at every lr")
    ap.add_argument("--save", type=Path, default=None, help="keep each run's model under this directory")
    args = ap.parse_args(argv)
    pin_threads()
    p = load_params("params.yaml")
    base = run_settings(p.tune, p.runs[args.run], p.backbone.arch)
    rows = []
    for variant in args.set:
        for lr in args.lr:
            cfg = RunSettings.model_validate({**base.model_dump(), "lr": lr, "epochs": args.epochs or base.epochs,
                                             **overrides(variant, base)})
            name = f"lr{lr:g}" + ("-" + variant.replace(",", "-").replace("=", "_") if variant else "")
            model, _, m = tune(cfg, prompts=p.eval.prompts, snippet_len=p.frames.snippet_len, name=name)
            if args.save:
                save_tuned(model, cfg.arch, args.save / name)
            curve = " ".join(f"{r.get('auc', float('nan')):.3f}" for r in m["val"])
            rows.append((name, m.get("best_epoch"), m.get("best_val_auc"), m.get("best_val_total"), curve))
            print(f"{name}: kept epoch {rows[-1][1]}, val AUC {rows[-1][2]:.4f}, val total {rows[-1][3]:.4f}; "
                  f"val AUC per epoch {curve}", flush=True)
    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{'run':<{width}}{'kept':>4}  {'val AUC':>8}  {'val total':>9}  val AUC per epoch")
    for name, ep, auc, total, curve in rows:
        print(f"{name:<{width}}{ep:>4}  {auc:>8.4f}  {total:>9.4f}  {curve}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
