# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 70
from __future__ import annotations

from importlib import resources
from pathlib import Path

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


# %% notebooks/09_ctc.ipynb, cell 76
# One training run of this chapter's tiny recogniser, as a function, so that the notebook and
# tools/label_efficiency.py run exactly the same experiment.
# Results measured outside the book (tools/label_efficiency.py), shipped with the package:
LABEL_EFFICIENCY_FILE = Path(str(resources.files("w2vc"))) / "results" / "label_efficiency.json"
# The recipes tried by tools/label_efficiency.py tune, for fine-tuning (500 steps) and for training from scratch
# (as many steps as pretraining plus fine-tuning take); the best of each, by CER on the unseen voices, is kept.
FINETUNE_CANDIDATES = ({"lr": 2e-3, "warmup_steps": 50, "decay": "linear"},
                       {"lr": 1e-3, "warmup_steps": 100, "decay": "linear"})
SCRATCH_CANDIDATES = ({"lr": 2e-3, "warmup_steps": 50, "decay": "linear"},
                      {"lr": 1e-3, "warmup_steps": 100, "decay": "linear"},
                      {"lr": 4e-3, "warmup_steps": 100, "decay": "linear"},
                      {"lr": 5e-4, "warmup_steps": 100, "decay": "linear"})
FINETUNE_RECIPE = {"steps": 500, **FINETUNE_CANDIDATES[0]}  # this section's recipe: the best fine-tuning one
LABEL_COUNTS = (50, 200, 800, 3000)  # the points of the label-efficiency curve


def unseen_voice_test_set(corpus, size: int = 128) -> list:
    """``size`` utterances spread evenly over the corpus' test voices (none of which is in training)."""
    return corpus.test[::max(len(corpus.test) // size, 1)][:size]


def ctc_experiment(init: str, labels: int, *, steps: int, lr: float, warmup_steps: int = 50,
                   decay: str = "linear", eval_every: int | None = None, on_evaluate=None, seed: int = 0,
                   batch_size: int = 16, corpus=None, device=None, keep_model: bool = False) -> dict:
    """Train chapter 9's tiny CTC recogniser on the first ``labels`` training utterances and measure it.

    The corpus is chapter 1's (``load_corpus()``), already shuffled, so its first ``labels`` utterances are a
    random subset, and a smaller subset lies inside every larger one. The vocabulary is always built from the
    whole training set, so every run predicts the same 24 symbols. The test set is
    ``unseen_voice_test_set(corpus)``, transcribed one utterance at a time (no padding, see 9.5).

    Args:
        init: ``"pretrained"``: chapter 8's body (``pretrained_tiny()``) with a new head, feature encoder frozen;
            ``"scratch"``: random weights, everything trained.
        labels: how many labelled utterances to train on (at least ``batch_size``).
        steps, lr, warmup_steps, decay: the recipe (AdamW, gradients clipped at norm 1, see ``TrainingConfig``).
        eval_every: also measure every this many steps (None: only after the last).
        on_evaluate: ``on_evaluate(model)`` called at every evaluation (to look inside, changes nothing).
        seed: seeds the weights of the head (or the whole model) and the batch order.
        batch_size: utterances per step.
        corpus: the corpus (default ``load_corpus()``).
        device: where to train (default: a GPU when there is one).
        keep_model: also return the trained ``"model"``, its ``"processor"`` and the ``"history"``.

    Returns:
        ``{"init", "labels", "steps", "lr", "warmup_steps", "decay", "seconds", "cer", "wer", "curve"}``:
        ``seconds`` is the training time (evaluations left out), ``curve`` the ``[step, cer]`` pairs.
    """
    import time
    import warnings

    from w2vc.audio import Wav2Vec2FeatureExtractor
    from w2vc.config import Wav2Vec2ConformerConfig
    from w2vc.data import load_corpus
    from w2vc.pretraining import pretrained_tiny
    from w2vc.tokenizer import CTCTokenizer
    from w2vc.training import TrainingConfig, train

    if init not in ("pretrained", "scratch"):
        raise ValueError(f"init: expected 'pretrained' (chapter 8's body) or 'scratch', got {init!r}")
    corpus = load_corpus() if corpus is None else corpus
    if not batch_size <= labels <= len(corpus.train):
        raise ValueError(f"labels: expected {batch_size} (one batch) to {len(corpus.train)} (the training set), "
                         f"got {labels}")
    tokenizer = CTCTokenizer.from_texts(u.text for u in corpus.train)
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), tokenizer)
    test_set = unseen_voice_test_set(corpus)
    head = dict(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, ctc_loss_reduction="mean",
                mask_time_prob=0.0, layerdrop=0.0)
    torch.manual_seed(seed)
    if init == "pretrained":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a new lm_head, the pretraining head left out: expected here
            model = Wav2Vec2ConformerForCTC.from_pretrained(pretrained_tiny(progress=False), **head)
        model.freeze_feature_encoder()
    else:
        model = Wav2Vec2ConformerForCTC(Wav2Vec2ConformerConfig.preset("tiny", **head))
    batches = length_sorted_batches(corpus.train[:labels], batch_size, CTCCollator(processor), seed=seed,
                                    length=lambda u: len(u.audio))

    evaluating = []  # seconds spent in each evaluation, left out of the training time

    def evaluate(m):
        begin = time.perf_counter()
        if on_evaluate is not None:
            on_evaluate(m)
        metrics = evaluate_recognizer(m, processor, test_set, batch_size=1)
        evaluating.append(time.perf_counter() - begin)
        return metrics

    config = TrainingConfig(steps=steps, lr=lr, warmup_steps=warmup_steps, decay=decay, max_grad_norm=1.0,
                            log_every=eval_every or steps, eval_every=eval_every, progress=False, seed=seed)
    started = time.perf_counter()
    history = train(model, batches, ctc_training_step, config, device=device, eval_fn=evaluate)
    seconds = time.perf_counter() - started - sum(evaluating)
    result = {"init": init, "labels": labels, "steps": steps, "lr": lr, "warmup_steps": warmup_steps,
              "decay": decay, "seconds": round(seconds, 1), "cer": history.last("cer"),
              "wer": history.last("wer"), "curve": [list(p) for p in zip(*history.curve("cer"))]}
    if keep_model:
        result.update(model=model, history=history, processor=processor)
    return result
