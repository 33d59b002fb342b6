# GENERATED from notebooks/12_after_the_course.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/12_after_the_course.ipynb, cell 42
"""Convert fairseq's wav2vec 2.0 Conformer checkpoints into w2vc/transformers folders (chapter 12)."""
from __future__ import annotations

import argparse
import ast
import collections
import re
from pathlib import Path

import numpy as np
import torch

from w2vc.config import Wav2Vec2ConformerConfig


# %% notebooks/12_after_the_course.ipynb, cell 43
class _Stand:
    """Stands for one of omegaconf's classes while unpickling: keeps the pickled state as attributes."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"_state": state})


class _DictConfig(_Stand): pass      # omegaconf.dictconfig.DictConfig: ``_content`` is {key: node}
class _ListConfig(_Stand): pass      # omegaconf.listconfig.ListConfig: ``_content`` is [node, ...]
class _ValueNode(_Stand): pass       # omegaconf.nodes.*Node: ``_val`` is the value
class _Metadata(_Stand): pass        # omegaconf.base.Metadata / ContainerMetadata: ignored
class _AnyType: pass                 # typing.Any, a type annotation stored in the metadata
class _Namespace(argparse.Namespace): pass  # argparse.Namespace: the "args" of older checkpoints


# Every global a fairseq checkpoint may name, mapped to what we build in its place. Tensors, dicts, lists
# and numbers are allowed by PyTorch's weights-only unpickler already; anything else is refused.
_ALLOWED = [(_DictConfig, "omegaconf.dictconfig.DictConfig"), (_ListConfig, "omegaconf.listconfig.ListConfig"),
            (_Metadata, "omegaconf.base.Metadata"), (_Metadata, "omegaconf.base.ContainerMetadata"),
            (_AnyType, "typing.Any"), (collections.defaultdict, "collections.defaultdict"),
            (_Namespace, "argparse.Namespace"), dict, list, int, float, str, bool, set, tuple]
_ALLOWED += [(_ValueNode, f"omegaconf.nodes.{name}") for name in
             ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "ValueNode")]
_ALLOWED += [(np.dtype, "numpy.dtype")] + [(getattr(np.dtypes, name), f"numpy.dtypes.{name}") for name in
                                           ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType")]
for _name in ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"):
    _ALLOWED.append((np._core.multiarray.scalar, _name))  # numbers kept by fairseq's meters


def _plain(value):
    """Turn the stand-ins (and Namespaces) into plain dicts, lists and values."""
    if isinstance(value, _DictConfig):
        return {str(k): _plain(v) for k, v in (value.__dict__.get("_content") or {}).items()}
    if isinstance(value, _ListConfig):
        return [_plain(v) for v in (value.__dict__.get("_content") or [])]
    if isinstance(value, _ValueNode):
        return _plain(value.__dict__.get("_val"))
    if isinstance(value, argparse.Namespace):
        return {k: _plain(v) for k, v in vars(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_fairseq_checkpoint(path) -> dict:
    """Read a fairseq checkpoint without running any code from it.

    fairseq pickles its configuration (omegaconf objects, or an ``argparse.Namespace`` in older files) next to
    the weights, so ``torch.load(path, weights_only=False)`` would have to import and run whatever the file
    names. Here PyTorch's weights-only unpickler reads it with a short allow-list: stand-ins for omegaconf's
    config classes and ``Namespace``, plain containers and numbers. Any other object is refused.

    Args:
        path: the ``.pt`` file.

    Returns:
        The checkpoint as plain data: ``{"model": {name: tensor}, "cfg": {...} or None, "args": {...} or None,
        ...}``, every config object turned into dicts and lists.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {str(path)!r} does not exist" if not path.exists() else
                                f"checkpoint: {str(path)!r} is a folder; pass the fairseq .pt file")
    try:
        with torch.serialization.safe_globals(_ALLOWED):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or others by format
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found:
            raise ValueError(
                f"checkpoint: {path.name} holds a Python object of type {found.group(1)}, which a fairseq "
                f"checkpoint does not need; w2vc refuses to unpickle it, since unpickling can run code. If the "
                f"file is genuine, load it with fairseq and save the weights and config as plain data") from None
        raise ValueError(f"checkpoint: could not read {path.name} as a PyTorch checkpoint "
                         f"({str(error).splitlines()[0][:200]}); expected a fairseq .pt file") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise ValueError(f"checkpoint: {path.name} is not a fairseq checkpoint: expected a dict with the weights "
                         f"under 'model', got {type(state).__name__} with keys {sorted(state)[:8] if isinstance(state, dict) else '-'}")
    return {key: (value if key == "model" else _plain(value)) for key, value in state.items()}


# %% notebooks/12_after_the_course.ipynb, cell 45
def _conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """Read fairseq's ``conv_feature_layers``, e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``, without ``eval``:
    only lists and tuples of whole numbers, ``+`` (concatenation) and ``* n`` (repetition) are accepted."""
    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"conv_feature_layers: expected a list of (dim, kernel, stride) tuples built with + and *, "
                         f"got {spec!r}")
    try:
        layers = value(ast.parse(spec, mode="eval").body)
    except SyntaxError:
        layers = None
    if not isinstance(layers, list) or not all(isinstance(t, tuple) and len(t) == 3 for t in layers):
        raise ValueError(f"conv_feature_layers: expected a list of (dim, kernel, stride) tuples, got {spec!r}")
    return layers


def _model_settings(checkpoint: dict) -> tuple[dict, dict, dict]:
    """``(pretraining model settings, fine-tuning settings or {}, task settings)`` from ``cfg`` or ``args``."""
    cfg, args = checkpoint.get("cfg"), checkpoint.get("args")
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        model, task = cfg["model"], cfg.get("task") or {}
    elif isinstance(args, dict):
        model, task = args, args  # older checkpoints: one flat namespace
    else:
        raise ValueError("checkpoint: found neither 'cfg' (with a 'model' entry) nor 'args'; a fairseq checkpoint "
                         "holds the settings of the model it was trained with")
    inner = model.get("w2v_args")
    if inner is not None:  # a fine-tuned model: the body's settings are those it was pretrained with
        inner_model = inner.get("model", inner) if isinstance(inner, dict) else None
        if not isinstance(inner_model, dict):
            raise ValueError("checkpoint: the fine-tuned model's 'w2v_args' holds no settings of its wav2vec 2.0 body")
        return inner_model, model, task
    return model, {}, task


def fairseq_config(checkpoint: dict, vocab_size: int | None = None) -> Wav2Vec2ConformerConfig:
    """Our config from a fairseq checkpoint's own settings (never from its file name).

    Returns:
        A ``Wav2Vec2ConformerConfig`` with transformers' field names.
    """
    body, finetune, task = _model_settings(checkpoint)
    get = lambda key, default=None: body.get(key, default)  # noqa: E731
    if get("layer_type", "transformer") != "conformer":
        raise ValueError(f"checkpoint: layer_type is {get('layer_type', 'transformer')!r}: a wav2vec 2.0 transformer; "
                         f"w2vc is Wav2Vec2-Conformer and converts checkpoints with layer_type='conformer' only")
    positions = {"rel_pos": "relative", "rope": "rotary"}.get(get("pos_enc_type"))
    if positions is None:
        raise ValueError(f"checkpoint: pos_enc_type is {get('pos_enc_type')!r}; Wav2Vec2-Conformer has relative "
                         f"('rel_pos') or rotary ('rope') positions only")
    if get("attn_type", "") != "espnet":
        raise ValueError(f"checkpoint: attn_type is {get('attn_type')!r}; the conformer's attention that "
                         f"transformers and w2vc implement is fairseq's 'espnet' one")
    if not get("layer_norm_first", False):
        raise ValueError("checkpoint: layer_norm_first is False, so fairseq applies the encoder's LayerNorm before "
                         "the blocks; Wav2Vec2-Conformer (transformers' and w2vc's) applies it after them")
    if get("quantize_input", False):
        raise ValueError("checkpoint: quantize_input is True (quantized inputs); Wav2Vec2-Conformer does not have them")
    conv = _conv_layers(get("conv_feature_layers", "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"))
    hidden = int(get("encoder_embed_dim", 768))
    final_dim = int(get("final_dim", 0)) or hidden
    settings = dict(
        hidden_size=hidden, num_hidden_layers=int(get("encoder_layers", 12)),
        num_attention_heads=int(get("encoder_attention_heads", 12)),
        intermediate_size=int(get("encoder_ffn_embed_dim", 3072)),
        hidden_act="swish",  # fairseq's conformer blocks use swish whatever activation_fn says
        feat_extract_norm="layer" if get("extractor_mode", "default") == "layer_norm" else "group",
        conv_dim=[c[0] for c in conv], conv_kernel=[c[1] for c in conv], conv_stride=[c[2] for c in conv],
        conv_bias=bool(get("conv_bias", False)),
        num_conv_pos_embeddings=int(get("conv_pos", 128)), num_conv_pos_embedding_groups=int(get("conv_pos_groups", 16)),
        position_embeddings_type=positions, conv_depthwise_kernel_size=int(get("depthwise_conv_kernel_size", 31)),
        num_codevectors_per_group=int(get("latent_vars", 320)), num_codevector_groups=int(get("latent_groups", 2)),
        codevector_dim=int(get("latent_dim", 0)) or final_dim, proj_codevector_dim=final_dim,
        hidden_dropout=float(get("dropout", 0.1)), attention_dropout=float(get("attention_dropout", 0.1)),
        activation_dropout=float(get("activation_dropout", 0.0)), feat_proj_dropout=float(get("dropout_input", 0.0)),
        layerdrop=float(get("encoder_layerdrop", 0.0)),
        mask_time_prob=float(get("mask_prob", 0.65)), mask_time_length=int(get("mask_length", 10)),
        mask_feature_prob=float(get("mask_channel_prob", 0.0)), mask_feature_length=int(get("mask_channel_length", 10)),
        num_negatives=int(get("num_negatives", 100)),
    )
    if finetune:  # fine-tuning settings replace the pretraining ones where fairseq's fine-tuning overrides them
        for ours, theirs in (("hidden_dropout", "dropout"), ("attention_dropout", "attention_dropout"),
                             ("activation_dropout", "activation_dropout"), ("layerdrop", "layerdrop"),
                             ("mask_time_prob", "mask_prob"), ("mask_time_length", "mask_length"),
                             ("mask_feature_prob", "mask_channel_prob"),
                             ("mask_feature_length", "mask_channel_length"), ("final_dropout", "final_dropout"),
                             ("feat_proj_dropout", "dropout_input")):
            if finetune.get(theirs) is not None:
                settings[ours] = type(settings.get(ours, 0.0))(finetune[theirs])
    if vocab_size is not None:
        settings.update(vocab_size=vocab_size, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return Wav2Vec2ConformerConfig(**settings)


# %% notebooks/12_after_the_course.ipynb, cell 47
# fairseq's module names -> transformers' (and w2vc's), applied in order to each key
_RENAMES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),  # LayerNorm mode
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"feature_extractor.conv_layers.\1.layer_norm."),  # GroupNorm, layer 0
    (r"^layer_norm\.", "feature_projection.layer_norm."),
    (r"^post_extract_proj\.", "feature_projection.projection."),
    (r"^mask_emb$", "masked_spec_embed"),
    (r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),  # weight_g/_v or parametrizations.*: kept
    (r"\.ffn(\d)\.layer_norm\.", r".ffn\1_layer_norm."),
    (r"\.ffn(\d)\.w_1\.", r".ffn\1.intermediate_dense."),
    (r"\.ffn(\d)\.w_2\.", r".ffn\1.output_dense."),
]
_PRETRAINING_RENAMES = [(r"^quantizer\.vars$", "quantizer.codevectors"), (r"^final_proj\.", "project_hid.")]
_PRETRAINING_KEYS = ("quantizer.", "project_q.", "final_proj.")
_DROPPED = ("encoder.embed_positions.",)  # the relative positions' sine table: a buffer, recomputed
_DROPPED_INSIDE = (".self_attn.rotary_emb.",)  # the rotary frequencies of each attention module: recomputed


def _rename(key: str, rules) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def fairseq_state_dict(weights: dict, pretraining: bool) -> tuple[dict, bool]:
    """fairseq's weights with transformers' names for ``...ForCTC`` / ``...ForPreTraining``.

    Returns:
        ``(state_dict, has_ctc_head)``.
    """
    out, has_head = {}, False
    for key, value in weights.items():
        if key.startswith("w2v_encoder.proj."):
            out["lm_head." + key[len("w2v_encoder.proj."):]] = value
            has_head = True
            continue
        body_key = key[len("w2v_encoder.w2v_model."):] if key.startswith("w2v_encoder.w2v_model.") else key
        if body_key.startswith(_DROPPED) or any(part in body_key for part in _DROPPED_INSIDE):
            continue
        if body_key.startswith(_PRETRAINING_KEYS):
            if pretraining:
                out[_rename(body_key, _PRETRAINING_RENAMES)] = value
            continue  # a fine-tuned model keeps its pretraining heads; a recogniser does not need them
        out["wav2vec2_conformer." + _rename(body_key, _RENAMES)] = value
    return out, has_head


def read_fairseq_dictionary(path) -> dict[str, int]:
    """A fairseq target dictionary (``dict.ltr.txt``: one ``symbol count`` per line) as a CTC vocabulary.

    fairseq puts ``<s>``, ``<pad>``, ``</s>``, ``<unk>`` at ids 0-3 and uses id 0 as the CTC blank; transformers
    calls the blank ``<pad>``, so the published vocabularies read ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3,
    then the file's symbols from id 4, in its order. The rows of the CTC head stay where they are.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dictionary: {str(path)!r} does not exist; pass the dict.ltr.txt that the model "
                                f"was fine-tuned with (it sits beside fairseq's training data)")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        symbol, _, count = line.rpartition(" ")
        if not symbol or not count.lstrip("-").isdigit() and count != "#fairseq:overwrite":
            raise ValueError(f"dictionary: line {number} of {path.name} is {line!r}; expected 'symbol count'")
        if symbol.endswith(" #fairseq:overwrite"):
            symbol = symbol[: -len(" #fairseq:overwrite")]
        if symbol in vocab:
            raise ValueError(f"dictionary: {path.name} lists {symbol!r} twice (line {number})")
        vocab[symbol] = len(vocab)
    return vocab


# %% notebooks/12_after_the_course.ipynb, cell 49
def convert_fairseq(checkpoint, folder, dictionary=None) -> Path:
    """Convert a fairseq wav2vec 2.0 Conformer checkpoint (pretrained or CTC fine-tuned) into a folder.

    The folder is what transformers' ``save_pretrained`` writes: ``config.json`` and ``model.safetensors``
    (``Wav2Vec2ConformerForPreTraining``, or ``...ForCTC`` with the tokenizer's files), and
    ``preprocessor_config.json``; w2vc and transformers both load it.

    Args:
        checkpoint: the fairseq ``.pt`` file (read without running code, see ``load_fairseq_checkpoint``).
        folder: where to write (created).
        dictionary: for a CTC model, the ``dict.ltr.txt`` it was fine-tuned with.

    Returns:
        The folder.
    """
    from w2vc.audio import Wav2Vec2FeatureExtractor
    from w2vc.ctc import Wav2Vec2ConformerForCTC
    from w2vc.pretraining import Wav2Vec2ConformerForPreTraining
    from w2vc.tokenizer import CTCTokenizer

    state = load_fairseq_checkpoint(checkpoint)
    weights = state["model"]
    is_ctc = "w2v_encoder.proj.weight" in weights
    vocab = None
    if is_ctc:
        rows = weights["w2v_encoder.proj.weight"].shape[0]
        if dictionary is None:
            raise ValueError(f"dictionary: {Path(checkpoint).name} is a CTC recogniser with {rows} outputs, whose "
                             f"names are in the dict.ltr.txt it was fine-tuned with; pass it (--dict FILE)")
        vocab = read_fairseq_dictionary(dictionary)
        if len(vocab) != rows:
            raise ValueError(f"dictionary: {Path(dictionary).name} gives {len(vocab)} symbols (4 special + "
                             f"{len(vocab) - 4}), but the CTC head has {rows} outputs; pass the dictionary this model "
                             f"was fine-tuned with")
    config = fairseq_config(state, vocab_size=len(vocab) if vocab else None)
    state_dict, _ = fairseq_state_dict(weights, pretraining=not is_ctc)
    model = (Wav2Vec2ConformerForCTC if is_ctc else Wav2Vec2ConformerForPreTraining)(config)
    projection = "wav2vec2_conformer.feature_projection.projection."
    if projection + "weight" not in state_dict:
        # fairseq makes post_extract_proj only when the conv features and the encoder differ in width; without
        # it the features go in as they are. transformers' converter leaves a random projection here (its issue
        # 28174); the projection that does nothing is the identity.
        if config.conv_dim[-1] != config.hidden_size:
            raise ValueError(f"checkpoint: no post_extract_proj, but the conv features ({config.conv_dim[-1]}) and "
                             f"the encoder ({config.hidden_size}) differ in width; the checkpoint is incomplete")
        state_dict[projection + "weight"] = torch.eye(config.hidden_size)
        state_dict[projection + "bias"] = torch.zeros(config.hidden_size)
    own = model.state_dict()
    for key in own:  # buffers computed from the config (the rotary frequencies), not stored by fairseq
        if ".embed_positions." in key:
            state_dict[key] = own[key]
    expected = set(own)
    if "wav2vec2_conformer.masked_spec_embed" not in expected:  # fine-tuned without masking: not used
        state_dict.pop("wav2vec2_conformer.masked_spec_embed", None)
    mapped = set(state_dict)
    weight_norm = lambda k: re.sub(r"\.(weight_[gv]|parametrizations\.weight\.original[01])$", ".WN", k)  # noqa: E731
    missing = sorted({weight_norm(k) for k in expected} - {weight_norm(k) for k in mapped})
    unknown = sorted({weight_norm(k) for k in mapped} - {weight_norm(k) for k in expected})
    if unknown or missing:
        raise ValueError(f"checkpoint: its weights do not fit Wav2Vec2-Conformer: unknown {unknown[:6]}, missing "
                         f"{missing[:6]}; is it a wav2vec 2.0 Conformer checkpoint?")
    model.load_checkpoint_state_dict(state_dict)
    folder = Path(folder)
    model.save_pretrained(folder)
    _, _, task = _model_settings(state)
    extractor = Wav2Vec2FeatureExtractor(do_normalize=bool(task.get("normalize", config.feat_extract_norm == "layer")),
                                         return_attention_mask=config.feat_extract_norm == "layer")
    extractor.save_pretrained(folder)
    if vocab is not None:
        CTCTokenizer(vocab).save_pretrained(folder)
    return folder
