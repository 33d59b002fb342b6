"""Shared test utilities: small configurations for both libraries, tolerances, comparisons."""
from __future__ import annotations

import torch
import transformers

from w2vc.config import Wav2Vec2ConformerConfig

ATOL = 1e-5        # float32, small configurations
ATOL_LARGE = 1e-4  # float32, a 24-layer 1024-wide configuration


def small_kwargs(**overrides) -> dict:
    """A small but complete configuration (two conformer layers, three conv layers), as keyword arguments.

    The same dict builds transformers' config and ours. Dropouts stay at their defaults: tests compare in
    eval mode.
    """
    kwargs = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        conv_dim=(16, 24, 24), conv_kernel=(10, 4, 4), conv_stride=(5, 4, 4), conv_bias=True,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, conv_depthwise_kernel_size=7,
        codevector_dim=32, proj_codevector_dim=16, num_codevectors_per_group=8, vocab_size=12,
        hidden_act="gelu", output_hidden_size=32, classifier_proj_size=16,
        tdnn_dim=(16, 16, 24), tdnn_kernel=(5, 3, 1), tdnn_dilation=(1, 2, 1), xvector_output_dim=12,
    )
    kwargs.update(overrides)
    return kwargs


def hf_config(**overrides) -> transformers.Wav2Vec2ConformerConfig:
    """transformers' config from ``small_kwargs``, with eager attention so attention weights come back."""
    config = transformers.Wav2Vec2ConformerConfig(**small_kwargs(**overrides))
    config._attn_implementation = "eager"
    return config


def w2vc_config(**overrides) -> Wav2Vec2ConformerConfig:
    """Our config from ``small_kwargs``."""
    return Wav2Vec2ConformerConfig(**small_kwargs(**overrides))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference; shapes must agree."""
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return (a.detach().float() - b.detach().float()).abs().max().item()


def audio_batch(lengths, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A zero-padded batch of random audio and its sample attention mask.

    Returns:
        ``input_values`` ``(B, max(lengths))`` float32 and ``attention_mask`` ``(B, max(lengths))`` int64.
    """
    gen = torch.Generator().manual_seed(seed)
    total = max(lengths)
    x = torch.zeros(len(lengths), total)
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randn(n, generator=gen)
        mask[i, :n] = 1
    return x, mask
