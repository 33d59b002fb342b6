# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 8
from __future__ import annotations

import itertools
import json
import re
import warnings
from pathlib import Path

import numpy as np
import torch


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
