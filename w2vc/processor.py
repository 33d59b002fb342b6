# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 28
from __future__ import annotations

import json
from pathlib import Path

import torch

from w2vc.tokenizer import CTCTokenizer


from w2vc.audio import BatchFeatures, Wav2Vec2FeatureExtractor


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
