"""The book's structure: every chapter is in the table of contents and runs in Colab."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _repo_url():
    m = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    assert m, "_config.yml has no repository url"
    return m.group(1)


def _code_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def test_every_notebook_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"^\s+- file: (notebooks/\S+)", toc, re.M))
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in listed, f"{nb.name} is not listed in _toc.yml"


def test_first_code_cell_installs_w2vc_in_colab_from_the_configured_repository():
    url = _repo_url()
    for nb in NOTEBOOKS:
        first = _code_cells(nb)[0]
        assert "google.colab" in first and url in first, (
            f"{nb.name}: the first code cell must install w2vc from {url} when run in Colab")


def test_notebooks_are_executed_and_keep_their_outputs():
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        unrun = [i for i, c in enumerate(cells)
                 if c["cell_type"] == "code" and "".join(c["source"]).strip() and c["execution_count"] is None]
        assert not unrun, f"{nb.name}: cells {unrun} were never executed; run jupyter execute --inplace"
