"""The generic training loop: schedule shape, exact resume, non-finite stop, SIGTERM checkpointing."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from alertclip.train.loop import (
    CHECKPOINT_NAME,
    LoopConfig,
    NonFiniteLossError,
    PermutationBatches,
    load_checkpoint,
    train,
    write_curve,
)
from alertclip.train.schedule import lr_multiplier, warmup_schedule

N_ITEMS, BATCH = 40, 8  # 5 steps per epoch


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_ITEMS, 6, generator=g)
    y = x @ torch.randn(6, 2, generator=g) + 0.1 * torch.randn(N_ITEMS, 2, generator=g)
    return x, y


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.1), nn.GELU(), nn.Linear(16, 2))  # dropout: RNG must resume too


def _setup(model_seed: int = 0, fail_at: int | None = None, fail=None):
    x, y = _data()
    model = _model(model_seed)
    calls = {"n": 0}

    def loss_fn(idx):
        calls["n"] += 1
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        if fail_at is not None and calls["n"] == fail_at:
            loss = fail(loss)
        return {"loss": loss, "mse": loss.detach()}

    return model, loss_fn, PermutationBatches(N_ITEMS, BATCH, seed=3, fetch=lambda idx: idx)


def _cfg(tmp: Path | None, **kw) -> LoopConfig:
    base = dict(epochs=3, lr=5e-2, warmup_steps=3, weight_decay=0.05, grad_clip=1.0, seed=11, checkpoint_dir=tmp,
                checkpoint_every=2)
    base.update(kw)
    return LoopConfig(**base)


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_schedule_warmup_then_cosine():
    f = lr_multiplier(total_steps=20, warmup_steps=4, kind="cosine", min_ratio=0.1)
    vals = [f(s) for s in range(20)]
    assert vals[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    assert all(b <= a + 1e-12 for a, b in zip(vals[4:], vals[5:]))  # non-increasing after warm-up
    assert f(20) == pytest.approx(0.1) and vals[-1] > 0.1
    step = lr_multiplier(total_steps=12, warmup_steps=2, kind="step", gamma=0.5, milestones=(0.5,))
    assert [step(s) for s in (0, 1, 2, 6, 7, 11)] == [0.5, 1.0, 1.0, 1.0, 0.5, 0.5]
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_schedule(opt, total_steps=10, warmup_steps=2)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == 1.0 and seen[1] == 2.0 and seen[-1] < 0.1
    with pytest.raises(ValueError, match="kind"):
        lr_multiplier(10, kind="linear")


def test_permutation_batches_are_reproducible():
    src = PermutationBatches(N_ITEMS, BATCH, seed=3, fetch=lambda idx: idx)
    full = list(src.epoch(1))
    assert len(full) == src.steps_per_epoch == 5
    assert [t.tolist() for t in src.epoch(1, start=3)] == [t.tolist() for t in full[3:]]
    assert sorted(torch.cat(full).tolist()) == list(range(N_ITEMS))
    assert torch.cat(full).tolist() != torch.cat(list(src.epoch(2))).tolist()


def test_resume_gives_identical_weights(tmp_path):
    ref_model, ref_loss, ref_src = _setup()
    ref = train(ref_model, ref_model.parameters(), ref_loss, ref_src, _cfg(tmp_path / "ref"))
    assert ref.step == ref.total_steps == 15 and not ref.interrupted
    epoch_loss = [sum(r["loss"] for r in ref.history if r["epoch"] == e) for e in range(3)]
    assert epoch_loss[2] < epoch_loss[0]
    assert [r["step"] for r in ref.history] == list(range(1, 16)) and "mse" in ref.history[0]

    # Graceful stop after 7 updates (checkpoint at 7), resume in a fresh model with other initial weights.
    m1, l1, s1 = _setup()
    part = train(m1, m1.parameters(), l1, s1, _cfg(tmp_path / "stop", stop_after=7))
    assert part.interrupted and part.step == 7
    assert load_checkpoint(tmp_path / "stop" / CHECKPOINT_NAME)["step"] == 7
    m2, l2, s2 = _setup(model_seed=99)
    rest = train(m2, m2.parameters(), l2, s2, _cfg(tmp_path / "stop"))
    assert rest.final["resumed_from_step"] == 7 and rest.step == 15
    _assert_same_state(ref_model, m2)
    assert rest.history == ref.history

    # Hard crash inside step 10: the checkpoint of step 8 is replayed from.
    m3, l3, s3 = _setup(fail_at=10, fail=lambda loss: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train(m3, m3.parameters(), l3, s3, _cfg(tmp_path / "crash"))
    assert load_checkpoint(tmp_path / "crash" / CHECKPOINT_NAME)["step"] == 8
    m4, l4, s4 = _setup(model_seed=5)
    train(m4, m4.parameters(), l4, s4, _cfg(tmp_path / "crash"))
    _assert_same_state(ref_model, m4)
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run

    write_curve(tmp_path / "curve.csv", ref.history)
    lines = (tmp_path / "curve.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,loss,lr,mse" and len(lines) == 16


def test_checkpoint_loads_weights_only(tmp_path):
    model, loss_fn, src = _setup()
    train(model, model.parameters(), loss_fn, src, _cfg(tmp_path, epochs=1))
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "step", "history"}
    assert state["step"] == 5


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    model, loss_fn, src = _setup(fail_at=6, fail=lambda loss: loss * float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss nan at step 6 .*last good checkpoint: .*last.pt \(step 4\)"):
        train(model, model.parameters(), loss_fn, src, _cfg(tmp_path))
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["step"] == 4 and len(state["history"]) == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert all(math.isfinite(p.detach().sum().item()) for p in model.parameters())  # the bad update was not applied


def test_sigterm_in_process_saves_and_returns(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    model, loss_fn, src = _setup(fail_at=3, fail=lambda loss: (os.kill(os.getpid(), signal.SIGTERM), loss)[1])
    res = train(model, model.parameters(), loss_fn, src, _cfg(tmp_path))
    assert res.interrupted and res.step == 3
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == 3
    assert signal.getsignal(signal.SIGTERM) == previous


SCRIPT = """
import sys, time
from pathlib import Path
import torch
from torch import nn
from alertclip.train.loop import LoopConfig, PermutationBatches, train

out = Path(sys.argv[1])
torch.manual_seed(0)
model = nn.Linear(4, 1)
x, y = torch.randn(64, 4), torch.randn(64, 1)

def loss_fn(idx):
    (out / "started").touch()
    time.sleep(0.05)
    return {"loss": nn.functional.mse_loss(model(x[idx]), y[idx])}

res = train(model, model.parameters(), loss_fn, PermutationBatches(64, 8, 0, lambda i: i),
            LoopConfig(epochs=1000, checkpoint_dir=out / "ckpt", checkpoint_every=0))
print("interrupted", res.interrupted, res.step)
sys.exit(143 if res.interrupted else 0)
"""


def test_sigterm_subprocess_saves_checkpoint(tmp_path):
    script = tmp_path / "run_train.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "interrupted True" in stdout and "Traceback" not in stderr
    state = load_checkpoint(tmp_path / "ckpt" / CHECKPOINT_NAME)
    assert state["step"] >= 1 and stdout.split()[-1] == str(state["step"])


@pytest.mark.parametrize("precision,expect", [("bf16", True), ("fp32", False), ("auto", False)])
def test_precision_autocast_on_cpu(precision, expect):
    model, loss_fn, batches = _setup()
    seen = []

    def spy(idx):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return loss_fn(idx)

    result = train(model, model.parameters(), spy, batches, _cfg(None, epochs=1, precision=precision))
    assert all(on == expect for on, _ in seen) and len(seen) == batches.steps_per_epoch
    if expect:
        assert all(dtype == torch.bfloat16 for _, dtype in seen)
    assert result.final["precision"] == ("bf16" if expect else "fp32")
    assert math.isfinite(result.final["final_loss"])


def test_precision_rejects_unknown():
    model, loss_fn, batches = _setup()
    with pytest.raises(ValueError, match="precision must be auto\\|bf16\\|fp32; got 'fp16'"):
        train(model, model.parameters(), loss_fn, batches, _cfg(None, precision="fp16"))
