"""Steps per second of chapter 8's pretraining recipe, for one or more checkouts of w2vc, side by side.

Each run is its own Python process that imports w2vc from the checkout given (its folder goes first on the
path), then runs ``w2vc.pretraining.pretrain`` with the chapter's recipe (the tiny preset, batches of 16 crops
of at most 2 s, the chapter's loop) cut to ``--steps`` steps, on ``--threads`` threads. The rate is measured
over steps 10 to N-2 (the first steps warm up; the evaluation after the last step is not counted), in wall-clock time and in the CPU time of the process (steadier on a machine
that others share). Runs alternate between the checkouts, ``--repeats`` times; the table shows the
median rate of each, its ratio to the first checkout's, and the logged loss at the last step (equal losses:
the same computation). Example::

    python tools/bench_pretraining.py --checkout main=/work/main --checkout lean=. --steps 60 --repeats 3

A checkout can be run with settings of the training loop that it knows: ``--checkout "lean-bf16=.:bf16_on_cpu"``
sets ``TrainingConfig.bf16_on_cpu=True`` for that run, and ``--checkout "sdpa=.:attn_implementation=sdpa"`` sets
a field of the model's configuration (here chapter 13's fast path). W2VC_CACHE must hold chapter 1's corpus.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import dataclasses, json, sys, time
import torch
checkout, steps, threads, switches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, checkout)
torch.set_num_threads(threads)
import w2vc, w2vc.pretraining as pretraining
assert w2vc.__file__.startswith(checkout), (w2vc.__file__, checkout)
# NAME=VALUE: a field of the model's config (attn_implementation=sdpa); NAME alone: a TrainingConfig switch
overrides = dict(item.split("=", 1) for item in switches.split(",") if "=" in item)
settings = {name: True for name in switches.split(",") if name and "=" not in name}
if overrides:
    base_recipe = pretraining.PretrainingRecipe
    pretraining.PretrainingRecipe = lambda **kw: base_recipe(**kw, config_overrides={**base_recipe().config_overrides,
                                                                                     **overrides})
if settings:
    known = {f.name for f in dataclasses.fields(pretraining.TrainingConfig)}
    unknown = set(settings) - known
    if unknown:
        raise SystemExit(f"this checkout's TrainingConfig has no {sorted(unknown)}")
    base = pretraining.TrainingConfig
    pretraining.TrainingConfig = lambda **kw: base(**{**kw, **settings})
# time steps 10 .. steps - 2 with a hook (it runs before each step): wall clock and this process's CPU time
marks = {}
train = pretraining.train
def timed_train(*args, hooks=(), **kwargs):
    def mark(step, model):
        if step in (10, steps - 1):
            marks[step] = (time.perf_counter(), time.process_time())
    return train(*args, hooks=[*hooks, mark], **kwargs)
pretraining.train = timed_train
recipe = pretraining.PretrainingRecipe(steps=steps, eval_every=10 ** 9)
model, history = pretraining.pretrain(recipe, progress=False)
rows = {row["step"]: row for row in history if "loss" in row}
n = steps - 1 - 10
(wall0, cpu0), (wall1, cpu1) = marks[10], marks[steps - 1]
print(json.dumps({"steps_per_second": n / (wall1 - wall0), "steps_per_cpu_second": n / (cpu1 - cpu0),
                  "loss": rows[steps]["loss"]}))
"""


def run(checkout: str, switches: str, steps: int, threads: int) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=checkout)
    done = subprocess.run([sys.executable, "-c", CHILD, checkout, str(steps), str(threads), switches], env=env,
                          capture_output=True, text=True, cwd=checkout)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {"error": last[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", default=[],
                        help="NAME=PATH[:SETTING,...] of a w2vc checkout (default: this one)")
    parser.add_argument("--steps", type=int, default=60, help="steps per run (at least 20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per checkout, alternating")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the chapter uses 2)")
    args = parser.parse_args(argv)
    if args.steps < 20 or args.steps % 10:
        parser.error(f"--steps must be a multiple of 10 and at least 20 (rows are logged every 10 steps), "
                     f"got {args.steps}")
    cases = []
    for item in args.checkout or [f"this={Path(__file__).resolve().parents[1]}"]:
        name, _, rest = item.partition("=")
        path, _, switches = rest.partition(":")
        cases.append((name, str(Path(path).resolve()), switches))
    results: dict[str, list[dict]] = {name: [] for name, _, _ in cases}
    for repeat in range(args.repeats):
        for name, path, switches in cases:
            result = run(path, switches, args.steps, args.threads)
            results[name].append(result)
            shown = result.get("error") or (f"{result['steps_per_second']:.3f} steps/s, "
                                            f"{result['steps_per_cpu_second']:.3f} steps/CPU-s, loss {result['loss']:.6f}")
            print(f"run {repeat + 1} {name}: {shown}", flush=True)
    print(f"\n{'checkout':<16} {'steps/s':>8} {'ratio':>6} {'steps/CPU-s':>12} {'ratio':>6}  {'runs (steps/s)':<22} "
          f"{'loss at the last step':>21}")
    first = None
    for name, _, _ in cases:
        good = [r for r in results[name] if "error" not in r]
        if not good:
            print(f"{name:<16} failed: {results[name][0]['error']}")
            continue
        wall = statistics.median(r["steps_per_second"] for r in good)
        cpu = statistics.median(r["steps_per_cpu_second"] for r in good)
        first = first or (wall, cpu)
        runs = " ".join(f"{r['steps_per_second']:.2f}" for r in good)
        print(f"{name:<16} {wall:>8.3f} {wall / first[0]:>5.2f}x {cpu:>12.3f} {cpu / first[1]:>5.2f}x  {runs:<22} "
              f"{good[0]['loss']:>21.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
