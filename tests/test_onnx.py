"""Chapter 12: `export-onnx`. The exported file, run by onnxruntime, equals PyTorch (1e-4) on a padded batch of a
length other than the one the exporter traced."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import w2vc_config
from w2vc import CTCTokenizer, Wav2Vec2ConformerForCTC, Wav2Vec2FeatureExtractor, Wav2Vec2Processor
from w2vc.cli import main

ROOT = Path(__file__).resolve().parent.parent
MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_onnx = pytest.mark.skipif(bool(MISSING), reason=f"{MISSING} not installed (requirements.txt pins them; "
                                                      f"pip install -r requirements.txt)")


# relative positions too: the fused relative path loops over blocks of queries (chapter 13), a Python loop over
# the length that torch.export cannot trace with a dynamic length, so the export must run eager attention
@pytest.fixture(scope="module", params=["rotary", "relative"])
def folder(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("ctc")
    tok = CTCTokenizer.from_texts(["go left"])
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForCTC(w2vc_config(vocab_size=tok.vocab_size, feat_extract_norm="layer",
                                                position_embeddings_type=request.param, hidden_act="swish"))
    model.save_pretrained(folder)
    Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), tok).save_pretrained(folder)
    return folder


@needs_onnx
def test_export_and_run(folder, tmp_path, capsys):
    code = main(["export-onnx", str(folder), str(tmp_path / "model.onnx")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'model.onnx'}; onnxruntime agrees with PyTorch (max |diff| ")
    from w2vc.onnx_export import check_onnx, run_onnx
    # a length and batch size that the export never saw, one item padded
    assert check_onnx(tmp_path / "model.onnx", folder, lengths=(11111, 30001, 4000)) <= 1e-4
    model = Wav2Vec2ConformerForCTC.from_pretrained(folder)
    x = torch.randn(1, 7777, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(x, attention_mask=torch.ones_like(x, dtype=torch.long)).logits.numpy()
    got = run_onnx(tmp_path / "model.onnx", x.numpy())
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4


def test_missing_packages_are_named_with_the_pip_command(folder, tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    code = main(["export-onnx", str(folder), str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err == ("python -m w2vc export-onnx: error: ONNX export needs the packages ['onnxscript'], which are not "
                   "installed; install them with: pip install onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0")


def test_import_w2vc_does_not_import_onnx():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = ("import sys, w2vc, w2vc.cli, w2vc.onnx_export, w2vc.fairseq, w2vc.finetune; "
            "bad = [m for m in ('onnx', 'onnxruntime', 'onnxscript') if m in sys.modules]; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


def test_pinned_versions_match_requirements():
    from w2vc.onnx_export import ONNX_PACKAGES
    pins = set((ROOT / "requirements.txt").read_text().split())
    assert set(ONNX_PACKAGES.split()) <= pins
