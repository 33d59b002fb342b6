# GENERATED from notebooks/03_masking.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/03_masking.ipynb, cell 6
"""SpecAugment-style span masks over time and channels, and applying them to hidden states (chapter 3)."""
from __future__ import annotations

import math

import torch

from w2vc.config import Wav2Vec2ConformerConfig


def num_masked_spans(length, padded_length: int, mask_prob: float, mask_length: int,
                     min_masks: int, epsilon):
    """How many spans to mask in an utterance of ``length`` frames, padded to ``padded_length``.

    Args:
        length: frames of the utterance, ``L``: an ``int``, or an integer tensor ``(B,)`` of them.
        padded_length: frames of the padded batch, ``T >= L``.
        mask_prob: the share of frames masked if spans never overlapped.
        mask_length: frames per span, ``M``.
        min_masks: the least number of spans.
        epsilon: a number in ``[0, 1)`` for probabilistic rounding (a float, or a 0-dim tensor).

    Returns:
        The number of spans in ``[0, L - M + 1]``: an ``int``, or a long tensor ``(B,)`` for tensor lengths.
    """
    if isinstance(length, torch.Tensor):   # the same rules, elementwise, computed in float64 like Python's floats
        n = torch.floor(mask_prob * length.double() / mask_length + epsilon).long()      # (B,)
        n = n.clamp(min=min_masks)
        n = torch.where(n * mask_length > padded_length, padded_length // mask_length, n)
        return torch.minimum(n, (length - mask_length + 1).clamp(min=0))
    n = int(mask_prob * length / mask_length + epsilon)
    n = max(n, min_masks)
    if n * mask_length > padded_length:
        n = padded_length // mask_length
    return min(n, max(length - mask_length + 1, 0))


# %% notebooks/03_masking.ipynb, cell 10
def _uniform(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """U(0, 1) numbers from ``generator``, or from the global one (then with the plain call: under torch.compile
    ``rand``'s generator form does not take sizes that vary from call to call)."""
    return torch.rand(shape) if generator is None else torch.rand(shape, generator=generator)


def compute_mask_indices(
    shape: tuple[int, int],
    mask_prob: float,
    mask_length: int,
    attention_mask: torch.Tensor | None = None,
    min_masks: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sample span masks for a batch, following wav2vec 2.0's (and transformers') rules.

    Args:
        shape: ``(B, T)``: batch size and padded length of the axis to mask (frames, or channels).
        mask_prob: the share of the axis masked if spans never overlapped; ``L * mask_prob / mask_length``
            spans are drawn per utterance, rounded probabilistically.
        mask_length: ``M``, the length of each span.
        attention_mask: optional ``(B, T)`` mask, 1 (or True) on real frames and 0 on right padding;
            spans stay inside each utterance's real frames.
        min_masks: the least number of spans per utterance (limited by what fits).
        generator: random source; a seeded one gives the same masks every time.
        device: where the result goes (default: the attention mask's device, else the CPU).

    Returns:
        ``(B, T)`` bool tensor, True where masked.
    """
    batch, length = shape
    if mask_length < 1:
        raise ValueError(f"mask_length must be at least 1, got {mask_length}")
    if mask_length > length:
        raise ValueError(f"mask_length ({mask_length}) must not exceed the length of the masked axis ({length}); "
                         "use a shorter mask_length or longer inputs")
    if attention_mask is not None:
        if tuple(attention_mask.shape) != (batch, length):
            raise ValueError(f"attention_mask must have shape {(batch, length)} like the masked axis, "
                             f"got {tuple(attention_mask.shape)}")
        device = attention_mask.device if device is None else device
        lengths = attention_mask.detach().long().sum(-1).cpu()   # (B,)
    else:
        lengths = torch.full((batch,), length)                   # (B,)
    # everything stays a tensor (no .item(), no Python loop over the batch): torch.compile traces it whole
    epsilon = _uniform((), generator=generator)                # one rounding offset for the batch
    spans = num_masked_spans(lengths, length, mask_prob, mask_length, min_masks, epsilon)   # (B,)
    starts_allowed = lengths[:, None] - mask_length + 1        # (B, 1)
    scores = _uniform((batch, length), generator=generator)    # (B, T), in [0, 1)
    scores = scores.masked_fill(torch.arange(length)[None, :] >= starts_allowed, -1.0)  # starts leaving the utterance
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)           # (B, T): 0 for the largest score
    starts = rank < spans[:, None]                             # (B, T): the n largest valid scores start spans
    mask = torch.zeros(batch, length, dtype=torch.bool)
    for offset in range(mask_length):                          # a span covers start .. start + M - 1
        mask[:, offset:] |= starts[:, : length - offset]
    return mask.to(device) if device is not None else mask


# %% notebooks/03_masking.ipynb, cell 14
def expected_masked_fraction(length: int, mask_prob: float, mask_length: int, min_masks: int = 0,
                             padded_length: int | None = None) -> float:
    """The exact expected share of an utterance's frames that ``compute_mask_indices`` masks.

    Args:
        length: frames of the utterance, ``L``.
        mask_prob, mask_length, min_masks: as for ``compute_mask_indices``.
        padded_length: frames of the padded batch (default ``length``).

    Returns:
        Expected number of masked frames divided by ``length``.
    """
    padded_length = length if padded_length is None else padded_length
    starts = length - mask_length + 1                         # N
    if starts <= 0:
        return 0.0
    x = mask_prob * length / mask_length
    frac = x - math.floor(x)
    total = 0.0
    # epsilon ~ U(0, 1) rounds x down with probability 1 - frac(x) and up with probability frac(x)
    for epsilon, weight in ((0.0, 1.0 - frac), (1.0 - 1e-9, frac)):
        if weight == 0.0:
            continue
        n = num_masked_spans(length, padded_length, mask_prob, mask_length, min_masks, epsilon)
        covered = 0.0
        for t in range(length):
            k = min(t, starts - 1) - max(0, t - mask_length + 1) + 1   # starts whose span covers t
            covered += 1.0 - math.comb(starts - k, n) / math.comb(starts, n)
        total += weight * covered / length
    return total


# %% notebooks/03_masking.ipynb, cell 24
def _as_time_mask(mask_time_indices, batch: int, length: int, device) -> torch.Tensor:
    mask = torch.as_tensor(mask_time_indices, device=device)
    if tuple(mask.shape) != (batch, length):
        raise ValueError(f"mask_time_indices must have shape (batch, frames) = {(batch, length)}, "
                         f"got {tuple(mask.shape)}; compute it for the feature encoder's output length "
                         "(w2vc.features.feature_output_lengths)")
    if mask.dtype != torch.bool:
        # the values are checked when running eagerly; under torch.compile that check would stop the graph
        if mask.is_floating_point() or (not torch.compiler.is_compiling()
                                        and not bool(((mask == 0) | (mask == 1)).all())):
            raise ValueError(f"mask_time_indices must be a bool (or 0/1 integer) mask, got dtype {mask.dtype}")
        mask = mask.bool()
    return mask


def apply_spec_augment(
    hidden_states: torch.Tensor,
    masked_spec_embed: torch.Tensor | None,
    config: Wav2Vec2ConformerConfig,
    mask_time_indices: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mask spans of frames (with ``masked_spec_embed``) and of channels (with zeros).

    Args:
        hidden_states: ``(B, T, C)`` projected features.
        masked_spec_embed: ``(C,)`` learned vector for masked frames (``None`` if the model has none).
        config: gives ``apply_spec_augment``, ``mask_time_*`` and ``mask_feature_*``.
        mask_time_indices: optional ``(B, T)`` bool mask to use instead of sampling one.
        attention_mask: optional ``(B, T)`` frame mask (1 on real frames) so sampled spans avoid padding.
        training: sample masks only when True (the module's ``self.training``).
        generator: random source for sampled masks.

    Returns:
        ``(hidden_states, mask_time_indices)``: ``(B, T, C)`` masked copy, and the ``(B, T)`` bool time mask
        applied (``None`` if none was).
    """
    if not config.apply_spec_augment:
        return hidden_states, None
    B, T, C = hidden_states.shape
    if mask_time_indices is None and training and config.mask_time_prob > 0:
        mask_time_indices = compute_mask_indices(
            (B, T), config.mask_time_prob, config.mask_time_length, attention_mask=attention_mask,
            min_masks=config.mask_time_min_masks, generator=generator, device=hidden_states.device)
    if mask_time_indices is not None:
        mask_time_indices = _as_time_mask(mask_time_indices, B, T, hidden_states.device)
        if masked_spec_embed is None:
            raise ValueError("mask_time_indices were given but the model has no masked_spec_embed: it is made "
                             "only when config.mask_time_prob > 0 or config.mask_feature_prob > 0; "
                             "set one of them when building the model")
        embed = masked_spec_embed.to(hidden_states.dtype)
        hidden_states = torch.where(mask_time_indices[:, :, None], embed, hidden_states)   # (B, T, C)
    if training and config.mask_feature_prob > 0:
        channels = compute_mask_indices((B, C), config.mask_feature_prob, config.mask_feature_length,
                                        min_masks=config.mask_feature_min_masks, generator=generator,
                                        device=hidden_states.device)       # (B, C)
        hidden_states = hidden_states.masked_fill(channels[:, None, :], 0.0)  # (B, 1, C) over all frames
    return hidden_states, mask_time_indices
