"""The training loop of chapter 8 (w2vc.training): schedule, batches, resuming, skipping, and DDP.

Run as a script (`python tests/test_training.py worker OUT`) this file is also the worker that the DDP
test starts under torchrun.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import w2vc.training
from w2vc.training import (History, TrainingConfig, cpu_supports_bf16, init_distributed, load_checkpoint, lr_factor,
                           make_optimizer, sharded_batches, train, unwrap)

N_ITEMS, BATCH, STEPS = 24, 8, 5


def _items():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_ITEMS, 3, 4, generator=g)
    y = torch.randn(N_ITEMS, 3, generator=g)
    keep = torch.rand(N_ITEMS, 3, generator=g) > 0.4  # a varying number of items per example
    keep[:, 0] = True
    return [{"x": x[i], "y": y[i], "keep": keep[i]} for i in range(N_ITEMS)]


def _collate(examples, generator):
    return {k: torch.stack([e[k] for e in examples]) for k in examples[0]}


def _model(dropout=0.0):
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))


def _step(model, batch):
    """A loss summed over the kept entries: their number varies from process to process."""
    pred = model(batch["x"]).squeeze(-1)  # (B, 3)
    err = ((pred - batch["y"]) ** 2)[batch["keep"]]
    return {"loss": err.sum(), "num_items": batch["keep"].sum(), "mean_pred": pred.mean()}


def _config(**kw):
    return TrainingConfig(steps=STEPS, lr=0.05, warmup_steps=2, log_every=1, progress=False, **kw)


def _run(tmp=None, **kw):
    model = _model()
    history = train(model, sharded_batches(_items(), BATCH, _collate, seed=3), _step, _config(**kw))
    return model, history


def _worker(out):
    """Runs in each torchrun process: train, then write this rank's parameters and history."""
    torch.set_num_threads(1)
    model, history = _run()
    rank, world_size = init_distributed()
    torch.save({"params": model.state_dict(), "history": list(history), "world_size": world_size},
               Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


# ---------------------------------------------------------------- the learning-rate schedule

def test_lr_factor_warms_up_then_decays_linearly():
    f = [lr_factor(s, 20, warmup_steps=4) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[-1] == 0.0 and all(a >= b for a, b in zip(f[3:], f[4:]))


def test_lr_factor_cosine_ends_at_min_ratio_and_constant_stays():
    assert lr_factor(9, 10, 0, "cosine", min_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(0, 10, 0, "cosine") == pytest.approx(1.0)
    assert lr_factor(7, 10, 2, "constant") == 1.0


def test_lr_factor_rejects_unknown_decay():
    with pytest.raises(ValueError, match="decay must be 'linear', 'cosine' or 'constant', got 'step'"):
        lr_factor(0, 10, decay="step")


# ---------------------------------------------------------------- batches

def test_sharded_batches_split_the_global_batch_and_reshuffle_each_epoch():
    batches = sharded_batches(list(range(10)), 4, lambda xs, g: xs, seed=1)
    whole = batches(0)
    halves = batches(0, 0, 2) + batches(0, 1, 2)
    assert sorted(halves) == sorted(whole) and len(set(whole)) == 4
    epoch0 = batches(0) + batches(1)
    assert len(set(epoch0)) == 8  # no repeats inside an epoch
    assert batches(2) != batches(0) or batches(3) != batches(1)  # a new order next epoch


def test_sharded_batches_give_collate_a_seeded_generator():
    draw = sharded_batches(list(range(10)), 2, lambda xs, g: torch.rand(1, generator=g).item(), seed=0)
    assert draw(5) == draw(5) and draw(5) != draw(6) and draw(5, 0, 2) != draw(5, 1, 2)


def test_sharded_batches_with_lengths_group_similar_lengths_and_keep_every_item():
    sizes = torch.randint(1, 1000, (640,), generator=torch.Generator().manual_seed(0)).tolist()
    batches = sharded_batches(list(range(640)), 16, lambda xs, g: xs, seed=2, lengths=sizes, bucket_batches=10)
    epoch = [batches(s) for s in range(40)]
    assert sorted(i for b in epoch for i in b) == list(range(640))  # one epoch: each item once
    spread = sum(max(sizes[i] for i in b) - min(sizes[i] for i in b) for b in epoch) / 40
    assert spread < 150, spread  # random batches of 16 would spread over ~900
    firsts = [min(sizes[i] for i in b) for b in epoch]
    assert firsts != sorted(firsts)  # the batches themselves come in random order
    assert sorted(batches(3, 0, 2) + batches(3, 1, 2)) == sorted(batches(3))


def test_sharded_batches_errors():
    with pytest.raises(ValueError, match=r"batch_size must be between 1 and the number of items \(3\), got 4"):
        sharded_batches([1, 2, 3], 4, lambda xs, g: xs)
    batches = sharded_batches(list(range(9)), 3, lambda xs, g: xs)
    with pytest.raises(ValueError, match="batch_size=3 must be divisible by the number of processes"):
        batches(0, 0, 2)
    with pytest.raises(ValueError, match=r"lengths must give one length per item \(9\), got 8"):
        sharded_batches(list(range(9)), 3, lambda xs, g: xs, lengths=[1] * 8)


# ---------------------------------------------------------------- the loop

def test_train_lowers_the_loss_and_logs_every_step():
    model, history = _run()
    assert [row["step"] for row in history] == list(range(1, STEPS + 1))
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[0]["lr"] == pytest.approx(0.05 * 0.5)  # warm-up: step 0 of 2
    assert {"grad_norm", "mean_pred", "skipped", "seconds"} <= set(history[0])
    steps, losses = history.curve("loss")
    assert steps == list(range(1, STEPS + 1)) and losses[-1] == history.last("loss")


def test_logged_loss_is_the_mean_over_the_items_of_the_batch():
    model = _model()
    batches = sharded_batches(_items(), BATCH, _collate, seed=3)
    first = batches(0)
    with torch.no_grad():
        expected = _step(model, first)
    expected = (expected["loss"] / expected["num_items"]).item()
    history = train(model, batches, _step, TrainingConfig(steps=1, lr=0.05, progress=False))
    assert history[0]["loss"] == pytest.approx(expected, rel=1e-6)


def test_optimizer_updates_all_parameters_at_once_with_the_numbers_of_the_loop():
    config = _config()
    assert make_optimizer(_model(), config).defaults["foreach"] is True
    looped = _model()
    plain = torch.optim.AdamW([{"params": [p for p in looped.parameters() if p.ndim >= 2], "weight_decay": 0.01},
                               {"params": [p for p in looped.parameters() if p.ndim < 2], "weight_decay": 0.0}],
                              lr=config.lr, betas=config.betas, eps=config.eps, foreach=False)
    train(looped, sharded_batches(_items(), BATCH, _collate, seed=3), _step, config, optimizer=plain)
    model, _ = _run()
    for a, b in zip(model.parameters(), looped.parameters()):
        assert torch.equal(a, b)


def test_fused_adamw_is_off_by_default_and_equals_the_default_to_rounding():
    assert make_optimizer(_model(), _config()).defaults["fused"] is not True
    assert make_optimizer(_model(), _config(fused_adamw=True)).defaults["fused"] is True
    model, _ = _run()
    fused = _model()
    train(fused, sharded_batches(_items(), BATCH, _collate, seed=3), _step, _config(fused_adamw=True))
    for a, b in zip(model.parameters(), fused.parameters()):
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def _autocast_seen(**kw):
    seen = []

    def step(model, batch):
        seen.append((torch.is_autocast_enabled("cpu"), model(batch["x"]).dtype))
        return _step(model, batch)

    train(_model(), sharded_batches(_items(), BATCH, _collate, seed=3), step, _config(**kw), device="cpu")
    return set(seen)


def test_bf16_on_cpu_is_off_by_default_and_autocasts_when_asked(monkeypatch):
    assert _autocast_seen() == {(False, torch.float32)}
    monkeypatch.setattr(w2vc.training, "cpu_supports_bf16", lambda: True)
    assert _autocast_seen(bf16_on_cpu=True) == {(True, torch.bfloat16)}
    assert _autocast_seen(bf16=False) == {(False, torch.float32)}       # bf16 is the GPU's switch


def test_bf16_on_cpu_without_bf16_instructions_is_refused(monkeypatch):
    monkeypatch.setattr(w2vc.training, "cpu_supports_bf16", lambda: False)
    with pytest.raises(ValueError, match=r"TrainingConfig.bf16_on_cpu=True asks for bfloat16 on a CPU without "
                                         r"bfloat16 instructions .*Set bf16_on_cpu=False to train in float32"):
        train(_model(), sharded_batches(_items(), BATCH, _collate, seed=3), _step, _config(bf16_on_cpu=True),
              device="cpu")


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU's flags from /proc/cpuinfo (Linux)")
def test_cpu_supports_bf16_follows_the_cpu_flags():
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    assert cpu_supports_bf16() == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})


def test_cpu_supports_bf16_asks_arm_for_its_bf16_extension(monkeypatch):
    import platform
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert cpu_supports_bf16() is True
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    assert cpu_supports_bf16() is False


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no bfloat16 instructions")
def test_bf16_on_cpu_trains():
    model = _model()
    history = train(model, sharded_batches(_items(), BATCH, _collate, seed=3), _step,
                    _config(bf16_on_cpu=True), device="cpu")
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())   # autocast: the weights stay float32


def test_history_last_names_the_missing_key():
    with pytest.raises(KeyError, match="no row of the history has 'accuracy'"):
        History([{"step": 1, "loss": 1.0}]).last("accuracy")


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """A run killed after 3 of 6 steps, resumed: same weights, bit for bit (dropout draws included)."""
    def run(directory, hooks=()):
        model = _model(dropout=0.3)
        config = TrainingConfig(steps=6, lr=0.05, warmup_steps=2, log_every=1, progress=False,
                                checkpoint_dir=str(directory), checkpoint_every=1)
        history = train(model, sharded_batches(_items(), BATCH, _collate, seed=3), _step, config, hooks=hooks)
        return model, history

    def crash_at_step_3(step, model):
        if step == 3:
            raise KeyboardInterrupt

    straight, h1 = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", hooks=[crash_at_step_3])  # killed before step 3: last.pt holds 3 steps
    assert load_checkpoint(tmp_path / "b" / "last.pt", _model(dropout=0.3))[0] == 3
    resumed, h2 = run(tmp_path / "b")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    step, history = load_checkpoint(tmp_path / "b" / "last.pt", _model(dropout=0.3))
    assert step == 6 and len(history) == 6


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_non_finite_gradients_skip_the_step_then_give_up():
    def step_fn(model, batch):
        out = _step(model, batch)
        return {**out, "loss": out["loss"] * float("nan")}

    model = _model()
    before = [p.clone() for p in model.parameters()]
    config = TrainingConfig(steps=3, lr=0.05, progress=False, log_every=1, max_skipped_steps=5)
    history = train(model, sharded_batches(_items(), BATCH, _collate), step_fn, config)
    assert [r["skipped"] for r in history] == [1, 2, 3]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    config = TrainingConfig(steps=5, lr=0.05, progress=False, max_skipped_steps=2)
    with pytest.raises(FloatingPointError, match="the gradient was not finite in 3 steps in a row"):
        train(model, sharded_batches(_items(), BATCH, _collate), step_fn, config)


def test_train_accepts_an_iterable_and_runs_hooks_and_eval():
    data = torch.utils.data.DataLoader(_items(), batch_size=BATCH, collate_fn=lambda xs: _collate(xs, None))
    seen = []

    def hook(step, model):
        seen.append(step)
        assert not isinstance(model, nn.parallel.DistributedDataParallel)
        return {"temperature": 2.0 - step}

    model = _model()
    config = TrainingConfig(steps=7, lr=0.05, log_every=7, eval_every=3, progress=False)
    history = train(model, data, _step, config, hooks=[hook], eval_fn=lambda m: {"eval_calls": float(not m.training)})
    assert seen == list(range(7))  # 7 steps over an iterable of 3 batches: it was repeated
    assert history.curve("eval_calls") == ([3, 6, 7], [1.0, 1.0, 1.0])  # in eval mode
    assert history.last("temperature") == pytest.approx(2.0 - 3.0)  # the mean of 2, 1, ..., -4
    assert model.training


# ---------------------------------------------------------------- two processes

def test_two_processes_with_gloo_match_one_process(tmp_path):
    """torchrun --nproc_per_node=2 on CPU: identical weights in both, and the one-process run's loss."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           __file__, "worker", str(tmp_path)]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    for name in r0["params"]:
        assert torch.equal(r0["params"][name], r1["params"][name]), name
    model, history = _run()  # one process, the same global batches
    assert [row["loss"] for row in r0["history"]] == pytest.approx([row["loss"] for row in history], rel=1e-5)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(r0["params"][name], value, rtol=1e-5, atol=1e-6)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(sys.argv[2])
