"""Frozen image encoding throughput (the `features` stage's inner loop): images/s and MFU, side by side.

Issue 5, item 1 (on a lent GPU; random init, synthetic images):

    python benchmarks/bench_features.py --arch ViT-L-14 --image-size 224 --batch 512 --steps 20

Rows: plain open_clip ``encode_image`` under bf16 autocast (the reference loop: 1,781 img/s on an H100), the same
with bf16 weights (2,642 img/s), and the pipeline's :func:`alertclip.eval.features.prepare_for_inference` modes
(``auto`` = bf16 weights on CUDA, ``autocast``), each optionally ``torch.compile``-d. MFU = FLOPs per batch (counted
by ``FlopCounterMode``) / (time x measured bf16 matmul peak). On CPU (``--arch alertclip-tiny --image-size 64``) the
script runs in fp32 for checking, and the ratio column compares each row with the first.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
from pathlib import Path

import torch

from alertclip import factory
from alertclip.eval.features import prepare_for_inference

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_step import _sync, measured_peak_tflops  # noqa: E402 - the sibling script's peak measurement


def _time(fn, steps: int, device) -> float:
    fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="ViT-L-14")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    base, _, _, _ = factory.create(args.arch, pretrained=None, force_image_size=args.image_size)
    base = base.to(device).eval()
    x32 = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    peak = args.peak_tflops or measured_peak_tflops(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    cuda = device.type == "cuda"
    variants = [("open_clip autocast", "autocast_ref"), ("open_clip bf16 weights", "bf16_ref"),
                ("alertclip auto", "auto"), ("alertclip autocast", "autocast")] if cuda else \
        [("open_clip fp32", "fp32_ref"), ("alertclip fp32", "fp32")]
    rows = []
    for name, mode in variants:
        model = copy.deepcopy(base)
        ctx = contextlib.nullcontext()
        if mode == "autocast_ref":
            ctx = torch.autocast("cuda", dtype=torch.bfloat16)
        elif mode == "bf16_ref":
            model = model.to(torch.bfloat16)
        elif not mode.endswith("_ref"):
            model, ac = prepare_for_inference(model, mode)
            ctx = ac or contextlib.nullcontext()
        enc = torch.compile(model.encode_image) if args.compile else model.encode_image
        x = x32.to(next(model.parameters()).dtype)

        @torch.no_grad()
        def step():
            with ctx:
                enc(x, normalize=True)

        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        dt = _time(step, args.steps, device)
        rows.append({"variant": name, "images_per_s": args.batch / dt,
                     "mfu": counter.get_total_flops() / dt / (peak * 1e12)})
    dev = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"{dev}: {args.arch} {args.image_size}px, batch {args.batch}, peak {peak:.1f} TFLOP/s"
          f"{', compiled' if args.compile else ''}")
    print(f"{'variant':26} {'images/s':>10} {'MFU':>7} {'vs first':>9}")
    for r in rows:
        print(f"{r['variant']:26} {r['images_per_s']:10.1f} {r['mfu']:7.1%} {r['images_per_s'] / rows[0]['images_per_s']:8.2f}x")
    return rows


if __name__ == "__main__":
    main()
