"""Pick a tuning stage's learning rate on VALIDATION data only (clips of held-out training videos; never the test set).

For each ``--lr``, trains the stage exactly as the pipeline does (params.yaml, with only ``lr`` replaced), keeps the
epoch with the best validation zero-shot AUC (``select_on``), and prints that AUC and the validation losses side by
side. Nothing under data/ or results/ is written; the pipeline's own outputs stay as they are.

    python benchmarks/select_lr.py --stage stage1 --lr 1e-3 3e-4 1e-4
"""

from __future__ import annotations

import argparse
import dataclasses

from alertclip.params import load_params
from alertclip.train import pin_threads
from alertclip.tune import TuneConfig, tune


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=["stage1", "stage2"], default="stage1")
    ap.add_argument("--lr", type=float, nargs="+", required=True)
    ap.add_argument("--epochs", type=int, default=None, help="default: the stage's params")
    args = ap.parse_args(argv)
    pin_threads()
    p = load_params("params.yaml")
    base = TuneConfig.from_params(getattr(p, args.stage))
    rows = []
    for lr in args.lr:
        cfg = dataclasses.replace(base, lr=lr, epochs=args.epochs or base.epochs)
        _, _, m = tune(cfg, args.stage, prompts=p.eval.prompts)
        curve = " ".join(f"{r.get('auc', float('nan')):.3f}" for r in m["val"])
        rows.append((lr, m.get("best_epoch"), m.get("best_val_auc"), m.get("best_val_total"), curve))
        print(f"lr {lr:g}: kept epoch {rows[-1][1]}, val AUC {rows[-1][2]:.4f}, val total {rows[-1][3]:.4f}; "
              f"val AUC per epoch {curve}", flush=True)
    print(f"\n{'lr':>8}  {'kept':>4}  {'val AUC':>8}  {'val total':>9}  val AUC per epoch")
    for lr, ep, auc, total, curve in rows:
        print(f"{lr:>8g}  {ep:>4}  {auc:>8.4f}  {total:>9.4f}  {curve}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
