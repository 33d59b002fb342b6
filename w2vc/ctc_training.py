# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 70
from __future__ import annotations

import torch
from torch import nn

from w2vc.audio import SAMPLING_RATE
from w2vc.ctc import Wav2Vec2ConformerForCTC
from w2vc.decoding import ctc_greedy_decode
from w2vc.metrics import char_error_rate, word_error_rate
from w2vc.processor import Wav2Vec2Processor


class CTCCollator:
    """Utterances -> a padded training batch: ``input_values``, ``attention_mask``, ``labels`` (-100 padded).

    Args:
        processor: a ``Wav2Vec2Processor``.
    """

    def __init__(self, processor: Wav2Vec2Processor):
        self.processor = processor

    def __call__(self, utterances, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Args: utterances: objects with ``.audio`` ``(L,)`` and ``.text``, or ``(audio, text)`` pairs.

        Returns: ``input_values`` ``(B, L)``, ``attention_mask`` ``(B, L)``, ``labels`` ``(B, U)``.
        """
        pairs = [(u.audio, u.text) if hasattr(u, "audio") else tuple(u) for u in utterances]
        audio, texts = zip(*pairs)
        inputs = self.processor(list(audio), text=list(texts), sampling_rate=SAMPLING_RATE)
        inputs["attention_mask"] = inputs["attention_mask"].long()
        return dict(inputs)


def length_sorted_batches(items, batch_size: int, collate, seed: int = 0, length=len):
    """A batch function over items sorted by length: neighbours share a batch, the batch order is shuffled.

    Args:
        items: the training examples.
        batch_size: examples per (global) batch; the last, incomplete batch of the sorted list is dropped.
        collate: ``collate(examples, generator) -> batch``.
        seed: shuffles the batch order, anew each epoch.
        length: ``length(item)`` to sort by (default ``len``; use ``lambda u: len(u.audio)`` for utterances).

    Returns:
        ``batches(step, rank=0, world_size=1)``: process ``rank``'s share of global batch ``step``.
    """
    if not 0 < batch_size <= len(items):
        raise ValueError(f"batch_size: expected 1 to {len(items)} (the number of items), got {batch_size}")
    ordered = sorted(range(len(items)), key=lambda i: length(items[i]))
    groups = [ordered[i:i + batch_size] for i in range(0, len(ordered) - batch_size + 1, batch_size)]

    def batches(step: int, rank: int = 0, world_size: int = 1):
        epoch, index = divmod(step, len(groups))
        order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        chosen = groups[int(order[index])][rank::world_size]
        return collate([items[i] for i in chosen], torch.Generator().manual_seed(seed * 1_000_003 + step))

    return batches


# %% notebooks/09_ctc.ipynb, cell 74
def ctc_training_step(model: nn.Module, batch: dict) -> dict:
    """``train``'s step function for a CTC model: the loss of one batch."""
    return {"loss": model(**batch).loss}


@torch.no_grad()
def evaluate_recognizer(model: Wav2Vec2ConformerForCTC, processor: Wav2Vec2Processor, utterances,
                        batch_size: int = 32) -> dict:
    """Greedy transcripts of ``utterances`` (with ``.audio`` and ``.text``) and their error rates.

    Returns:
        ``{"cer", "wer", "empty"}``: character and word error rates, and the fraction of empty transcripts.
    """
    ordered = sorted(utterances, key=lambda u: len(u.audio))  # neighbours in length: little padding
    hypotheses, references = [], []
    for begin in range(0, len(ordered), batch_size):
        group = ordered[begin:begin + batch_size]
        inputs = processor([u.audio for u in group], sampling_rate=SAMPLING_RATE)
        mask = inputs.get("attention_mask")
        mask = None if mask is None else mask.to(model.device)
        out = model(inputs["input_values"].to(model.device), attention_mask=mask)  # logits (B, T, V)
        ids = ctc_greedy_decode(out.logits, out.frame_lengths, blank_id=processor.tokenizer.pad_token_id)
        hypotheses += [processor.tokenizer.decode(row, group_tokens=False) for row in ids]
        references += [u.text for u in group]
    return {"cer": char_error_rate(references, hypotheses), "wer": word_error_rate(references, hypotheses),
            "empty": sum(not h for h in hypotheses) / len(hypotheses)}
