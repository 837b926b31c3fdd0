"""A tuned checkpoint written on the device reloads on CPU with equal outputs (issue 28): bf16 tolerance on CUDA.

    python benchmarks/reload_check.py data/models/full [more model dirs]

Encodes a seeded batch of frames and captions with the model on the device it was trained on (bf16 autocast on CUDA,
as the pipeline runs) and with the same files loaded on CPU in fp32; prints the largest embedding difference and the
smallest cosine per model. Exit 1 when a cosine falls under ``--min-cos`` (0.99 on CUDA: bf16 keeps ~3 significant
digits; on CPU both sides are fp32 and must agree to 1e-6).
"""

from __future__ import annotations

import argparse
import contextlib

import torch

from alertclip.tune.checkpoints import load_tuned


def embeddings(model_dir: str, device: torch.device, images: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, ...]:
    """Image, caption and clip (temporal module) embeddings of one model on ``device``."""
    model, tokenizer = load_tuned(model_dir)
    model.to(device)
    bf16 = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with torch.no_grad(), bf16:
        v = model.clip.encode_image(images.to(device), normalize=True)
        t = model.clip.encode_text(tokenizer(texts).to(device), normalize=True)
        clip = model.encode_video(images.to(device).view(2, -1, *images.shape[1:]))  # two clips, temporal module
    return v.float().cpu(), t.float().cpu(), clip.float().cpu()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dirs", nargs="+")
    ap.add_argument("--min-cos", type=float, default=None, help="default: 0.99 on CUDA, 1 - 1e-6 on CPU")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    floor = args.min_cos if args.min_cos is not None else (0.99 if device.type == "cuda" else 1 - 1e-6)
    texts = ["a person walking in a street", "two people fighting", "a car parked close to a wall", "a fire"]
    bad = 0
    for model_dir in args.model_dirs:
        model, _ = load_tuned(model_dir)
        size = model.clip.visual.image_size
        size = size if isinstance(size, int) else size[0]
        images = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(0))
        on_device = embeddings(model_dir, device, images, texts)
        on_cpu = embeddings(model_dir, torch.device("cpu"), images, texts)
        for what, a, b in zip(("image", "text", "video"), on_device, on_cpu):
            cos = float((a * b).sum(-1).min())
            diff = float((a - b).abs().max())
            ok = cos >= floor
            bad += not ok
            print(f"{model_dir} {what}: {device.type} vs cpu, min cos {cos:.6f}, max |diff| {diff:.2e} "
                  f"{'ok' if ok else f'FAIL (< {floor})'}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
