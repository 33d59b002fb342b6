"""What pretraining buys, measured outside the book: chapter 9's scratch-recipe search and label-efficiency curve.

Chapter 9 trains a CTC recogniser on the synthesized corpus, fine-tuned from chapter 8's pretrained tiny model
and from scratch. Two of its results take longer to measure than a chapter may run, so this script measures
them and stores them in ``w2vc/results/label_efficiency.json``, which the chapter reads (and re-runs two points
of, comparing them with the stored ones):

``tune``
    The recipes. Each fine-tuning candidate (``FINETUNE_CANDIDATES``) fine-tunes the pretrained body for
    chapter 9's 500 steps; the best by CER on the unseen voices must be chapter 9's ``FINETUNE_RECIPE``. Then
    the scratch baseline's own recipe: each candidate (peak learning rate, warm-up, decay) trains the tiny
    model from scratch on all 3,000 labelled utterances for the *fair budget*: as many steps as fit in the
    wall-clock time of chapter 8's pretraining plus chapter 9's fine-tuning, measured on this machine. The
    best candidate by CER on the unseen voices becomes the scratch recipe.
``curve``
    CER on the unseen voices against the number of labelled utterances (the first N of the shuffled training
    set), for the pretrained body fine-tuned by chapter 9's recipe and for the model from scratch by its tuned
    recipe, the same number of steps at every point.

Usage (2 CPU cores; run one at a time, nothing else heavy beside it)::

    python tools/label_efficiency.py tune     # about 25 minutes
    python tools/label_efficiency.py curve    # about 20 minutes (needs tune's scratch recipe)
    python tools/label_efficiency.py point --init scratch --labels 150   # one point, printed

Each command updates its part of the JSON file and leaves the other parts as they are.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import torch

from w2vc.bench import machine as bench_machine
from w2vc.ctc_training import (FINETUNE_CANDIDATES, FINETUNE_RECIPE, LABEL_COUNTS, LABEL_EFFICIENCY_FILE,
                               SCRATCH_CANDIDATES, ctc_experiment)

torch.set_num_threads(int(os.environ.get("W2VC_THREADS", "2")))


def load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def save_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print("wrote", path)


def machine() -> dict:
    """Where and when a result was measured: the CPU (model name and cores, as the bench says it), threads, torch."""
    return {"cpu": bench_machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}


def tune(args) -> None:
    results = load_results(args.out)
    pretraining_s = args.pretraining_seconds
    # The fine-tuning half of the budget: chapter 9's 500 steps on all labels, each candidate recipe, timed here.
    finetunes = []
    for recipe in FINETUNE_CANDIDATES:
        run = ctc_experiment("pretrained", 3000, steps=FINETUNE_RECIPE["steps"], **recipe, eval_every=50)
        print(f"  fine-tuning {recipe}: CER {run['cer']:.3f}, WER {run['wer']:.3f} in {run['seconds']:.0f} s", flush=True)
        finetunes.append(run)
    finetune = min(finetunes, key=lambda r: r["cer"])
    if any(finetune[k] != FINETUNE_RECIPE[k] for k in FINETUNE_RECIPE):
        print(f"note: the best fine-tuning recipe is not chapter 9's FINETUNE_RECIPE {FINETUNE_RECIPE}; make it "
              f"FINETUNE_CANDIDATES' {FINETUNE_CANDIDATES.index({k: finetune[k] for k in ('lr', 'warmup_steps', 'decay')})}"
              f" in notebooks/09_ctc.ipynb, export, and run the curve")
    budget_s = pretraining_s + finetune["seconds"]
    print(f"fine-tuning: {finetune['steps']} steps in {finetune['seconds']:.0f} s, CER {finetune['cer']:.3f}; "
          f"budget = {pretraining_s:.0f} + {finetune['seconds']:.0f} = {budget_s:.0f} s")
    # Seconds per scratch step, from a short timed run, give the step count that fits the budget.
    probe = ctc_experiment("scratch", 3000, steps=40, lr=1e-3, warmup_steps=10, decay="linear", eval_every=None)
    steps = int(budget_s / (probe["seconds"] / probe["steps"]))
    print(f"scratch: {probe['seconds'] / probe['steps']:.3f} s per step -> {steps} steps in the budget")
    candidates = []
    for recipe in SCRATCH_CANDIDATES:
        run = ctc_experiment("scratch", 3000, steps=steps, **recipe, eval_every=max(steps // 5, 1))
        print(f"  {recipe}: CER {run['cer']:.3f}, WER {run['wer']:.3f} in {run['seconds']:.0f} s", flush=True)
        candidates.append(run)
    best = min(candidates, key=lambda r: r["cer"])
    results["fair_baseline"] = {
        "machine": machine(), "pretraining_seconds": pretraining_s, "finetune_candidates": finetunes,
        "finetune": finetune, "finetune_recipe": {k: finetune[k] for k in ("lr", "warmup_steps", "decay")},
        "budget_seconds": budget_s,
        "scratch_steps": steps, "candidates": candidates, "scratch_best": best,
        "scratch_recipe": {k: best[k] for k in ("lr", "warmup_steps", "decay")},
    }
    save_results(args.out, results)


def tuned_scratch_recipe(results: dict, out: Path) -> dict:
    """The scratch recipe that ``tune`` chose, or a clear exit when ``tune`` has not run for ``out``."""
    if "fair_baseline" not in results:
        raise SystemExit(f"{out} has no scratch recipe yet: run `python tools/label_efficiency.py tune` first")
    return results["fair_baseline"]["scratch_recipe"]


def curve(args) -> None:
    results = load_results(args.out)
    scratch_recipe = tuned_scratch_recipe(results, args.out)
    points = []
    for n in args.labels or LABEL_COUNTS:
        for init, recipe in (("pretrained", FINETUNE_RECIPE), ("scratch", scratch_recipe)):
            recipe = {**recipe, "steps": args.steps}
            finetune = results["fair_baseline"]["finetune"]
            if init == "pretrained" and n == finetune["labels"] and all(finetune[k] == recipe[k] for k in recipe):
                run = finetune  # the same run as tune's fine-tuning (only its evaluations differ): reuse it
            else:
                run = ctc_experiment(init, n, **recipe, eval_every=None)
            print(f"{init:10} {n:5} labels: CER {run['cer']:.3f}, WER {run['wer']:.3f}, {run['seconds']:.0f} s",
                  flush=True)
            points.append(run)
    results["curve"] = {"machine": machine(), "steps": args.steps, "points": points}
    save_results(args.out, results)


def point(args) -> None:
    results = load_results(args.out)
    recipe = FINETUNE_RECIPE if args.init == "pretrained" else tuned_scratch_recipe(results, args.out)
    run = ctc_experiment(args.init, args.labels[0], **{**recipe, "steps": args.steps}, eval_every=None)
    print(json.dumps(run))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("tune", "curve", "point"))
    parser.add_argument("--out", type=Path, default=LABEL_EFFICIENCY_FILE, help="the JSON file to update")
    parser.add_argument("--steps", type=int, default=FINETUNE_RECIPE["steps"], help="training steps per curve point")
    parser.add_argument("--labels", type=int, nargs="*", help="numbers of labelled utterances (curve, point)")
    parser.add_argument("--init", choices=("pretrained", "scratch"), default="scratch", help="point: which model")
    parser.add_argument("--pretraining-seconds", type=float, default=173.0,
                        help="chapter 8's pretraining time on this machine (its stored output)")
    args = parser.parse_args()
    if args.command == "point" and (args.labels is None or len(args.labels) != 1):
        parser.error(f"point trains one model: give one number of labelled utterances, e.g. --labels 200 "
                     f"(got {args.labels})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        {"tune": tune, "curve": curve, "point": point}[args.command](args)


if __name__ == "__main__":
    main()
