# GENERATED from notebooks/01_audio.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/01_audio.ipynb, cell 7
"""Audio in, model input out: read, resample, check, show and play speech, and turn a batch of
waveforms into the model's `input_values` and `attention_mask` (w2vc's Wav2Vec2FeatureExtractor).

Waveforms are NumPy arrays of float samples in [-1, 1]: one utterance is `(L,)`, a batch `(B, L)`,
multi-channel audio channels first `(C, L)`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import soundfile
import soxr

SAMPLING_RATE = 16000    # samples per second that every wav2vec 2.0 model expects
RECEPTIVE_FIELD = 400    # samples the feature encoder needs for its first frame (25 ms at 16 kHz)
FRAME_STRIDE = 320       # samples between two frames of the feature encoder (20 ms)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")  # what load_audio and w2vc.data.load_folder read


# %% notebooks/01_audio.ipynb, cell 11
def _is_tensor(x: Any) -> bool:
    """True for a torch.Tensor, without importing torch."""
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "is_floating_point")


def check_waveform(waveform: Any, sampling_rate: int = SAMPLING_RATE, *,
                   expected_sampling_rate: int = SAMPLING_RATE, min_samples: int = RECEPTIVE_FIELD,
                   batched: bool = False, name: str = "waveform") -> Any:
    """Raise a clear error if `waveform` is not audio that the model can take; else return it.

    Args:
        waveform: float samples in [-1, 1], a NumPy array or torch tensor of shape `(L,)`, or `(B, L)`
            when `batched`.
        sampling_rate: the rate `waveform` was sampled at, in Hz.
        expected_sampling_rate: the rate the model wants; 16000 for every wav2vec 2.0 model.
        min_samples: the fewest samples accepted (per row); by default the encoder's receptive field, 400.
        batched: also accept a batch `(B, L)`.
        name: how the error messages call the argument.

    Returns:
        `waveform`, unchanged.

    Raises:
        TypeError: not an array or a tensor, or not floating point.
        ValueError: the wrong rank, empty, NaN or infinite samples, the wrong sampling rate, too short.
    """
    if isinstance(waveform, np.ndarray):
        floating = np.issubdtype(waveform.dtype, np.floating)
    elif _is_tensor(waveform):
        floating = waveform.is_floating_point()
    else:
        raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(waveform).__name__}; "
                        f"convert it with np.asarray({name}, dtype=np.float32)")
    if not floating:
        raise TypeError(f"{name} has dtype {waveform.dtype}, expected floating-point samples in [-1, 1]; "
                        f"convert 16-bit integers with {name}.astype(np.float32) / 32768, "
                        "or read files with w2vc.audio.load_audio")
    shape = tuple(waveform.shape)
    if len(shape) not in ((1, 2) if batched else (1,)):
        expected = "(samples,) or (batch, samples)" if batched else "(samples,)"
        raise ValueError(f"{name} has shape {shape}, expected one mono signal {expected}; "
                         "average the channels of multi-channel audio (load_audio(path) does)")
    if 0 in shape:
        raise ValueError(f"{name} is empty (shape {shape}): there is no audio in it")
    if isinstance(waveform, np.ndarray):
        num_bad, all_nan = int(np.size(waveform) - np.isfinite(waveform).sum()), bool(np.isnan(waveform).all())
    else:
        num_bad, all_nan = int((~waveform.isfinite()).sum()), bool(waveform.isnan().all())
    if all_nan:
        raise ValueError(f"{name} is all NaN ({int(np.prod(shape))} samples): the audio was not decoded "
                         "or computed correctly")
    if num_bad:
        raise ValueError(f"{name} has {num_bad} NaN or infinite samples out of {int(np.prod(shape))}; "
                         "replace them (np.nan_to_num) or drop this audio")
    if sampling_rate != expected_sampling_rate:
        raise ValueError(f"expected {expected_sampling_rate} Hz audio, got {sampling_rate} Hz; "
                         "resample first (w2vc.audio.resample)")
    if shape[-1] < min_samples:
        raise ValueError(f"{name} has {shape[-1]} samples, fewer than the {min_samples} that the feature "
                         f"encoder needs for one frame ({1000 * min_samples / expected_sampling_rate:.0f} ms "
                         f"at {expected_sampling_rate} Hz); pad it with zeros or drop it")
    return waveform


# %% notebooks/01_audio.ipynb, cell 15
def resample(waveform: Any, orig_sr: int, target_sr: int = SAMPLING_RATE) -> np.ndarray:
    """Change the sampling rate of audio with soxr's high-quality band-limited filter.

    Args:
        waveform: float samples, `(L,)` or channels first `(C, L)`; NumPy, or a torch tensor on any device.
        orig_sr: the rate of `waveform`, in Hz.
        target_sr: the rate wanted, in Hz (16000 by default).

    Returns:
        float32 NumPy array, `(L',)` or `(C, L')` with `L'` about `L * target_sr / orig_sr`.
    """
    for arg, rate in (("orig_sr", orig_sr), ("target_sr", target_sr)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not rate > 0:
            raise ValueError(f"{arg} must be a positive number of Hz, got {rate!r}")
    if _is_tensor(waveform):
        waveform = waveform.detach().cpu().numpy()
    check_waveform(waveform, orig_sr, expected_sampling_rate=orig_sr, min_samples=1, batched=True)
    x = np.asarray(waveform, dtype=np.float32)
    if orig_sr == target_sr:
        return x.copy()
    y = soxr.resample(x.T, orig_sr, target_sr, quality="HQ")  # soxr wants time first: (L', C) or (L',)
    return np.ascontiguousarray(y.T, dtype=np.float32)         # (C, L') or (L',)


def load_audio(path: str | Path, sampling_rate: int = SAMPLING_RATE, mono: bool = True) -> np.ndarray:
    """Read an audio file (WAV, FLAC, Ogg) as float32 samples in [-1, 1] at `sampling_rate`.

    Integer PCM is scaled to [-1, 1); float files are read as stored. Multi-channel audio is mixed
    down to mono by averaging the channels, unless `mono=False`. Files at another rate are resampled.

    Args:
        path: the file.
        sampling_rate: the rate to return, in Hz (16000 by default).
        mono: average the channels into one.

    Returns:
        `(L,)` float32 when `mono`, else `(C, L)` with channels first.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file '{path}' does not exist")
    if not path.is_file():
        raise IsADirectoryError(f"'{path}' is a folder, not an audio file; use w2vc.data.load_folder for folders")
    if path.stat().st_size == 0:
        raise ValueError(f"audio file '{path}' is empty (0 bytes): nothing was recorded or copied into it; "
                         "record or copy it again")
    try:
        data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)  # (L, C)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"could not decode audio file '{path}' ({str(error).rstrip('.')}): it is corrupt or not in a "
                         "format soundfile reads (wav, flac, ogg)") from error
    data = data.T                                             # (C, L) channels first
    if mono:
        data = data.mean(axis=0)                              # (L,)
    check_waveform(data, min_samples=1, batched=not mono, name=f"the audio in '{path.name}'")
    if file_rate != sampling_rate:
        data = resample(data, file_rate, sampling_rate)
    return np.ascontiguousarray(data, dtype=np.float32)


def save_audio(path: str | Path, waveform: Any, sampling_rate: int = SAMPLING_RATE) -> Path:
    """Write a mono waveform as 16-bit PCM (WAV or FLAC, chosen by the suffix) or Ogg Vorbis.

    Samples are clipped to [-1, 1) and rounded to multiples of 1/32768, so 16-bit audio survives
    a save and `load_audio` unchanged.

    Args:
        path: the file to write; its folder is created.
        waveform: `(L,)` float samples in [-1, 1].
        sampling_rate: the rate of `waveform`, in Hz, stored in the file.

    Returns:
        the path written.
    """
    path = Path(path)
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise ValueError(f"cannot tell the format from '{path.name}': use one of {', '.join(AUDIO_SUFFIXES)}")
    if _is_tensor(waveform):
        waveform = waveform.detach().cpu().numpy()
    check_waveform(waveform, sampling_rate, expected_sampling_rate=sampling_rate, min_samples=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".ogg":
        soundfile.write(path, np.asarray(waveform, dtype=np.float32), sampling_rate, format="OGG", subtype="VORBIS")
    else:
        pcm = np.clip(np.round(np.asarray(waveform, dtype=np.float64) * 32768), -32768, 32767).astype(np.int16)
        soundfile.write(path, pcm, sampling_rate, subtype="PCM_16")
    return path


# %% notebooks/01_audio.ipynb, cell 21
def spectrogram(waveform: Any, n_fft: int = 400, hop_length: int = 160) -> np.ndarray:
    """Log power spectrogram of a waveform: Hann windows of `n_fft` samples every `hop_length` samples.

    Args:
        waveform: `(L,)` float samples; a waveform shorter than `n_fft` is padded with zeros.
        n_fft: window length in samples (400 = 25 ms at 16 kHz).
        hop_length: step between windows in samples (160 = 10 ms).

    Returns:
        `(n_fft // 2 + 1, T)` float32 power in decibels, `T = 1 + (max(L, n_fft) - n_fft) // hop_length`.
    """
    if _is_tensor(waveform):
        waveform = waveform.detach().cpu().numpy()
    check_waveform(waveform, min_samples=1)
    x = np.asarray(waveform, dtype=np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    windows = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length]  # (T, n_fft)
    power = np.abs(np.fft.rfft(windows * np.hanning(n_fft), axis=-1)) ** 2     # (T, n_fft // 2 + 1)
    return (10 * np.log10(np.maximum(power, 1e-10))).T.astype(np.float32)     # (F, T)


def _word_spans(words: Iterable | None) -> list[tuple[str, int, int]]:
    """(text, start, end) for words given as objects with .text/.start/.end or as tuples."""
    return [(w.text, w.start, w.end) if hasattr(w, "start") else tuple(w) for w in (words or ())]


def plot_waveform(waveform: Any, sampling_rate: int = SAMPLING_RATE, words: Iterable | None = None,
                  ax: Any = None, title: str | None = None) -> Any:
    """Draw a waveform against time, each word (if given) shaded and labelled.

    Args:
        waveform: `(L,)` float samples.
        sampling_rate: its rate in Hz.
        words: optional spans `(text, start, end)` in samples (e.g. `Utterance.words`).
        ax: matplotlib axes to draw on; a new figure when None.
        title: optional title.

    Returns:
        the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    x = np.asarray(waveform, dtype=np.float32)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 2.5))
    ax.plot(np.arange(len(x)) / sampling_rate, x, linewidth=0.5, color="tab:blue")
    for i, (text, start, end) in enumerate(_word_spans(words)):
        ax.axvspan(start / sampling_rate, end / sampling_rate, color="tab:orange" if i % 2 == 0 else "tab:green", alpha=0.2)
        ax.text((start + end) / 2 / sampling_rate, 0.97, text, transform=ax.get_xaxis_transform(), ha="center", va="top")
    ax.set_xlim(0, len(x) / sampling_rate)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title)
    return ax


def plot_spectrogram(waveform: Any, sampling_rate: int = SAMPLING_RATE, words: Iterable | None = None,
                     ax: Any = None, title: str | None = None, n_fft: int = 400, hop_length: int = 160) -> Any:
    """Draw the log power spectrogram (80 dB of range), with word boundaries as dashed lines.

    Args:
        waveform: `(L,)` float samples.
        sampling_rate: its rate in Hz.
        words: optional spans `(text, start, end)` in samples.
        ax: matplotlib axes to draw on; a new figure when None.
        title: optional title.
        n_fft: window length in samples.
        hop_length: step between windows in samples.

    Returns:
        the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    power = spectrogram(waveform, n_fft, hop_length)  # (F, T)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    end_time = ((power.shape[1] - 1) * hop_length + n_fft) / sampling_rate
    ax.imshow(power, origin="lower", aspect="auto", cmap="magma", vmin=power.max() - 80, vmax=power.max(),
              extent=(0, end_time, 0, sampling_rate / 2000))
    for text, start, end in _word_spans(words):
        for edge in (start, end):
            ax.axvline(edge / sampling_rate, color="white", linewidth=0.8, linestyle="--")
        ax.text((start + end) / 2 / sampling_rate, 0.97, text, color="white", transform=ax.get_xaxis_transform(),
                ha="center", va="top")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    if title:
        ax.set_title(title)
    return ax


def play(waveform: Any, sampling_rate: int = SAMPLING_RATE) -> Any:
    """A player for Jupyter (`IPython.display.Audio`), its loudness normalised to the peak.

    Args:
        waveform: `(L,)` float samples (NumPy, or a torch tensor on any device).
        sampling_rate: its rate in Hz.

    Returns:
        an `IPython.display.Audio`; the notebook shows it when it is a cell's last value.
    """
    from IPython.display import Audio

    if _is_tensor(waveform):
        waveform = waveform.detach().cpu().numpy()
    check_waveform(waveform, sampling_rate, expected_sampling_rate=sampling_rate, min_samples=1)
    return Audio(np.asarray(waveform, dtype=np.float32), rate=sampling_rate)


# %% notebooks/01_audio.ipynb, cell 67
class BatchFeatures(dict):
    """What the feature extractor returns: a dict with `input_values` (and `attention_mask` when asked
    for) whose keys can also be read as attributes, like transformers' BatchFeature."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _waveform_list(raw_speech: Any, name: str = "raw_speech") -> list[np.ndarray]:
    """One waveform or a batch of them, as a list of `(L_b,)` float32 arrays, each checked."""
    if _is_tensor(raw_speech):
        raw_speech = raw_speech.detach().cpu().numpy()
    if isinstance(raw_speech, np.ndarray):
        if raw_speech.ndim not in (1, 2):
            raise ValueError(f"{name} has shape {raw_speech.shape}, expected one mono waveform (samples,) "
                             "or a batch (batch, samples)")
        items = [raw_speech] if raw_speech.ndim == 1 else list(raw_speech)   # B x (L,)
        batched = raw_speech.ndim == 2
    elif isinstance(raw_speech, (list, tuple)):
        if len(raw_speech) == 0:
            raise ValueError(f"{name} is an empty list; pass at least one waveform")
        batched = isinstance(raw_speech[0], (np.ndarray, list, tuple)) or _is_tensor(raw_speech[0])
        items = list(raw_speech) if batched else [raw_speech]
    else:
        raise TypeError(f"{name} must be a waveform or a batch of them (NumPy arrays, torch tensors or lists "
                        f"of floats), got {type(raw_speech).__name__}")
    waveforms = []
    for b, item in enumerate(items):
        if isinstance(item, (list, tuple)):
            item = np.asarray(item, dtype=np.float32)
        elif _is_tensor(item):
            item = item.detach().cpu().numpy()
        check_waveform(item, name=f"{name}[{b}]" if batched else name)
        waveforms.append(np.asarray(item, dtype=np.float32))
    return waveforms


def zero_mean_unit_var(waveform: np.ndarray, length: int | None = None, padding_value: float = 0.0,
                       eps: float = 1e-7) -> np.ndarray:
    """Normalise the first `length` samples to zero mean and unit variance; the rest become padding.

    Args:
        waveform: `(L,)` float32, possibly padded at the end.
        length: how many samples are real; None: all of them.
        padding_value: what the samples after `length` become.
        eps: added to the variance, so that silence does not divide by zero.

    Returns:
        `(L,)` float32.
    """
    real = waveform if length is None else waveform[:length]
    normed = (waveform - real.mean()) / np.sqrt(real.var() + eps)
    if length is not None and length < len(waveform):
        normed[length:] = padding_value
    return normed


# %% notebooks/01_audio.ipynb, cell 71
_PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None}


def _round_up(length: int, multiple: int | None) -> int:
    return length if not multiple else -(-length // multiple) * multiple


class Wav2Vec2FeatureExtractor:
    """Turn 16 kHz waveforms into a wav2vec 2.0 model's inputs, as transformers' extractor of that name.

    Args:
        feature_size: numbers per time step of the input; 1 for raw audio.
        sampling_rate: the rate the model was trained at, in Hz.
        padding_value: what padded samples are set to.
        do_normalize: normalise each utterance to zero mean and unit variance over its real samples.
        return_attention_mask: return the mask by default; True for models with
            `feat_extract_norm == "layer"`, False for "group" (see `needs_attention_mask`).
        padding_side: only "right": padding goes at the end.
    """

    CONFIG_NAME = "preprocessor_config.json"

    def __init__(self, feature_size: int = 1, sampling_rate: int = SAMPLING_RATE, padding_value: float = 0.0,
                 do_normalize: bool = True, return_attention_mask: bool = False, padding_side: str = "right"):
        if feature_size != 1:
            raise ValueError(f"feature_size must be 1 (the model reads one number per audio sample), got {feature_size!r}")
        if padding_side != "right":
            raise ValueError(f"padding_side must be 'right' (wav2vec 2.0 pads at the end), got {padding_side!r}")
        self.feature_size = 1
        self.sampling_rate = int(sampling_rate)
        self.padding_value = float(padding_value)
        self.do_normalize = bool(do_normalize)
        self.return_attention_mask = bool(return_attention_mask)
        self.padding_side = "right"

    def __call__(self, raw_speech: Any, padding: bool | str = False, max_length: int | None = None,
                 truncation: bool = False, pad_to_multiple_of: int | None = None,
                 return_attention_mask: bool | None = None, return_tensors: str | None = None,
                 sampling_rate: int | None = None) -> BatchFeatures:
        """Normalise, truncate and pad waveforms into `input_values` (and `attention_mask`).

        Args:
            raw_speech: one waveform `(L,)`, or a batch: a `(B, L)` array or tensor, or a list of `(L_b,)`
                arrays, tensors or lists of floats; float samples in [-1, 1].
            padding: True or "longest": pad to the longest waveform; "max_length": to `max_length`;
                False or "do_not_pad": leave every waveform at its length.
            max_length: the length for padding="max_length" and for truncation.
            truncation: cut waveforms longer than `max_length` (rounded up to `pad_to_multiple_of`).
            pad_to_multiple_of: round the padded length up to a multiple of this.
            return_attention_mask: whether to return the mask; None: `self.return_attention_mask`.
            return_tensors: "pt" for torch tensors, "np" for NumPy arrays, None for lists of arrays.
            sampling_rate: the rate of `raw_speech` in Hz; an error if it is not `self.sampling_rate`.

        Returns:
            `BatchFeatures`: `input_values`, B rows of float32, `(B, L)` when stacked; `attention_mask`,
            int32 of the same shape, 1 for real samples and 0 for padding, when asked for.
        """
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(f"expected {self.sampling_rate} Hz audio, got {sampling_rate} Hz; "
                             "resample first (w2vc.audio.resample)")
        if not isinstance(padding, (bool, str)) or padding not in _PADDING:
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        strategy = _PADDING[padding]
        if strategy == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs max_length, the number of samples to pad to")
        if return_tensors not in (None, "np", "pt"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        waveforms = _waveform_list(raw_speech)                             # B x (L_b,)
        if truncation:
            if max_length is None:
                raise ValueError("truncation=True needs max_length, the number of samples to keep")
            waveforms = [w[:_round_up(max_length, pad_to_multiple_of)] for w in waveforms]
        lengths = [len(w) for w in waveforms]
        if strategy is not None:
            target = _round_up(max(lengths) if strategy == "longest" else max_length, pad_to_multiple_of)
            waveforms = [np.pad(w, (0, max(target - len(w), 0)), constant_values=self.padding_value) for w in waveforms]
        with_mask = self.return_attention_mask if return_attention_mask is None else bool(return_attention_mask)
        if self.do_normalize:
            # with a mask, statistics over the real samples; without one, over the whole (padded) row
            real = lengths if with_mask and strategy is not None else [None] * len(waveforms)
            waveforms = [zero_mean_unit_var(w, n, self.padding_value) for w, n in zip(waveforms, real)]
        features = BatchFeatures(input_values=waveforms)
        if with_mask:
            features["attention_mask"] = [(np.arange(len(w)) < n).astype(np.int32) for w, n in zip(waveforms, lengths)]
        if return_tensors is not None:
            if len({len(w) for w in waveforms}) > 1:
                raise ValueError(f"cannot stack waveforms of lengths {sorted({len(w) for w in waveforms})} into one "
                                 "tensor; pass padding=True (or padding='max_length' with truncation=True)")
            for key, rows in features.items():
                stacked = np.stack(rows)                                   # (B, L)
                if return_tensors == "pt":
                    import torch
                    stacked = torch.from_numpy(stacked)
                features[key] = stacked
        return features

    def to_dict(self) -> dict:
        """The settings, as transformers writes them to preprocessor_config.json."""
        return {"do_normalize": self.do_normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": self.feature_size, "padding_side": self.padding_side,
                "padding_value": self.padding_value, "return_attention_mask": self.return_attention_mask,
                "sampling_rate": self.sampling_rate}

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write `preprocessor_config.json` into `folder` (created if missing); return the file's path."""
        path = Path(folder) / self.CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "Wav2Vec2FeatureExtractor":
        """Read `preprocessor_config.json` from a checkpoint folder (or that file itself).

        Keys that concern other classes (`processor_class`, ...) are ignored.
        """
        path = Path(folder)
        if path.is_dir():
            path = path / cls.CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no {cls.CONFIG_NAME} at '{path}'; pass the folder of a checkpoint "
                                    "saved with save_pretrained (ours or transformers')")
        config = json.loads(path.read_text())
        kind = config.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
        if kind != "Wav2Vec2FeatureExtractor":
            raise ValueError(f"'{path}' describes a {kind}, not a Wav2Vec2FeatureExtractor")
        names = ("feature_size", "sampling_rate", "padding_value", "do_normalize", "return_attention_mask", "padding_side")
        return cls(**{k: config[k] for k in names if k in config})

    @classmethod
    def for_model(cls, config: Any, **kwargs: Any) -> "Wav2Vec2FeatureExtractor":
        """The extractor for a model: `return_attention_mask` from its `feat_extract_norm`."""
        return cls(return_attention_mask=needs_attention_mask(config), **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Wav2Vec2FeatureExtractor) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "feature_extractor_type")
        return f"Wav2Vec2FeatureExtractor({settings})"


# %% notebooks/01_audio.ipynb, cell 79
def needs_attention_mask(config: Any) -> bool:
    """Whether a model wants the attention mask over padded samples, from its `feat_extract_norm`.

    "layer" normalises each frame on its own, so the mask can hide the padding: True. "group"
    normalises each channel over the whole utterance, padding included, and such models were trained
    without padding: False.

    Args:
        config: "layer" or "group"; a config dict or object with a `feat_extract_norm` field; or the
            path of a checkpoint folder or of its config.json.

    Returns:
        True for "layer", False for "group".
    """
    if isinstance(config, Path) or (isinstance(config, str) and config not in ("layer", "group") and (
            Path(config).exists() or "/" in config or "\\" in config or config.endswith(".json"))):
        path = Path(config)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"no model config at '{path}'; pass 'layer' or 'group', a config, "
                                    "or a checkpoint folder with a config.json")
        config = json.loads(path.read_text())
    if isinstance(config, str):
        norm = config
    elif isinstance(config, dict):
        norm = config.get("feat_extract_norm")
    else:
        norm = getattr(config, "feat_extract_norm", None)
    if norm not in ("layer", "group"):
        raise ValueError(f"feat_extract_norm must be 'layer' or 'group', got {norm!r}")
    return norm == "layer"
