# GENERATED from notebooks/13_fast.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/13_fast.ipynb, cell 5
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from w2vc.positions import apply_rotary


# %% notebooks/13_fast.ipynb, cell 9
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")   # transformers' names for the same two choices
DEFAULT_BLOCK_SIZE = 64                    # queries per block on the relative path (32 to 128 measure alike here)


def check_attn_implementation(name: str) -> str:
    """Return ``name`` if it is one of ``ATTN_IMPLEMENTATIONS``; otherwise raise a ValueError naming them.

    Args:
        name: the value of ``config.attn_implementation`` or of ``from_pretrained(..., attn_implementation=)``.

    Returns:
        ``name``.
    """
    if name not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation: expected one of {list(ATTN_IMPLEMENTATIONS)}, got {name!r}; "
                         "'eager' is chapter 5's attention (it can return the weights), 'sdpa' the fused "
                         "kernels of chapter 13")
    return name


# %% notebooks/13_fast.ipynb, cell 12
class AllocationLog(TorchDispatchMode):
    """Log the new tensors that operations make while the mode is on (views share memory and are skipped).

    On the meta device this measures a computation without running it: shapes are worked out, nothing is
    computed and no memory is used, so the sizes of a 60 s input can be listed in a fraction of a second.

    Attributes:
        allocations: one ``(op name, shape, bytes)`` per new tensor, in the order they were made.
    """

    def __init__(self):
        super().__init__()
        self.allocations: list[tuple[str, tuple[int, ...], int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        for result, spec in zip(outputs, func._schema.returns):
            if (isinstance(result, torch.Tensor) and spec.alias_info is None      # a new tensor, not a view,
                    and func is not torch.ops.aten._unsafe_view.default):         # nor matmul's reshape of one
                self.allocations.append((func.overloadpacket.__name__, tuple(result.shape),
                                         result.numel() * result.element_size()))
        return out

    @property
    def largest(self) -> int:
        """Bytes of the largest tensor made so far (0 if none)."""
        return max((size for _, _, size in self.allocations), default=0)


# %% notebooks/13_fast.ipynb, cell 16
def padding_bias(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """The padding mask as an additive bias on the scores.

    Args:
        attention_mask: ``(B, T)``, True (or 1) for real frames; or None.
        dtype: the dtype of the scores.

    Returns:
        ``(B, 1, 1, T)``: 0 for real keys and ``torch.finfo(dtype).min`` for padded ones (what eager's
        ``masked_fill`` writes), broadcast over heads and queries; None when ``attention_mask`` is None.
    """
    if attention_mask is None:
        return None
    padded = ~attention_mask.bool()[:, None, None, :]                       # (B, 1, 1, T)
    bias = torch.zeros(padded.shape, dtype=dtype, device=padded.device)
    return bias.masked_fill(padded, torch.finfo(dtype).min)                 # (B, 1, 1, T)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention_mask: torch.Tensor | None,
                   scaling: float, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T * scaling + padding) v with PyTorch's fused kernel: rotary positions or none.

    Args:
        q, k, v: ``(B, H, T, D)``.
        attention_mask: ``(B, T)``, True for real frames; or None.
        scaling: ``1 / sqrt(D)``.
        dropout_p: dropout on the attention probabilities (0 in eval mode).

    Returns:
        ``(B, H, T, D)``.
    """
    bias = padding_bias(attention_mask, q.dtype)                            # (B, 1, 1, T) or None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scaling)


# %% notebooks/13_fast.ipynb, cell 20
def relative_window(pos: torch.Tensor, i0: int, i1: int) -> torch.Tensor:
    """The rows of the projected relative table that the queries ``i0 <= i < i1`` use.

    Args:
        pos: ``(1, H, 2T-1, D)``, row ``p`` for the offset ``T-1-p`` (``linear_pos`` of chapter 4's table).
        i0, i1: the block of queries, ``0 <= i0 < i1 <= T``.

    Returns:
        ``(1, H, (i1-i0) + T - 1, D)``: the rows ``T-i1`` to ``2T-2-i0``, offsets ``i1-1`` down to ``-(T-1-i0)``.
    """
    T = (pos.shape[2] + 1) // 2
    return pos[:, :, T - i1: 2 * T - 1 - i0]                      # (1, H, Bq + T - 1, D)


# %% notebooks/13_fast.ipynb, cell 25
def skew_block(scores: torch.Tensor, num_keys: int) -> torch.Tensor:
    """Scores per (query, window row) -> scores per (query, key), for one block of queries.

    Args:
        scores: ``(B, H, Bq, W)`` with ``W = Bq + T - 1``: the block's queries against ``relative_window``.
        num_keys: ``T``.

    Returns:
        ``(B, H, Bq, T)`` with ``out[..., a, j] = scores[..., a, Bq-1-a+j]``, the score for offset ``i - j``
        of query ``i = i0 + a``.
    """
    B, H, Bq, W = scores.shape
    if W != Bq + num_keys - 1:
        raise ValueError(f"scores: expected Bq + T - 1 = {Bq + num_keys - 1} window rows for {Bq} queries and "
                         f"T = {num_keys} keys, got {W}; pass the scores against relative_window(pos, i0, i1)")
    padded = F.pad(scores, (1, 0))                                  # (B, H, Bq, W+1) a zero column in front
    flat = padded.reshape(B, H, Bq * (W + 1))                       # (B, H, Bq(W+1)) one line per head
    return flat[..., Bq:].view(B, H, Bq, W)[..., :num_keys]         # (B, H, Bq, W) -> (B, H, Bq, T)


# %% notebooks/13_fast.ipynb, cell 29
def relative_attention_blocked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor,
                               pos_bias_u: torch.Tensor, pos_bias_v: torch.Tensor, scaling: float,
                               attention_mask: torch.Tensor | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                               dropout_p: float = 0.0) -> torch.Tensor:
    """Attention with Transformer-XL relative positions, ``block_size`` queries at a time, through SDPA.

    Equal to chapter 5's eager computation; memory grows like ``T * block_size``, never ``T * (2T-1)``.

    Args:
        q, k, v: ``(B, H, T, D)`` projected queries, keys and values.
        pos: ``(1, H, 2T-1, D)`` the relative table after ``linear_pos``, row ``p`` for offset ``T-1-p``.
        pos_bias_u, pos_bias_v: ``(H, D)`` the content and position biases.
        scaling: ``1 / sqrt(D)``.
        attention_mask: ``(B, T)``, True for real frames; or None.
        block_size: queries per block (at least 1).
        dropout_p: dropout on the attention probabilities (0 in eval mode).

    Returns:
        ``(B, H, T, D)``.
    """
    B, H, T, D = q.shape
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size: expected a whole number of queries per block, at least 1, got {block_size!r}")
    if pos.shape[-2] != 2 * T - 1:
        raise ValueError(f"pos: expected 2T-1 = {2 * T - 1} relative offsets for T = {T} frames, "
                         f"got {pos.shape[-2]}; project embed_positions(hidden_states) for these frames")
    content_query = q + pos_bias_u[None, :, None, :]              # (B, H, T, D)  q + u: terms (a) + (c)
    position_query = q + pos_bias_v[None, :, None, :]             # (B, H, T, D)  q + v: terms (b) + (d)
    padding = padding_bias(attention_mask, q.dtype)               # (B, 1, 1, T) or None
    blocks = []
    for i0 in range(0, T, block_size):
        i1 = min(i0 + block_size, T)
        window = relative_window(pos, i0, i1)                                    # (1, H, Bq+T-1, D)
        scores = position_query[:, :, i0:i1] @ window.transpose(-1, -2)          # (B, H, Bq, Bq+T-1)
        bias = skew_block(scores, T) * scaling                                   # (B, H, Bq, T) scaled here
        if padding is not None:
            bias = bias + padding                                                # (B, H, Bq, T)
        blocks.append(F.scaled_dot_product_attention(content_query[:, :, i0:i1], k, v, attn_mask=bias,
                                                     dropout_p=dropout_p, scale=scaling))  # (B, H, Bq, D)
    return torch.cat(blocks, dim=2)                                              # (B, H, T, D)


# %% notebooks/13_fast.ipynb, cell 33
def attention_forward(attention, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      position_embeddings: torch.Tensor | None = None,
                      block_size: int = DEFAULT_BLOCK_SIZE) -> torch.Tensor:
    """Chapter 5's self-attention layer, computed with fused kernels: SDPA, block-wise for relative positions.

    Args:
        attention: a ``Wav2Vec2ConformerSelfAttention`` (its projections, biases, heads and dropout are used).
        hidden_states: ``(B, T, C)``.
        attention_mask: ``(B, T)``, True for real frames; or None.
        position_embeddings: ``(1, 2T-1, C)`` relative table, ``(2, T, D)`` rotary cos/sin, or None, as the
            layer's ``position_embeddings_type`` asks.
        block_size: queries per block on the relative path.

    Returns:
        ``(B, T, C)``, equal to ``attention(...)[0]``; no attention weights (ask eager for them).
    """
    B, T, C = hidden_states.shape
    kind = attention.position_embeddings_type
    if kind is not None and position_embeddings is None:
        raise ValueError(f"position_embeddings: this layer uses {kind!r} positions and needs their table, "
                         f"got None; pass embed_positions(hidden_states) of the encoder")
    query_key_input = hidden_states
    if kind == "rotary":                                          # rotate the input of W_q and W_k, as eager
        query_key_input = apply_rotary(hidden_states, position_embeddings, attention.num_heads)
    q = attention._split_heads(attention.linear_q(query_key_input))   # (B, H, T, D)
    k = attention._split_heads(attention.linear_k(query_key_input))   # (B, H, T, D)
    v = attention._split_heads(attention.linear_v(hidden_states))     # (B, H, T, D)
    dropout_p = attention.dropout.p if attention.training else 0.0
    if kind == "relative":
        if position_embeddings.shape[1] != 2 * T - 1:
            raise ValueError(f"position_embeddings: expected 2T-1 = {2 * T - 1} relative offsets for T = {T} "
                             f"frames, got {position_embeddings.shape[1]}; pass embed_positions(hidden_states) "
                             "for these frames")
        pos = attention._split_heads(attention.linear_pos(position_embeddings))   # (1, H, 2T-1, D)
        out = relative_attention_blocked(q, k, v, pos, attention.pos_bias_u, attention.pos_bias_v,
                                         attention.scaling, attention_mask, block_size, dropout_p)
    else:
        out = sdpa_attention(q, k, v, attention_mask, attention.scaling, dropout_p)   # (B, H, T, D)
    out = out.transpose(1, 2).reshape(B, T, C)                        # (B, H, T, D) -> (B, T, C)
    return attention.linear_out(out)
