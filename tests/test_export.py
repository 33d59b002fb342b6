"""The package is made from the notebooks: fail when the committed w2vc/ and the notebooks disagree."""
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import export  # noqa: E402


def test_package_matches_notebooks():
    problems = export.differences()
    assert not problems, "w2vc/ differs from the notebooks; run `python tools/export.py`:\n" + "\n".join(problems)


def test_every_generated_module_names_its_notebook():
    for module, text in export.generated_files().items():
        first = text.splitlines()[0]
        nb = first.split("GENERATED from ")[1].split(" ")[0]
        assert (ROOT / nb).exists(), f"w2vc/{module}.py names {nb}, which does not exist"
        assert "# %% notebooks/" in text, f"w2vc/{module}.py has no cell markers"


@pytest.fixture
def scratch(tmp_path):
    """A copy of notebooks/ and w2vc/ to break on purpose."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "w2vc", tmp_path / "w2vc")
    return tmp_path


def _first_export_cell(nb_path):
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and src.startswith("#| export"):
            return nb, cell
    raise AssertionError(f"{nb_path} has no export cell")


def test_changed_export_cell_is_detected(scratch):
    nb_path = sorted((scratch / "notebooks").glob("*.ipynb"))[0]
    nb, cell = _first_export_cell(nb_path)
    cell["source"] = "".join(cell["source"]) + "\nCHANGED_WITHOUT_EXPORT = 1\n"
    nb_path.write_text(json.dumps(nb))
    problems = export.differences(scratch / "w2vc", scratch / "notebooks")
    assert any("CHANGED_WITHOUT_EXPORT" in p for p in problems), problems


def test_new_and_deleted_modules_are_detected(scratch):
    nb_path = sorted((scratch / "notebooks").glob("*.ipynb"))[0]
    nb, cell = _first_export_cell(nb_path)
    nb["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": "#| export brand_new\nX = 1\n"})
    nb_path.write_text(json.dumps(nb))
    (scratch / "w2vc" / "orphan.py").write_text("# GENERATED from notebooks/99_gone.ipynb by tools/export.py\n")
    problems = export.differences(scratch / "w2vc", scratch / "notebooks")
    assert any("brand_new.py is exported by the notebooks but missing" in p for p in problems), problems
    assert any("orphan.py is generated but no notebook exports it" in p for p in problems), problems
