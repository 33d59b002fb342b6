# GENERATED from notebooks/04_positions.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/04_positions.ipynb, cell 4
import math

import torch
import torch.nn.functional as F
from torch import nn


# %% notebooks/04_positions.ipynb, cell 8
def sinusoid_frequencies(dim: int) -> torch.Tensor:
    """Angular frequencies of the sinusoidal position table.

    Args:
        dim: the number of channels of the table (even).

    Returns:
        ``(dim // 2,)`` float32 tensor with ``w_k = 10000 ** (-2k / dim)``, from 1 down towards 1e-4.
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"dim: expected a positive even number of channels for sin/cos pairs, got {dim}; "
                         "use an even hidden_size")
    exponents = torch.arange(0, dim, 2).float()              # (dim/2,)  0, 2, 4, ...
    return torch.exp(exponents * -(math.log(10000.0) / dim))


# %% notebooks/04_positions.ipynb, cell 12
def relative_position_table(length: int, dim: int) -> torch.Tensor:
    """Sinusoids for every offset between two frames of a sequence.

    Args:
        length: the number of frames ``T`` (at least 1).
        dim: the number of channels ``C`` (even).

    Returns:
        ``(2T-1, C)`` float32 tensor. Row ``p`` encodes the offset ``r = T-1-p`` (so the rows run
        from ``+(T-1)`` through ``0`` to ``-(T-1)``); channel ``2k`` is ``sin(r w_k)`` and channel
        ``2k+1`` is ``cos(r w_k)``.
    """
    if length < 1:
        raise ValueError(f"length: expected at least 1 frame, got {length}")
    offsets = torch.arange(length - 1, -length, -1).float()    # (2T-1,)  T-1, ..., 0, ..., -(T-1)
    angles = offsets[:, None] * sinusoid_frequencies(dim)     # (2T-1, C/2)
    table = torch.empty(2 * length - 1, dim)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table                                               # (2T-1, C)


# %% notebooks/04_positions.ipynb, cell 18
class Wav2Vec2ConformerRelPositionalEmbedding(nn.Module):
    """Transformer-XL sinusoids for the offsets between the frames of a sequence.

    Args:
        config: a ``Wav2Vec2ConformerConfig``; uses ``max_source_positions`` (the size of the table
            made in advance, not a limit) and ``hidden_size``.
    """

    def __init__(self, config):
        super().__init__()
        self.max_len = config.max_source_positions
        self.d_model = config.hidden_size
        table = relative_position_table(self.max_len, self.d_model)
        self.register_buffer("pe", table[None], persistent=False)    # (1, 2M-1, C), not in state_dict

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Cut the rows for this sequence length out of the table (growing the table when needed).

        Args:
            hidden_states: ``(B, T, C)``; only its length, dtype and device are used.

        Returns:
            ``(1, 2T-1, C)`` sinusoids for the offsets ``T-1, ..., 0, ..., -(T-1)``.
        """
        B, T, C = hidden_states.shape
        if self.pe.shape[1] < 2 * T - 1:              # longer than any input so far: make a bigger table
            self.pe = relative_position_table(T, self.d_model).to(self.pe.device)[None]  # (1, 2T-1, C)
        centre = self.pe.shape[1] // 2                # the row of offset 0
        rows = self.pe[:, centre - (T - 1): centre + T]  # (1, 2T-1, C)
        return rows.to(dtype=hidden_states.dtype)


# %% notebooks/04_positions.ipynb, cell 24
def relative_shift(scores: torch.Tensor) -> torch.Tensor:
    """Turn scores per (query, offset) into scores per (query, key): the Transformer-XL skew.

    Args:
        scores: ``(B, H, T, 2T-1)``; ``scores[..., i, p]`` belongs to query ``i`` and the offset
            ``T-1-p`` (the row order of ``relative_position_table``).

    Returns:
        ``(B, H, T, T)`` with ``out[..., i, j] = scores[..., i, T-1-i+j]``, the score for offset ``i-j``.
    """
    B, H, T, P = scores.shape
    if P != 2 * T - 1:
        raise ValueError(f"scores: expected the last dimension to be 2T-1 = {2 * T - 1} offsets for "
                         f"T = {T} queries, got {P}; pass the full relative table for this length")
    padded = F.pad(scores, (1, 0))                       # (B, H, T, 2T)    a zero column in front
    padded = padded.view(B, H, 2 * T, T)                 # (B, H, 2T, T)    same memory, rows of T
    shifted = padded[:, :, 1:].reshape(B, H, T, 2 * T - 1)  # (B, H, T, 2T-1) drop T numbers, rows of 2T-1
    return shifted[..., :T]                              # (B, H, T, T)


# %% notebooks/04_positions.ipynb, cell 34
def rotary_frequencies(dim: int, base: float = 10000) -> torch.Tensor:
    """Angular frequencies of rotary positions, one per channel pair of a head.

    Args:
        dim: channels per head ``D`` (even).
        base: ``config.rotary_embedding_base``.

    Returns:
        ``(D // 2,)`` float32 tensor ``1 / base ** (2k / D)``.
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"dim: expected a positive even number of channels per head for rotary pairs, got {dim}; "
                         "choose hidden_size and num_attention_heads so that hidden_size // num_attention_heads is even")
    return 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))     # (D/2,)


# %% notebooks/04_positions.ipynb, cell 35
class Wav2Vec2ConformerRotaryPositionalEmbedding(nn.Module):
    """Cosines and sines of the rotary angles ``t * theta_k`` for every frame ``t``.

    Args:
        config: a ``Wav2Vec2ConformerConfig``; uses ``hidden_size``, ``num_attention_heads`` and
            ``rotary_embedding_base``.
    """

    def __init__(self, config):
        super().__init__()
        dim = config.hidden_size // config.num_attention_heads
        self.register_buffer("inv_freq", rotary_frequencies(dim, config.rotary_embedding_base))  # (D/2,) saved

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Cos and sin tables for this sequence length.

        Args:
            hidden_states: ``(B, T, C)``; only its length, dtype and device are used.

        Returns:
            ``(2, T, D)``: ``[0]`` the cosines and ``[1]`` the sines, each pair's angle repeated in
            channel ``k`` and ``k + D/2``. Computed in the dtype of ``inv_freq``, returned in the input's.
        """
        B, T, C = hidden_states.shape
        time = torch.arange(T, device=self.inv_freq.device).to(self.inv_freq.dtype)   # (T,)
        angles = time[:, None] * self.inv_freq[None, :]          # (T, D/2)
        angles = torch.cat([angles, angles], dim=-1)             # (T, D)  channel k and k + D/2 share an angle
        return torch.stack([angles.cos(), angles.sin()]).to(hidden_states.dtype)   # (2, T, D)


# %% notebooks/04_positions.ipynb, cell 39
def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension: a quarter turn of every pair.

    Args:
        x: ``(..., D)`` with ``D`` even.

    Returns:
        ``(..., D)``.
    """
    first, second = x.chunk(2, dim=-1)                   # (..., D/2) each
    return torch.cat([-second, first], dim=-1)           # (..., D)


def apply_rotary(hidden_states: torch.Tensor, cos_sin: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Rotate each head's channel pairs of frame ``t`` by the angles ``t * theta_k``.

    Args:
        hidden_states: ``(B, T, C)`` with ``C = num_heads * D``.
        cos_sin: ``(2, T, D)`` from ``Wav2Vec2ConformerRotaryPositionalEmbedding``.
        num_heads: ``H``.

    Returns:
        ``(B, T, C)``, every frame's vector turned; lengths (per head) are unchanged.
    """
    B, T, C = hidden_states.shape
    if cos_sin.shape[1] != T or cos_sin.shape[2] * num_heads != C:
        raise ValueError(f"cos_sin: expected (2, T={T}, D={C // num_heads}) for hidden_states of shape "
                         f"{tuple(hidden_states.shape)} and {num_heads} heads, got {tuple(cos_sin.shape)}; "
                         "compute it from the same hidden_states")
    cos, sin = cos_sin[0][:, None, :], cos_sin[1][:, None, :]     # (T, 1, D) each, broadcast over heads
    x = hidden_states.view(B, T, num_heads, C // num_heads)       # (B, T, H, D)
    x = x * cos + rotate_half(x) * sin                            # (B, T, H, D)
    return x.reshape(B, T, C)                                     # (B, T, C)
