# GENERATED from notebooks/05_conformer_block.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/05_conformer_block.ipynb, cell 4
from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from w2vc.config import get_activation
from w2vc.positions import (Wav2Vec2ConformerRelPositionalEmbedding, Wav2Vec2ConformerRotaryPositionalEmbedding,
                            apply_rotary, relative_shift)


# %% notebooks/05_conformer_block.ipynb, cell 8
class Wav2Vec2ConformerSelfAttention(nn.Module):
    """Multi-head self-attention with relative, rotary or no positions.

    Args:
        config: a ``Wav2Vec2ConformerConfig``; uses ``hidden_size``, ``num_attention_heads``,
            ``attention_dropout``, ``position_embeddings_type`` and ``attn_implementation`` ("eager": the code
            below; "sdpa": chapter 13's fused kernels, except when the weights are asked for).
    """

    def __init__(self, config):
        super().__init__()
        if config.position_embeddings_type not in ("relative", "rotary", None):
            raise ValueError(f"config.position_embeddings_type: expected 'relative', 'rotary' or None, "
                             f"got {config.position_embeddings_type!r}; pick one of the three")
        C, H = config.hidden_size, config.num_attention_heads
        self.position_embeddings_type = config.position_embeddings_type
        self.attn_implementation = config.attn_implementation
        self.num_heads = H
        self.head_size = C // H
        self.scaling = self.head_size ** -0.5
        self.linear_q = nn.Linear(C, C)
        self.linear_k = nn.Linear(C, C)
        self.linear_v = nn.Linear(C, C)
        self.linear_out = nn.Linear(C, C)
        self.dropout = nn.Dropout(config.attention_dropout)
        if self.position_embeddings_type == "relative":
            self.linear_pos = nn.Linear(C, C, bias=False)                  # W_pos: sinusoid -> key-like vector
            self.pos_bias_u = nn.Parameter(torch.zeros(H, self.head_size))  # u: content bias, terms (c)
            self.pos_bias_v = nn.Parameter(torch.zeros(H, self.head_size))  # v: position bias, terms (d)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.num_heads, self.head_size).transpose(1, 2)   # (B, T, C) -> (B, H, T, D)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_embeddings: torch.Tensor | None = None, output_attentions: bool = False):
        """Attend from every frame to every valid frame.

        Args:
            hidden_states: ``(B, T, C)``.
            attention_mask: ``(B, T)`` bool, True for real frames; padded frames get no attention
                (they still ask queries: their outputs are computed and meaningless). None: all real.
            position_embeddings: ``(1, 2T-1, C)`` relative table, ``(2, T, D)`` rotary cos/sin, or None,
                matching ``config.position_embeddings_type``.
            output_attentions: also return the attention weights.

        Returns:
            ``(output, weights)``: output ``(B, T, C)``; weights ``(B, H, T, T)`` (after dropout, as used)
            when ``output_attentions``, else None.
        """
        B, T, C = hidden_states.shape
        if self.attn_implementation != "eager" and not output_attentions:   # chapter 13: the same, fused
            from w2vc.attention import attention_forward   # imported here: chapter 13 comes later
            return attention_forward(self, hidden_states, attention_mask, position_embeddings), None
        kind = self.position_embeddings_type
        if kind is not None and position_embeddings is None:
            raise ValueError(f"position_embeddings: this layer uses {kind!r} positions and needs their table, "
                             f"got None; pass embed_positions(hidden_states) of the encoder")
        query_key_input = hidden_states
        if kind == "rotary":   # as the original: rotate the layer input, then project (values stay unrotated)
            query_key_input = apply_rotary(hidden_states, position_embeddings, self.num_heads)
        q = self._split_heads(self.linear_q(query_key_input))      # (B, H, T, D)
        k = self._split_heads(self.linear_k(query_key_input))      # (B, H, T, D)
        v = self._split_heads(self.linear_v(hidden_states))        # (B, H, T, D)

        if kind == "relative":
            P = position_embeddings.shape[1]
            if P != 2 * T - 1:
                raise ValueError(f"position_embeddings: expected 2T-1 = {2 * T - 1} relative offsets for T = {T} "
                                 f"frames, got {P}; pass embed_positions(hidden_states) for these frames")
            pos = self.linear_pos(position_embeddings)                         # (1, 2T-1, C)
            pos = pos.view(-1, P, self.num_heads, self.head_size).transpose(1, 2)  # (1, H, 2T-1, D)
            u = self.pos_bias_u[None, :, None, :]                              # (1, H, 1, D)
            v_bias = self.pos_bias_v[None, :, None, :]                         # (1, H, 1, D)
            content = (q + u) @ k.transpose(-1, -2)                            # (B, H, T, T)     (a) + (c)
            position = relative_shift((q + v_bias) @ pos.transpose(-1, -2))   # (B, H, T, 2T-1) -> (B, H, T, T) (b) + (d)
            scores = content * self.scaling + position * self.scaling          # (B, H, T, T)
        else:
            scores = (q @ k.transpose(-1, -2)) * self.scaling                  # (B, H, T, T)

        if attention_mask is not None:
            padded_keys = ~attention_mask.bool()[:, None, None, :]            # (B, 1, 1, T)
            scores = scores.masked_fill(padded_keys, torch.finfo(scores.dtype).min)
        weights = self.dropout(scores.softmax(dim=-1))                         # (B, H, T, T)
        out = weights @ v                                                      # (B, H, T, D)
        out = out.transpose(1, 2).reshape(B, T, C)                             # (B, T, H, D) -> (B, T, C)
        return self.linear_out(out), (weights if output_attentions else None)


# %% notebooks/05_conformer_block.ipynb, cell 20
class Wav2Vec2ConformerFeedForward(nn.Module):
    """Position-wise feed-forward: Linear (C -> I), activation, dropout, Linear (I -> C), dropout.

    Args:
        config: a ``Wav2Vec2ConformerConfig``; uses ``hidden_size``, ``intermediate_size``,
            ``hidden_act``, ``activation_dropout`` (inside) and ``hidden_dropout`` (at the output).
    """

    def __init__(self, config):
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)
        self.intermediate_dropout = nn.Dropout(config.activation_dropout)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Transform every frame on its own.

        Args:
            hidden_states: ``(B, T, C)``.

        Returns:
            ``(B, T, C)``.
        """
        B, T, C = hidden_states.shape
        x = self.intermediate_dropout(self.intermediate_act_fn(self.intermediate_dense(hidden_states)))  # (B, T, I)
        return self.output_dropout(self.output_dense(x))                                              # (B, T, C)


# %% notebooks/05_conformer_block.ipynb, cell 24
class Wav2Vec2ConformerConvolutionModule(nn.Module):
    """The conformer convolution module: LayerNorm, pointwise conv to 2C, GLU, depthwise conv,
    BatchNorm, activation, pointwise conv, dropout.

    Args:
        config: a ``Wav2Vec2ConformerConfig``; uses ``hidden_size``, ``conv_depthwise_kernel_size`` (odd),
            ``hidden_act`` and ``conformer_conv_dropout``.
    """

    def __init__(self, config):
        super().__init__()
        C, K = config.hidden_size, config.conv_depthwise_kernel_size
        if K % 2 == 0:
            raise ValueError(f"config.conv_depthwise_kernel_size: expected an odd kernel so that 'same' padding "
                             f"keeps the length, got {K}; use {K + 1}")
        self.layer_norm = nn.LayerNorm(C)
        self.pointwise_conv1 = nn.Conv1d(C, 2 * C, kernel_size=1, bias=False)
        self.glu = nn.GLU(dim=1)
        self.depthwise_conv = nn.Conv1d(C, C, kernel_size=K, padding=(K - 1) // 2, groups=C, bias=False)
        self.batch_norm = nn.BatchNorm1d(C)
        self.activation = get_activation(config.hidden_act)
        self.pointwise_conv2 = nn.Conv1d(C, C, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(config.conformer_conv_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Mix each frame with its ``K - 1`` neighbours, channel by channel.

        Args:
            hidden_states: ``(B, T, C)``. Padded frames are *not* masked: as in the original, the
                depthwise conv reads them near the end of a shorter utterance, and BatchNorm counts
                them in its training statistics.

        Returns:
            ``(B, T, C)``.
        """
        B, T, C = hidden_states.shape
        x = self.layer_norm(hidden_states).transpose(1, 2)   # (B, T, C) -> (B, C, T): convs want channels first
        x = self.glu(self.pointwise_conv1(x))                # (B, 2C, T) -> (B, C, T): a * sigmoid(b)
        x = self.depthwise_conv(x)                           # (B, C, T)  one K-tap filter per channel
        x = self.activation(self.batch_norm(x))              # (B, C, T)
        x = self.dropout(self.pointwise_conv2(x))            # (B, C, T)
        return x.transpose(1, 2)                             # (B, T, C)


# %% notebooks/05_conformer_block.ipynb, cell 30
class Wav2Vec2ConformerEncoderLayer(nn.Module):
    """One conformer block: half feed-forward, self-attention, convolution, half feed-forward, LayerNorm.

    Args:
        config: a ``Wav2Vec2ConformerConfig``.
    """

    def __init__(self, config):
        super().__init__()
        C = config.hidden_size
        # The LayerNorms inside a block use PyTorch's default eps (1e-5), whatever config.layer_norm_eps says,
        # as the original does; only the encoder's final LayerNorm reads layer_norm_eps.
        self.ffn1_layer_norm = nn.LayerNorm(C)
        self.ffn1 = Wav2Vec2ConformerFeedForward(config)
        self.self_attn_layer_norm = nn.LayerNorm(C)
        self.self_attn_dropout = nn.Dropout(config.attention_dropout)   # sic: attention_dropout, as the original
        self.self_attn = Wav2Vec2ConformerSelfAttention(config)
        self.conv_module = Wav2Vec2ConformerConvolutionModule(config)
        self.ffn2_layer_norm = nn.LayerNorm(C)
        self.ffn2 = Wav2Vec2ConformerFeedForward(config)
        self.final_layer_norm = nn.LayerNorm(C)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_embeddings: torch.Tensor | None = None, output_attentions: bool = False):
        """Run the block on a batch of frames.

        Args:
            hidden_states: ``(B, T, C)``.
            attention_mask: ``(B, T)`` bool, True for real frames, or None.
            position_embeddings: the table of ``embed_positions`` (see the attention), or None.
            output_attentions: also return the attention weights.

        Returns:
            ``(hidden_states, weights)``: ``(B, T, C)`` and ``(B, H, T, T)`` or None.
        """
        B, T, C = hidden_states.shape
        x = hidden_states
        x = x + 0.5 * self.ffn1(self.ffn1_layer_norm(x))                 # (B, T, C) macaron half 1
        attended, weights = self.self_attn(self.self_attn_layer_norm(x), attention_mask,
                                           position_embeddings, output_attentions)
        x = x + self.self_attn_dropout(attended)                         # (B, T, C)
        x = x + self.conv_module(x)                                      # (B, T, C) its LayerNorm is inside
        x = x + 0.5 * self.ffn2(self.ffn2_layer_norm(x))                 # (B, T, C) macaron half 2
        return self.final_layer_norm(x), weights


# %% notebooks/05_conformer_block.ipynb, cell 36
class Wav2Vec2ConformerPositionalConvEmbedding(nn.Module):
    """wav2vec 2.0's convolutional position embedding. Wav2Vec2-Conformer creates it, saves it and loads
    it, but its encoder never calls it: we keep it so that checkpoints load without renaming.

    A weight-normed grouped ``Conv1d`` (kernel ``num_conv_pos_embeddings``, groups
    ``num_conv_pos_embedding_groups``); its parameters are ``conv.bias``,
    ``conv.parametrizations.weight.original0`` (the norm g, ``(1, 1, K)``) and
    ``conv.parametrizations.weight.original1`` (the direction v, ``(C, C/G, K)``).

    Args:
        config: a ``Wav2Vec2ConformerConfig``.
    """

    def __init__(self, config):
        super().__init__()
        C, K = config.hidden_size, config.num_conv_pos_embeddings
        conv = nn.Conv1d(C, C, kernel_size=K, padding=K // 2, groups=config.num_conv_pos_embedding_groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)   # one norm per kernel tap
        self.activation = get_activation(config.feat_extract_activation)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """What wav2vec 2.0 adds to its input; unused by the conformer encoder.

        Args:
            hidden_states: ``(B, T, C)``.

        Returns:
            ``(B, T, C)``: the activated convolution (an even kernel gives T+1 frames: the last is dropped).
        """
        B, T, C = hidden_states.shape
        x = self.conv(hidden_states.transpose(1, 2))[:, :, :T]    # (B, C, T) -> (B, C, T or T+1) -> (B, C, T)
        return self.activation(x).transpose(1, 2)                 # (B, T, C)


# %% notebooks/05_conformer_block.ipynb, cell 39
class Wav2Vec2ConformerEncoder(nn.Module):
    """The conformer encoder: zero padded frames, dropout, positions, the blocks (with LayerDrop), LayerNorm.

    Its ``state_dict`` keys are those of transformers' ``Wav2Vec2ConformerEncoder``.

    Args:
        config: a ``Wav2Vec2ConformerConfig``.

    Attributes:
        gradient_checkpointing: set True to recompute each block in the backward pass instead of keeping
            its activations (only in training mode). BatchNorm then updates its running statistics twice
            per step, as in transformers.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        if config.position_embeddings_type == "relative":
            self.embed_positions = Wav2Vec2ConformerRelPositionalEmbedding(config)
        elif config.position_embeddings_type == "rotary":
            self.embed_positions = Wav2Vec2ConformerRotaryPositionalEmbedding(config)
        elif config.position_embeddings_type is None:
            self.embed_positions = None
        else:
            raise ValueError(f"config.position_embeddings_type: expected 'relative', 'rotary' or None, "
                             f"got {config.position_embeddings_type!r}; pick one of the three")
        self.pos_conv_embed = Wav2Vec2ConformerPositionalConvEmbedding(config)   # in the weights, never applied
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList([Wav2Vec2ConformerEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool = False, output_hidden_states: bool = False):
        """Run the conformer blocks.

        Args:
            hidden_states: ``(B, T, C)`` projected features.
            attention_mask: ``(B, T)`` with 1 (or True) for real frames and 0 for padding, or None.
            output_attentions: also return every block's attention weights.
            output_hidden_states: also return the input of the first block and every block's output.

        Returns:
            ``(last_hidden_state, hidden_states, attentions)``: ``(B, T, C)`` after the final LayerNorm;
            a tuple of ``num_hidden_layers + 1`` tensors ``(B, T, C)`` (the first block's input, then each
            block's output; the last one *before* the final LayerNorm, as transformers returns them) or None;
            a tuple of ``num_hidden_layers`` tensors ``(B, H, T, T)`` or None. In training, a block skipped by
            LayerDrop repeats its input in ``hidden_states`` (transformers leaves it out) and adds no attention map.
        """
        if hidden_states.dim() != 3 or hidden_states.shape[-1] != self.config.hidden_size:
            raise ValueError(f"hidden_states: expected (batch, time, hidden_size={self.config.hidden_size}), "
                             f"got shape {tuple(hidden_states.shape)}; pass the projected features")
        B, T, C = hidden_states.shape
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, T):
                raise ValueError(f"attention_mask: expected one flag per frame, shape (batch, time) = {(B, T)}, "
                                 f"got {tuple(attention_mask.shape)}; turn a mask over samples into one over "
                                 "frames first")
            attention_mask = attention_mask.bool()                                   # (B, T)
            hidden_states = hidden_states.masked_fill(~attention_mask[..., None], 0.0)  # padded frames are zero

        hidden_states = self.dropout(hidden_states)
        position_embeddings = None if self.embed_positions is None else self.embed_positions(hidden_states)

        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            skip = self.training and self.config.layerdrop > 0 and torch.rand([]) < self.config.layerdrop
            if not skip:                                     # LayerDrop: skip the whole block now and then
                if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                    hidden_states, weights = torch.utils.checkpoint.checkpoint(
                        layer, hidden_states, attention_mask, position_embeddings, output_attentions,
                        use_reentrant=False)
                else:
                    hidden_states, weights = layer(hidden_states, attention_mask, position_embeddings,
                                                   output_attentions)
                if output_attentions:
                    all_attentions.append(weights)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
        last_hidden_state = self.layer_norm(hidden_states)
        return (last_hidden_state,
                None if all_hidden_states is None else tuple(all_hidden_states),
                None if all_attentions is None else tuple(all_attentions))
