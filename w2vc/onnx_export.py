# GENERATED from notebooks/12_after_the_course.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/12_after_the_course.ipynb, cell 57
"""Export a model folder to ONNX, and check the file with onnxruntime (chapter 12)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

ONNX_PACKAGES = "onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0"  # the versions requirements.txt pins


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"ONNX export needs the packages {missing}, which are not installed; install them "
                                  f"with: pip install {ONNX_PACKAGES}")


class _Exported(nn.Module):
    """What the ONNX graph computes: the model's scores from ``input_values`` and a 0/1 ``attention_mask``.

    The mask arrives as int64 and goes to the model as bool: the model checks that an integer mask holds only
    0 and 1, a check on the values that an exported graph cannot make (it depends on the data, not the shapes).
    """

    def __init__(self, model: nn.Module, with_mask: bool):
        super().__init__()
        self.model, self.with_mask = model, with_mask

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None):
        mask = attention_mask.bool() if self.with_mask else None
        out = self.model(input_values, attention_mask=mask)
        if hasattr(out, "logits"):
            return out.logits
        return out.last_hidden_state


def _load_for_export(folder: Path):
    from w2vc.classification import Wav2Vec2ConformerForSequenceClassification
    from w2vc.ctc import Wav2Vec2ConformerForCTC
    from w2vc.model import Wav2Vec2ConformerModel

    classes = {cls.__name__: cls for cls in (Wav2Vec2ConformerForCTC, Wav2Vec2ConformerForSequenceClassification,
                                             Wav2Vec2ConformerModel)}
    settings = json.loads((folder / "config.json").read_text())
    name = next((a for a in settings.get("architectures") or [] if a in classes), "Wav2Vec2ConformerModel")
    # eager attention, whatever the default: the fused relative path (chapter 13) loops over blocks of
    # queries, a Python loop over the length, which torch.export cannot trace with a dynamic length
    return classes[name].from_pretrained(folder, attn_implementation="eager").eval(), name


def export_onnx(folder, path, *, opset: int = 18, example_seconds: float = 1.0) -> Path:
    """Export the model in ``folder`` to an ONNX file with a dynamic batch and length.

    Inputs are ``input_values`` ``(B, L)`` float32 (normalised 16 kHz audio, as the feature extractor gives it)
    and, for models that take one (layer-norm feature encoders), ``attention_mask`` ``(B, L)`` int64; the output
    is ``logits`` ``(B, T, V)`` for a CTC model, ``(B, N)`` for a classifier, or ``last_hidden_state``
    ``(B, T, C)`` for a body. Uses PyTorch's exporter (``torch.onnx.export(..., dynamo=True)``).

    Args:
        folder: a model folder (``config.json`` + weights).
        path: the ``.onnx`` file to write.
        opset: the ONNX operator set.
        example_seconds: length of the example input that the exporter traces (any length works afterwards).

    Returns:
        The path written.
    """
    _require("onnx", "onnxscript")
    from w2vc.features import receptive_field
    from w2vc.finetune import check_model_folder

    folder = check_model_folder(folder)
    model, _ = _load_for_export(folder)
    with_mask = model.config.feat_extract_norm == "layer"
    wrapper = _Exported(model, with_mask).eval()
    B, L = 2, int(example_seconds * 16000)
    example = (torch.randn(B, L, generator=torch.Generator().manual_seed(0)),)
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=max(receptive_field(model.config)[0], 2))
    shapes = {"input_values": {0: batch, 1: length}}
    names = ["input_values"]
    if with_mask:
        example += (torch.ones(B, L, dtype=torch.long),)
        shapes["attention_mask"] = {0: batch, 1: length}
        names.append("attention_mask")
    output = "logits" if hasattr(model, "lm_head") or hasattr(model, "classifier") else "last_hidden_state"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import contextlib
    import io
    import logging
    import warnings

    exporter_log = logging.getLogger("torch.onnx")  # "torchvision is not installed", ...: not ours to show
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, example, str(path), dynamo=True, opset_version=opset, input_names=names,
                              output_names=[output], dynamic_shapes=shapes, external_data=False)
    finally:
        exporter_log.setLevel(level)
    return path


# %% notebooks/12_after_the_course.ipynb, cell 59
def run_onnx(path, input_values, attention_mask=None) -> np.ndarray:
    """Run an exported file with onnxruntime on the CPU; returns its one output as a NumPy array."""
    _require("onnxruntime")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    feeds = {"input_values": np.asarray(input_values, dtype=np.float32)}
    if "attention_mask" in wanted:
        if attention_mask is None:
            attention_mask = np.ones(feeds["input_values"].shape, dtype=np.int64)
        feeds["attention_mask"] = np.asarray(attention_mask, dtype=np.int64)
    return session.run(None, feeds)[0]


def check_onnx(path, folder, lengths=(23456, 9000), seed: int = 1, atol: float = 1e-4) -> float:
    """Compare onnxruntime's outputs with PyTorch's on a padded batch of the given lengths (pick lengths other
    than the export's example, so that the dynamic shapes are exercised); raise if they differ by more than ``atol``.

    Returns:
        The largest absolute difference.
    """
    from w2vc.finetune import check_model_folder

    model, _ = _load_for_export(check_model_folder(folder))
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros(len(lengths), max(lengths))
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randn(n, generator=generator)
        mask[i, :n] = 1
    with_mask = model.config.feat_extract_norm == "layer"
    with torch.no_grad():
        expected = _Exported(model, with_mask)(x, mask if with_mask else None).numpy()
    got = run_onnx(path, x.numpy(), mask.numpy() if with_mask else None)
    if got.shape != expected.shape:
        raise AssertionError(f"onnx: the file gives shape {got.shape}, PyTorch {expected.shape}")
    # frames past an item's length are padding: compare only the real ones (their values are arbitrary)
    diff = 0.0
    for i, n in enumerate(lengths):
        frames = int(model._get_feat_extract_output_lengths(n)) if expected.ndim == 3 else None
        a, b = (got[i, :frames], expected[i, :frames]) if frames is not None else (got[i], expected[i])
        diff = max(diff, float(np.abs(a - b).max()))
    if not diff <= atol:
        raise AssertionError(f"onnx: onnxruntime and PyTorch differ by {diff:.2e}, more than atol={atol:g}")
    return diff
