# GENERATED from notebooks/01_audio.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/01_audio.ipynb, cell 25
"""Speech for the book, synthesised with espeak-ng: one utterance (`synthesize`), a corpus of spoken
digit sequences and command words over many voices with a train/test split by voice (`load_corpus`),
and a loader for folders of your own recordings (`load_folder`)."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from w2vc.audio import AUDIO_SUFFIXES, SAMPLING_RATE, load_audio, resample, save_audio

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# espeak-ng's English accents: British, American, Received Pronunciation, Scottish, Caribbean,
# New York City, Lancastrian, West Midlands
ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# voice variants ("" is the accent's own voice): male, female, a creaky voice, Klatt synthesisers, characters
VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4",
            "croak", "klatt", "klatt2", "klatt3", "Andy", "Annie", "linda", "steph")


# %% notebooks/01_audio.ipynb, cell 27
class _EspeakEvent(ctypes.Structure):
    """espeak_EVENT of speak_lib.h: we read its type, text position and length, and sample index."""
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_void_p)]


_EVENT_END_OF_LIST, _EVENT_WORD = 0, 1   # espeak_EVENT_TYPE
_OUTPUT_SYNCHRONOUS = 2                  # espeak_AUDIO_OUTPUT: espeak_Synth returns when the audio is made
_RATE, _PITCH, _RANGE = 1, 3, 4          # espeak_PARAMETER
_POSITION_CHARACTER, _CHARS_UTF8 = 1, 1
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_EspeakEvent))


class _Espeak:
    """The espeak-ng library of the espeakng-loader wheel, initialised once per process (see `_espeak`)."""

    def __init__(self):
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        # returns the sampling rate, or an error code; without its data files espeak-ng exits the process
        self.sampling_rate = lib.espeak_Initialize(_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.sampling_rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise (data in {espeakng_loader.get_data_path()})")
        self._lib = lib
        self._callback = _SynthCallback(self._receive)  # keep a reference, or ctypes frees it
        lib.espeak_SetSynthCallback(self._callback)
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int, int]] = []
        self.lock = threading.Lock()

    def _receive(self, samples, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            if events[i].type == _EVENT_WORD:
                self._words.append((events[i].text_position, events[i].length, events[i].sample))
            i += 1
        return 0  # go on

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
                   seed: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """Speak `text`: `(N,)` int16 samples at `self.sampling_rate`, and per word
        `(1-based character position, length in characters, first sample)`."""
        with self.lock:
            self._chunks, self._words = [], []
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
                self._lib.espeak_SetParameter(parameter, int(value), 0)
            self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))  # the noise sources of some voices
            data = text.encode() + b"\0"
            status = self._lib.espeak_Synth(data, len(data), 0, _POSITION_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise RuntimeError(f"espeak-ng could not speak {text!r} (error {status})")
            samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return samples, list(self._words)


_ENGINE: _Espeak | None = None
_ENGINE_LOCK = threading.Lock()


def _espeak() -> _Espeak:
    """This process's espeak-ng, started on first use."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Espeak()
    return _ENGINE


# %% notebooks/01_audio.ipynb, cell 31
@dataclass(frozen=True)
class Word:
    """A word of an utterance: its text and its samples `audio[start:end]` (16 kHz)."""
    text: str
    start: int
    end: int


@dataclass(eq=False)
class Utterance:
    """One spoken utterance.

    Attributes:
        audio: `(L,)` float32 samples in [-1, 1] at 16 kHz.
        text: the transcript, lowercase words separated by single spaces ("three one four", "stop").
        kind: "digits" (a digit sequence), "command" (one command word) or "text" (anything else).
        voice: who spoke it, a speaker label ("en-us+m3" is espeak-ng's American accent, variant m3).
        words: the words in order, as sample spans of `audio`; empty when not known.
        rate, pitch, pitch_range: espeak-ng's speaking rate (words per minute), pitch and pitch range
            (0-99), for synthesised speech; None otherwise.
        path: the file it was read from, for your own audio; None otherwise.
    """
    audio: np.ndarray
    text: str
    kind: str
    voice: str
    words: list[Word] = field(default_factory=list)
    rate: int | None = None
    pitch: int | None = None
    pitch_range: int | None = None
    path: Path | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / SAMPLING_RATE

    def __repr__(self) -> str:
        return (f"Utterance(text={self.text!r}, kind={self.kind!r}, voice={self.voice!r}, "
                f"{self.duration:.2f} s, {len(self.words)} words)")


# %% notebooks/01_audio.ipynb, cell 33
_SILENCE = 0.01  # samples quieter than 1% of the utterance's peak are silence
_MARGIN = 0.01   # seconds of silence kept before the first word and after the last


@functools.lru_cache(maxsize=None)
def _espeak_voices() -> tuple[frozenset, frozenset]:
    """(languages, variants) that espeak-ng's data has, languages in lowercase."""
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    languages = frozenset(p.name.lower() for p in (data / "lang").rglob("*") if p.is_file())
    return languages, frozenset(p.name for p in (data / "voices" / "!v").iterdir())


def check_voice(voice: str) -> str:
    """Raise a clear error unless `voice` is an espeak-ng voice: a language, optionally '+variant'.

    Args:
        voice: e.g. "en", "en-us+m3", "en-gb-scotland+klatt".

    Returns:
        `voice`, unchanged.
    """
    if not isinstance(voice, str) or not voice:
        raise ValueError(f"voice must be a non-empty string like 'en-us+m3', got {voice!r}")
    languages, variants = _espeak_voices()
    accent, plus, variant = voice.partition("+")
    if accent.lower() not in languages:
        raise ValueError(f"voice {voice!r}: espeak-ng has no language {accent!r}; "
                         f"English ones are {', '.join(ACCENTS)}")
    if plus and variant not in variants:
        raise ValueError(f"voice {voice!r}: espeak-ng has no voice variant {variant!r}; "
                         f"try one of {', '.join(v for v in VARIANTS if v)}")
    return voice


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def _kind(text: str) -> str:
    words = text.split()
    if words and all(w in DIGITS for w in words):
        return "digits"
    return "command" if len(words) == 1 and words[0] in COMMANDS else "text"


def _render(text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int) -> tuple[np.ndarray, list[Word]]:
    """Speak `text`; return `(L,)` int16 samples at 16 kHz, silence trimmed, and the words' spans."""
    engine = _espeak()
    samples, events = engine.synthesize(text, voice, rate, pitch, pitch_range, seed)  # (N,) at 22050 Hz
    magnitude = np.abs(samples.astype(np.int32))
    if not events or magnitude.size == 0 or magnitude.max() == 0:
        raise ValueError(f"espeak-ng said nothing for {text!r}")
    loud = magnitude > _SILENCE * magnitude.max()                   # (N,) bool
    bounds = [min(max(sample, 0), len(samples)) for _, _, sample in events] + [len(samples)]
    spans = []
    for start, end in zip(bounds[:-1], bounds[1:]):                 # the word's stretch, until the next word
        inside = np.flatnonzero(loud[start:end])
        spans.append((start + inside[0], start + inside[-1] + 1) if inside.size else (start, max(start, end)))
    margin = round(_MARGIN * engine.sampling_rate)
    first = max(spans[0][0] - margin, 0)
    last = min(max(end for _, end in spans) + margin, len(samples))
    audio = resample(samples[first:last].astype(np.float32) / 32768, engine.sampling_rate, SAMPLING_RATE)  # (L,)
    pcm = np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)
    names = text.split()
    if len(names) != len(events):   # espeak split or joined words (numbers, hyphens): name them as it did
        names = [text[position - 1:position - 1 + length] for position, length, _ in events]
    scale = SAMPLING_RATE / engine.sampling_rate
    words = []
    for name, (start, end) in zip(names, spans):
        start16 = min(round((start - first) * scale), len(pcm) - 1)
        end16 = min(max(round((end - first) * scale), start16 + 1), len(pcm))
        words.append(Word(name, start16, end16))
    return pcm, words


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50, pitch_range: int = 50,
               seed: int = 0) -> Utterance:
    """Speak `text` with espeak-ng: 16 kHz audio, silence trimmed, with word boundaries.

    espeak-ng carries a little state from one call to the next (the phase of its pitch flutter), so
    the same call can give slightly different samples later in a session; `load_corpus` therefore
    synthesises in fresh worker processes, which makes the corpus bit-identical for a seed.

    Args:
        text: what to say; lowercased, runs of white space become one space. Words are what espeak-ng
            reports: "twenty-one" is one word, "42" two.
        voice: an espeak-ng voice, a language with an optional '+variant' (see ACCENTS, VARIANTS).
        rate: speaking rate in words per minute, 80 to 450.
        pitch: 0 to 99, 50 being the voice's own.
        pitch_range: intonation, 0 (monotone) to 99, 50 being the voice's own.
        seed: seed of espeak-ng's noise generator.

    Returns:
        an `Utterance` with `audio` `(L,)` float32 at 16 kHz and `words` as sample spans.
    """
    if not isinstance(text, str) or not text.split():
        raise ValueError(f"text must be a non-empty string of words, got {text!r}")
    text = " ".join(text.lower().split())
    check_voice(voice)
    rate = _check_int("rate", rate, 80, 450)
    pitch = _check_int("pitch", pitch, 0, 99)
    pitch_range = _check_int("pitch_range", pitch_range, 0, 99)
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    pcm, words = _render(text, voice, rate, pitch, pitch_range, seed)
    return Utterance(pcm.astype(np.float32) / 32768, text, _kind(text), voice, words, rate, pitch, pitch_range)


# %% notebooks/01_audio.ipynb, cell 47
def _voice_name(accent: str, variant: str) -> str:
    return f"{accent}+{variant}" if variant else accent


def _plan(num_utterances: int, seed: int, commands: Sequence[str], commands_fraction: float, max_digits: int,
          accents: Sequence[str], variants: Sequence[str], test_fraction: float) -> list[dict]:
    """Everything about every utterance of a corpus except its audio, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    num_accents, num_variants = len(accents), len(variants)
    # test voices: each variant in `held_out` accents, every accent held out equally often
    held_out = min(max(round(test_fraction * num_accents), 1), num_accents - 1)
    accent_order = rng.permutation(num_accents)
    is_test = np.zeros((num_accents, num_variants), bool)        # (accents, variants)
    for j in range(num_variants):
        for r in range(held_out):
            is_test[accent_order[(j * held_out + r) % num_accents], j] = True
    speakers = [(a, v) for a in range(num_accents) for v in range(num_variants)]
    # each speaker's own pitch, pitch range and rate; its utterances vary around them
    base_pitch = rng.integers(25, 76, len(speakers))
    base_range = rng.integers(25, 76, len(speakers))
    base_rate = rng.integers(130, 211, len(speakers))
    who = rng.permutation(np.resize(rng.permutation(len(speakers)), num_utterances))   # speakers take turns
    is_command = rng.random(num_utterances) < commands_fraction
    command = rng.integers(0, len(commands), num_utterances)
    num_digits = rng.integers(1, max_digits + 1, num_utterances)
    digits = rng.integers(0, 10, (num_utterances, max_digits))
    d_pitch, d_range = rng.integers(-5, 6, (2, num_utterances))
    d_rate = rng.integers(-10, 11, num_utterances)
    seeds = rng.integers(0, 2**31, num_utterances)
    plan = []
    for i in range(num_utterances):
        s = who[i]
        a, v = speakers[s]
        text = commands[command[i]] if is_command[i] else " ".join(DIGITS[d] for d in digits[i, :num_digits[i]])
        plan.append(dict(
            text=text, kind="command" if is_command[i] else "digits", voice=_voice_name(accents[a], variants[v]),
            split="test" if is_test[a, v] else "train",
            rate=int(np.clip(base_rate[s] + d_rate[i], 120, 220)),
            pitch=int(np.clip(base_pitch[s] + d_pitch[i], 20, 80)),
            pitch_range=int(np.clip(base_range[s] + d_range[i], 20, 80)),
            seed=int(seeds[i])))
    return plan


# %% notebooks/01_audio.ipynb, cell 53
_CHUNK = 400         # utterances per worker process; fixed, so the corpus does not depend on the workers
_CORPUS_VERSION = 1  # change when the recipe changes: it is part of the cache key


def cache_dir() -> Path:
    """Where w2vc keeps what it makes: `$W2VC_CACHE`, else `~/.cache/w2vc`."""
    return Path(os.environ.get("W2VC_CACHE") or "~/.cache/w2vc").expanduser()


def _synthesize_file(jobs_path: str, out_path: str) -> None:
    """Worker process: speak the utterances planned in `jobs_path` (JSON) into `out_path` (.npz)."""
    audio, lengths, spans, counts = [], [], [], []
    for job in json.loads(Path(jobs_path).read_text()):
        pcm, words = _render(job["text"], job["voice"], job["rate"], job["pitch"], job["pitch_range"], job["seed"])
        if [w.text for w in words] != job["text"].split():
            raise RuntimeError(f"espeak-ng split {job['text']!r} into the words {[w.text for w in words]}")
        audio.append(pcm)
        lengths.append(len(pcm))
        spans.extend((w.start, w.end) for w in words)
        counts.append(len(words))
    np.savez(out_path, audio=np.concatenate(audio), lengths=np.array(lengths), counts=np.array(counts),
             spans=np.array(spans, dtype=np.int64).reshape(-1, 2))


def _package_root() -> str:
    spec = importlib.util.find_spec("w2vc")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("load_corpus runs espeak-ng in worker processes that import w2vc; "
                           "install it first (pip install -e . in the repository)")
    return str(Path(list(spec.submodule_search_locations)[0]).parent)


def _run_workers(plan: list[dict], workers: int) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Speak `plan` in fresh worker processes, `_CHUNK` utterances each: `(pcm, spans)` per utterance."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_package_root()] + [p for p in [env.get("PYTHONPATH")] if p])
    script = "import sys; from w2vc.data import _synthesize_file; _synthesize_file(sys.argv[1], sys.argv[2])"
    results = []
    with tempfile.TemporaryDirectory(prefix="w2vc-corpus-") as tmp:
        chunks = []
        for c, begin in enumerate(range(0, len(plan), _CHUNK)):
            jobs = Path(tmp) / f"jobs{c}.json"
            jobs.write_text(json.dumps(plan[begin:begin + _CHUNK]))
            chunks.append((jobs, Path(tmp) / f"audio{c}.npz", Path(tmp) / f"log{c}.txt"))
        waiting, running = list(chunks), []
        while waiting or running:
            while waiting and len(running) < workers:
                jobs, out, log = waiting.pop(0)
                with open(log, "w") as err:
                    running.append((subprocess.Popen([sys.executable, "-c", script, str(jobs), str(out)],
                                                     env=env, stdout=subprocess.DEVNULL, stderr=err), log))
            process, log = running.pop(0)
            if process.wait() != 0:
                for other, _ in running:
                    other.kill()
                raise RuntimeError(f"a corpus worker failed (exit code {process.returncode}):\n"
                                   + log.read_text()[-3000:])
        for _, out, _ in chunks:
            with np.load(out) as part:         # read each array once: an .npz decodes it on every access
                audio, lengths, counts, spans = part["audio"], part["lengths"], part["counts"], part["spans"].tolist()
            sample_ends, word_ends = np.cumsum(lengths), np.cumsum(counts)
            for i in range(len(lengths)):
                results.append((audio[sample_ends[i] - lengths[i]:sample_ends[i]],
                                [tuple(s) for s in spans[word_ends[i] - counts[i]:word_ends[i]]]))
    return results


# %% notebooks/01_audio.ipynb, cell 55
@dataclass(eq=False)
class Corpus:
    """A synthesised corpus: `train` and `test` utterances, spoken by disjoint sets of voices.

    Attributes:
        train: the training utterances.
        test: the test utterances; none of their voices speaks in `train`.
        params: the arguments of `load_corpus` that made it.
        path: its folder in the cache, or None when it was not cached.
    """
    train: list[Utterance]
    test: list[Utterance]
    params: dict = field(default_factory=dict)
    path: Path | None = None

    def split(self, name: str = "all") -> list[Utterance]:
        """The utterances of a split: "train", "test" or "all" (train, then test)."""
        if name == "train":
            return self.train
        if name == "test":
            return self.test
        if name == "all":
            return self.train + self.test
        raise ValueError(f"split must be 'train', 'test' or 'all', got {name!r}")

    def voices(self, split: str = "all") -> list[str]:
        """The voices (speaker labels) of a split, sorted."""
        return sorted({u.voice for u in self.split(split)})

    def __len__(self) -> int:
        return len(self.train) + len(self.test)

    def __repr__(self) -> str:
        parts = [f"{name}: {len(self.split(name))} utterances, {len(self.voices(name))} voices, "
                 f"{sum(u.duration for u in self.split(name)) / 60:.1f} min" for name in ("train", "test")]
        return "Corpus(" + "; ".join(parts) + ")"


_LOADED: dict[str, Corpus] = {}


@contextlib.contextmanager
def _exclusive(path: Path):
    """Hold an exclusive lock on the file `path` where the system has fcntl (Linux, macOS)."""
    try:
        import fcntl
    except ImportError:                       # Windows: rely on the atomic rename alone
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _corpus_from_arrays(pcm: np.ndarray, index: dict, path: Path | None) -> Corpus:
    audio = pcm.astype(np.float32)                           # (total samples,) one buffer, utterances are views
    audio *= 1 / 32768
    splits = {"train": [], "test": []}
    for entry in index["utterances"]:
        begin = entry["offset"]
        splits[entry["split"]].append(Utterance(
            audio[begin:begin + entry["length"]], entry["text"], entry["kind"], entry["voice"],
            [Word(t, s, e) for t, s, e in entry["words"]], entry["rate"], entry["pitch"], entry["pitch_range"]))
    return Corpus(splits["train"], splits["test"], index["params"], path)


def load_corpus(num_utterances: int = 4000, seed: int = 0, *, commands: Sequence[str] = COMMANDS,
                commands_fraction: float = 0.3, max_digits: int = 5, accents: Sequence[str] = ACCENTS,
                variants: Sequence[str] = VARIANTS, test_fraction: float = 0.25, cache: bool = True,
                workers: int | None = None) -> Corpus:
    """The synthesised corpus of spoken digit sequences and command words, split by voice.

    The same arguments give the same corpus, bit for bit, on any machine with the same espeak-ng.
    Within a process they also give the same `Corpus` object: copy its lists before changing them.

    Args:
        num_utterances: how many utterances, train and test together.
        seed: seed of everything random: texts, voices' pitch and rate, the split.
        commands: the command words, each a single lowercase word.
        commands_fraction: the fraction of utterances that are one command word; the rest are digits.
        max_digits: digit sequences have 1 to `max_digits` digits.
        accents: espeak-ng languages; each accent with each variant is one voice.
        variants: espeak-ng voice variants ("" for the accent's own voice).
        test_fraction: the fraction of accents in which each variant is held out for the test split.
        cache: read the corpus from, and write it to, `cache_dir()`.
        workers: worker processes to synthesise with (default: the CPU count, at most 8). The corpus
            does not depend on it.

    Returns:
        a `Corpus` with `.train` and `.test` lists of `Utterance`.
    """
    num_utterances = _check_int("num_utterances", num_utterances, 1, 10**7)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    max_digits = _check_int("max_digits", max_digits, 1, 100)
    if workers is not None:
        workers = _check_int("workers", workers, 1, 1024)
    commands, accents, variants = tuple(commands), tuple(accents), tuple(variants)
    if not 0 <= commands_fraction <= 1:
        raise ValueError(f"commands_fraction must be from 0 to 1, got {commands_fraction!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    if len(set(accents)) < 2 or len(set(accents)) < len(accents):
        raise ValueError(f"the split by voice needs two or more accents, each once, got {list(accents)}")
    if not variants or len(set(variants)) < len(variants):
        raise ValueError(f"variants must name one or more voice variants, each once, got {list(variants)}")
    if not commands or any(not (isinstance(c, str) and c.isalpha() and c.islower()) for c in commands):
        raise ValueError(f"commands must be single lowercase words, got {commands}")
    for accent in accents:
        for variant in variants:
            check_voice(_voice_name(accent, variant))
    params = dict(num_utterances=num_utterances, seed=seed, commands=list(commands), commands_fraction=commands_fraction,
                  max_digits=max_digits, accents=list(accents), variants=list(variants), test_fraction=test_fraction)
    recipe = dict(params, version=_CORPUS_VERSION, espeak=importlib.metadata.version("espeakng-loader"))
    key = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    if cache and key in _LOADED:
        return _LOADED[key]

    def build() -> tuple[np.ndarray, dict]:
        plan = _plan(num_utterances, seed, commands, commands_fraction, max_digits, accents, variants, test_fraction)
        spoken = _run_workers(plan, min(workers or os.cpu_count() or 1, 8, -(-num_utterances // _CHUNK)))
        offsets = np.cumsum([0] + [len(pcm) for pcm, _ in spoken])
        index = dict(params=params, utterances=[
            dict(job, offset=int(offset), length=len(pcm), words=[[t, s, e] for t, (s, e) in zip(job["text"].split(), spans)])
            for job, (pcm, spans), offset in zip(plan, spoken, offsets)])
        return np.concatenate([pcm for pcm, _ in spoken]), index

    if not cache:
        return _corpus_from_arrays(*build(), None)
    folder = cache_dir() / f"corpus-{num_utterances}-seed{seed}-{key}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder.parent / f".{folder.name}.lock"):   # one process builds, the others wait for it
        if not (folder / "index.json").exists():
            pcm, index = build()
            partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
            np.save(partial / "audio.npy", pcm)
            (partial / "index.json").write_text(json.dumps(index))
            partial.chmod(0o755)              # mkdtemp made it private; a cache is readable like any folder
            try:
                partial.rename(folder)        # atomic: the folder appears complete or not at all
            except OSError:                   # another process (without file locks) finished it first
                shutil.rmtree(partial, ignore_errors=True)
    corpus = _corpus_from_arrays(np.load(folder / "audio.npy"), json.loads((folder / "index.json").read_text()), folder)
    _LOADED[key] = corpus
    return corpus


# %% notebooks/01_audio.ipynb, cell 63
def save_folder(utterances: Sequence[Utterance], folder: str | Path) -> Path:
    """Write utterances in the layout that `load_folder` reads: `<voice>/<number>.flac` and `.txt`.

    Args:
        utterances: what to write.
        folder: where; created if missing.

    Returns:
        the folder.
    """
    folder = Path(folder)
    for number, utterance in enumerate(utterances):
        stem = (folder / utterance.voice if utterance.voice else folder) / f"{number:05d}"
        save_audio(stem.with_suffix(".flac"), utterance.audio)
        stem.with_suffix(".txt").write_text(utterance.text + "\n", encoding="utf-8")
    return folder


def load_folder(folder: str | Path) -> list[Utterance]:
    """Read every audio file under `folder` with its transcript, as `Utterance`s at 16 kHz.

    Each audio file (.wav, .flac, .ogg; sub-folders too) may have a transcript beside it, a text file
    of the same name (`001.flac` and `001.txt`): its words, lowercased and separated by single spaces,
    are the text ("" without one). The sub-folder a file is in is its voice ("" at the top).

    Args:
        folder: the folder to read.

    Returns:
        the utterances, sorted by path; `kind` follows from the text ("digits", "command" or "text"),
        `words` is empty (unknown).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"folder '{folder}' does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"'{folder}' is a file; load_folder reads folders, load_audio reads files")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under '{folder}'")
    utterances = []
    for path in files:
        transcript = path.with_suffix(".txt")
        text = " ".join(transcript.read_text(encoding="utf-8").lower().split()) if transcript.exists() else ""
        voice = path.parent.relative_to(folder).as_posix()
        utterances.append(Utterance(load_audio(path), text, _kind(text), "" if voice == "." else voice, path=path))
    return utterances
