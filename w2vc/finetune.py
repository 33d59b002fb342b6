# GENERATED from notebooks/12_after_the_course.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/12_after_the_course.ipynb, cell 18
"""Fine-tuning on your own folders of audio, with chapter 8's training loop (chapter 12)."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Callable

import torch

from w2vc.audio import SAMPLING_RATE, Wav2Vec2FeatureExtractor
from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.data import load_folder
from w2vc.model import INDEX_FILES, WEIGHTS_FILES
from w2vc.training import History, TrainingConfig, train


def check_model_folder(folder, name: str = "model") -> Path:
    """A checkpoint folder to start from, or a clear error: it must exist and hold config.json and weights."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{name}: the folder {str(folder)!r} does not exist; pass a model folder (config.json "
                                f"and model.safetensors), e.g. w2vc.pretraining.pretrained_tiny()")
    if not folder.is_dir():
        raise NotADirectoryError(f"{name}: expected a model folder, got the file {str(folder)!r}; pass its folder")
    if not (folder / "config.json").is_file() or not any((folder / w).is_file() for w in WEIGHTS_FILES + INDEX_FILES):
        raise FileNotFoundError(f"{name}: {folder} is not a model folder: it needs config.json and the weights "
                                f"({' or '.join(WEIGHTS_FILES)}), as save_pretrained writes them")
    return folder


def read_data_folder(folder, name: str):
    """``load_folder(folder)``, with errors that say which argument the folder came from."""
    try:
        return load_folder(folder)
    except (FileNotFoundError, NotADirectoryError, ValueError) as error:
        raise type(error)(f"{name}: {error}") from None


class _KeepBest:
    """``eval_fn`` for ``train``: evaluates, and saves the model into ``out`` whenever the metric improves."""

    def __init__(self, out: Path, evaluate: Callable, save: Callable, metric: str, higher_is_better: bool,
                 steps: int, log: Callable | None):
        self.out, self.evaluate, self.save, self.metric = out, evaluate, save, metric
        self.higher, self.steps, self.log, self.step = higher_is_better, steps, log, 0
        record = out / "trainer_state.json"  # what an interrupted run had kept
        self.best = json.loads(record.read_text())["best"] if record.is_file() else None
        checkpoint = out / "checkpoint" / "last.pt"  # train() resumes from it: say so, and from which step
        if checkpoint.is_file() and log is not None:
            done = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=False)["step"]  # reads no weights
            log(f"resuming from {checkpoint} (step {done} of {steps})" if done < steps else
                f"{checkpoint} is at step {done} of {steps}: the run is complete")

    def hook(self, step: int, model) -> None:  # called before each step: remember which one
        self.step = step + 1

    def __call__(self, model) -> dict:
        metrics = self.evaluate(model)
        value = metrics[self.metric]
        better = self.best is None or (value > self.best if self.higher else value < self.best)
        if better:
            self.best = value
            self.save(model)
            (self.out / "trainer_state.json").write_text(json.dumps(
                {"best": value, "metric": self.metric, "step": self.step, "steps": self.steps, **metrics}, indent=2))
        if self.log is not None:
            shown = ", ".join(f"{k} {v:.1%}" for k, v in metrics.items())
            self.log(f"step {self.step}/{self.steps}: {shown}" + (f" (best: saved to {self.out})" if better else ""))
        return metrics


def _main_process_log(log):
    """``log`` in process 0 only: under torchrun every process runs the same code, one of them reports."""
    return log if int(os.environ.get("RANK", "0")) == 0 else None


def _recipe(steps, batch_size, lr, warmup_steps, eval_every, out, seed, progress) -> TrainingConfig:
    for label, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label}: expected a whole number of at least 1, got {value!r}")
    eval_every = eval_every or max(1, steps // 10)
    warmup = max(1, steps // 10) if warmup_steps is None else warmup_steps
    return TrainingConfig(steps=steps, lr=lr, warmup_steps=warmup, decay="linear", max_grad_norm=1.0,
                          log_every=min(eval_every, 10), eval_every=eval_every, checkpoint_dir=str(out / "checkpoint"),
                          checkpoint_every=eval_every, resume=True, progress=progress, seed=seed)


# %% notebooks/12_after_the_course.ipynb, cell 20
def finetune_ctc(train_dir, valid_dir, model, out, *, steps: int = 500, batch_size: int = 8, lr: float = 1e-3,
                 warmup_steps: int | None = None, eval_every: int | None = None, vocabulary: str = "auto",
                 freeze_feature_encoder: bool = True, mask_time_prob: float = 0.0, seed: int = 0, device=None,
                 progress: bool = False, log: Callable[[str], None] | None = None) -> History:
    """Fine-tune a model folder into a CTC recogniser on folders of audio files with transcripts.

    The folders are what ``load_folder`` reads: audio files (wav, flac, ogg; sub-folders too), each with a
    ``.txt`` transcript of the same name beside it. The best model by validation CER is written to ``out`` (a
    folder that ``transcribe``, ``load_recognizer`` and transformers load); ``out/checkpoint/last.pt`` lets an
    interrupted run go on where it stopped: run the same call again.

    Args:
        train_dir, valid_dir: the training and validation folders.
        model: a model folder: a pretrained body (``pretrained_tiny()``) or a recogniser to go on from.
        out: the output folder.
        steps, batch_size, lr, warmup_steps, eval_every: the recipe (AdamW, linear warm-up then decay; warm-up
            and evaluation default to a tenth of the steps).
        vocabulary: ``"auto"`` keeps the vocabulary (and CTC head) of a recogniser folder and builds one from the
            training transcripts otherwise; ``"build"`` always builds it; ``"keep"`` requires the folder's.
        freeze_feature_encoder: keep the conv feature encoder as it is (wav2vec 2.0's fine-tuning recipe).
        mask_time_prob: SpecAugment over time (chapter 3); 0 for short runs.
        seed, device, progress: as for ``train``.
        log: called with one line after each evaluation (e.g. ``print``).

    Returns:
        The training history (chapter 8's ``History``).
    """
    from w2vc.ctc import Wav2Vec2ConformerForCTC, ctc_min_frames
    from w2vc.ctc_training import CTCCollator, evaluate_recognizer, length_sorted_batches
    from w2vc.processor import Wav2Vec2Processor, feature_extractor_from_folder
    from w2vc.recognizer import check_device
    from w2vc.tokenizer import CTCTokenizer

    folder = check_model_folder(model)
    log = _main_process_log(log)
    if vocabulary not in ("auto", "build", "keep"):
        raise ValueError(f"vocabulary: expected 'auto', 'build' or 'keep', got {vocabulary!r}")
    device = check_device(device)
    train_set, valid_set = read_data_folder(train_dir, "train"), read_data_folder(valid_dir, "valid")
    for name, items in (("train", train_set), ("valid", valid_set)):
        bare = [str(u.path) for u in items if not u.text]
        if bare:
            raise ValueError(f"{name}: {len(bare)} of {len(items)} audio files have no transcript beside them, e.g. "
                             f"{bare[0]!r}; write each one's words into a .txt file of the same name")
    config = _recipe(steps, batch_size, lr, warmup_steps, eval_every, Path(out), seed, progress)
    if batch_size > len(train_set):
        raise ValueError(f"batch_size: expected at most the {len(train_set)} training files, got {batch_size}")
    keep = (folder / "vocab.json").is_file() and vocabulary != "build"
    if vocabulary == "keep" and not keep:
        raise FileNotFoundError(f"vocabulary: 'keep' needs the model folder's vocab.json, and {folder} has none; "
                                f"use vocabulary='build'")
    tokenizer = (CTCTokenizer.from_pretrained(folder) if keep else
                 CTCTokenizer.from_texts(u.text for u in train_set))
    extractor = feature_extractor_from_folder(folder) or Wav2Vec2FeatureExtractor.for_model(
        Wav2Vec2ConformerConfig.from_pretrained(folder))
    processor = Wav2Vec2Processor(extractor, tokenizer)
    torch.manual_seed(seed)  # the new head's initial weights
    with warnings.catch_warnings():  # "a new lm_head", "the pretraining head left out": expected here
        warnings.simplefilter("ignore")
        recogniser = Wav2Vec2ConformerForCTC.from_pretrained(
            folder, ignore_mismatched_sizes=not keep, vocab_size=tokenizer.vocab_size,
            pad_token_id=tokenizer.pad_token_id, ctc_loss_reduction="mean", ctc_zero_infinity=True,
            mask_time_prob=mask_time_prob, layerdrop=0.0)
    if log is not None:
        log(f"{'the CTC head and vocabulary' if keep else f'a new CTC head over {tokenizer.vocab_size} symbols'} on "
            f"the body of {folder}; {len(train_set)} training and {len(valid_set)} validation files")
    if freeze_feature_encoder:
        recogniser.freeze_feature_encoder()
    too_short = [u for u in train_set if ctc_min_frames(tokenizer.encode(u.text)) >
                 int(recogniser._get_feat_extract_output_lengths(len(u.audio)))]
    if too_short and log is not None:
        log(f"warning: {len(too_short)} training files are too short for their transcripts (e.g. "
            f"{str(too_short[0].path)!r}); CTC cannot align them, they add nothing")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def save(model):
        model.save_pretrained(out)
        processor.save_pretrained(out)

    keeper = _KeepBest(out, lambda m: evaluate_recognizer(m, processor, valid_set), save, "cer", False, steps, log)
    batches = length_sorted_batches(train_set, batch_size, CTCCollator(processor), seed=seed,
                                    length=lambda u: len(u.audio))
    return train(recogniser, batches, lambda m, batch: {"loss": m(**batch).loss}, config, hooks=[keeper.hook],
                 eval_fn=keeper, device=device)


# %% notebooks/12_after_the_course.ipynb, cell 22
class _LabelledAudio:
    """An utterance of a class folder: its audio and its class id."""

    def __init__(self, utterance, label: int):
        self.audio, self.label, self.path = utterance.audio, label, utterance.path


class _ClassifyCollator:
    def __init__(self, extractor: Wav2Vec2FeatureExtractor):
        self.extractor = extractor

    def __call__(self, items, generator=None) -> dict:
        inputs = self.extractor([x.audio for x in items], sampling_rate=SAMPLING_RATE, padding=True,
                                return_tensors="pt")
        batch = {"input_values": inputs["input_values"], "labels": torch.tensor([x.label for x in items])}
        if "attention_mask" in inputs:
            batch["attention_mask"] = inputs["attention_mask"].long()
        return batch


def _class_items(utterances, name: str, label2id: dict | None = None):
    top = [str(u.path) for u in utterances if not u.voice]
    if top:
        raise ValueError(f"{name}: {top[0]!r} is not inside a class folder; put every file in a sub-folder named "
                         f"after its class ({name}/yes/001.wav, {name}/no/002.wav, ...)")
    classes = sorted({u.voice.split("/")[0] for u in utterances})
    if label2id is None:
        if len(classes) < 2:
            raise ValueError(f"{name}: expected two or more class folders, got {classes}")
        label2id = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in classes if c not in label2id]
    if unknown:
        raise ValueError(f"{name}: class folders {unknown} do not exist in the training folder "
                         f"(classes: {sorted(label2id)}); rename them or add training files for them")
    return [_LabelledAudio(u, label2id[u.voice.split("/")[0]]) for u in utterances], label2id


@torch.no_grad()
def evaluate_classifier(model, extractor: Wav2Vec2FeatureExtractor, items, batch_size: int = 32) -> dict:
    """Accuracy of ``model`` on ``items`` (objects with ``.audio`` and ``.label``): ``{"accuracy"}``."""
    ordered = sorted(items, key=lambda x: len(x.audio))
    collate, right = _ClassifyCollator(extractor), 0
    for begin in range(0, len(ordered), batch_size):
        batch = collate(ordered[begin:begin + batch_size])
        mask = batch.get("attention_mask")
        logits = model(batch["input_values"].to(model.device),
                       attention_mask=None if mask is None else mask.to(model.device)).logits  # (B, N)
        right += int((logits.argmax(-1).cpu() == batch["labels"]).sum())
    return {"accuracy": right / len(ordered)}


def finetune_classify(train_dir, valid_dir, model, out, *, steps: int = 300, batch_size: int = 8, lr: float = 5e-4,
                      warmup_steps: int | None = None, eval_every: int | None = None,
                      freeze_feature_encoder: bool = True, seed: int = 0, device=None, progress: bool = False,
                      log: Callable[[str], None] | None = None) -> History:
    """Fine-tune a model folder into an utterance classifier on class folders (``train_dir/<class>/*.wav``).

    The best model by validation accuracy goes to ``out`` (``Wav2Vec2ConformerForSequenceClassification``, with
    the class names as ``id2label``, and ``preprocessor_config.json``); ``out/checkpoint/last.pt`` resumes an
    interrupted run. Arguments as for ``finetune_ctc``.
    """
    from w2vc.classification import Wav2Vec2ConformerForSequenceClassification
    from w2vc.ctc_training import length_sorted_batches
    from w2vc.processor import feature_extractor_from_folder
    from w2vc.recognizer import check_device

    folder = check_model_folder(model)
    log = _main_process_log(log)
    device = check_device(device)
    train_items, label2id = _class_items(read_data_folder(train_dir, "train"), "train")
    valid_items, _ = _class_items(read_data_folder(valid_dir, "valid"), "valid", label2id)
    config = _recipe(steps, batch_size, lr, warmup_steps, eval_every, Path(out), seed, progress)
    if batch_size > len(train_items):
        raise ValueError(f"batch_size: expected at most the {len(train_items)} training files, got {batch_size}")
    extractor = feature_extractor_from_folder(folder) or Wav2Vec2FeatureExtractor.for_model(
        Wav2Vec2ConformerConfig.from_pretrained(folder))
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # "a new classifier", "the pretraining head left out": expected here
        warnings.simplefilter("ignore")
        classifier = Wav2Vec2ConformerForSequenceClassification.from_pretrained(
            folder, ignore_mismatched_sizes=True, num_labels=len(label2id),
            id2label={i: c for c, i in label2id.items()}, label2id=label2id, mask_time_prob=0.0, layerdrop=0.0)
    if log is not None:
        log(f"a new classifier over {len(label2id)} classes {sorted(label2id)} on the body of {folder}; "
            f"{len(train_items)} training and {len(valid_items)} validation files")
    if freeze_feature_encoder:
        classifier.freeze_feature_encoder()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def save(model):
        model.save_pretrained(out)
        extractor.save_pretrained(out)

    keeper = _KeepBest(out, lambda m: evaluate_classifier(m, extractor, valid_items), save, "accuracy", True,
                       steps, log)
    batches = length_sorted_batches(train_items, batch_size, _ClassifyCollator(extractor), seed=seed,
                                    length=lambda x: len(x.audio))
    return train(classifier, batches, lambda m, batch: {"loss": m(**batch).loss}, config, hooks=[keeper.hook],
                 eval_fn=keeper, device=device)
