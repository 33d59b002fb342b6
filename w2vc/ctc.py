# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 4
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


# %% notebooks/09_ctc.ipynb, cell 36
def ctc_min_frames(labels) -> int:
    """Frames a CTC target needs: one per symbol plus one blank between each pair of equal neighbours.

    Args:
        labels: the target ids, shape ``(U,)`` (a list or tensor), without padding.

    Returns:
        The smallest number of frames for which a CTC path exists.
    """
    labels = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


# %% notebooks/09_ctc.ipynb, cell 40
IGNORE_INDEX = -100  # the label value of padding (PyTorch losses' ignore_index)


def ctc_loss(logits: torch.Tensor, labels: torch.Tensor, frame_lengths: torch.Tensor, blank_id: int = 0,
             reduction: str = "sum", zero_infinity: bool = False) -> torch.Tensor:
    """The CTC loss of a padded batch, with labels padded by -100.

    Args:
        logits: ``(B, T, V)`` frame scores (before the softmax).
        labels: ``(B, U)`` target ids; ``-100`` (and the blank id) mark padding.
        frame_lengths: ``(B,)`` number of valid frames of each item.
        blank_id: id of the CTC blank (``config.pad_token_id``).
        reduction: ``"sum"`` over the batch, or ``"mean"`` (each item's loss divided by its target length,
            then averaged), as ``config.ctc_loss_reduction``; ``"none"`` gives ``(B,)``.
        zero_infinity: give items whose target does not fit in their frames a zero loss (and gradient)
            instead of raising.

    Returns:
        The loss: a scalar, or ``(B,)`` for ``reduction="none"``.
    """
    B, T, V = logits.shape
    if labels.ndim != 2 or labels.shape[0] != B:
        raise ValueError(f"labels: expected shape (B={B}, U), padded with {IGNORE_INDEX}, got {tuple(labels.shape)}")
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"reduction (config.ctc_loss_reduction): expected 'sum', 'mean' or 'none', got {reduction!r}")
    labels = labels.to(logits.device).long()
    checking = not torch.compiler.is_compiling()  # the checks read values: eager calls only (no graph break)
    bad = (labels >= V) | ((labels < 0) & (labels != IGNORE_INDEX))
    if checking and bad.any():
        raise ValueError(f"labels: ids must be in [0, vocab_size={V}) or {IGNORE_INDEX} for padding, got "
                         f"{sorted(set(labels[bad].tolist()))[:10]}; the tokenizer and config.vocab_size "
                         f"must agree (config.vocab_size = tokenizer.vocab_size)")
    real = (labels != IGNORE_INDEX) & (labels != blank_id)  # (B, U)
    target_lengths = real.sum(dim=-1)  # (B,)
    frame_lengths = torch.as_tensor(frame_lengths, device=logits.device).long()
    if checking and not zero_infinity:
        for b in range(B):
            needed = ctc_min_frames(labels[b][real[b]])
            if needed > frame_lengths[b]:
                raise ValueError(
                    f"labels: item {b} has {int(target_lengths[b])} labels, which need at least {needed} frames "
                    f"(one per symbol, plus a blank between equal neighbours), but its audio gives only "
                    f"{int(frame_lengths[b])} frames. Drop such items, shorten their transcripts, or set "
                    f"config.ctc_zero_infinity=True to give them zero loss and zero gradient")
    # each row's real labels moved to its front, in order (a stable sort), the rest blanks: F.ctc_loss reads
    # the first target_lengths[b] ids of row b, and the shape (B, U) does not depend on the labels' values
    order = torch.sort((~real).to(torch.uint8), dim=-1, stable=True).indices  # (B, U)
    targets = torch.where(real, labels, blank_id).gather(1, order)  # (B, U)
    log_probs = logits.float().log_softmax(dim=-1).transpose(0, 1)  # (T, B, V): time first for F.ctc_loss
    # cuDNN's CTC has other rules for the targets (it takes only int32 ones, so these long ones never reach it);
    # torch.compile cannot trace the switch, so there it is left out
    no_cudnn = contextlib.nullcontext() if torch.compiler.is_compiling() else torch.backends.cudnn.flags(enabled=False)
    with no_cudnn:
        return F.ctc_loss(log_probs, targets, frame_lengths, target_lengths, blank=blank_id,
                          reduction=reduction, zero_infinity=zero_infinity)


# %% notebooks/09_ctc.ipynb, cell 44
from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.model import Wav2Vec2ConformerModel, Wav2Vec2ConformerPreTrainedModel


@dataclass
class CTCOutput:
    """What ``Wav2Vec2ConformerForCTC.forward`` returns.

    Attributes:
        loss: the CTC loss (a scalar) when labels were given, else None.
        logits: ``(B, T, vocab_size)`` frame scores before the softmax.
        frame_lengths: ``(B,)`` number of real frames of each item (all ``T`` without an attention mask).
        hidden_states, attentions: as the body returns them, when asked for.
    """

    loss: torch.Tensor | None
    logits: torch.Tensor
    frame_lengths: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class Wav2Vec2ConformerForCTC(Wav2Vec2ConformerPreTrainedModel):
    """Wav2Vec2-Conformer with a linear CTC head over a character vocabulary (transformers' names).

    Args:
        config: needs ``vocab_size`` (the tokenizer's) and ``pad_token_id`` (the blank); uses
            ``final_dropout``, ``ctc_loss_reduction`` and ``ctc_zero_infinity``.
    """

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__(config)
        if config.vocab_size is None:
            raise ValueError(
                "config.vocab_size: expected the size of the tokenizer's vocabulary, got None. Build the model with "
                "Wav2Vec2ConformerConfig(..., vocab_size=tokenizer.vocab_size), or from a pretrained body with "
                "Wav2Vec2ConformerForCTC.from_pretrained(folder, vocab_size=tokenizer.vocab_size)")
        if config.pad_token_id is None or not 0 <= config.pad_token_id < config.vocab_size:
            raise ValueError(f"config.pad_token_id: expected the blank's id in [0, {config.vocab_size}), got "
                             f"{config.pad_token_id}; set it to tokenizer.pad_token_id")
        self.wav2vec2_conformer = Wav2Vec2ConformerModel(config)
        self.dropout = nn.Dropout(config.final_dropout)
        width = config.output_hidden_size if config.add_adapter else config.hidden_size
        self.lm_head = nn.Linear(width, config.vocab_size)
        self.post_init()

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False, mask_time_indices: torch.Tensor | None = None) -> CTCOutput:
        """Frame scores over the vocabulary, and the CTC loss when ``labels`` are given.

        Args:
            input_values: ``(B, S)`` normalised 16 kHz audio.
            attention_mask: optional ``(B, S)``, 1 on real samples, 0 on padding.
            labels: optional ``(B, U)`` target ids padded with -100.
            output_hidden_states, output_attentions: also return the body's hidden states / attention maps.
            mask_time_indices: optional ``(B, T)`` frames to mask (SpecAugment, chapter 3).

        Returns:
            ``CTCOutput`` with ``logits`` ``(B, T, vocab_size)``, ``frame_lengths`` ``(B,)`` and ``loss``.
        """
        if labels is not None:
            V = self.config.vocab_size
            bad = (labels >= V) | ((labels < 0) & (labels != IGNORE_INDEX))
            # checked before the forward pass, which would be wasted (in eager calls: they read values)
            if not torch.compiler.is_compiling() and bad.any():
                raise ValueError(f"labels: ids must be in [0, vocab_size={V}) or {IGNORE_INDEX} for padding, got "
                                 f"{sorted(set(labels[bad].tolist()))[:10]}; the tokenizer and config.vocab_size "
                                 f"must agree (config.vocab_size = tokenizer.vocab_size)")
        out = self.wav2vec2_conformer(input_values, attention_mask=attention_mask,
                                      mask_time_indices=mask_time_indices, output_hidden_states=output_hidden_states,
                                      output_attentions=output_attentions)
        hidden_states = self.dropout(out.last_hidden_state)  # (B, T, C)
        logits = self.lm_head(hidden_states)  # (B, T, V)
        B, T, V = logits.shape
        if attention_mask is None:
            frame_lengths = torch.full((B,), T, dtype=torch.long, device=logits.device)
        else:
            frame_lengths = self._get_feat_extract_output_lengths(attention_mask.long().sum(-1)).to(logits.device)
        loss = None
        if labels is not None:
            loss = ctc_loss(logits, labels, frame_lengths, blank_id=self.config.pad_token_id,
                            reduction=self.config.ctc_loss_reduction, zero_infinity=self.config.ctc_zero_infinity)
        return CTCOutput(loss=loss, logits=logits, frame_lengths=frame_lengths,
                         hidden_states=out.hidden_states, attentions=out.attentions)
