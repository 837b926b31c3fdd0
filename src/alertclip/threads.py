"""torch's CPU thread count, pinned: the same stage gives the same bytes under Snakemake and DVC."""

from __future__ import annotations

import os

import torch


def pin_threads(n: int = 0) -> int:
    """Fix torch's CPU thread count (``n``, or every core shared by the processes ``torchrun`` starts on this
    machine when 0) and return it.

    Float reductions differ with the thread count, and Snakemake exports OMP_NUM_THREADS=<rule threads> while
    ``dvc repro`` exports nothing: without pinning, the same stage gives different bytes under the two engines.
    """
    n = n or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    torch.set_num_threads(n)
    return n
