# GENERATED from notebooks/08_pretraining.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/08_pretraining.ipynb, cell 29
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm


# %% notebooks/08_pretraining.ipynb, cell 31
def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, decay: str = "linear",
              min_ratio: float = 0.0) -> float:
    """The multiplier of the peak learning rate used at optimizer step `step` (counted from 0).

    Args:
        step: the optimizer step, 0 <= step < total_steps.
        total_steps: the length of the run.
        warmup_steps: steps of linear warm-up; the factor reaches 1 at step `warmup_steps - 1`.
        decay: "linear", "cosine" or "constant" after the warm-up.
        min_ratio: the factor reached at the last step.

    Returns:
        A float in [0, 1].
    """
    if decay not in ("linear", "cosine", "constant"):
        raise ValueError(f"decay must be 'linear', 'cosine' or 'constant', got {decay!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps)  # 0 -> 1
    progress = min(1.0, progress)
    if decay == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * shape


# %% notebooks/08_pretraining.ipynb, cell 36
def init_distributed() -> tuple[int, int]:
    """Join the process group that torchrun describes (once) and return `(rank, world_size)`.

    Without torchrun's environment variables (a notebook, a plain `python script.py`) this returns
    `(0, 1)` and starts nothing. On a machine with GPUs each process takes GPU `LOCAL_RANK` and the
    backend is NCCL; on CPUs it is gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def default_device() -> torch.device:
    """This process's GPU when there is one (torchrun: GPU `LOCAL_RANK`), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return torch.device("cpu")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a `DistributedDataParallel` wrapper (or the model itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) dict, list or tuple to `device`; leave the rest alone."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


# %% notebooks/08_pretraining.ipynb, cell 39
def sharded_batches(items: Sequence, batch_size: int, collate: Callable[[list, torch.Generator], Any],
                    seed: int = 0, lengths: Sequence[int] | None = None,
                    bucket_batches: int = 50) -> Callable[..., Any]:
    """Make a batch function `batches(step, rank=0, world_size=1)` over a list of examples.

    Args:
        items: the training examples.
        batch_size: examples per global batch (all processes together); a multiple of the number of
            processes.
        collate: `collate(examples, generator) -> batch`; use `generator` for any randomness.
        seed: shuffles the examples (a new order each epoch) and seeds the collate generators.
        lengths: optional length of each example; then batches hold examples of similar length.
        bucket_batches: with `lengths`, how many batches' worth of shuffled examples are sorted together.

    Returns:
        `batches(step, rank=0, world_size=1)`: the share of global batch `step` that process `rank`
        trains on: examples `rank, rank + world_size, ...` of the global batch. An epoch is
        `len(items) // batch_size` batches; the remainder waits for another epoch.
    """
    if not 0 < batch_size <= len(items):
        raise ValueError(f"batch_size must be between 1 and the number of items ({len(items)}), "
                         f"got {batch_size}")
    if lengths is not None and len(lengths) != len(items):
        raise ValueError(f"lengths must give one length per item ({len(items)}), got {len(lengths)}")
    per_epoch = len(items) // batch_size
    cache: dict[int, list[torch.Tensor]] = {}

    def epoch_batches(epoch: int) -> list[torch.Tensor]:
        if epoch not in cache:
            generator = torch.Generator().manual_seed(seed * 7919 + epoch)
            order = torch.randperm(len(items), generator=generator)[:per_epoch * batch_size]
            if lengths is None:
                cache.clear()
                cache[epoch] = list(order.view(per_epoch, batch_size))
            else:
                size = torch.as_tensor(lengths)
                window = batch_size * bucket_batches
                chunks = []
                for start in range(0, len(order), window):
                    chunk = order[start:start + window]
                    chunk = chunk[torch.argsort(size[chunk], stable=True)]        # similar lengths together
                    chunks.extend(chunk.view(-1, batch_size))
                shuffle = torch.randperm(len(chunks), generator=generator)
                cache.clear()
                cache[epoch] = [chunks[i] for i in shuffle.tolist()]
        return cache[epoch]

    def batches(step: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} must be divisible by the number of processes "
                             f"({world_size}); choose a multiple of {world_size}")
        epoch, index = divmod(step, per_epoch)
        chosen = epoch_batches(epoch)[index][rank::world_size]
        generator = torch.Generator().manual_seed(((seed * 1_000_003) + step) * 1009 + rank)
        return collate([items[i] for i in chosen.tolist()], generator)

    return batches


# %% notebooks/08_pretraining.ipynb, cell 43
@dataclass
class TrainingConfig:
    """Settings of a training run (see `train`).

    Attributes:
        steps: optimizer steps of the whole run.
        lr: the peak learning rate.
        warmup_steps: steps of linear warm-up from 0 to `lr`.
        decay: "linear", "cosine" or "constant" after the warm-up.
        min_lr_ratio: the learning rate at the last step, as a fraction of `lr`.
        weight_decay: AdamW's decoupled weight decay, applied to matrices only (not to biases,
            norms' gains or embeddings of one dimension).
        betas, eps: AdamW's moment coefficients and epsilon (wav2vec 2.0's: 0.9, 0.98, 1e-6).
        max_grad_norm: clip the global gradient norm to this (None: do not clip).
        bf16: autocast to bfloat16 on a GPU.
        bf16_on_cpu: autocast to bfloat16 on a CPU too. It needs a CPU with bfloat16 instructions
            (`cpu_supports_bf16()`; without them `train` raises). Off by default: for this chapter's tiny model
            it made the steps slower, not faster (float32 matrix products of 144 channels are already fast,
            and autocast adds conversions).
        log_every: average the metrics over this many steps into one row of the history.
        eval_every: call `eval_fn` every this many steps (and after the last); None: only after the last.
        checkpoint_dir: where `last.pt` is written; None: no checkpoints.
        checkpoint_every: write a checkpoint every this many steps (and after the last).
        resume: continue from `checkpoint_dir/last.pt` when it exists.
        progress: show a tqdm progress bar (process 0 only).
        seed: seeds torch, numpy and random (plus the process's rank) at the start of a fresh run.
        find_unused_parameters: passed to DistributedDataParallel. True by default: Wav2Vec2-Conformer
            models carry parameters that their forward never uses (``pos_conv_embed``, chapter 5) and
            LayerDrop skips blocks at random, which DDP must be told about. False is a little faster for
            models whose every parameter gets a gradient at every step.
        max_skipped_steps: give up after this many steps in a row with a non-finite gradient.
        fused_adamw: update all parameters with PyTorch's fused AdamW kernel (`fused=True`) instead of one call
            per operation. On a CPU the update takes a third of the time (chapter 13); it agrees with the
            default to about 1e-7 per step, not bit for bit, so it is off by default: this book's training runs
            were made without it.
    """
    steps: int
    lr: float = 1e-3
    warmup_steps: int = 0
    decay: str = "linear"
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    max_grad_norm: float | None = 1.0
    bf16: bool = True
    bf16_on_cpu: bool = False
    log_every: int = 10
    eval_every: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    resume: bool = True
    progress: bool = True
    seed: int = 0
    find_unused_parameters: bool = True
    max_skipped_steps: int = 10
    fused_adamw: bool = False


class History(list):
    """The logged rows of a run: dictionaries, each with the `"step"` it was logged at."""

    def curve(self, key: str) -> tuple[list[int], list[float]]:
        """Steps and values of `key`, over the rows that have it (for plotting)."""
        rows = [row for row in self if key in row]
        return [row["step"] for row in rows], [row[key] for row in rows]

    def last(self, key: str) -> float:
        """The last logged value of `key`."""
        values = self.curve(key)[1]
        if not values:
            raise KeyError(f"no row of the history has {key!r}; keys logged: {sorted(set().union(*self))}")
        return values[-1]


# %% notebooks/08_pretraining.ipynb, cell 45
def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and CUDA) random number generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, step: int, history: list) -> None:
    """Write a resumable checkpoint (collective: every process calls it, process 0 writes)."""
    states = [_rng_state()]
    if dist.is_available() and dist.is_initialized():
        states = [None] * dist.get_world_size()
        dist.all_gather_object(states, _rng_state())
    if states and (not dist.is_initialized() or dist.get_rank() == 0):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "step": step, "history": list(history),
                    "rng": states}, tmp)
        os.replace(tmp, path)


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None) -> tuple[int, History]:
    """Restore what `save_checkpoint` wrote; return `(step, history)`.

    Each process restores its own random number generators when the number of processes is the one
    that wrote the checkpoint (otherwise they are seeded afresh from the step).
    """
    # our own file, holding numpy's and Python's RNG states: not weights only
    state = torch.load(path, map_location="cpu", weights_only=False)
    unwrap(model).load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if len(state["rng"]) == world_size:
        _set_rng_state(state["rng"][rank])
    else:
        seed_everything(state["step"] * 1009 + rank)
    return state["step"], History(state["history"])


# %% notebooks/08_pretraining.ipynb, cell 47
def cpu_supports_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions: AVX512-BF16 (Intel Cooper Lake and later, AMD Zen 4 and later)
    or AMX (Intel Sapphire Rapids and later) on x86, the BF16 extension on ARM. Without them PyTorch still
    computes in bfloat16 on the CPU, by converting to float32, which is slower than float32 itself."""
    # torch 2.13 reads the CPU's feature flags in these (private) functions; an older torch lacks them: no bf16
    try:
        if platform.machine().lower() in ("x86_64", "amd64", "x86", "i386", "i686"):
            checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
            return any(bool(check()) for check in checks if check is not None)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())     # aarch64: the BF16 extension
    except (AttributeError, RuntimeError):
        return False


def autocast_bf16(config: TrainingConfig, device: torch.device) -> bool:
    """Whether `train` autocasts to bfloat16 on `device` (see `TrainingConfig.bf16` and `.bf16_on_cpu`)."""
    if device.type == "cuda":
        return config.bf16
    if device.type == "cpu" and config.bf16_on_cpu:
        if not cpu_supports_bf16():
            raise ValueError("TrainingConfig.bf16_on_cpu=True asks for bfloat16 on a CPU without bfloat16 "
                             "instructions (AVX512-BF16 or AMX; cpu_supports_bf16() is False here), where it would be "
                             "emulated: slower than float32 and less accurate. Set bf16_on_cpu=False to train in "
                             "float32, or train on a GPU")
        return True
    return False


def make_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, with weight decay on matrices only.

    It updates all parameters with one call per operation (`foreach=True`, the default on a GPU; on a CPU
    it gives exactly the numbers of the loop over parameters, in about half the time), or, with
    `config.fused_adamw`, with one fused kernel per parameter (faster still, equal to rounding).
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=config.betas,
                             eps=config.eps, **({"fused": True} if config.fused_adamw else {"foreach": True}))


def _batch_source(batches, rank: int, world_size: int) -> Callable[[int], Any]:
    """A function step -> batch, from a batch function or from an iterable (a DataLoader)."""
    if callable(batches) and not hasattr(batches, "__iter__"):
        return lambda step: batches(step, rank, world_size)
    state = {"iterator": iter(batches), "epoch": 0}

    def next_batch(step):
        try:
            return next(state["iterator"])
        except StopIteration:  # the next epoch; a DistributedSampler reshuffles with set_epoch
            state["epoch"] += 1
            sampler = getattr(batches, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(state["epoch"])
            state["iterator"] = iter(batches)
            return next(state["iterator"])

    return next_batch


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


# %% notebooks/08_pretraining.ipynb, cell 48
def train(model: nn.Module, batches: Callable[..., Any] | Iterable, step_fn: Callable[[nn.Module, Any], dict],
          config: TrainingConfig, *, hooks: Sequence[Callable[[int, nn.Module], dict | None]] = (),
          eval_fn: Callable[[nn.Module], dict] | None = None, optimizer: torch.optim.Optimizer | None = None,
          device: str | torch.device | None = None) -> History:
    """Train `model` in place for `config.steps` optimizer steps; return the logged history.

    Runs unchanged in a notebook and under `torchrun --nproc_per_node=N` (then each process trains a
    DistributedDataParallel copy on its share of every batch; only process 0 shows progress, logs
    evaluations and writes checkpoints).

    Args:
        model: the module to train (moved to `device`).
        batches: `batches(step, rank, world_size) -> batch` (see `sharded_batches`), or an iterable
            of batches such as a DataLoader (repeated when exhausted; with several processes give it
            a DistributedSampler; a resumed run then restarts the data from the beginning).
        step_fn: `step_fn(model, batch) -> dict` with a scalar `"loss"`; optionally `"num_items"`
            (the loss is then a sum over that many items and is divided by the global count); every
            other entry is a scalar to log (averaged over steps and processes). `model` may be the
            DDP wrapper: call it, and reach attributes through `unwrap(model)`.
        config: the settings.
        hooks: `hook(step, model)` called before every step with the unwrapped model; a returned
            dict is logged (e.g. the Gumbel temperature).
        eval_fn: `eval_fn(model) -> dict` of metrics, run by process 0 in eval mode without gradients
            every `config.eval_every` steps and after the last one.
        optimizer: an optimizer of your own (e.g. with parameter groups); default `make_optimizer`.
        device: default `default_device()`.

    Returns:
        The `History`: rows `{"step", "lr", "loss", "grad_norm", "skipped", "seconds", ...}` every
        `config.log_every` steps, and the `eval_fn` rows.
    """
    rank, world_size = init_distributed()
    device = torch.device(device) if device is not None else default_device()
    model.to(device).train()
    optimizer = optimizer if optimizer is not None else make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, config.steps, config.warmup_steps, config.decay, config.min_lr_ratio))
    checkpoint = Path(config.checkpoint_dir) / "last.pt" if config.checkpoint_dir else None
    start, history = 0, History()
    if checkpoint is not None and config.resume and checkpoint.exists():
        start, history = load_checkpoint(checkpoint, model, optimizer, scheduler)
    else:
        seed_everything(config.seed + rank)
    wrapped = model
    if world_size > 1:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=config.find_unused_parameters)
    next_batch = _batch_source(batches, rank, world_size)
    params = [p for p in model.parameters() if p.requires_grad]
    use_bf16 = autocast_bf16(config, device)
    sums: dict[str, torch.Tensor] = {}  # metrics summed since the last log row
    logged_steps, skipped_in_a_row = 0, 0
    skipped = next((row["skipped"] for row in reversed(history) if "skipped" in row), 0)  # on resuming
    started = time.perf_counter()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="train",
               disable=not config.progress or rank != 0)

    def add(key, value):
        value = value.detach().float() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
        sums[key] = sums.get(key, torch.zeros((), device=device)) + value.to(device)

    try:
        for step in bar:
            for hook in hooks:
                for key, value in (hook(step, model) or {}).items():
                    add(key, value)
            batch = move_to(next_batch(step), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = step_fn(wrapped, batch)
            loss = out["loss"].float()
            if "num_items" in out:
                # the loss is a sum: divide by the global number of items (DDP averages, hence * world_size)
                items = torch.as_tensor(out["num_items"], dtype=torch.float32, device=device).reshape(())
                global_items = _all_reduce_sum(items.clone())
                objective = loss * world_size / global_items.clamp(min=1.0)
                add("loss_sum", loss)
                add("loss_items", items)
            else:
                objective = loss
                add("loss", loss)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm or float("inf"), foreach=True)
            if torch.isfinite(norm):  # the same on every process: the gradients are all-reduced
                optimizer.step()
                skipped_in_a_row = 0
                add("grad_norm", norm)
            else:
                skipped, skipped_in_a_row = skipped + 1, skipped_in_a_row + 1
                if skipped_in_a_row > config.max_skipped_steps:
                    raise FloatingPointError(
                        f"the gradient was not finite in {skipped_in_a_row} steps in a row (up to step {step}); "
                        "lower the learning rate, clip harder (max_grad_norm) or look for bad input")
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            for key, value in out.items():
                if key not in ("loss", "num_items"):
                    add(key, value)
            logged_steps += 1
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                keys = sorted(sums)
                totals = _all_reduce_sum(torch.stack([sums[k] for k in keys]))
                means = dict(zip(keys, (totals / (logged_steps * world_size)).tolist()))
                if "loss_sum" in means:
                    means["loss"] = means.pop("loss_sum") / max(means.pop("loss_items"), 1.0)
                row = {"step": done, "lr": lr, **means, "skipped": skipped,
                       "seconds": time.perf_counter() - started}
                history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                sums, logged_steps = {}, 0
            if eval_fn is not None and ((config.eval_every and done % config.eval_every == 0) or done == config.steps):
                if rank == 0:
                    model.eval()
                    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        history.append({"step": done, **eval_fn(model)})
                    model.train()
            if checkpoint is not None and ((config.checkpoint_every and done % config.checkpoint_every == 0)
                                           or done == config.steps):
                save_checkpoint(checkpoint, model, optimizer, scheduler, done, history)
    finally:
        bar.close()
    return history
