# GENERATED from notebooks/02_feature_encoder.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/02_feature_encoder.ipynb, cell 6
"""The configuration of a Wav2Vec2-Conformer: one dataclass, read from and written to ``config.json``."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


class QuickGELU(nn.Module):
    """The sigmoid approximation of GELU: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


# name in config.json -> a function that makes the activation module
ACTIVATIONS = {
    "gelu": nn.GELU,                                         # exact, erf-based GELU
    "gelu_new": lambda: nn.GELU(approximate="tanh"),         # tanh approximation
    "gelu_fast": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "quick_gelu": QuickGELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,                                        # swish(x) = x * sigmoid(x) = silu(x)
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "linear": nn.Identity,
}


def get_activation(name: str) -> nn.Module:
    """Return a new activation module for a name used in ``config.json``.

    Args:
        name: one of the keys of ``ACTIVATIONS`` (``"gelu"``, ``"swish"``, ...).

    Returns:
        An ``nn.Module`` that maps a tensor of any shape to one of the same shape.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


# %% notebooks/02_feature_encoder.ipynb, cell 10
MODEL_TYPE = "wav2vec2-conformer"

# keys of transformers' config.json that describe transformers itself, not the model: dropped on reading
TRANSFORMERS_ONLY_KEYS = frozenset({
    "transformers_version", "architectures", "model_type", "torch_dtype", "dtype", "_name_or_path",
    "num_feat_extract_layers", "output_hidden_states", "output_attentions", "return_dict", "use_return_dict",
    "chunk_size_feed_forward", "is_encoder_decoder", "problem_type", "_attn_implementation",
    "_attn_implementation_autoset", "_commit_hash", "torchscript", "gradient_checkpointing",
})

_LIST_FIELDS = ("conv_dim", "conv_stride", "conv_kernel", "tdnn_dim", "tdnn_kernel", "tdnn_dilation")


@dataclass
class Wav2Vec2ConformerConfig:
    """Sizes and switches of a Wav2Vec2-Conformer, with transformers' field names and defaults.

    The defaults describe transformers' default model (12 layers, 768 wide, relative positions).
    ``Wav2Vec2ConformerConfig.preset(name)`` gives the sizes this book trains and the published large models.
    """

    # vocabulary of the CTC head (chapter 9); None until a tokenizer fixes it
    vocab_size: int | None = None
    # the conformer encoder
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    activation_dropout: float = 0.1
    attention_dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    feat_quantizer_dropout: float = 0.0
    final_dropout: float = 0.1
    layerdrop: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    # which attention code runs (chapter 13): "eager" (chapter 5's) or "sdpa"; a choice of this run, not a
    # property of the model, so it is never written to config.json (transformers keeps it out too)
    attn_implementation: str = "eager"
    # the convolutional feature encoder (chapter 2)
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_bias: bool = False
    # the positional convolution: in the weights, never applied (chapter 5)
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    # SpecAugment masking (chapter 3)
    apply_spec_augment: bool = True
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    mask_feature_min_masks: int = 0
    # quantizer and contrastive pretraining (chapters 7, 8)
    num_codevectors_per_group: int = 320
    num_codevector_groups: int = 2
    contrastive_logits_temperature: float = 0.1
    num_negatives: int = 100
    codevector_dim: int = 256
    proj_codevector_dim: int = 256
    diversity_loss_weight: float = 0.1
    # heads (chapters 9, 10, 11)
    ctc_loss_reduction: str = "sum"
    ctc_zero_infinity: bool = False
    use_weighted_layer_sum: bool = False
    classifier_proj_size: int = 256
    tdnn_dim: tuple[int, ...] = (512, 512, 512, 512, 1500)
    tdnn_kernel: tuple[int, ...] = (5, 3, 3, 1, 1)
    tdnn_dilation: tuple[int, ...] = (1, 2, 3, 1, 1)
    xvector_output_dim: int = 512
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    # the adapter on top of the encoder (chapter 6)
    add_adapter: bool = False
    adapter_kernel_size: int = 3
    adapter_stride: int = 2
    num_adapter_layers: int = 3
    output_hidden_size: int | None = None  # None: same as hidden_size
    # positions (chapter 4)
    position_embeddings_type: str | None = "relative"  # "relative", "rotary" or None
    rotary_embedding_base: int = 10000
    max_source_positions: int = 5000
    # the conformer convolution module (chapter 5)
    conv_depthwise_kernel_size: int = 31
    conformer_conv_dropout: float = 0.1
    # labels of classification heads; num_labels follows id2label when that is given
    num_labels: int | None = None
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    # keys of a config.json that this class does not know: kept and written back
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for name in _LIST_FIELDS:
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.output_hidden_size is None:
            self.output_hidden_size = self.hidden_size
        self._fill_labels()
        self.validate()

    def _fill_labels(self):
        if self.id2label is None:
            n = 2 if self.num_labels is None else int(self.num_labels)
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
        else:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
            generic = all(v == f"LABEL_{k}" for k, v in self.id2label.items())
            if self.num_labels is not None and int(self.num_labels) != len(self.id2label):
                if not generic:
                    raise ValueError(
                        f"num_labels is {self.num_labels} but id2label names {len(self.id2label)} labels; "
                        "give one of them, or make them agree")
                self.id2label = {i: f"LABEL_{i}" for i in range(int(self.num_labels))}
        self.num_labels = len(self.id2label)
        inverse = {v: k for k, v in self.id2label.items()}
        if self.label2id is None or {str(k): int(v) for k, v in self.label2id.items()} != inverse:
            self.label2id = inverse
        else:
            self.label2id = {str(k): int(v) for k, v in self.label2id.items()}

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when values do not fit together."""
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}")
        lengths = {"conv_dim": len(self.conv_dim), "conv_stride": len(self.conv_stride),
                   "conv_kernel": len(self.conv_kernel)}
        if len(set(lengths.values())) != 1 or lengths["conv_dim"] == 0:
            raise ValueError(f"conv_dim, conv_stride and conv_kernel need one entry per conv layer (at least one), "
                             f"got lengths {lengths}; give the three lists the same length")
        tdnn = {"tdnn_dim": len(self.tdnn_dim), "tdnn_kernel": len(self.tdnn_kernel),
                "tdnn_dilation": len(self.tdnn_dilation)}
        if len(set(tdnn.values())) != 1:
            raise ValueError(f"tdnn_dim, tdnn_kernel and tdnn_dilation need one entry per TDNN layer, "
                             f"got lengths {tdnn}; give the three lists the same length")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                             f"({self.num_attention_heads}); each head gets hidden_size / num_attention_heads channels")
        if self.hidden_size % self.num_conv_pos_embedding_groups != 0:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_conv_pos_embedding_groups "
                             f"({self.num_conv_pos_embedding_groups})")
        if self.conv_depthwise_kernel_size % 2 == 0:
            raise ValueError(f"conv_depthwise_kernel_size must be odd so that 'same' padding keeps the length, "
                             f"got {self.conv_depthwise_kernel_size}; use {self.conv_depthwise_kernel_size + 1}")
        if self.attn_implementation not in ("eager", "sdpa"):
            raise ValueError(f"attn_implementation: expected one of ['eager', 'sdpa'], got {self.attn_implementation!r}; "
                             "'eager' is chapter 5's attention (it can return the weights), 'sdpa' the fused "
                             "kernels of chapter 13")
        if self.position_embeddings_type not in ("relative", "rotary", None):
            raise ValueError(f"position_embeddings_type must be 'relative', 'rotary' or None, "
                             f"got {self.position_embeddings_type!r}")
        if self.position_embeddings_type == "rotary" and (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(f"rotary positions rotate pairs of channels, so the head size "
                             f"(hidden_size / num_attention_heads = {self.hidden_size // self.num_attention_heads}) "
                             f"must be even")
        for name in ("hidden_act", "feat_extract_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f"{name} is {getattr(self, name)!r}, an unknown activation; "
                                 f"expected one of {sorted(ACTIVATIONS)}")
        if self.codevector_dim % self.num_codevector_groups != 0:
            raise ValueError(f"codevector_dim ({self.codevector_dim}) must be divisible by num_codevector_groups "
                             f"({self.num_codevector_groups}): the groups' codevectors are concatenated")
        for name in ("mask_time_prob", "mask_feature_prob", "layerdrop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")

    @property
    def num_feat_extract_layers(self) -> int:
        """Number of conv layers in the feature encoder."""
        return len(self.conv_dim)

    @property
    def inputs_to_logits_ratio(self) -> int:
        """Samples per output frame: the product of the conv strides (320 for 16 kHz -> 50 frames/s)."""
        return math.prod(self.conv_stride)

    # ---- reading and writing -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict in the layout of transformers' ``config.json`` (lists, string label ids)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            # num_labels is written as id2label, as transformers does; attn_implementation is not the model's
            if f.name in ("extra", "num_labels", "attn_implementation"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["num_feat_extract_layers"] = self.num_feat_extract_layers
        out["model_type"] = MODEL_TYPE
        out.update(self.extra)
        return dict(sorted(out.items()))

    def to_diff_dict(self) -> dict[str, Any]:
        """Only the entries of ``to_dict()`` that differ from the defaults: what makes this config special."""
        default = type(self)().to_dict()
        return {k: v for k, v in self.to_dict().items() if default.get(k, object()) != v}

    @classmethod
    def from_dict(cls, d: dict[str, Any], **overrides) -> "Wav2Vec2ConformerConfig":
        """Make a config from a dict such as a parsed ``config.json``; ``overrides`` replace entries."""
        d = {**d, **overrides}
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names and k not in TRANSFORMERS_ONLY_KEYS}
        return cls(**known, extra=extra)

    def to_json_string(self, **additional) -> str:
        """The config as indented JSON; ``additional`` keys (e.g. ``architectures``) are added."""
        return json.dumps({**self.to_dict(), **additional}, indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | Path, **additional) -> None:
        """Write ``to_json_string`` to ``path``."""
        Path(path).write_text(self.to_json_string(**additional), encoding="utf-8")

    @classmethod
    def from_json_file(cls, path: str | Path, **overrides) -> "Wav2Vec2ConformerConfig":
        """Read a ``config.json``."""
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        model_type = d.get("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise ValueError(f"{path} describes a {model_type!r} model, expected {MODEL_TYPE!r}; "
                             "w2vc loads Wav2Vec2-Conformer checkpoints only")
        return cls.from_dict(d, **overrides)

    def save_pretrained(self, folder: str | Path, **additional) -> Path:
        """Write ``folder/config.json`` (the folder is created); returns its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "config.json"
        self.to_json_file(path, **additional)
        return path

    @classmethod
    def from_pretrained(cls, folder: str | Path, **overrides) -> "Wav2Vec2ConformerConfig":
        """Read ``folder/config.json`` (or a path to the file itself) written by w2vc or transformers."""
        path = Path(folder)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"no config.json found at {path}; expected a folder written by "
                                    "save_pretrained (w2vc's or transformers') holding config.json")
        return cls.from_json_file(path, **overrides)

    @classmethod
    def preset(cls, name: str, **overrides) -> "Wav2Vec2ConformerConfig":
        """A named size: ``"tiny"`` (what this book trains), ``"large-rope"``, ``"large-rel"`` (published)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


# %% notebooks/02_feature_encoder.ipynb, cell 12
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=32, hidden_size=144, num_hidden_layers=4, num_attention_heads=4, intermediate_size=576,
        hidden_act="swish", position_embeddings_type="rotary",
        feat_extract_norm="layer", conv_bias=True,
        conv_dim=(64, 128, 128, 128), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16,
        conv_depthwise_kernel_size=15, layerdrop=0.0,
        mask_time_prob=0.5, mask_time_length=5, mask_time_min_masks=2,
        num_codevector_groups=2, num_codevectors_per_group=64, num_negatives=20,
        codevector_dim=128, proj_codevector_dim=128,
        classifier_proj_size=128, tdnn_dim=(128, 128, 128, 128, 384), xvector_output_dim=128,
    ),
    "large-rope": dict(
        vocab_size=32, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        hidden_act="swish", position_embeddings_type="rotary",
        feat_extract_norm="layer", conv_bias=True, feat_proj_dropout=0.1,
        codevector_dim=768, proj_codevector_dim=768,
    ),
    "large-rel": dict(
        vocab_size=32, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        hidden_act="swish", position_embeddings_type="relative",
        feat_extract_norm="layer", conv_bias=True, feat_proj_dropout=0.1,
        codevector_dim=768, proj_codevector_dim=768,
    ),
}
