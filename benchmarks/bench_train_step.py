"""Training-step throughput of stage 1 and stage 2 at a given shape: images/s, peak memory, MFU.

Issue 4, item 7 (paper scale, on a lent GPU; random init, synthetic frames, no download):

    python benchmarks/bench_train_step.py --arch ViT-L-14 --image-size 224 --frames 8 --batch 32 --steps 10

Prints one row per variant side by side (stage 1 = global loss only, stage 2 = global + region + hard negatives
with K captions), each with images/s (B*T frames per step), peak memory and MFU = model FLOPs per step (counted
by ``torch.utils.flop_counter.FlopCounterMode`` on one real step, forward + backward) / (step time x measured
peak), where the peak is a measured large bf16 matmul (``--peak-tflops`` overrides it). The step is the
pipeline's own: :class:`alertclip.tune.BatchEncoder` + :func:`alertclip.losses.alert_clip_losses`, AdamW,
gradient clipping, bf16 autocast on CUDA (``--precision``), optional ``--grad-checkpointing`` / ``--compile``.
On CPU (``--arch alertclip-tiny``) it runs too, for checking the script; MFU is then against a measured fp32 peak.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from alertclip import factory
from alertclip.losses import alert_clip_losses
from alertclip.model import AlertClipModel, TemporalTransformer
from alertclip.tune.batches import BatchEncoder


def measured_peak_tflops(device: torch.device, dtype: torch.dtype, n: int = 8192, reps: int = 20) -> float:
    """Dense matmul throughput: the denominator of MFU (what this card really does, not the datasheet)."""
    if device.type == "cpu":
        n, reps = 1024, 5
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batch(B: int, T: int, K: int, size: int, ctx_len: int, device: torch.device, g: torch.Generator) -> dict:
    boxes = torch.rand(B, T, 4, generator=g)
    boxes[..., 2:] = boxes[..., :2] + 0.3
    tok = lambda n: torch.randint(1, 49000, (n, ctx_len), generator=g)  # noqa: E731 - tiny helper
    b = {"frames": torch.randn(B, T, 3, size, size, generator=g), "mask": torch.ones(B, T, dtype=torch.bool),
         "boxes": boxes.clamp(0, 1), "text": tok(B), "region_text": tok(B), "neg_text": tok(B * K),
         "neg_valid": torch.ones(B, K, dtype=torch.bool),
         "text_id": torch.arange(B), "region_id": torch.arange(B)}  # random captions: all distinct
    return {k: v.to(device) for k, v in b.items()}


def run_variant(model: AlertClipModel, batch: dict, full: bool, steps: int, precision: str, use_compile: bool) -> dict:
    device = batch["frames"].device
    encoder = BatchEncoder(model)
    fwd = torch.compile(encoder) if use_compile else encoder
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    lam = 1.0 if full else 0.0

    def step() -> None:
        with autocast():
            loss = alert_clip_losses(fwd(batch, full), lam, lam)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    from torch.utils.flop_counter import FlopCounterMode

    step()  # warm-up (and compilation)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    dt = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    B, T = batch["frames"].shape[:2]
    return {"step_s": dt, "images_per_s": B * T / dt, "flops_per_step": flops, "peak_gib": peak,
            "precision": "bf16" if bf16 else "fp32"}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="ViT-L-14")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--frames", type=int, default=8, help="T frames per clip")
    ap.add_argument("--batch", type=int, default=32, help="clips per step")
    ap.add_argument("--k", type=int, default=3, help="hard negatives per clip (stage 2)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--variants", default="stage1,stage2")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="MFU denominator; 0 = measure")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    clip, _, _, _ = factory.create(args.arch, pretrained=None, force_image_size=args.image_size)
    dim = clip.text_projection.shape[1] if isinstance(clip.text_projection, torch.nn.Parameter) else clip.embed_dim
    model = AlertClipModel(clip, TemporalTransformer(dim, layers=2, heads=8 if dim % 8 == 0 else 4)).to(device)
    model.clip.set_grad_checkpointing(args.grad_checkpointing)
    model.train()
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    peak = args.peak_tflops or measured_peak_tflops(device, torch.bfloat16 if bf16 and device.type == "cuda"
                                                     else torch.float32)
    batch = make_batch(args.batch, args.frames, args.k, args.image_size, clip.context_length, device, g)
    rows = []
    for name in args.variants.split(","):
        r = run_variant(model, batch, name == "stage2", args.steps, args.precision, args.compile)
        r.update(variant=name, arch=args.arch, batch=args.batch, frames=args.frames, image_size=args.image_size,
                 grad_checkpointing=args.grad_checkpointing, compile=args.compile, device=str(device),
                 peak_tflops=peak, mfu=r["flops_per_step"] / r["step_s"] / (peak * 1e12))
        rows.append(r)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}: {args.arch} {args.image_size}px, {args.batch} clips x {args.frames} frames, "
          f"measured peak {peak:.1f} TFLOP/s ({rows[0]['precision']})")
    print(f"{'variant':8} {'images/s':>10} {'step s':>8} {'TFLOP/step':>11} {'MFU':>6} {'peak GiB':>9}")
    for r in rows:
        print(f"{r['variant']:8} {r['images_per_s']:10.1f} {r['step_s']:8.3f} {r['flops_per_step'] / 1e12:11.2f} "
              f"{r['mfu']:6.1%} {r['peak_gib']:9.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
