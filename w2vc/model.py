# GENERATED from notebooks/06_model.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/06_model.ipynb, cell 8
"""Wav2Vec2ConformerModel: feature encoder, masking, conformer encoder, adapter; loading and saving (chapter 6)."""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.conformer import (
    Wav2Vec2ConformerEncoder,
    Wav2Vec2ConformerPositionalConvEmbedding,
    Wav2Vec2ConformerSelfAttention,
)
from w2vc.features import (
    Wav2Vec2ConformerFeatureEncoder,
    Wav2Vec2ConformerFeatureProjection,
    check_input_values,
    feature_output_lengths,
    lengths_to_mask,
)
from w2vc.masking import apply_spec_augment


@dataclass
class Wav2Vec2ConformerBaseModelOutput:
    """What ``Wav2Vec2ConformerModel.forward`` returns.

    Attributes:
        last_hidden_state: ``(B, T', C')`` encoder output (after the adapter, if any: ``T'`` shorter, ``C'`` =
            ``output_hidden_size``).
        extract_features: ``(B, T, conv_dim[-1])`` normalised conv features (before projection and masking).
        hidden_states: ``num_hidden_layers + 1`` tensors ``(B, T, C)``: the first block's input, then each
            block's output (the last one before the final LayerNorm), or None.
        attentions: ``num_hidden_layers`` tensors ``(B, H, T, T)``, or None.
        mask_time_indices: ``(B, T)`` bool time mask that was applied, or None.
    """

    last_hidden_state: torch.Tensor
    extract_features: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    mask_time_indices: torch.Tensor | None = None


# %% notebooks/06_model.ipynb, cell 10
class Wav2Vec2ConformerAdapterLayer(nn.Module):
    """Strided Conv1d to twice the channels, then a GLU back to ``output_hidden_size``."""

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__()
        C = config.output_hidden_size
        self.conv = nn.Conv1d(C, 2 * C, config.adapter_kernel_size, stride=config.adapter_stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, C, T)``. Returns: ``(B, C, T')`` with ``T' = (T + 2 - k) // s + 1``."""
        return nn.functional.glu(self.conv(x), dim=1)       # (B, 2C, T') -> (B, C, T')


class Wav2Vec2ConformerAdapter(nn.Module):
    """Optional projection to ``output_hidden_size``, then ``num_adapter_layers`` downsampling layers."""

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__()
        if config.output_hidden_size != config.hidden_size:
            self.proj = nn.Linear(config.hidden_size, config.output_hidden_size)
            self.proj_layer_norm = nn.LayerNorm(config.output_hidden_size)
        else:
            self.proj = self.proj_layer_norm = None
        self.layers = nn.ModuleList(Wav2Vec2ConformerAdapterLayer(config) for _ in range(config.num_adapter_layers))
        self.layerdrop = config.layerdrop

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Args: hidden_states: ``(B, T, hidden_size)``. Returns: ``(B, T', output_hidden_size)``."""
        B, T, C = hidden_states.shape
        if self.proj is not None:
            hidden_states = self.proj_layer_norm(self.proj(hidden_states))   # (B, T, C')
        x = hidden_states.transpose(1, 2)                   # (B, C', T)
        for layer in self.layers:
            skip = self.training and self.layerdrop > 0 and torch.rand([]) < self.layerdrop   # LayerDrop
            if not skip:
                x = layer(x)                                # (B, C', T') about half as long
        return x.transpose(1, 2)                            # (B, T', C')


# %% notebooks/06_model.ipynb, cell 14
_INIT_WEIGHTS = [True]  # switched off while from_pretrained builds a model whose weights it will overwrite


class skip_weight_init:
    """Context manager: models built inside skip ``_init_weights`` (their weights are loaded next)."""

    def __enter__(self):
        _INIT_WEIGHTS.append(False)

    def __exit__(self, *exc):
        _INIT_WEIGHTS.pop()


class parameters_on_meta:
    """Context manager: modules built inside put their *parameters* on PyTorch's ``meta`` device (a shape and a
    dtype, no memory) and keep their *buffers* as they compute them (rotary frequencies, the relative position
    table, BatchNorm's statistics).

    ``from_pretrained`` builds a model so and then hands it the checkpoint's own tensors
    (``load_state_dict(assign=True)``): the weights exist once, never a random copy first. It works by wrapping
    ``nn.Module.register_parameter`` while the block runs (so, like any such switch, not while another thread
    builds modules).
    """

    def __enter__(self):
        self._register = register = nn.Module.register_parameter

        def register_on_meta(module, name, param):
            if param is not None and not param.is_meta:
                param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
            register(module, name, param)

        nn.Module.register_parameter = register_on_meta
        return self

    def __exit__(self, *exc):
        nn.Module.register_parameter = self._register


class Wav2Vec2ConformerPreTrainedModel(nn.Module):
    """Base class of ``Wav2Vec2ConformerModel`` and the models with heads.

    A subclass builds its modules in ``__init__(config)`` (a head model keeps its body in
    ``self.wav2vec2_conformer``) and ends with ``self.post_init()``.

    Attributes:
        config: the ``Wav2Vec2ConformerConfig``.
        base_model_prefix: attribute name of the body in head models (``"wav2vec2_conformer"``).
        main_input_name: ``"input_values"``.
    """

    config_class = Wav2Vec2ConformerConfig
    base_model_prefix = "wav2vec2_conformer"
    main_input_name = "input_values"
    # state_dict keys (suffixes) that may be absent from a checkpoint or from the model without an error:
    # buffers we recompute, and the masking vector that exists only when masking is configured
    _optional_keys = ("masked_spec_embed", "embed_positions.inv_freq", "num_batches_tracked")

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__()
        if not isinstance(config, Wav2Vec2ConformerConfig):
            raise TypeError(f"config must be a w2vc Wav2Vec2ConformerConfig, got {type(config).__name__}; "
                            "for a transformers config use Wav2Vec2ConformerConfig.from_dict(config.to_dict())")
        self.config = config

    # ---- initialisation ------------------------------------------------------------------------------
    def post_init(self) -> None:
        """Initialise every weight with ``_init_weights``; call it at the end of ``__init__``.

        Inside ``skip_weight_init()`` (as in ``from_pretrained``) this does nothing.
        """
        if _INIT_WEIGHTS[-1]:
            self.apply(self._init_weights)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise one module (``apply`` visits children before parents, so parents can override)."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                module.weight.fill_(1.0)
                module.bias.zero_()
        elif isinstance(module, nn.BatchNorm1d):
            module.reset_parameters()                       # weight 1, bias 0, running mean 0 and var 1
        elif isinstance(module, nn.Conv1d) and not nn.utils.parametrize.is_parametrized(module):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                bound = math.sqrt(module.groups / (module.in_channels * module.kernel_size[0]))
                module.bias.uniform_(-bound, bound)
        if isinstance(module, Wav2Vec2ConformerFeatureProjection):
            bound = 1.0 / math.sqrt(module.projection.in_features)
            module.projection.weight.uniform_(-bound, bound)
            module.projection.bias.uniform_(-bound, bound)
        elif isinstance(module, Wav2Vec2ConformerPositionalConvEmbedding):
            conv = module.conv
            v = conv.parametrizations.weight.original1      # (C, C/G, K) direction
            v.normal_(0.0, 2.0 * math.sqrt(1.0 / (conv.kernel_size[0] * conv.in_channels)))
            conv.parametrizations.weight.original0.copy_(v.norm(dim=(0, 1), keepdim=True))  # (1, 1, K): weight = v
            conv.bias.zero_()
        elif isinstance(module, Wav2Vec2ConformerSelfAttention) and hasattr(module, "pos_bias_u"):
            nn.init.xavier_uniform_(module.pos_bias_u)
            nn.init.xavier_uniform_(module.pos_bias_v)
        elif isinstance(module, Wav2Vec2ConformerModel) and module.masked_spec_embed is not None:
            module.masked_spec_embed.uniform_()

    # ---- the body, lengths and masks ----------------------------------------------------------------
    @property
    def base_model(self) -> "Wav2Vec2ConformerModel":
        """The ``Wav2Vec2ConformerModel`` inside (``self`` for the body itself)."""
        return getattr(self, self.base_model_prefix, self)

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point type of the parameters."""
        return next(self.parameters()).dtype

    def num_parameters(self, only_trainable: bool = False) -> int:
        """Number of (trainable) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    def _get_feat_extract_output_lengths(self, input_lengths, add_adapter: bool | None = None):
        """Frames per utterance from samples per utterance (int or tensor); see ``feature_output_lengths``."""
        return feature_output_lengths(input_lengths, self.config, add_adapter=add_adapter)

    def _get_feature_vector_attention_mask(self, feature_vector_length: int, attention_mask: torch.Tensor,
                                           add_adapter: bool | None = None) -> torch.Tensor:
        """Mask over frames from a (right-padded) mask over samples.

        Args:
            feature_vector_length: ``T``, frames of the padded batch.
            attention_mask: ``(B, S)``, 1 (True) on real samples.
            add_adapter: count the adapter's downsampling (default ``config.add_adapter``).

        Returns:
            ``(B, T)`` bool, True on real frames.
        """
        lengths = attention_mask.long().sum(-1)                               # (B,) samples
        frames = self._get_feat_extract_output_lengths(lengths, add_adapter=add_adapter)
        return lengths_to_mask(frames, feature_vector_length)                  # (B, T)

    def freeze_feature_encoder(self) -> None:
        """Stop training the conv feature encoder (its parameters get ``requires_grad=False``)."""
        self.base_model.feature_extractor._freeze_parameters()

    def gradient_checkpointing_enable(self) -> None:
        """Recompute the conv layers and conformer blocks in the backward pass instead of storing them."""
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        """Store activations again (the default)."""
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        """Whether any part recomputes its activations in the backward pass."""
        return any(getattr(m, "gradient_checkpointing", False) for m in self.modules())

    # ---- saving and loading (the functions are defined in the next cells) ----------------------------
    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) into ``folder``.

        transformers' ``from_pretrained`` reads the folder with no missing or unexpected keys.

        Returns:
            The folder, as a ``Path``.
        """
        return save_model_folder(self, folder, safe_serialization=safe_serialization)

    @classmethod
    def from_pretrained(cls, folder: str | Path, ignore_mismatched_sizes: bool = False, **config_overrides):
        """Build a model from a folder with ``config.json`` and weights, written by w2vc or transformers.

        The weights are memory-mapped and become the model's parameters as they are: loading allocates no
        second copy (see ``from_state_dict``).

        Args:
            folder: holds ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (or their sharded
                ``*.index.json`` forms).
            ignore_mismatched_sizes: re-initialise weights whose shape differs (e.g. a new vocabulary for a
                CTC head) with a warning, instead of raising.
            **config_overrides: replace config entries, e.g. ``mask_time_prob=0.0``, ``layerdrop=0.0``, or
                ``attn_implementation="eager"`` to choose the attention code (chapters 5 and 13).

        Returns:
            The model, in eval mode (call ``.train()`` to fine-tune).
        """
        folder = check_model_folder(folder)
        config = Wav2Vec2ConformerConfig.from_pretrained(folder, **config_overrides)
        return cls.from_state_dict(config, read_state_dict(folder), ignore_mismatched_sizes=ignore_mismatched_sizes)

    @classmethod
    def from_state_dict(cls, config: Wav2Vec2ConformerConfig, state_dict: dict[str, torch.Tensor],
                        ignore_mismatched_sizes: bool = False):
        """Build a model around a checkpoint's tensors, without making weights of its own first.

        The model is built with its parameters on the ``meta`` device (``parameters_on_meta``) and without
        initialisation (``skip_weight_init``); the checkpoint's tensors then *become* its parameters (converted
        only where the dtype differs). Parameters the checkpoint does not give (a new head, a re-initialised
        mismatched weight, ``masked_spec_embed``) are made and initialised with ``_init_weights``. The tensors
        are taken over, not copied: a model built from another model's ``state_dict()`` shares its memory (pass
        ``{k: v.clone() for k, v in state_dict.items()}`` for a copy).

        Args:
            config: the model's configuration.
            state_dict: ``{key: tensor}`` in any key form ``match_checkpoint_keys`` accepts (e.g. from
                ``read_state_dict``).
            ignore_mismatched_sizes: as for ``from_pretrained``.

        Returns:
            The model, in eval mode.
        """
        with skip_weight_init(), parameters_on_meta():
            model = cls(config)
        model.load_checkpoint_state_dict(state_dict, ignore_mismatched_sizes=ignore_mismatched_sizes,
                                         init_the_rest=True)
        return model.eval()

    def load_checkpoint_state_dict(self, state_dict: dict[str, torch.Tensor], ignore_mismatched_sizes: bool = False,
                                   init_the_rest: bool = False) -> None:
        """Load a checkpoint's weights, converting key forms; see ``match_checkpoint_keys``.

        With ``init_the_rest``, modules holding weights the checkpoint did not give (a new head) are
        initialised with ``_init_weights`` (for models built inside ``skip_weight_init()``). A model whose
        parameters are on the ``meta`` device (built inside ``parameters_on_meta()``) takes the checkpoint's
        tensors themselves; any other model copies them into its own.
        """
        load_checkpoint_into(self, state_dict, ignore_mismatched_sizes=ignore_mismatched_sizes,
                             init_the_rest=init_the_rest)


# %% notebooks/06_model.ipynb, cell 16
class Wav2Vec2ConformerModel(Wav2Vec2ConformerPreTrainedModel):
    """The Wav2Vec2-Conformer body: raw audio ``(B, S)`` -> hidden states ``(B, T, C)``.

    Its ``state_dict`` keys are those of transformers' ``Wav2Vec2ConformerModel``: ``feature_extractor.*``,
    ``feature_projection.*``, ``masked_spec_embed`` (only when ``mask_time_prob`` or ``mask_feature_prob`` is
    positive), ``encoder.*`` and ``adapter.*`` (only with ``add_adapter``).
    """

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__(config)
        self.feature_extractor = Wav2Vec2ConformerFeatureEncoder(config)
        self.feature_projection = Wav2Vec2ConformerFeatureProjection(config)
        if config.mask_time_prob > 0.0 or config.mask_feature_prob > 0.0:
            self.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size))   # (C,)
        else:
            self.masked_spec_embed = None
        self.encoder = Wav2Vec2ConformerEncoder(config)
        self.adapter = Wav2Vec2ConformerAdapter(config) if config.add_adapter else None
        self.post_init()

    def _check_attention_mask(self, attention_mask: torch.Tensor, input_values: torch.Tensor) -> torch.Tensor:
        if tuple(attention_mask.shape) != tuple(input_values.shape):
            raise ValueError(f"attention_mask must have the shape of input_values (batch, samples) = "
                             f"{tuple(input_values.shape)}, got {tuple(attention_mask.shape)}; give one flag per "
                             "sample (1 real, 0 padding), as the feature extractor returns it")
        # the values are checked when running eagerly; under torch.compile that check would stop the graph
        if (attention_mask.dtype != torch.bool and not torch.compiler.is_compiling()
                and not bool(((attention_mask == 0) | (attention_mask == 1)).all())):
            raise ValueError("attention_mask must hold only 0 and 1 (or False and True), "
                             f"got values {attention_mask.unique()[:5].tolist()}")
        return attention_mask.to(input_values.device)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                mask_time_indices: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False, generator: torch.Generator | None = None,
                ) -> Wav2Vec2ConformerBaseModelOutput:
        """Encode a batch of waveforms.

        Args:
            input_values: ``(B, S)`` float audio, 16 kHz, normalised per utterance (chapter 1).
            attention_mask: optional ``(B, S)``, 1 on real samples and 0 on right padding.
            mask_time_indices: optional ``(B, T)`` bool frames to replace by ``masked_spec_embed`` (applied in
                training and in eval). Without it, masks are sampled in training only (chapter 3).
            output_hidden_states: also return the hidden states between blocks.
            output_attentions: also return every block's attention weights.
            generator: random source for sampled masks.

        Returns:
            ``Wav2Vec2ConformerBaseModelOutput`` with ``last_hidden_state`` ``(B, T', C')`` and
            ``extract_features`` ``(B, T, conv_dim[-1])``, and the optional fields.
        """
        check_input_values(input_values, self.config)
        if attention_mask is not None:
            attention_mask = self._check_attention_mask(attention_mask, input_values)
        features, _ = self.feature_extractor(input_values)                   # (B, T, C_conv)
        B, T, _ = features.shape
        frame_mask = None
        if attention_mask is not None:
            frame_mask = self._get_feature_vector_attention_mask(T, attention_mask, add_adapter=False)  # (B, T)
        hidden_states, extract_features = self.feature_projection(features)  # (B, T, C), (B, T, C_conv)
        hidden_states, mask_time_indices = apply_spec_augment(
            hidden_states, self.masked_spec_embed, self.config, mask_time_indices=mask_time_indices,
            attention_mask=frame_mask, training=self.training, generator=generator)
        last_hidden_state, all_hidden, all_attentions = self.encoder(
            hidden_states, attention_mask=frame_mask, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states)                      # (B, T, C)
        if self.adapter is not None:
            last_hidden_state = self.adapter(last_hidden_state)              # (B, T', C')
        return Wav2Vec2ConformerBaseModelOutput(
            last_hidden_state=last_hidden_state, extract_features=extract_features,
            hidden_states=all_hidden, attentions=all_attentions, mask_time_indices=mask_time_indices)


# %% notebooks/06_model.ipynb, cell 30
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
MODEL_FOLDER = ("A model folder holds config.json and the weights (model.safetensors, pytorch_model.bin, or shards "
                "with an *.index.json), as save_pretrained of w2vc or transformers writes them.")


def check_model_folder(folder: str | Path) -> Path:
    """Return ``folder`` as a ``Path`` if it holds ``config.json`` and weights; else say what is wrong.

    Raises:
        FileNotFoundError: the folder does not exist, or lacks ``config.json`` or the weights (the message
            names the missing files and what the folder holds instead).
        NotADirectoryError: ``folder`` is a file.
    """
    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"folder: {str(folder)!r} does not exist; pass the path of a model folder. "
                                f"{MODEL_FOLDER}")
    if not path.is_dir():
        raise NotADirectoryError(f"folder: expected a model folder, got the file {str(folder)!r}; pass the folder "
                                 f"that holds it. {MODEL_FOLDER}")
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / name).is_file() for name in WEIGHTS_FILES + INDEX_FILES):
        missing.append("weights file")
    if missing:
        names = sorted(p.name for p in path.iterdir())
        held = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "") if names else "nothing"
        raise FileNotFoundError(f"folder: {str(folder)!r} is not a model folder: it has no {' and no '.join(missing)} "
                                f"(it holds {held}). {MODEL_FOLDER}")
    return path


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of one weights file, memory-mapped: pages are read when first used, and writing to a tensor
    changes this process's copy of the page, never the file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))                                   # memory-mapped by safetensors
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:                                              # the legacy (pre-zip) format cannot be mapped
        return torch.load(path, map_location="cpu", weights_only=True)


def read_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """Read the weights of a model folder: ``model.safetensors``, ``pytorch_model.bin`` or a sharded index.

    Returns:
        ``{key: tensor}`` on the CPU, keys as stored, memory-mapped from the files (no copy is made until a
        tensor is written to).
    """
    folder = Path(folder)
    for name in WEIGHTS_FILES:
        if (folder / name).is_file():
            return _read_weights_file(folder / name)
    for name in INDEX_FILES:
        if (folder / name).is_file():
            index = json.loads((folder / name).read_text())
            state_dict = {}
            for shard in sorted(set(index["weight_map"].values())):
                state_dict.update(_read_weights_file(folder / shard))
            return state_dict
    raise FileNotFoundError(f"no weights found in {folder}: expected one of {list(WEIGHTS_FILES + INDEX_FILES)}")


def save_model_folder(model: nn.Module, folder: str | Path, safe_serialization: bool = True) -> Path:
    """Write ``config.json`` (naming the model class in ``architectures``) and the weights.

    The weights file gets the permissions of ``config.json`` (which follow the umask), and it is written to a
    temporary name and then renamed: a model memory-mapped from the old file keeps reading the old file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = model.config.save_pretrained(folder, architectures=[type(model).__name__])
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = folder / ("model.safetensors" if safe_serialization else "pytorch_model.bin")
    temporary = path.with_name(f".{path.name}.tmp")
    if safe_serialization:
        from safetensors.torch import save_file
        save_file(state_dict, str(temporary), metadata={"format": "pt"})
    else:
        torch.save(state_dict, temporary)
    os.chmod(temporary, config_path.stat().st_mode & 0o777)   # safetensors writes 0600 whatever the umask
    os.replace(temporary, path)
    return folder


# %% notebooks/06_model.ipynb, cell 32
_WEIGHT_NORM_FORMS = (("weight_g", "parametrizations.weight.original0"),
                      ("weight_v", "parametrizations.weight.original1"))


def _rename_weight_norm(key: str, wanted: set[str]) -> str:
    """Turn ``...weight_g/_v`` into ``...parametrizations.weight.original0/1`` (or back) if the model wants it."""
    if key in wanted:
        return key
    for old, new in _WEIGHT_NORM_FORMS:
        for a, b in ((old, new), (new, old)):
            if key.endswith("." + a) and key[: -len(a)] + b in wanted:
                return key[: -len(a)] + b
    return key


@dataclass
class CheckpointMatch:
    """How a checkpoint's keys fit a model.

    Attributes:
        state_dict: the checkpoint with keys renamed to the model's, only keys the model has.
        missing: model keys (in the body) that the checkpoint lacks: an error.
        unexpected: checkpoint keys (in the body) the model does not have: an error.
        new_head: model keys outside the body that the checkpoint lacks: initialised afresh, with a warning.
        unused: checkpoint keys outside the body (another head): left out, with a warning.
        optional: keys absent on one side that need nothing (recomputed buffers, masked_spec_embed).
        mismatched: ``(key, checkpoint shape, model shape)`` for keys whose shapes differ.
    """

    state_dict: dict[str, torch.Tensor]
    missing: list[str]
    unexpected: list[str]
    new_head: list[str]
    unused: list[str]
    optional: list[str]
    mismatched: list[tuple[str, tuple, tuple]]


def match_checkpoint_keys(model: Wav2Vec2ConformerPreTrainedModel,
                          state_dict: dict[str, torch.Tensor]) -> CheckpointMatch:
    """Sort a checkpoint's keys against a model's ``state_dict``; nothing is loaded."""
    own = model.state_dict()
    wanted = set(own)
    prefix = model.base_model_prefix + "."
    model_is_head = any(k.startswith(prefix) for k in wanted)
    ckpt_is_head = any(k.startswith(prefix) for k in state_dict)
    renamed, unused = {}, []
    for key, value in state_dict.items():
        if model_is_head and not ckpt_is_head:
            key = prefix + key                                   # a body's weights into a head model
        elif ckpt_is_head and not model_is_head:
            if not key.startswith(prefix):                       # a head's weights into the body
                unused.append(key)
                continue
            key = key[len(prefix):]
        renamed[_rename_weight_norm(key, wanted)] = value

    def in_body(key):
        return key.startswith(prefix) if model_is_head else True

    def optional(key):
        return any(key == s or key.endswith("." + s) for s in model._optional_keys)

    tied: dict[str, list[str]] = {}                              # key -> every key of the same parameter
    for key, param in model.named_parameters(remove_duplicate=False):
        tied.setdefault(id(param), []).append(key)
    tied = {key: keys for keys in tied.values() for key in keys}
    missing, new_head, skipped = [], [], []
    for key in own:
        if key not in renamed:
            given = any(k in renamed for k in tied.get(key, ()))   # a shared parameter, given under another name
            (skipped if optional(key) or given else missing if in_body(key) else new_head).append(key)
    unexpected = []
    for key in list(renamed):
        if key not in wanted:
            (skipped if optional(key) else unexpected if in_body(key) else unused).append(key)
            del renamed[key]
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in renamed.items() if v.shape != own[k].shape]
    return CheckpointMatch(renamed, missing, unexpected, new_head, unused, skipped, mismatched)


def _own_memory(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy the tensors whose memory overlaps an earlier one's (views of one storage in a ``.bin`` file), so
    that parameters taking them over stay independent."""
    spans = sorted((v.data_ptr(), v.data_ptr() + v.numel() * v.element_size(), k)
                   for k, v in state_dict.items() if v.numel())
    out, end = dict(state_dict), 0
    for start, stop, key in spans:
        if start < end:
            out[key] = state_dict[key].clone()
        end = max(end, stop)
    return out


def _assign_checkpoint(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Make the checkpoint's tensors the parameters and buffers of a model whose parameters are on ``meta``.

    Tensors whose dtype differs from the model's, or that are not on the CPU, are converted (the only copies
    made: the model is built on the CPU, like one built from random weights); parameters shared by
    several modules stay shared; parameters the checkpoint does not give get fresh, uninitialised memory.
    """
    own = model.state_dict(keep_vars=True)
    tensors = _own_memory({k: v.to(device="cpu", dtype=own[k].dtype) for k, v in state_dict.items()})  # no-op mostly
    shared: dict[int, list[str]] = {}
    for key, param in model.named_parameters(remove_duplicate=False):
        shared.setdefault(id(param), []).append(key)
    model.load_state_dict(tensors, strict=False, assign=True)
    made: dict[int, nn.Parameter] = {}
    for module in model.modules():                       # what the checkpoint did not give: real memory
        for key, param in module._parameters.items():
            if param is not None and param.is_meta:
                if id(param) not in made:
                    made[id(param)] = nn.Parameter(torch.empty_like(param, device="cpu"),
                                                   requires_grad=param.requires_grad)
                module._parameters[key] = made[id(param)]
    for keys in shared.values():                         # assign=True replaced each name on its own: re-tie
        if len(keys) > 1:
            first = model.get_parameter(next((k for k in keys if k in tensors), keys[0]))   # a loaded one
            for key in keys:
                owner, _, leaf = key.rpartition(".")
                model.get_submodule(owner)._parameters[leaf] = first


def load_checkpoint_into(model: Wav2Vec2ConformerPreTrainedModel, state_dict: dict[str, torch.Tensor],
                         ignore_mismatched_sizes: bool = False, init_the_rest: bool = False) -> CheckpointMatch:
    """Load ``state_dict`` into ``model`` after ``match_checkpoint_keys``; raise on missing, unexpected or
    mis-shaped body weights, warn about new or unused head weights. With ``init_the_rest``, initialise every
    module that owns a parameter the checkpoint did not give.

    A model whose parameters are on the ``meta`` device takes the checkpoint's tensors themselves (no copy);
    any other model copies them into its own parameters.
    """
    match = match_checkpoint_keys(model, state_dict)
    name = type(model).__name__
    if match.missing or match.unexpected:
        def show(keys):
            return ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "") or "none"
        raise ValueError(f"the checkpoint does not fit {name}: missing keys: {show(match.missing)}; "
                         f"unexpected keys: {show(match.unexpected)}. Is config.json the one saved with these "
                         "weights (position_embeddings_type, feat_extract_norm, add_adapter, num_hidden_layers)?")
    if match.mismatched:
        lines = "; ".join(f"{k}: checkpoint {c}, model {m}" for k, c, m in match.mismatched[:8])
        if not ignore_mismatched_sizes:
            raise ValueError(f"the checkpoint's shapes do not match {name} built from its config: {lines}. "
                             "Fix config.json, or pass ignore_mismatched_sizes=True to re-initialise these weights")
        warnings.warn(f"re-initialised weights whose shapes differ from the checkpoint: {lines}", stacklevel=3)
        for key, _, _ in match.mismatched:
            del match.state_dict[key]
    if any(p.is_meta for p in model.parameters()):
        _assign_checkpoint(model, match.state_dict)
    else:
        model.load_state_dict(match.state_dict, strict=False)
    if init_the_rest:
        given = {id(p) for key, p in model.named_parameters(remove_duplicate=False) if key in match.state_dict}
        for module in model.modules():
            if any(id(p) not in given for p in module.parameters(recurse=False)):
                model._init_weights(module)
    if match.new_head:
        warnings.warn(f"{name}: these weights are not in the checkpoint and were newly initialised (train them "
                      f"before use): {', '.join(match.new_head)}", stacklevel=3)
    if match.unused:
        warnings.warn(f"{name}: these checkpoint weights belong to another head and were not used: "
                      f"{', '.join(match.unused[:12])}", stacklevel=3)
    return match
