# GENERATED from notebooks/02_feature_encoder.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/02_feature_encoder.ipynb, cell 20
"""The convolutional feature encoder: raw 16 kHz audio (B, S) -> frames (B, T, C), and the feature projection."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from w2vc.config import Wav2Vec2ConformerConfig, get_activation


def _conv_out(length, kernel: int, stride: int):
    """floor((length - kernel) / stride) + 1, for an int or an integer tensor."""
    return (length - kernel) // stride + 1


def feature_output_lengths(input_lengths, config: Wav2Vec2ConformerConfig, add_adapter: bool | None = None):
    """Number of frames the feature encoder (and the adapter, if on) makes from ``input_lengths`` samples.

    Args:
        input_lengths: an ``int`` or an integer tensor of any shape, e.g. ``(B,)``: samples per utterance.
        config: gives ``conv_kernel``, ``conv_stride`` and the adapter's ``num_adapter_layers``, ``adapter_stride``.
        add_adapter: count the adapter's downsampling too; ``None`` means ``config.add_adapter``.

    Returns:
        Frames per utterance, same type and shape as ``input_lengths``, clamped at zero.
    """
    add_adapter = config.add_adapter if add_adapter is None else add_adapter
    lengths = input_lengths
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        lengths = _conv_out(lengths, kernel, stride)
    if add_adapter:
        for _ in range(config.num_adapter_layers):
            lengths = _conv_out(lengths + 2, config.adapter_kernel_size, config.adapter_stride)  # padding 1
    if isinstance(lengths, torch.Tensor):
        return lengths.clamp(min=0)
    return max(int(lengths), 0)


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """Boolean mask that is True on the first ``lengths[b]`` steps of each row.

    Args:
        lengths: ``(B,)`` integer tensor.
        max_length: ``T``, the padded length.

    Returns:
        ``(B, T)`` bool tensor.
    """
    steps = torch.arange(max_length, device=lengths.device)  # (T,)
    return steps[None, :] < lengths[:, None]                  # (B, T)


# %% notebooks/02_feature_encoder.ipynb, cell 24
def receptive_field(config: Wav2Vec2ConformerConfig) -> tuple[int, int]:
    """Samples seen by one output frame, and samples between two frames.

    Returns:
        ``(field, stride)``: ``(400, 320)`` for transformers' default conv stack.
    """
    field, jump = 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        field += (kernel - 1) * jump
        jump *= stride
    return field, jump


def receptive_field_per_layer(config: Wav2Vec2ConformerConfig) -> list[tuple[int, int]]:
    """``(field, stride)`` in samples after each conv layer, from the first to the last."""
    out, field, jump = [], 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        field += (kernel - 1) * jump
        jump *= stride
        out.append((field, jump))
    return out


# %% notebooks/02_feature_encoder.ipynb, cell 30
class Wav2Vec2ConformerConvLayer(nn.Module):
    """Conv1d -> (GroupNorm | LayerNorm | nothing) -> activation, on ``(B, C_in, L)``.

    Args:
        config: the model configuration.
        layer_id: index of this layer in the stack; its input has ``conv_dim[layer_id - 1]`` channels
            (1, the waveform, for layer 0).
    """

    def __init__(self, config: Wav2Vec2ConformerConfig, layer_id: int):
        super().__init__()
        c_in = config.conv_dim[layer_id - 1] if layer_id > 0 else 1
        c_out = config.conv_dim[layer_id]
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=config.conv_kernel[layer_id],
                              stride=config.conv_stride[layer_id], bias=config.conv_bias)
        if config.feat_extract_norm == "layer":
            self.norm_kind = "layer"
            self.layer_norm = nn.LayerNorm(c_out)          # over channels, per frame; eps 1e-5 as published
        elif layer_id == 0:
            self.norm_kind = "group"
            self.layer_norm = nn.GroupNorm(num_groups=c_out, num_channels=c_out)  # per channel, over time
        else:
            self.norm_kind = None
        self.activation = get_activation(config.feat_extract_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, C_in, L)``. Returns: ``(B, C_out, L')`` with ``L' = (L - k) // s + 1``."""
        x = self.conv(x)                                    # (B, C_out, L')
        if self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)  # (B, L', C_out) -> norm -> (B, C_out, L')
        elif self.norm_kind == "group":
            x = self.layer_norm(x)                          # (B, C_out, L')
        return self.activation(x)


# %% notebooks/02_feature_encoder.ipynb, cell 34
def check_input_values(input_values: torch.Tensor, config: Wav2Vec2ConformerConfig) -> None:
    """Raise a clear error unless ``input_values`` is a float ``(B, S)`` batch at least one receptive field long."""
    if not isinstance(input_values, torch.Tensor):
        raise TypeError(f"input_values must be a torch.Tensor of shape (batch, samples), "
                        f"got {type(input_values).__name__}; convert with torch.as_tensor(...)")
    if input_values.dim() != 2:
        hint = " (a channel axis? mix down to mono, e.g. x.mean(1))" if input_values.dim() == 3 else ""
        raise ValueError(f"input_values must have shape (batch, samples), got {tuple(input_values.shape)}{hint}; "
                         "for one utterance use x[None]")
    if not torch.is_floating_point(input_values):
        raise TypeError(f"input_values must be floating point audio, got dtype {input_values.dtype}; "
                        "convert int16 PCM with x.float() / 32768 and normalise it (w2vc.audio)")
    field, _ = receptive_field(config)
    if input_values.shape[1] < field:
        raise ValueError(f"input_values has {input_values.shape[1]} samples, fewer than the receptive field of "
                         f"the feature encoder ({field} samples = {field / 16:.1f} ms at 16 kHz), so no frame "
                         "can be made; pad the audio to at least that length")


class Wav2Vec2ConformerFeatureEncoder(nn.Module):
    """Raw audio ``(B, S)`` -> frames ``(B, T, conv_dim[-1])`` through ``len(conv_dim)`` conv layers."""

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__()
        self.config = config
        self.attn_implementation = config.attn_implementation   # "sdpa": chapter 13's fast path, here too
        self.conv_layers = nn.ModuleList(
            Wav2Vec2ConformerConvLayer(config, i) for i in range(config.num_feat_extract_layers))
        self.gradient_checkpointing = False
        self._requires_grad = True

    def _freeze_parameters(self) -> None:
        for p in self.parameters():
            p.requires_grad = False
        self._requires_grad = False

    def freeze(self) -> None:
        """Stop training the conv stack: its parameters get ``requires_grad=False``."""
        self._freeze_parameters()

    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None):
        """Encode a batch of waveforms.

        Args:
            input_values: ``(B, S)`` float audio at 16 kHz, normalised per utterance.
            lengths: optional ``(B,)`` samples per utterance (for a padded batch).

        Returns:
            ``(features, frame_lengths)``: ``(B, T, conv_dim[-1])`` and ``(B,)`` frames per utterance
            (``None`` when ``lengths`` is ``None``).
        """
        check_input_values(input_values, self.config)
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled() and self._requires_grad
        if self.attn_implementation != "eager":             # chapter 13: the same stack as matrix products
            from w2vc.fast_features import feature_encoder_forward   # imported here: chapter 13 comes later
            features = feature_encoder_forward(self, input_values, recompute)
        else:
            x = input_values[:, None, :]                    # (B, 1, S)
            for layer in self.conv_layers:
                x = checkpoint(layer, x, use_reentrant=False) if recompute else layer(x)   # (B, C_i, L_i)
            features = x.transpose(1, 2)                    # (B, C, T) -> (B, T, C)
        frame_lengths = None if lengths is None else feature_output_lengths(lengths, self.config, add_adapter=False)
        return features, frame_lengths


# %% notebooks/02_feature_encoder.ipynb, cell 44
class Wav2Vec2ConformerFeatureProjection(nn.Module):
    """LayerNorm -> Linear -> Dropout, from ``conv_dim[-1]`` to ``hidden_size`` channels."""

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim[-1], config.hidden_size)
        self.dropout = nn.Dropout(config.feat_proj_dropout)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: features: ``(B, T, conv_dim[-1])``.

        Returns:
            ``(hidden_states, extract_features)``: ``(B, T, hidden_size)`` and the normalised input
            ``(B, T, conv_dim[-1])``.
        """
        normed = self.layer_norm(features)                  # (B, T, C_conv)
        hidden = self.dropout(self.projection(normed))      # (B, T, C)
        return hidden, normed
