# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 109
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch

from w2vc.audio import SAMPLING_RATE, Wav2Vec2FeatureExtractor, check_waveform, load_audio
from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.ctc import Wav2Vec2ConformerForCTC
from w2vc.decoding import ctc_beam_search_decode, ctc_greedy_decode
from w2vc.model import INDEX_FILES, WEIGHTS_FILES, read_state_dict
from w2vc.processor import Wav2Vec2Processor, feature_extractor_from_folder
from w2vc.tokenizer import CTCTokenizer
from w2vc.training import cpu_supports_bf16


def check_device(device=None) -> torch.device:
    """``device`` as a ``torch.device``, or a clear error when this machine cannot run on it.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``, or None for a GPU when there is one.

    Returns:
        The ``torch.device``.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"device: expected a device such as 'cpu' or 'cuda', got {device!r}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {str(device)!r} asks for a CUDA GPU, but this PyTorch sees none "
                             f"(torch.cuda.is_available() is False); use device='cpu' (or install a CUDA build of "
                             f"PyTorch on a machine with a GPU)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {str(device)!r} asks for GPU {device.index}, but there are only "
                             f"{torch.cuda.device_count()}; use 'cuda:0' to 'cuda:{torch.cuda.device_count() - 1}'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device: 'mps' asks for Apple's GPU, which this PyTorch cannot use; use device='cpu'")
    return device


def load_recognizer(folder, device=None) -> tuple[Wav2Vec2ConformerForCTC, Wav2Vec2Processor]:
    """Load a CTC recogniser and its processor from a checkpoint folder (ours or transformers').

    Args:
        folder: holds ``config.json``, the weights, ``vocab.json`` (+ ``tokenizer_config.json``) and usually
            ``preprocessor_config.json``.
        device: where to put the model (default: a GPU when there is one).

    Returns:
        ``(model, processor)``, the model in eval mode.
    """
    device = check_device(device)
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"model: the folder {str(folder)!r} does not exist; pass a recogniser's folder (the "
                                f"one that save_pretrained or `python -m w2vc finetune-ctc` wrote)")
    if not folder.is_dir():
        raise NotADirectoryError(f"model: expected a checkpoint folder, got the file {str(folder)!r}; pass the "
                                 f"folder that holds it (config.json, the weights and vocab.json)")
    has_config = (folder / "config.json").is_file()
    has_weights = any((folder / name).is_file() for name in WEIGHTS_FILES + INDEX_FILES)
    if not has_config and not has_weights:
        raise FileNotFoundError(f"model: {folder} is not a model folder: it has no config.json and no weights "
                                f"({' or '.join(WEIGHTS_FILES)}); pass the folder that save_pretrained (or "
                                f"`python -m w2vc finetune-ctc`) wrote")
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
    return model.to(device).eval(), Wav2Vec2Processor(feature_extractor, tokenizer)


# %% notebooks/09_ctc.ipynb, cell 111
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


# %% notebooks/09_ctc.ipynb, cell 115
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


# %% notebooks/09_ctc.ipynb, cell 117
SILENCE_DB = -60.0  # RMS level (dBFS) below which audio counts as silence


def rms_db(waveform) -> float:
    """The RMS level of a waveform in dB relative to full scale (dBFS): 0 for a full-scale square wave,
    about -20 for loud speech, ``-inf`` for digital silence."""
    wave = np.asarray(waveform, dtype=np.float64)
    rms = math.sqrt(float(np.mean(wave * wave))) if wave.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` has native bfloat16 arithmetic (a GPU that supports it; a CPU: chapter 8's probe)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_supports_bf16()
    return True  # other accelerators: autocast decides


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def check_dtype(dtype, device: torch.device) -> torch.dtype:
    """``"float32"`` or ``"bfloat16"`` (or the torch dtypes) as a torch dtype; bfloat16 only where it is native."""
    by_dtype = {value: value for value in _DTYPES.values()}
    chosen = _DTYPES.get(dtype) if isinstance(dtype, str) else by_dtype.get(dtype)
    if chosen is None:
        raise ValueError(f"dtype: expected 'float32' or 'bfloat16', got {dtype!r}")
    if chosen == torch.bfloat16 and not _bf16_supported(device):
        what = "this GPU" if device.type == "cuda" else f"this {device.type.upper()}"
        raise ValueError(f"dtype: bfloat16 asked for, but {what} has no native bfloat16 arithmetic (on x86 CPUs: "
                         f"AVX512-BF16 or AMX), so it would only be emulated, slower than float32; use "
                         f"dtype='float32'")
    return chosen


def _check_positive(name: str, value, allow_none: bool = False, whole: bool = True):
    if value is None and allow_none:
        return
    kind = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        what = "a whole number of at least 1" if whole else "a number above 0"
        raise ValueError(f"{name}: expected {what}{' or None' if allow_none else ''}, got {value!r}")


def _as_waveform(item, sampling_rate, name: str) -> np.ndarray:
    if isinstance(item, (str, Path)):
        wave = load_audio(item)  # any rate: resampled to 16 kHz
        check_waveform(wave, name=f"the audio in '{item}'")  # long enough for one frame
        return wave
    if sampling_rate is not None and sampling_rate != SAMPLING_RATE:
        raise ValueError(f"sampling_rate: expected {SAMPLING_RATE} Hz audio, got {sampling_rate} Hz; resample "
                         f"first (w2vc.audio.resample(audio, {sampling_rate})), or pass the file's path")
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    check_waveform(item, name=name)
    return np.asarray(item, dtype=np.float32)


def transcribe(audio_or_paths, model, processor: Wav2Vec2Processor | None = None, *,
               sampling_rate: int | None = None, chunk_length_s: float | None = 20.0,
               stride_length_s: float | None = None, batch_size: int = 8, beam_width: int = 1,
               device=None, dtype="float32", silence_threshold_db: float | None = SILENCE_DB,
               progress: bool | None = None):
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
        dtype: ``"float32"``, or ``"bfloat16"`` (autocast; an error where bfloat16 is not native).
        silence_threshold_db: audio quieter than this RMS level (dBFS) is not transcribed: its text is ``""``
            and a warning names it. None: transcribe everything.
        progress: show a progress bar (default: when there is more than one input).

    Returns:
        The transcript (a string), or a list of them when a list was given.
    """
    single = isinstance(audio_or_paths, (str, Path, np.ndarray, torch.Tensor))
    items = [audio_or_paths] if single else list(audio_or_paths)
    _check_positive("batch_size", batch_size)
    _check_positive("beam_width", beam_width)
    _check_positive("chunk_length_s", chunk_length_s, allow_none=True, whole=False)
    if isinstance(model, (str, Path)):
        model, processor = load_recognizer(model, device=device)
    elif processor is None:
        raise ValueError("processor: a model object needs its processor (transcribe(audio, model, processor)); "
                         "or pass the model's folder as model=")
    run_dtype = check_dtype(dtype, model.device)
    from tqdm.auto import tqdm

    texts = []
    blank = processor.tokenizer.pad_token_id
    show = len(items) > 1 if progress is None else progress
    with tqdm(total=len(items), unit="file", desc="transcribe", disable=not show) as bar:
        for begin in range(0, len(items), batch_size):
            group = items[begin:begin + batch_size]
            names = ["audio" if single else f"audio_or_paths[{begin + k}]" for k in range(len(group))]
            waveforms = [_as_waveform(item, sampling_rate, name) for item, name in zip(group, names)]
            silent = set()
            if silence_threshold_db is not None:
                for k, (item, wave) in enumerate(zip(group, waveforms)):
                    level = rms_db(wave)
                    if level < silence_threshold_db:
                        silent.add(k)
                        what = f"'{item}'" if isinstance(item, (str, Path)) else names[k]
                        warnings.warn(f"{what} is silent (RMS level {level:.0f} dBFS, below silence_threshold_db="
                                      f"{silence_threshold_db:g}): its transcript is empty. Pass "
                                      f"silence_threshold_db=None to transcribe it anyway", stacklevel=2)
            loud = [k for k in range(len(group)) if k not in silent]
            with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=run_dtype == torch.bfloat16):
                logits = frame_logits(model, processor, [waveforms[k] for k in loud], chunk_length_s=chunk_length_s,
                                      stride_length_s=stride_length_s, batch_size=batch_size)
            found = dict(zip(loud, logits))
            for k in range(len(group)):
                if k in silent:
                    texts.append("")
                    continue
                frames = found[k]  # (T, V)
                if beam_width > 1:
                    ids = ctc_beam_search_decode(frames[None], beam_width=beam_width, blank_id=blank)[0]
                else:
                    ids = ctc_greedy_decode(frames[None], blank_id=blank)[0]
                texts.append(processor.tokenizer.decode(ids, group_tokens=False))
            bar.update(len(group))
    return texts[0] if single else texts
