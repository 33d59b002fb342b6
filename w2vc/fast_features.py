# GENERATED from notebooks/13_fast.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/13_fast.ipynb, cell 42
"""Chapter 13: chapter 2's convolutional feature encoder as matrix products over frames (the ``"sdpa"`` path)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from w2vc.features import _conv_out


def frames_of(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """The windows a strided convolution reads, one row per output frame.

    Args:
        x: ``(B, L, C)``, channels last.
        kernel, stride: of the convolution (no padding, no dilation).

    Returns:
        ``(B, L', kernel * C)`` with ``L' = (L - kernel) // stride + 1``. Row ``t`` holds the samples
        ``t * stride`` to ``t * stride + kernel - 1``, time-major: all channels of the first sample, then of the
        next. When ``kernel == stride`` the windows tile the signal and the result is a view, not a copy.
    """
    B, L, C = x.shape
    n = _conv_out(L, kernel, stride)
    if kernel == stride:
        return x[:, :n * stride].reshape(B, n, kernel * C)                # a view when x is contiguous
    return x.unfold(1, kernel, stride).transpose(2, 3).reshape(B, n, kernel * C)   # (B, L', C, k) -> copy


def conv_as_matmul(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` on channels-last input: ``(B, L, C_in) -> (B, L', C_out)``, equal to ``conv`` on ``(B, C_in, L)``."""
    if conv.padding != (0,) or conv.dilation != (1,) or conv.groups != 1:
        raise ValueError(f"conv_as_matmul: the feature encoder's convolutions have no padding, dilation or "
                         f"groups; got padding {conv.padding}, dilation {conv.dilation}, groups {conv.groups}")
    weight = conv.weight.transpose(1, 2).reshape(conv.out_channels, -1)  # (C_out, k * C_in), time-major
    return F.linear(frames_of(x, conv.kernel_size[0], conv.stride[0]), weight, conv.bias)


def activation_in_place(activation: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``activation(x)``, overwriting ``x`` where it can (GELU, the feature encoder's): for inference only."""
    if type(activation) is nn.GELU:
        return torch.ops.aten.gelu_(x, approximate=activation.approximate)
    return activation(x)


def group_norm_in_place(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` with one group per channel, ``(B, C, L)``, overwriting ``x``: for inference only."""
    if norm.num_groups != x.shape[1]:
        return norm(x)
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)     # (B, C, 1): each channel over time
    scale = (var + norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight[:, None]
    x = x.sub_(mean).mul_(scale)
    return x.add_(norm.bias[:, None]) if norm.bias is not None else x


def in_chunks(fn, x: torch.Tensor, kernel: int, stride: int, dim: int, frames: int = 4096) -> torch.Tensor:
    """``fn(x)`` for a layer that makes one output frame of each window of ``kernel`` steps along ``dim``
    (``stride`` apart), computed ``frames`` output frames at a time into one output: for inference.

    Whole, a layer's temporaries are as long as the audio: `Conv1d` on a CPU first copies all of its input
    into its kernel's layout, and the windows of `frames_of` are ``kernel / stride`` times its input.
    A chunk at a time, they are a chunk's.
    """
    n = _conv_out(x.shape[dim], kernel, stride)
    if torch.compiler.is_compiling() or n <= frames:      # a compiled graph: one call, no loop over the length
        return fn(x)
    first = fn(x.narrow(dim, 0, (frames - 1) * stride + kernel))
    shape = list(first.shape)
    shape[dim] = n
    out = first.new_empty(shape)
    out.narrow(dim, 0, frames).copy_(first)
    for t0 in range(frames, n, frames):
        t1 = min(t0 + frames, n)
        out.narrow(dim, t0, t1 - t0).copy_(fn(x.narrow(dim, t0 * stride, (t1 - 1 - t0) * stride + kernel)))
    return out


def first_layer_channels_first(layer: nn.Module, waveform: torch.Tensor, inference: bool) -> torch.Tensor:
    """Chapter 2's first conv layer on ``(B, S)`` audio as one product: ``(B, C, L')``, channels first.

    In ``inference`` (no autograd) the norm and the activation overwrite the product instead of copying it:
    at 120 s of audio that product is 0.8 GB, the largest tensor of the whole model.
    """
    conv = layer.conv
    windows = waveform.unfold(1, conv.kernel_size[0], conv.stride[0]).transpose(1, 2)   # (B, k, L'), a view
    weight = conv.weight[:, 0, :].expand(len(waveform), -1, -1)            # (B, C, k), a view
    x = torch.bmm(weight, windows.contiguous())                            # (B, C, L'), channels first
    if conv.bias is not None:
        x = x + conv.bias[:, None]
    if not inference:
        x = layer.layer_norm(x) if layer.norm_kind == "group" else x
        return layer.activation(x)
    x = group_norm_in_place(layer.layer_norm, x) if layer.norm_kind == "group" else x
    return activation_in_place(layer.activation, x)


def layer_channels_last(layer: nn.Module, x: torch.Tensor, inference: bool) -> torch.Tensor:
    """Chapter 2's conv layer with LayerNorm, channels last: ``(B, L, C_in) -> (B, L', C_out)``, no transposes.

    In ``inference`` (no autograd) it runs in chunks of frames, and the activation overwrites the norm's output.
    """
    def one_chunk(part):
        y = layer.layer_norm(conv_as_matmul(layer.conv, part))
        return activation_in_place(layer.activation, y) if inference else layer.activation(y)

    if not inference:
        return one_chunk(x)
    return in_chunks(one_chunk, x, layer.conv.kernel_size[0], layer.conv.stride[0], dim=1)


def feature_encoder_forward(encoder: nn.Module, input_values: torch.Tensor, recompute: bool = False) -> torch.Tensor:
    """Chapter 2's feature encoder, ``(B, S) -> (B, T, C)``, equal to its eager forward to float rounding.

    Args:
        encoder: a ``Wav2Vec2ConformerFeatureEncoder`` (its layers' weights are used).
        input_values: ``(B, S)`` audio.
        recompute: recompute each layer in the backward pass instead of keeping its output (gradient
            checkpointing).

    Returns:
        ``(B, T, conv_dim[-1])`` features.
    """
    def run(fn, *args):
        return checkpoint(fn, *args, use_reentrant=False) if recompute else fn(*args)

    layers = encoder.conv_layers
    inference = not torch.is_grad_enabled()          # no autograd: in place, and in chunks of frames
    if layers[0].norm_kind == "layer":               # every layer normalises over channels: stay channels last
        x = input_values[:, :, None]                  # (B, S, 1)
        for layer in layers:
            x = run(layer_channels_last, layer, x, inference)    # (B, L_i, C_i)
        return x
    x = run(first_layer_channels_first, layers[0], input_values, inference)   # (B, C, L_1), channels first
    for layer in layers[1:]:                          # chapter 2's layers: Conv1d, then the activation
        if not inference:
            x = run(layer, x)
        else:
            x = in_chunks(lambda part: activation_in_place(layer.activation, layer.conv(part)),
                          x, layer.conv.kernel_size[0], layer.conv.stride[0], dim=2)
    return x.transpose(1, 2)                          # (B, C, T) -> (B, T, C)
