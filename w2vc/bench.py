# GENERATED from notebooks/13_fast.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/13_fast.ipynb, cell 65
"""Time and peak memory of attention: w2vc eager against w2vc sdpa (chapter 13), and transformers' two.

Side by side in one run, each measurement in its own Python process: base size (12 blocks x 768, 12 heads,
random weights, float32 or ``--dtype bfloat16`` autocast), two threads, one utterance of 10, 60 and 120
seconds, relative and rotary positions. Every library loads the same weights from the same folder.
``--compile`` adds w2vc's sdpa path under ``torch.compile`` (timed after the compiling pass, whose seconds
are reported too) at lengths up to ``--compile-up-to`` seconds (10). A case reports the seconds of one
forward pass (the best of ``--repeats`` at 10 s, one pass at longer lengths, after a 1 s warm-up pass) and the
process's peak resident set size (VmHWM), and the table gives the ratios to transformers' best of eager and
sdpa. Cases whose estimated peak memory exceeds ``--memory-gb`` are skipped, and the table says so, as are
bfloat16 cases on a CPU without bfloat16 instructions (there PyTorch emulates it, slower than float32).
A slice of each output is compared with the first case of its row, so a fast but wrong case shows.
Examples::

    python -m w2vc bench                                    # 10, 60 and 120 s, both position types
    python -m w2vc bench --seconds 10 --positions rotary
    python -m w2vc bench --seconds 10 --compile --dtype float32 bfloat16
    python tools/bench_attention.py ...                     # the same, from a clone
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(2)

def peak_gib():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmHWM"].split()[0]) / 1024 ** 2

library, implementation, folder, seconds, repeats = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
dtype = getattr(torch, sys.argv[6])
implementation, _, compiled = implementation.partition("+")
if library == "transformers":
    import transformers
    model = transformers.Wav2Vec2ConformerModel.from_pretrained(folder, attn_implementation=implementation)
else:
    import w2vc
    model = w2vc.Wav2Vec2ConformerModel.from_pretrained(folder, attn_implementation=implementation)
model.eval()
g = torch.Generator().manual_seed(0)
audio = torch.randn(1, int(seconds * 16000), generator=g)
autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)
compile_s = None
with torch.no_grad(), autocast:
    if compiled:                                                    # compiles for this length: not timed
        model = torch.compile(model)
        start = time.perf_counter()
        model(audio)
        compile_s = time.perf_counter() - start
    else:
        model(torch.randn(1, 16000, generator=g))                   # warm-up: 1 s
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = model(audio)
        times.append(time.perf_counter() - start)
hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
print(json.dumps({"seconds": min(times), "peak_gib": peak_gib(), "frames": hidden.shape[1], "compile_s": compile_s,
                  "probe": hidden[0, :50, :8].float().tolist()}))
"""

# Peak RSS = weights and activations (about 0.8 GiB at base size) + k x one (H, T, T) float32 table of
# scores for the eager attention of one block; k measured at 60 s on this book's machine (issue 10).
TABLES_AT_PEAK = {("w2vc", "eager", "relative"): 6.0, ("transformers", "eager", "relative"): 5.5,
                  ("transformers", "sdpa", "relative"): 5.0, ("w2vc", "eager", "rotary"): 3.0,
                  ("transformers", "eager", "rotary"): 3.0}


def estimated_gib(library: str, implementation: str, position: str, seconds: float, heads: int = 12) -> float:
    frames = int(seconds * 50)
    return 0.8 + TABLES_AT_PEAK.get((library, implementation, position), 0.0) * heads * frames ** 2 * 4 / 1024 ** 3


def machine() -> str:
    """This machine in a few words: the CPU's model name and how many cores this process may use."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            name = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores"


def make_folder(folder: Path, position: str) -> None:
    if (folder / "config.json").is_file():
        return
    import torch
    import w2vc
    from w2vc.config import Wav2Vec2ConformerConfig

    torch.manual_seed(0)
    model = w2vc.Wav2Vec2ConformerModel(Wav2Vec2ConformerConfig(position_embeddings_type=position))
    model.save_pretrained(folder)


def run_case(library: str, implementation: str, folder: Path, seconds: float, repeats: int,
             dtype: str = "float32") -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run([sys.executable, "-c", CHILD, library, implementation, str(folder), str(seconds),
                           str(repeats), dtype], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        return {"error": last if done.returncode > 0 else f"killed by signal {-done.returncode} (out of memory?)"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m w2vc bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 120], help="lengths of audio")
    parser.add_argument("--positions", nargs="+", default=["relative", "rotary"], choices=["relative", "rotary"])
    parser.add_argument("--repeats", type=int, default=3, help="passes at lengths up to 10 s (the best is kept)")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "bfloat16"],
                        help="float32, and/or bfloat16 autocast (needs a GPU or a CPU with bfloat16 instructions)")
    parser.add_argument("--compile", action="store_true",
                        help="also time w2vc's sdpa path under torch.compile (compiling takes a minute or more)")
    parser.add_argument("--compile-up-to", type=float, default=10.0, metavar="SECONDS",
                        help="compile only at lengths up to this (default 10 s: on a CPU, compiling the 60 s model "
                             "takes about 4 minutes and the 120 s one over 7)")
    parser.add_argument("--memory-gb", type=float, default=10.0,
                        help="skip cases whose estimated peak RSS (GiB) is larger")
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "w2vc-bench-attention"), help="where the weights are written")
    parser.add_argument("--json", help="also write one JSON line per case to this file")
    parser.add_argument("--table-from", help="print the table of a JSON-lines file (--json, or the lines this "
                                             "script prints to stderr) and exit")
    args = parser.parse_args(argv)
    if args.table_from:
        rows = [json.loads(line) for line in Path(args.table_from).read_text().splitlines() if line.strip()]
        positions = list(dict.fromkeys(r["position"] for r in rows))
        print_table(rows, positions, sorted({r["audio_s"] for r in rows}))
        return 0
    if args.repeats < 1:
        parser.error(f"--repeats: expected at least 1 pass, got {args.repeats}")
    if any(s <= 0 for s in args.seconds):
        parser.error(f"--seconds: expected lengths above 0, got {args.seconds}")
    no_bf16 = None                            # why bfloat16 cases are skipped here, if they are
    if "bfloat16" in args.dtype:
        import torch

        from w2vc.recognizer import check_dtype
        try:                                  # transcribe's test: native bfloat16 arithmetic on this CPU
            check_dtype("bfloat16", torch.device("cpu"))
        except ValueError as error:
            no_bf16 = str(error)
    try:
        import transformers  # noqa: F401
        libraries = [("w2vc", "eager"), ("w2vc", "sdpa"), ("transformers", "eager"), ("transformers", "sdpa")]
    except ImportError:
        print("skipped transformers: not installed (pip install transformers to compare)")
        libraries = [("w2vc", "eager"), ("w2vc", "sdpa")]
    if args.compile:
        libraries.insert(2, ("w2vc", "sdpa+compile"))
    rows, here = [], machine()
    for position in args.positions:
        folder = Path(f"{args.folder}-{position}")
        make_folder(folder, position)
        for seconds in args.seconds:
            repeats = args.repeats if seconds <= 10 else 1
            for dtype in args.dtype:
                for library, implementation in libraries:
                    estimate = estimated_gib(library, implementation.partition("+")[0], position, seconds)
                    case = {"position": position, "audio_s": seconds, "library": library, "attn": implementation,
                            "dtype": dtype, "machine": here, "date": time.strftime("%Y-%m-%d")}
                    if dtype == "bfloat16" and no_bf16:
                        case["skipped"] = no_bf16
                    elif implementation.endswith("+compile") and seconds > args.compile_up_to:
                        case["skipped"] = f"compiled only up to {args.compile_up_to:g} s (--compile-up-to)"
                    elif estimate > args.memory_gb:
                        case["skipped"] = f"needs about {estimate:.1f} GiB (> --memory-gb {args.memory_gb:g})"
                    else:
                        case.update(run_case(library, implementation, folder, seconds, repeats, dtype))
                    rows.append(case)
                    print(json.dumps(case), file=sys.stderr, flush=True)   # a stopped run keeps its rows
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print_table(rows, args.positions, args.seconds)
    return 0


def print_table(rows: list[dict], positions: list[str], lengths: list[float]) -> None:
    """The side-by-side table of the cases in ``rows``, grouped by position type, length and dtype."""
    print()
    for where in dict.fromkeys((r["machine"], r["date"]) for r in rows if "machine" in r):
        print("measured on %s, %s" % where)
    print(f"{'position':<8} {'audio':>5}  {'case':<26} {'seconds':>8} {'peak RSS':>8} {'speed':>6} {'RSS':>6} "
          f"{'max|diff|':>9}")
    dtypes = list(dict.fromkeys(r.get("dtype", "float32") for r in rows))
    compiling = []
    for position, seconds, dtype in ((p, s, d) for p in positions for s in lengths for d in dtypes):
        group = [r for r in rows if r["position"] == position and r["audio_s"] == seconds
                 and r.get("dtype", "float32") == dtype]
        measured = [r for r in group if "seconds" in r]
        hf = [r for r in measured if r["library"] == "transformers"]
        best_time = min((r["seconds"] for r in hf), default=None)
        best_rss = min((r["peak_gib"] for r in hf), default=None)
        probe = measured[0].get("probe") if measured else None
        for r in group:
            name = f"{r['library']} {r['attn']}" + ("" if dtype == "float32" else f" {dtype}")
            row = f"{position:<8} {seconds:>4g}s  {name:<26}"
            if "seconds" not in r:
                print(f"{row.rstrip()}: skipped, {r.get('skipped') or r.get('error')}")
                continue
            speed = f"{best_time / r['seconds']:.2f}x" if best_time else "-"
            rss = f"{r['peak_gib'] / best_rss:.2f}x" if best_rss else "-"
            diff = "-"
            if probe and r.get("probe"):
                diff = f"{max(abs(a - b) for ra, rb in zip(r['probe'], probe) for a, b in zip(ra, rb)):.1e}"
            if r.get("compile_s"):
                compiling.append(f"{row.rstrip()}: compiling took {r['compile_s']:.0f} s")
            print(f"{row} {r['seconds']:>8.2f} {r['peak_gib']:>6.2f} G {speed:>6} {rss:>6} {diff:>9}")
    print("\nspeed: transformers' best time (eager or sdpa, same dtype) / this case's; above 1: faster.\n"
          "RSS: this case's peak / transformers' best; below 1: less. max|diff|: of a slice of\n"
          "last_hidden_state against the first case of the row.")
    for line in compiling:
        print(line)
