"""Export the notebooks' code cells into the ``w2vc`` package.

The notebooks in ``notebooks/`` are the source of the package. A notebook names its module
in a cell holding ``#| default_exp NAME``; each code cell whose first line is ``#| export``
is copied, in order, into ``w2vc/NAME.py``. ``#| export OTHER`` sends one cell to
``w2vc/OTHER.py`` instead. Every generated module starts with a line saying it is generated and
from which notebook, and every copied cell is preceded by a marker naming its notebook and cell.

Usage::

    python tools/export.py            # write w2vc/*.py from the notebooks
    python tools/export.py --check    # exit 1, listing differences, if w2vc/ is stale

Hand-written files in ``w2vc/`` (``__init__.py``, ``__main__.py``) do not start with the
generated header and are left alone.
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
PACKAGE = ROOT / "w2vc"
HEADER = "# GENERATED from {nb} by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`."
_DEFAULT = re.compile(r"^#\|\s*default_exp\s+([A-Za-z_][A-Za-z0-9_]*)\s*$")
_EXPORT = re.compile(r"^#\|\s*export(?:\s+([A-Za-z_][A-Za-z0-9_]*))?\s*$")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def collect(notebooks_dir: Path = NOTEBOOKS) -> dict[str, str]:
    """Return ``{module_name: text}`` for every module the notebooks export."""
    chunks: dict[str, list[str]] = {}
    origin: dict[str, str] = {}
    for nb_path in sorted(notebooks_dir.glob("*.ipynb")):
        rel = f"{notebooks_dir.name}/{nb_path.name}"
        cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
        default = None
        for index, cell in enumerate(cells):
            if cell.get("cell_type") != "code":
                continue
            lines = _source(cell).splitlines()
            if not lines:
                continue
            m = _DEFAULT.match(lines[0].strip())
            if m:
                default = m.group(1)
                continue
            m = _EXPORT.match(lines[0].strip())
            if not m:
                continue
            module = m.group(1) or default
            if module is None:
                raise SystemExit(f"{rel}, cell {index}: '#| export' before any '#| default_exp NAME' cell")
            if module in origin and origin[module] != rel:
                raise SystemExit(f"module w2vc/{module}.py is exported by both {origin[module]} and {rel}")
            origin[module] = rel
            body = "\n".join(lines[1:]).strip("\n")
            chunks.setdefault(module, []).append(f"# %% {rel}, cell {index}\n{body}\n")
    return {
        module: HEADER.format(nb=origin[module]) + "\n\n" + "\n\n".join(parts)
        for module, parts in chunks.items()
    }


def generated_files(package_dir: Path = PACKAGE) -> dict[str, str]:
    """Return ``{module_name: text}`` of the files in ``package_dir`` that the exporter made."""
    out = {}
    for path in sorted(package_dir.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.startswith("# GENERATED from "):
            out[path.stem] = text
    return out


def differences(package_dir: Path = PACKAGE, notebooks_dir: Path = NOTEBOOKS) -> list[str]:
    """Describe every way ``package_dir`` differs from what the notebooks export."""
    want, have = collect(notebooks_dir), generated_files(package_dir)
    problems = []
    for module in sorted(set(want) | set(have)):
        if module not in have:
            problems.append(f"w2vc/{module}.py is exported by the notebooks but missing (run tools/export.py)")
        elif module not in want:
            problems.append(f"w2vc/{module}.py is generated but no notebook exports it any more (delete it)")
        elif want[module] != have[module]:
            diff = difflib.unified_diff(
                have[module].splitlines(), want[module].splitlines(),
                f"w2vc/{module}.py (committed)", f"w2vc/{module}.py (from notebooks)", lineterm="", n=1,
            )
            problems.append("\n".join(list(diff)[:40]))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether w2vc/ is up to date")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for p in problems:
            print(p)
        return 1 if problems else 0
    want = collect()
    for module, text in want.items():
        path = PACKAGE / f"{module}.py"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    for module in set(generated_files()) - set(want):
        (PACKAGE / f"{module}.py").unlink()
        print(f"deleted w2vc/{module}.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
