# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 4
from __future__ import annotations

import itertools
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# %% notebooks/09_ctc.ipynb, cell 8
_SPECIAL_ROLES = ("pad_token", "bos_token", "eos_token", "unk_token")


def _token_text(value):
    """A token as written in transformers' files: a string, or a dict with its ``content``."""
    return value["content"] if isinstance(value, dict) else value


class CTCTokenizer:
    """Characters to ids and back, for CTC; reads and writes transformers' ``Wav2Vec2CTCTokenizer`` files.

    The padding token is the CTC blank. A space in the text is the word delimiter token (``|``).

    Args:
        vocab: symbol -> id. Ids must be distinct; the ``pad_token`` must be in it.
        pad_token: the padding token, which is also the CTC blank.
        bos_token, eos_token: sentence start/end tokens (kept for compatibility; CTC does not use them).
        unk_token: what a character outside the vocabulary becomes.
        word_delimiter_token: the token that stands for the space between words.
        replace_word_delimiter_char: what the word delimiter becomes when decoding.
        do_lower_case: upper-case the text before encoding and lower-case the decoded text (for a vocabulary
            of upper-case letters, like the published English checkpoints').
        clean_up_tokenization_spaces: remove a space before punctuation when decoding (transformers' rule).
        unknown: what to do with characters outside the vocabulary: ``"warn"`` (map to ``unk_token``
            and warn), ``"error"`` (raise ``ValueError``) or ``"ignore"`` (map to ``unk_token`` silently).
    """

    def __init__(self, vocab: dict[str, int], *, pad_token: str = "<pad>", bos_token: str = "<s>",
                 eos_token: str = "</s>", unk_token: str = "<unk>", word_delimiter_token: str = "|",
                 replace_word_delimiter_char: str = " ", do_lower_case: bool = False,
                 clean_up_tokenization_spaces: bool = False, unknown: str = "warn"):
        if not isinstance(vocab, dict) or not vocab:
            raise ValueError(f"vocab: expected a non-empty dict from symbol to id, got {type(vocab).__name__} "
                             f"{vocab!r:.60}; build one with CTCTokenizer.from_texts(texts)")
        if len(set(vocab.values())) != len(vocab):
            seen = {}
            for token, index in vocab.items():
                seen.setdefault(index, []).append(token)
            clash = {i: t for i, t in seen.items() if len(t) > 1}
            raise ValueError(f"vocab: expected distinct ids, got {clash}; give each symbol its own id")
        if pad_token not in vocab:
            raise ValueError(f"pad_token: {pad_token!r} is not in the vocabulary, but CTC needs it as its blank; "
                             f"add it to the vocabulary (id 0 by convention) or name the blank with pad_token=")
        if unknown not in ("warn", "error", "ignore"):
            raise ValueError(f"unknown: expected 'warn', 'error' or 'ignore', got {unknown!r}")
        self.vocab = {str(token): int(index) for token, index in vocab.items()}
        self.ids_to_tokens = {index: token for token, index in self.vocab.items()}
        self.pad_token, self.bos_token, self.eos_token, self.unk_token = pad_token, bos_token, eos_token, unk_token
        self.word_delimiter_token = word_delimiter_token
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self.do_lower_case = do_lower_case
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.unknown = unknown
        # Entries longer than one character ("<unk>", "<s>", ...) are matched whole, longest first.
        long_tokens = sorted((t for t in self.vocab if len(t) > 1), key=len, reverse=True)
        self._long_tokens = re.compile("|".join(map(re.escape, long_tokens))) if long_tokens else None

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        """Number of symbols: the size of the model's output layer (``config.vocab_size``)."""
        return len(self.vocab)

    @property
    def pad_token_id(self) -> int:
        """Id of the padding token, which is also the CTC blank."""
        return self.vocab[self.pad_token]

    blank_id = pad_token_id

    @property
    def unk_token_id(self):
        return self.vocab.get(self.unk_token)

    @property
    def word_delimiter_token_id(self):
        return self.vocab.get(self.word_delimiter_token)

    def __repr__(self) -> str:
        return (f"CTCTokenizer(vocab_size={self.vocab_size}, blank={self.pad_token!r} (id {self.pad_token_id}), "
                f"word_delimiter={self.word_delimiter_token!r}, do_lower_case={self.do_lower_case})")


# %% notebooks/09_ctc.ipynb, cell 10
def _from_texts(cls, texts, *, do_lower_case: bool = False, pad_token: str = "<pad>", bos_token: str = "<s>",
                eos_token: str = "</s>", unk_token: str = "<unk>", word_delimiter_token: str = "|", **kwargs):
    """Build a tokenizer whose vocabulary holds the special tokens and every character of ``texts``.

    Args:
        texts: an iterable of transcripts (strings).
        do_lower_case: store upper-case letters (and upper-case the text when encoding), as the published
            English checkpoints do.
        pad_token, bos_token, eos_token, unk_token, word_delimiter_token: the special tokens; they take
            ids 0 to 4 in this order.
        **kwargs: passed on to ``CTCTokenizer``.

    Returns:
        A ``CTCTokenizer``.
    """
    if isinstance(texts, str):
        raise TypeError("texts: expected an iterable of transcripts, got a single string; pass [text]")
    chars = set()
    for text in texts:
        chars.update(text.upper() if do_lower_case else text)
    chars.discard(" ")
    specials = [pad_token, bos_token, eos_token, unk_token, word_delimiter_token]
    symbols = specials + sorted(chars - set(specials))
    return cls({symbol: index for index, symbol in enumerate(symbols)}, pad_token=pad_token, bos_token=bos_token,
               eos_token=eos_token, unk_token=unk_token, word_delimiter_token=word_delimiter_token,
               do_lower_case=do_lower_case, **kwargs)


CTCTokenizer.from_texts = classmethod(_from_texts)


# %% notebooks/09_ctc.ipynb, cell 14
def _tokenize(self, text: str) -> list[str]:
    """Split ``text`` into tokens: whole multi-character vocabulary entries, else single characters."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a string, got {type(text).__name__}; use batch_encode for a list")
    pieces, start = [], 0
    for match in (self._long_tokens.finditer(text) if self._long_tokens else ()):
        pieces.append(text[start:match.start()].rstrip())  # a whole token eats the white space before it ...
        pieces.append(match.group(0))
        start = match.end()
        while start < len(text) and text[start].isspace():  # ... and after it
            start += 1
    pieces.append(text[start:])
    tokens = []
    for i, piece in enumerate(pieces):
        if i % 2:  # a whole token
            tokens.append(piece)
            continue
        if self.do_lower_case:
            piece = piece.upper()
        tokens.extend(piece.replace(" ", self.word_delimiter_token))
    return tokens


def _encode(self, text: str) -> list[int]:
    """Text -> ids. Characters outside the vocabulary become ``unk_token`` (see ``unknown``).

    Args:
        text: one transcript.

    Returns:
        A list of ids, one per character (a space is the word delimiter).
    """
    tokens = self.tokenize(text)
    missing = sorted({t for t in tokens if t not in self.vocab})
    if missing:
        message = (f"text {text!r:.80} has characters outside the vocabulary: {missing}; "
                   f"they become {self.unk_token!r}. Normalise the text (case, punctuation) or build the "
                   f"vocabulary from your transcripts (CTCTokenizer.from_texts)")
        if self.unknown == "error":
            raise ValueError(message)
        if self.unk_token not in self.vocab:
            raise ValueError(message.replace(f"they become {self.unk_token!r}",
                                             f"and unk_token {self.unk_token!r} is not in the vocabulary either"))
        if self.unknown == "warn":
            warnings.warn(message, stacklevel=2)
    unk = self.vocab.get(self.unk_token)
    return [self.vocab.get(t, unk) for t in tokens]


def _batch_encode(self, texts) -> list[list[int]]:
    """Encode each text of a list; returns a list of id lists."""
    if isinstance(texts, str):
        raise TypeError("texts: expected a list of strings, got one string; use encode(text)")
    return [self.encode(t) for t in texts]


CTCTokenizer.tokenize = _tokenize
CTCTokenizer.encode = _encode
CTCTokenizer.batch_encode = _batch_encode


def _call(self, text):
    """``encode`` for one text, ``batch_encode`` for a list."""
    return self.encode(text) if isinstance(text, str) else self.batch_encode(text)


CTCTokenizer.__call__ = _call


# %% notebooks/09_ctc.ipynb, cell 20
def _convert_ids_to_tokens(self, ids) -> list[str]:
    """Ids -> tokens; an id outside the vocabulary becomes ``unk_token``."""
    return [self.ids_to_tokens.get(int(i), self.unk_token) for i in ids]


def _clean_up(text: str) -> str:
    """transformers' ``clean_up_tokenization``: no space before punctuation and English contractions."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text


def _decode(self, ids, *, group_tokens: bool = True, skip_special_tokens: bool = False) -> str:
    """Ids -> text, undoing CTC: merge repeats, drop blanks, word delimiter -> space.

    Args:
        ids: a sequence of ids, shape ``(T,)`` (a list, array or tensor): per-frame predictions, or labels.
        group_tokens: merge runs of equal ids first (CTC output). Use ``False`` to decode labels.
        skip_special_tokens: also drop ``bos_token``, ``eos_token`` and ``unk_token`` (after merging; the
            blank is always dropped). transformers drops them *before* merging, which can merge letters that
            a blank kept apart; we do it after.

    Returns:
        The text.
    """
    if isinstance(ids, torch.Tensor):
        ids = ids.tolist()
    elif isinstance(ids, np.ndarray):
        ids = ids.tolist()
    if isinstance(ids, int):
        ids = [ids]
    tokens = self.convert_ids_to_tokens(ids)
    if group_tokens:
        tokens = [token for token, _run in itertools.groupby(tokens)]  # merge repeats: a a - a -> a - a
    tokens = [t for t in tokens if t != self.pad_token]  # drop blanks: a - a -> a a
    if skip_special_tokens:
        tokens = [t for t in tokens if t not in (self.bos_token, self.eos_token, self.unk_token)]
    text = "".join(self.replace_word_delimiter_char if t == self.word_delimiter_token else t for t in tokens)
    text = text.strip()
    if self.do_lower_case:
        text = text.lower()
    if self.clean_up_tokenization_spaces:
        text = _clean_up(text)
    return text


def _batch_decode(self, sequences, lengths=None, **kwargs) -> list[str]:
    """Decode a batch of id sequences.

    Args:
        sequences: shape ``(B, T)`` (a tensor or array) or a list of ``B`` id lists.
        lengths: optional ``(B,)`` number of valid positions of each row (frames beyond are padding).
        **kwargs: passed to ``decode`` (``group_tokens``, ``skip_special_tokens``).

    Returns:
        ``B`` strings.
    """
    if isinstance(sequences, (torch.Tensor, np.ndarray)):
        if sequences.ndim != 2:
            raise ValueError(f"sequences: expected shape (B, T), got {tuple(sequences.shape)}; "
                             f"use decode() for one sequence")
        sequences = sequences.tolist()
    if lengths is not None:
        lengths = [int(n) for n in (lengths.tolist() if hasattr(lengths, "tolist") else lengths)]
        if len(lengths) != len(sequences):
            raise ValueError(f"lengths: expected {len(sequences)} lengths (one per sequence), got {len(lengths)}")
        sequences = [seq[:n] for seq, n in zip(sequences, lengths)]
    return [self.decode(seq, **kwargs) for seq in sequences]


CTCTokenizer.convert_ids_to_tokens = _convert_ids_to_tokens
CTCTokenizer.decode = _decode
CTCTokenizer.batch_decode = _batch_decode


# %% notebooks/09_ctc.ipynb, cell 24
def _save_pretrained(self, folder) -> Path:
    """Write ``vocab.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` into ``folder``.

    Args:
        folder: a directory (created when missing).

    Returns:
        The folder, as a ``Path``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(
        json.dumps(self.vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    special = {role: getattr(self, role) for role in ("bos_token", "eos_token", "unk_token", "pad_token")}
    config = {
        "tokenizer_class": "Wav2Vec2CTCTokenizer",  # the class transformers builds from these files
        **special,
        "word_delimiter_token": self.word_delimiter_token,
        "replace_word_delimiter_char": self.replace_word_delimiter_char,
        "do_lower_case": self.do_lower_case,
        "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
        "target_lang": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return folder


def _from_pretrained(cls, folder, *, target_lang: str | None = None, **overrides):
    """Load a tokenizer from a folder holding ``vocab.json`` (and usually ``tokenizer_config.json``).

    Args:
        folder: a folder written by ``save_pretrained`` here or by transformers.
        target_lang: for a nested, multilingual ``vocab.json``: which language's vocabulary to use.
        **overrides: constructor arguments that replace those read from the files (e.g. ``unknown="error"``).

    Returns:
        A ``CTCTokenizer``.
    """
    folder = Path(folder)
    vocab_file = folder / "vocab.json"
    if not vocab_file.is_file():
        raise FileNotFoundError(
            f"folder: expected a vocabulary file {vocab_file}, but there is none. A CTC checkpoint needs the "
            f"tokenizer it was trained with: copy vocab.json and tokenizer_config.json from where the model came "
            f"from, or save one with CTCTokenizer.save_pretrained(folder)")
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    settings = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the second wins, as in transformers
        path = folder / name
        if path.is_file():
            settings.update(json.loads(path.read_text(encoding="utf-8")))
    kwargs = {role: _token_text(settings[role]) for role in _SPECIAL_ROLES if settings.get(role) is not None}
    for key in ("word_delimiter_token", "replace_word_delimiter_char", "do_lower_case",
                "clean_up_tokenization_spaces"):
        if settings.get(key) is not None:
            kwargs[key] = _token_text(settings[key])
    target_lang = target_lang or settings.get("target_lang")
    nested = all(isinstance(value, dict) for value in vocab.values())
    if nested:
        if target_lang not in vocab:
            raise ValueError(f"target_lang: {vocab_file} holds one vocabulary per language; expected one of "
                             f"{sorted(vocab)[:10]}{' ...' if len(vocab) > 10 else ''}, got {target_lang!r}")
        vocab = vocab[target_lang]
    kwargs.update(overrides)
    return cls(vocab, **kwargs)


CTCTokenizer.save_pretrained = _save_pretrained
CTCTokenizer.from_pretrained = classmethod(_from_pretrained)
Wav2Vec2CTCTokenizer = CTCTokenizer  # transformers' name for the same thing


# %% notebooks/09_ctc.ipynb, cell 28
from w2vc.audio import SAMPLING_RATE, BatchFeatures, Wav2Vec2FeatureExtractor


def feature_extractor_from_folder(folder):
    """The feature extractor saved in ``folder``: ``preprocessor_config.json``, or the ``feature_extractor`` entry
    of the ``processor_config.json`` that transformers 5 writes; None when there is neither."""
    folder = Path(folder)
    if (folder / Wav2Vec2FeatureExtractor.CONFIG_NAME).is_file():
        return Wav2Vec2FeatureExtractor.from_pretrained(folder)
    path = folder / "processor_config.json"
    if path.is_file():
        settings = json.loads(path.read_text(encoding="utf-8")).get("feature_extractor")
        if settings is not None:
            names = ("feature_size", "sampling_rate", "padding_value", "do_normalize", "return_attention_mask",
                     "padding_side")
            return Wav2Vec2FeatureExtractor(**{k: settings[k] for k in names if k in settings})
    return None


def pad_labels(ids: list[list[int]], padding_value: int = -100) -> torch.Tensor:
    """Pad id lists into a ``(B, U)`` long tensor (``U`` the longest), with ``padding_value`` after each."""
    longest = max((len(row) for row in ids), default=0)
    out = torch.full((len(ids), longest), padding_value, dtype=torch.long)
    for b, row in enumerate(ids):
        out[b, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


class Wav2Vec2Processor:
    """A feature extractor and a CTC tokenizer, used, saved and loaded together.

    Args:
        feature_extractor: chapter 1's ``Wav2Vec2FeatureExtractor``.
        tokenizer: a ``CTCTokenizer``.
    """

    def __init__(self, feature_extractor: Wav2Vec2FeatureExtractor, tokenizer: CTCTokenizer):
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer

    def __call__(self, audio=None, *, text=None, sampling_rate: int | None = None,
                 return_tensors: str = "pt") -> BatchFeatures:
        """Audio to model inputs and/or text to labels.

        Args:
            audio: one waveform ``(L,)`` or a batch (a list of waveforms, or ``(B, L)``), 16 kHz.
            text: one transcript or a list of them.
            sampling_rate: the rate of ``audio``; an error unless it is the feature extractor's.
            return_tensors: ``"pt"`` (torch) or ``"np"`` for the audio features.

        Returns:
            ``BatchFeatures`` with ``input_values`` ``(B, L)`` (and ``attention_mask``) when ``audio`` is given,
            ``labels`` ``(B, U)`` padded with -100 when ``text`` is given.
        """
        if audio is None and text is None:
            raise ValueError("Wav2Vec2Processor: expected audio, text or both, got neither")
        out = BatchFeatures()
        if audio is not None:
            out.update(self.feature_extractor(audio, sampling_rate=sampling_rate, padding=True,
                                              return_tensors=return_tensors))
        if text is not None:
            out["labels"] = self.make_labels(text)
        return out

    def make_labels(self, texts) -> torch.Tensor:
        """Transcripts -> ``(B, U)`` label ids padded with -100 (one text gives ``B = 1``)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        empty = [b for b, t in enumerate(texts) if not t.strip()]
        if empty:
            raise ValueError(f"text: transcripts {empty[:10]} are empty; CTC would train them towards 'all blank'. "
                             f"Drop those utterances or give them their transcripts")
        return pad_labels(self.tokenizer.batch_encode(texts))

    def decode(self, ids, **kwargs) -> str:
        """``tokenizer.decode``."""
        return self.tokenizer.decode(ids, **kwargs)

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        """``tokenizer.batch_decode``."""
        return self.tokenizer.batch_decode(sequences, **kwargs)

    def save_pretrained(self, folder) -> Path:
        """Write ``preprocessor_config.json`` and the tokenizer's three files into ``folder``."""
        folder = Path(folder)
        self.feature_extractor.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        return folder

    @classmethod
    def from_pretrained(cls, folder, **tokenizer_kwargs) -> "Wav2Vec2Processor":
        """Read a processor folder written by ``save_pretrained`` here or by transformers."""
        extractor = feature_extractor_from_folder(folder)
        if extractor is None:
            raise FileNotFoundError(f"folder: expected {Path(folder) / Wav2Vec2FeatureExtractor.CONFIG_NAME} (or "
                                    f"transformers' processor_config.json), found neither; save the processor with "
                                    f"processor.save_pretrained(folder)")
        return cls(extractor, CTCTokenizer.from_pretrained(folder, **tokenizer_kwargs))

    def __repr__(self) -> str:
        return f"Wav2Vec2Processor(\n  {self.feature_extractor!r},\n  {self.tokenizer!r}\n)"


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
    bad = (labels >= V) | ((labels < 0) & (labels != IGNORE_INDEX))
    if bad.any():
        raise ValueError(f"labels: ids must be in [0, vocab_size={V}) or {IGNORE_INDEX} for padding, got "
                         f"{sorted(set(labels[bad].tolist()))[:10]}; the tokenizer and config.vocab_size "
                         f"must agree (config.vocab_size = tokenizer.vocab_size)")
    real = (labels != IGNORE_INDEX) & (labels != blank_id)  # (B, U)
    target_lengths = real.sum(dim=-1)  # (B,)
    frame_lengths = torch.as_tensor(frame_lengths, device=logits.device).long()
    if not zero_infinity:
        for b in range(B):
            needed = ctc_min_frames(labels[b][real[b]])
            if needed > frame_lengths[b]:
                raise ValueError(
                    f"labels: item {b} has {int(target_lengths[b])} labels, which need at least {needed} frames "
                    f"(one per symbol, plus a blank between equal neighbours), but its audio gives only "
                    f"{int(frame_lengths[b])} frames. Drop such items, shorten their transcripts, or set "
                    f"config.ctc_zero_infinity=True to give them zero loss and zero gradient")
    log_probs = logits.float().log_softmax(dim=-1).transpose(0, 1)  # (T, B, V): time first for F.ctc_loss
    with torch.backends.cudnn.flags(enabled=False):  # cuDNN's CTC has other rules for the targets
        return F.ctc_loss(log_probs, labels.masked_select(real), frame_lengths, target_lengths, blank=blank_id,
                          reduction=reduction, zero_infinity=zero_infinity)


# %% notebooks/09_ctc.ipynb, cell 44
from dataclasses import dataclass

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
            if bad.any():  # checked before the forward pass, which would be wasted
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


# %% notebooks/09_ctc.ipynb, cell 50
def _frame_lengths(B: int, T: int, lengths) -> list[int]:
    if lengths is None:
        return [T] * B
    lengths = [int(n) for n in (lengths.tolist() if hasattr(lengths, "tolist") else lengths)]
    if len(lengths) != B or any(n < 0 or n > T for n in lengths):
        raise ValueError(f"lengths: expected {B} numbers of frames between 0 and {T}, got {lengths}")
    return lengths


def ctc_greedy_decode(logits: torch.Tensor, lengths=None, blank_id: int = 0) -> list[list[int]]:
    """Best symbol per frame, then merge repeats and drop blanks.

    Args:
        logits: ``(B, T, V)`` frame scores (logits or log-probabilities).
        lengths: optional ``(B,)`` number of valid frames per item.
        blank_id: id of the CTC blank (``tokenizer.pad_token_id``).

    Returns:
        ``B`` lists of label ids (decode them with ``tokenizer.decode(ids, group_tokens=False)``).
    """
    if logits.ndim != 3:
        raise ValueError(f"logits: expected shape (B, T, V), got {tuple(logits.shape)}; add a batch axis with [None]")
    B, T, V = logits.shape
    best = logits.argmax(dim=-1).tolist()  # (B, T)
    out = []
    for row, n in zip(best, _frame_lengths(B, T, lengths)):
        merged = [s for s, _run in itertools.groupby(row[:n])]
        out.append([s for s in merged if s != blank_id])
    return out


# %% notebooks/09_ctc.ipynb, cell 54
def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def ctc_prefix_beam_search(log_probs: torch.Tensor, beam_width: int = 8, blank_id: int = 0,
                           token_min_logp: float = -math.inf) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix beam search over one utterance.

    Args:
        log_probs: ``(T, V)`` log-probabilities of one utterance (``logits.log_softmax(-1)``), without padding.
        beam_width: how many prefixes survive each frame.
        blank_id: id of the CTC blank.
        token_min_logp: skip symbols whose log-probability in a frame is below this (a speed-up; the default
            keeps all).

    Returns:
        Up to ``beam_width`` pairs ``(labels, log_prob)``, best first: a transcript as a tuple of ids and the
        log-probability of all the paths to it that the search kept.
    """
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs: expected shape (T, V) for one utterance, got {tuple(log_probs.shape)}; "
                         f"loop over the batch and cut each item to its length")
    if beam_width < 1:
        raise ValueError(f"beam_width: expected at least 1, got {beam_width}")
    T, V = log_probs.shape
    table = log_probs.detach().double().cpu().tolist()  # (T, V) as Python floats: the loop is scalar work
    beams = {(): (0.0, -math.inf)}  # prefix -> (log p_b, log p_nb)
    for t in range(T):
        frame = table[t]
        symbols = [s for s in range(V) if s != blank_id and frame[s] >= token_min_logp]
        grown: dict[tuple[int, ...], list[float]] = {}

        def add(prefix, which, value):
            if value == -math.inf:  # e.g. a repeat after a prefix that has no blank-ending paths
                return
            entry = grown.setdefault(prefix, [-math.inf, -math.inf])
            entry[which] = _logaddexp(entry[which], value)

        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            add(prefix, 0, total + frame[blank_id])  # a blank: the prefix stays
            last = prefix[-1] if prefix else None
            for s in symbols:
                if s == last:
                    add(prefix, 1, pnb + frame[s])  # repeat without a blank: merged, the prefix stays
                    add(prefix + (s,), 1, pb + frame[s])  # after a blank: a new, repeated symbol
                else:
                    add(prefix + (s,), 1, total + frame[s])
        ranked = sorted(grown.items(), key=lambda item: _logaddexp(*item[1]), reverse=True)
        beams = {prefix: (pb, pnb) for prefix, (pb, pnb) in ranked[:beam_width]}
    return [(prefix, _logaddexp(pb, pnb)) for prefix, (pb, pnb) in beams.items()]


def ctc_beam_search_decode(logits: torch.Tensor, lengths=None, beam_width: int = 8,
                           blank_id: int = 0) -> list[list[int]]:
    """Prefix beam search for each item of a batch; returns the best transcript of each.

    Args:
        logits: ``(B, T, V)`` frame scores.
        lengths: optional ``(B,)`` number of valid frames per item.
        beam_width: prefixes kept per frame.
        blank_id: id of the CTC blank.

    Returns:
        ``B`` lists of label ids.
    """
    if logits.ndim != 3:
        raise ValueError(f"logits: expected shape (B, T, V), got {tuple(logits.shape)}; add a batch axis with [None]")
    B, T, V = logits.shape
    log_probs = logits.float().log_softmax(dim=-1)
    return [list(ctc_prefix_beam_search(log_probs[b, :n], beam_width, blank_id)[0][0])
            for b, n in enumerate(_frame_lengths(B, T, lengths))]


# %% notebooks/09_ctc.ipynb, cell 60
def ctc_forced_align(log_probs: torch.Tensor, labels, blank_id: int = 0, return_states: bool = False):
    """The most likely CTC path of one utterance that collapses to ``labels`` (Viterbi).

    Args:
        log_probs: ``(T, V)`` log-probabilities of one utterance, without padding.
        labels: the transcript as ids, shape ``(U,)``, without blanks or padding.
        blank_id: id of the CTC blank.
        return_states: also return the lattice state of each frame (0 to ``2U``: even states are blanks,
            state ``2u + 1`` is label ``u``).

    Returns:
        ``T`` ids, one per frame (``blank_id`` where the path is in a blank); with ``return_states``, the pair
        ``(ids, states)``.
    """
    labels = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    T, V = log_probs.shape
    if T < ctc_min_frames(labels):
        raise ValueError(f"log_probs: {T} frames cannot hold the {len(labels)} labels, which need at least "
                         f"{ctc_min_frames(labels)} (one per symbol, plus a blank between equal neighbours)")
    states = [blank_id]
    for s in labels:
        states += [s, blank_id]  # - a - b -: (2U+1,)
    S = len(states)
    ids = torch.tensor(states)
    # a state may skip the blank before it when it holds a symbol that differs from the one two states back
    can_skip = torch.zeros(S, dtype=torch.bool)
    can_skip[2:] = (ids[2:] != blank_id) & (ids[2:] != ids[:-2])
    lp = log_probs.detach().double().cpu()[:, ids]  # (T, S)
    score = torch.full((S,), -math.inf, dtype=torch.float64)
    score[:2] = lp[0, :2]  # start in the first blank or the first symbol
    back = torch.zeros(T, S, dtype=torch.long)
    for t in range(1, T):
        padded = torch.cat([torch.full((2,), -math.inf, dtype=score.dtype), score])  # (S + 2,)
        stay, step = score, padded[1:-1]  # from state s, from state s - 1
        skip = padded[:-2].masked_fill(~can_skip, -math.inf)  # from state s - 2
        choice = torch.stack([stay, step, skip])  # (3, S)
        score, move = choice.max(dim=0)
        score = score + lp[t]
        back[t] = move
    state = S - 1 if S == 1 or score[S - 1] >= score[S - 2] else S - 2  # end in the last blank or last symbol
    path = [state]
    for t in range(T - 1, 0, -1):
        state -= int(back[t, state])
        path.append(state)
    path.reverse()
    ids = [states[s] for s in path]
    return (ids, path) if return_states else ids


# %% notebooks/09_ctc.ipynb, cell 64
def edit_distance(reference, hypothesis) -> int:
    """Levenshtein distance between two sequences (substitutions, deletions and insertions count 1)."""
    previous = list(range(len(hypothesis) + 1))  # distances from the empty reference prefix
    for i, r in enumerate(reference, start=1):
        current = [i]
        for j, h in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1,  # delete r
                               current[j - 1] + 1,  # insert h
                               previous[j - 1] + (r != h)))  # substitute (or match)
        previous = current
    return previous[-1]


def _error_rate(references, hypotheses, split) -> float:
    if isinstance(references, str):
        references = [references]
    if isinstance(hypotheses, str):
        hypotheses = [hypotheses]
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"hypotheses: expected one per reference ({len(references)}), got {len(hypotheses)}")
    errors = total = 0
    for ref, hyp in zip(references, hypotheses):
        ref, hyp = split(ref), split(hyp)
        errors += edit_distance(ref, hyp)
        total += len(ref)
    if total == 0:
        raise ValueError("references: all references are empty, so the error rate is undefined; "
                         "drop empty references")
    return errors / total


def word_error_rate(references, hypotheses) -> float:
    """Word errors (edit distance over words) divided by the number of reference words, over a whole set.

    Args:
        references: a string or a list of strings.
        hypotheses: as many strings.

    Returns:
        The WER (0 is perfect; it can exceed 1 when the hypotheses insert words).
    """
    return _error_rate(references, hypotheses, str.split)


def char_error_rate(references, hypotheses) -> float:
    """Character errors divided by the number of reference characters (spaces count), over a whole set.

    Args:
        references: a string or a list of strings (leading and trailing spaces are ignored).
        hypotheses: as many strings.

    Returns:
        The CER.
    """
    return _error_rate(references, hypotheses, lambda text: list(text.strip()))


# %% notebooks/09_ctc.ipynb, cell 70
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


# %% notebooks/09_ctc.ipynb, cell 97
from w2vc.audio import check_waveform, load_audio
from w2vc.model import read_state_dict


def load_recognizer(folder, device=None) -> tuple[Wav2Vec2ConformerForCTC, Wav2Vec2Processor]:
    """Load a CTC recogniser and its processor from a checkpoint folder (ours or transformers').

    Args:
        folder: holds ``config.json``, the weights, ``vocab.json`` (+ ``tokenizer_config.json``) and usually
            ``preprocessor_config.json``.
        device: where to put the model (default: a GPU when there is one).

    Returns:
        ``(model, processor)``, the model in eval mode.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model: expected a checkpoint folder, got {str(folder)!r}, which is not a folder")
    if not (folder / "vocab.json").is_file():
        raise FileNotFoundError(
            f"model: the folder {folder} has no vocab.json, so the model's output ids cannot be turned into text. "
            f"A recogniser folder needs the tokenizer it was trained with: save it there with "
            f"processor.save_pretrained(folder) (or copy vocab.json and tokenizer_config.json from where the model "
            f"came from)")
    tokenizer = CTCTokenizer.from_pretrained(folder)
    config = Wav2Vec2ConformerConfig.from_pretrained(folder)
    feature_extractor = feature_extractor_from_folder(folder)
    if feature_extractor is None:
        feature_extractor = Wav2Vec2FeatureExtractor.for_model(config)
        warnings.warn(f"{folder} has no {Wav2Vec2FeatureExtractor.CONFIG_NAME}; using {feature_extractor}",
                      stacklevel=2)
    if config.vocab_size != tokenizer.vocab_size or config.pad_token_id != tokenizer.pad_token_id:
        raise ValueError(f"model: config.json says vocab_size={config.vocab_size}, pad_token_id={config.pad_token_id}, "
                         f"but vocab.json has {tokenizer.vocab_size} symbols with the blank "
                         f"{tokenizer.pad_token!r} at id {tokenizer.pad_token_id}; the folder mixes files of "
                         f"different models")
    state_dict = read_state_dict(folder)
    if not any(key.endswith("lm_head.weight") for key in state_dict):
        raise ValueError(f"model: the weights in {folder} have no CTC head (lm_head): it is a pretrained body, "
                         f"not a recogniser; fine-tune it first (section 9.5)")
    model = Wav2Vec2ConformerForCTC(config)
    model.load_checkpoint_state_dict(state_dict)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), Wav2Vec2Processor(feature_extractor, tokenizer)


# %% notebooks/09_ctc.ipynb, cell 99
def _frame_stride(config: Wav2Vec2ConformerConfig) -> int:
    """Samples per output frame: the conv strides (and the adapter's, when there is one)."""
    stride = config.inputs_to_logits_ratio
    if config.add_adapter:
        stride *= config.adapter_stride ** config.num_adapter_layers
    return stride


def chunk_windows(num_samples: int, chunk_samples: int, stride_samples: int,
                  frame_stride: int = 320) -> list[tuple[int, int, int, int]]:
    """Overlapping windows over a recording, and which part of each to keep.

    Args:
        num_samples: length of the recording.
        chunk_samples: window length (a multiple of ``frame_stride``).
        stride_samples: overlap on each side of a window that is thrown away (a multiple of ``frame_stride``).
        frame_stride: samples per output frame.

    Returns:
        ``(start, end, keep_from, keep_to)`` per window: the samples ``[start, end)`` to run, and the samples
        ``[keep_from, keep_to)`` of the recording whose frames this window provides. The kept parts tile
        ``[0, num_samples)``.
    """
    if chunk_samples % frame_stride or stride_samples % frame_stride:
        raise ValueError(f"chunk_samples ({chunk_samples}) and stride_samples ({stride_samples}) must be "
                         f"multiples of the frame stride {frame_stride}")
    step = chunk_samples - 2 * stride_samples
    if step <= 0:
        raise ValueError(f"stride_length_s: the two overlaps ({2 * stride_samples} samples) leave nothing of a "
                         f"{chunk_samples}-sample chunk; use a stride below half of chunk_length_s")
    if num_samples <= chunk_samples:
        return [(0, num_samples, 0, num_samples)]
    starts = list(range(0, num_samples - chunk_samples, step))
    last = (num_samples - chunk_samples) // frame_stride * frame_stride  # the last window ends at the end
    if last > starts[-1]:
        starts.append(last)
    windows = []
    for k, start in enumerate(starts):
        keep_from = 0 if k == 0 else windows[-1][3]
        keep_to = num_samples if k == len(starts) - 1 else start + chunk_samples - stride_samples
        end = num_samples if k == len(starts) - 1 else start + chunk_samples  # the last one may be longer
        windows.append((start, end, keep_from, keep_to))
    return windows


# %% notebooks/09_ctc.ipynb, cell 103
@torch.no_grad()
def frame_logits(model: Wav2Vec2ConformerForCTC, processor: Wav2Vec2Processor, waveforms, *,
                 chunk_length_s: float | None = 20.0, stride_length_s: float | None = None,
                 batch_size: int = 8) -> list[torch.Tensor]:
    """Frame scores of whole recordings, long ones in overlapping windows.

    Args:
        model: a ``Wav2Vec2ConformerForCTC`` (its device is used).
        processor: its processor (the feature extractor normalises each window).
        waveforms: a list of ``(L_i,)`` float 16 kHz waveforms.
        chunk_length_s: window length in seconds; ``None``: never cut.
        stride_length_s: overlap thrown away on each side of a window (default ``chunk_length_s / 6``).
        batch_size: windows per forward pass.

    Returns:
        One ``(T_i, vocab_size)`` float tensor per recording, on the CPU.
    """
    frame_stride = _frame_stride(model.config)
    pieces = []  # (recording, start, end, keep_from, keep_to)
    for i, wave in enumerate(waveforms):
        if chunk_length_s is None:
            pieces.append((i, 0, len(wave), 0, len(wave)))
            continue
        stride_s = chunk_length_s / 6 if stride_length_s is None else stride_length_s
        chunk = max(1, round(chunk_length_s * SAMPLING_RATE / frame_stride)) * frame_stride
        stride = round(stride_s * SAMPLING_RATE / frame_stride) * frame_stride
        pieces += [(i, *window) for window in chunk_windows(len(wave), chunk, stride, frame_stride)]
    with_mask = processor.feature_extractor.return_attention_mask
    order = sorted(range(len(pieces)), key=lambda p: pieces[p][2] - pieces[p][1])
    groups, group = [], []
    for p in order:  # batches of similar length; of equal length for models without an attention mask
        length = pieces[p][2] - pieces[p][1]
        if group and (len(group) == batch_size or
                      (not with_mask and length != pieces[group[0]][2] - pieces[group[0]][1])):
            groups.append(group)
            group = []
        group.append(p)
    if group:
        groups.append(group)
    device = model.device
    results = {}
    for group in groups:
        audio = [np.asarray(waveforms[pieces[p][0]][pieces[p][1]:pieces[p][2]], dtype=np.float32) for p in group]
        inputs = processor(audio, sampling_rate=SAMPLING_RATE)
        out = model(inputs["input_values"].to(device),
                    attention_mask=inputs["attention_mask"].to(device) if "attention_mask" in inputs else None)
        for row, p in enumerate(group):
            results[p] = out.logits[row, :int(out.frame_lengths[row])].float().cpu()  # (T_piece, V)
    stitched = [[] for _ in waveforms]
    for p, (i, start, end, keep_from, keep_to) in enumerate(pieces):
        total = int(model._get_feat_extract_output_lengths(len(waveforms[i])))
        first = keep_from // frame_stride  # global frames this piece provides: [first, last)
        last = total if keep_to == len(waveforms[i]) else keep_to // frame_stride
        local = results[p][first - start // frame_stride:last - start // frame_stride]
        stitched[i].append(local)
    return [torch.cat(parts) for parts in stitched]


# %% notebooks/09_ctc.ipynb, cell 105
def _as_waveform(item, sampling_rate):
    if isinstance(item, (str, Path)):
        return load_audio(item)  # any rate: resampled to 16 kHz
    if sampling_rate is not None and sampling_rate != SAMPLING_RATE:
        raise ValueError(f"sampling_rate: expected {SAMPLING_RATE} Hz audio, got {sampling_rate} Hz; resample "
                         f"first (w2vc.audio.resample(audio, {sampling_rate})), or pass the file's path")
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    check_waveform(item, name="audio")
    return np.asarray(item, dtype=np.float32)


def transcribe(audio_or_paths, model, processor: Wav2Vec2Processor | None = None, *,
               sampling_rate: int | None = None, chunk_length_s: float | None = 20.0,
               stride_length_s: float | None = None, batch_size: int = 8, beam_width: int = 1,
               device=None, progress: bool | None = None):
    """Speech to text with a CTC recogniser.

    Args:
        audio_or_paths: a file path, a ``(L,)`` 16 kHz waveform (NumPy or torch), or a list of them.
        model: a checkpoint folder (ours or transformers', with its tokenizer files), or a
            ``Wav2Vec2ConformerForCTC`` together with ``processor``.
        processor: the processor, when ``model`` is a model object.
        sampling_rate: the rate of waveforms given as arrays (an error unless 16000).
        chunk_length_s, stride_length_s: windows for long audio (see ``frame_logits``).
        batch_size: windows per forward pass.
        beam_width: 1 for greedy decoding, more for the prefix beam search.
        device: where to run a model loaded from a folder.
        progress: show a progress bar (default: when there is more than one input).

    Returns:
        The transcript (a string), or a list of them when a list was given.
    """
    single = isinstance(audio_or_paths, (str, Path, np.ndarray, torch.Tensor))
    items = [audio_or_paths] if single else list(audio_or_paths)
    if isinstance(model, (str, Path)):
        model, processor = load_recognizer(model, device=device)
    elif processor is None:
        raise ValueError("processor: a model object needs its processor (transcribe(audio, model, processor)); "
                         "or pass the model's folder as model=")
    from tqdm.auto import tqdm

    texts = []
    show = len(items) > 1 if progress is None else progress
    with tqdm(total=len(items), unit="file", desc="transcribe", disable=not show) as bar:
        for begin in range(0, len(items), batch_size):
            group = items[begin:begin + batch_size]
            waveforms = [_as_waveform(item, sampling_rate) for item in group]
            logits = frame_logits(model, processor, waveforms, chunk_length_s=chunk_length_s,
                                  stride_length_s=stride_length_s, batch_size=batch_size)
            blank = processor.tokenizer.pad_token_id
            for frames in logits:  # (T, V)
                if beam_width > 1:
                    ids = ctc_beam_search_decode(frames[None], beam_width=beam_width, blank_id=blank)[0]
                else:
                    ids = ctc_greedy_decode(frames[None], blank_id=blank)[0]
                texts.append(processor.tokenizer.decode(ids, group_tokens=False))
            bar.update(len(group))
    return texts[0] if single else texts
