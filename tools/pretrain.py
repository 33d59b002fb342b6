"""Pretrain a Wav2Vec2-Conformer on the synthesized corpus (chapter 8), on one process or many.

The same code as the notebook (``w2vc.pretraining.pretrain``). Examples::

    python tools/pretrain.py --out runs/tiny                               # the recipe of chapter 8
    torchrun --nproc_per_node=2 tools/pretrain.py --out runs/tiny          # 2 CPU processes (gloo)
    torchrun --nproc_per_node=8 tools/pretrain.py --out runs/tiny --steps 20000 --batch-size 256 \\
        --max-seconds 8 --checkpoint-dir runs/tiny-ckpt                     # 8 GPUs (NCCL, bf16), resumable

Under torchrun every process trains a DistributedDataParallel copy on its share of each global batch
(``--batch-size`` counts all processes together); process 0 logs, checkpoints and saves.
"""
import argparse
import dataclasses
import json
import sys

import torch
import torch.distributed as dist

from w2vc.pretraining import PretrainingRecipe, pretrain
from w2vc.training import init_distributed


def parse(argv=None) -> tuple[argparse.Namespace, PretrainingRecipe]:
    defaults = PretrainingRecipe()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the pretrained model (save_pretrained)")
    parser.add_argument("--checkpoint-dir", default=None, help="keep a resumable checkpoint here")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--config-overrides", default=json.dumps(defaults.config_overrides),
                        help=f"JSON config entries to change; default: {json.dumps(defaults.config_overrides)}")
    for field in dataclasses.fields(PretrainingRecipe):
        if field.name == "config_overrides":
            continue
        value = getattr(defaults, field.name)
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(value), default=value,
                            help=f"default: {value}")
    args = parser.parse_args(argv)
    recipe = PretrainingRecipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainingRecipe)
                                  if f.name != "config_overrides"},
                               config_overrides=json.loads(args.config_overrides))
    return args, recipe


def main(argv=None) -> int:
    args, recipe = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world_size = init_distributed()
    model, history = pretrain(recipe, out_dir=args.out, progress=not args.no_progress,
                              checkpoint_dir=args.checkpoint_dir)
    if rank == 0:
        evals = [row for row in history if "accuracy" in row]
        summary = {"processes": world_size, "steps": recipe.steps, "out": args.out,
                   "loss": history.last("loss"), **(evals[-1] if evals else {})}
        print(json.dumps(summary))
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
