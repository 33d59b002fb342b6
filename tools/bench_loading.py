"""Memory of loading a model folder: w2vc (one or more checkouts) against transformers, side by side.

Each case runs in its own Python process, which imports the library, loads the folder with
``from_pretrained`` and reports its resident set size (VmRSS) right after loading, its peak (VmHWM), and
the RSS after one forward pass over 10 s of audio. Cases that cannot run (transformers not installed)
are skipped with the reason. Examples::

    python tools/bench_loading.py                                   # this checkout and transformers
    python tools/bench_loading.py --checkout main=/work/main --checkout lean=.   # two checkouts too

The folder is written once (random weights, transformers' default base size: 12 blocks x 768, relative
positions) under ``--folder``; both libraries read the same file.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(2)

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) / 1024 ** 2 for k in ("VmRSS", "VmHWM")}   # GiB

library, folder = sys.argv[1], sys.argv[2]
before = status()
if library == "transformers":
    import transformers
    cls = lambda: transformers.Wav2Vec2ConformerModel.from_pretrained(folder, attn_implementation="eager")
else:
    import w2vc
    print("w2vc from", w2vc.__file__, file=sys.stderr)
    cls = lambda: w2vc.Wav2Vec2ConformerModel.from_pretrained(folder)
imported = status()
start = time.perf_counter()
model = cls().eval()
seconds = time.perf_counter() - start
loaded = status()
with torch.no_grad():
    model(torch.randn(1, 160000, generator=torch.Generator().manual_seed(0)))
ran = status()
print(json.dumps({"import_rss": imported["VmRSS"], "load_rss": loaded["VmRSS"], "load_peak": loaded["VmHWM"],
                  "load_seconds": seconds, "forward_rss": ran["VmRSS"],
                  "dtype": str(next(model.parameters()).dtype)}))
"""


def make_folder(folder: Path) -> None:
    import transformers
    import torch

    if (folder / "config.json").is_file():
        return
    torch.manual_seed(0)
    model = transformers.Wav2Vec2ConformerModel(transformers.Wav2Vec2ConformerConfig())
    model.save_pretrained(folder)


def run_case(library: str, folder: Path, pythonpath: str | None) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    # run in the checkout (or a neutral folder): `python -c` puts the working folder first on sys.path
    done = subprocess.run([sys.executable, "-c", CHILD, library, str(folder)], env=env, capture_output=True, text=True,
                          cwd=pythonpath or "/")
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    source = [line for line in done.stderr.splitlines() if line.startswith("w2vc from")]
    if pythonpath and not (source and source[0].split()[-1].startswith(pythonpath)):
        return {"error": f"imported w2vc from elsewhere than {pythonpath}: {source}"}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="/tmp/w2vc-bench-base", help="where the base-size folder is written")
    parser.add_argument("--checkout", action="append", default=[],
                        help="NAME=PATH of a w2vc checkout to measure (PYTHONPATH); default: this one")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case (the smallest RSS is shown)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    cases = []
    checkouts = args.checkout or [f"w2vc={Path(__file__).resolve().parents[1]}"]
    for item in checkouts:
        name, _, path = item.partition("=")
        cases.append((name, "w2vc", str(Path(path).resolve())))
    try:
        make_folder(folder)
        cases.append(("transformers", "transformers", None))
    except ImportError as error:
        print(f"skipped transformers: {error}")
        if not (folder / "config.json").is_file():
            print("no folder to load and no transformers to write one: nothing to measure")
            return 1
    results = {}
    for name, library, path in cases:
        runs = [run_case(library, folder, path) for _ in range(args.repeats)]
        good = [r for r in runs if "error" not in r]
        results[name] = min(good, key=lambda r: r["load_rss"]) if good else runs[0]
    reference = results.get("transformers", {}).get("load_rss")
    print(f"{'case':<14} {'RSS after import':>17} {'RSS after load':>15} {'peak in load':>13} {'load s':>7} "
          f"{'RSS after fwd':>14} {'load RSS / transformers':>24}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<14} failed: {r['error']}")
            continue
        ratio = f"{r['load_rss'] / reference:.2f}x" if reference else "-"
        print(f"{name:<14} {r['import_rss']:>15.2f} G {r['load_rss']:>13.2f} G {r['load_peak']:>11.2f} G "
              f"{r['load_seconds']:>7.2f} {r['forward_rss']:>12.2f} G {ratio:>24}")
    for name, r in results.items():
        print(json.dumps({"case": name, **r}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
