"""w2vc.data: espeak-ng speech, the corpus (deterministic, split by voice, cached), folders of audio."""
import ctypes
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

import w2vc.data as data
from w2vc.audio import SAMPLING_RATE, load_audio
from w2vc.data import (
    ACCENTS, COMMANDS, DIGITS, VARIANTS, Corpus, Utterance, Word, cache_dir, check_voice, load_corpus, load_folder,
    save_folder, synthesize,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private, empty cache (and no corpora remembered from other tests)."""
    monkeypatch.setenv("W2VC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_LOADED", {})
    return tmp_path / "cache"


def assert_well_formed(u: Utterance):
    assert u.audio.dtype == np.float32 and u.audio.ndim == 1 and len(u.audio) >= 400
    assert np.abs(u.audio).max() <= 1.0 and np.abs(u.audio).max() > 0.01
    assert np.array_equal(u.audio * 32768, np.round(u.audio * 32768))         # 16-bit samples
    assert u.text == " ".join(u.text.split()) and u.text == u.text.lower()
    assert [w.text for w in u.words] == u.text.split()
    assert all(0 <= w.start < w.end <= len(u.audio) for w in u.words)
    assert all(a.end <= b.start for a, b in zip(u.words, u.words[1:]))       # in order, not overlapping
    assert u.words[0].start < 0.05 * SAMPLING_RATE and u.words[-1].end > len(u.audio) - 0.05 * SAMPLING_RATE  # trimmed


# ---------------------------------------------------------------------------------------------- synthesize

def test_synthesize_gives_16k_speech_with_word_boundaries():
    u = synthesize("  Three ONE   four ", voice="en-us+m3", rate=150, pitch=40, pitch_range=60)
    assert (u.text, u.kind, u.voice, u.rate, u.pitch, u.pitch_range) == ("three one four", "digits", "en-us+m3", 150, 40, 60)
    assert_well_formed(u)
    assert 0.5 < u.duration < 2.0 and u.duration == len(u.audio) / SAMPLING_RATE
    assert repr(u).startswith("Utterance(text='three one four', kind='digits', voice='en-us+m3'")
    # each word's span holds sound, and the gaps between words are quieter than the words
    for w in u.words:
        assert np.abs(u.audio[w.start:w.end]).max() > 0.05


def test_synthesize_kinds_and_slower_speech_is_longer():
    assert synthesize("stop").kind == "command"
    assert synthesize("stop now").kind == "text"
    assert synthesize("seven").kind == "digits"
    slow, fast = synthesize("one two three", rate=100), synthesize("one two three", rate=300)
    assert slow.duration > 1.8 * fast.duration


def test_synthesize_names_words_as_espeak_splits_them():
    assert [w.text for w in synthesize("don't stop").words] == ["don't", "stop"]
    assert [w.text for w in synthesize("one,two").words] == ["one", "two"]


def test_synthesize_is_deterministic_in_a_fresh_process():
    script = ("import hashlib; from w2vc.data import synthesize; u = synthesize('five six', voice='en-gb-scotland+f2', seed=3); "
              "v = synthesize('go', voice='en+klatt'); print(hashlib.sha1(u.audio.tobytes() + v.audio.tobytes()).hexdigest(), u.words)")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT).stdout for _ in range(2)]
    assert runs[0] == runs[1] and runs[0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(voice="en-us+nobody"), r"voice 'en-us\+nobody': espeak-ng has no voice variant 'nobody'; try one of m1"),
    (dict(voice="xx"), r"voice 'xx': espeak-ng has no language 'xx'; English ones are en, en-us"),
    (dict(voice=""), "voice must be a non-empty string like 'en-us\\+m3', got ''"),
    (dict(rate=79), "rate must be a whole number from 80 to 450, got 79"),
    (dict(rate=175.5), "rate must be a whole number from 80 to 450, got 175.5"),
    (dict(pitch=100), "pitch must be a whole number from 0 to 99, got 100"),
    (dict(pitch=True), "pitch must be a whole number from 0 to 99, got True"),
    (dict(pitch_range=-1), "pitch_range must be a whole number from 0 to 99"),
    (dict(seed=-1), "seed must be a whole number from 0 to 2147483647"),
])
def test_synthesize_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthesize("hello", **kwargs)


@pytest.mark.parametrize("text", ["", "   ", None, 42])
def test_synthesize_needs_words(text):
    with pytest.raises(ValueError, match="text must be a non-empty string of words"):
        synthesize(text)


def test_synthesize_of_punctuation_only_says_nothing():
    with pytest.raises(ValueError, match=r"espeak-ng said nothing for '\.\.\.'"):
        synthesize("...")


def test_check_voice():
    for accent in ACCENTS:
        assert check_voice(accent) == accent
    for variant in VARIANTS:
        if variant:
            assert check_voice(f"en-us+{variant}") == f"en-us+{variant}"
    with pytest.raises(ValueError, match="voice must be a non-empty string"):
        check_voice(None)


def test_engine_errors(monkeypatch):
    engine = data._espeak()
    with pytest.raises(ValueError, match="espeak-ng has no voice 'xx'"):
        engine.synthesize("one", "xx", 175, 50, 50, 0)

    class Failing:                                    # the library, but espeak_Synth reports an error
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def espeak_Synth(*args):
            return 2

    real = engine._lib
    monkeypatch.setattr(engine, "_lib", Failing())
    with pytest.raises(RuntimeError, match=r"espeak-ng could not speak 'one' \(error 2\)"):
        engine.synthesize("one", "en", 175, 50, 50, 0)


def test_engine_reports_a_failed_start(monkeypatch):
    class Function:
        def __init__(self, result):
            self.result = result

        def __call__(self, *args):
            return self.result

    class BrokenLibrary:                               # espeak_Initialize returns an error code
        def __init__(self, path):
            self.espeak_Initialize, self.espeak_SetVoiceByName = Function(-1), Function(0)
            self.espeak_SetParameter, self.espeak_Synth = Function(0), Function(0)

    monkeypatch.setattr(ctypes, "CDLL", BrokenLibrary)
    with pytest.raises(RuntimeError, match="espeak-ng failed to initialise"):
        data._Espeak()


# ---------------------------------------------------------------------------------------------- the corpus

def test_plan_of_the_default_corpus_splits_by_voice():
    plan = data._plan(4000, 0, COMMANDS, 0.3, 5, ACCENTS, VARIANTS, 0.25)
    train = {p["voice"] for p in plan if p["split"] == "train"}
    test = {p["voice"] for p in plan if p["split"] == "test"}
    assert len(train) == 120 and len(test) == 40 and not train & test
    # every accent and every variant is heard in training; test voices are new combinations of them
    assert {v.split("+")[0] for v in train} == set(ACCENTS)
    assert {v.partition("+")[2] for v in train} == set(VARIANTS)
    held_out_per_accent = [sum(v.split("+")[0] == a for v in test) for a in ACCENTS]
    assert held_out_per_accent == [5] * 8
    counts = np.unique([p["voice"] for p in plan], return_counts=True)[1]
    assert counts.min() == counts.max() == 25                                   # speakers take turns
    assert 0.27 < np.mean([p["kind"] == "command" for p in plan]) < 0.33
    for p in plan:
        assert 120 <= p["rate"] <= 220 and 20 <= p["pitch"] <= 80 and 20 <= p["pitch_range"] <= 80
        words = p["text"].split()
        assert (p["kind"] == "command" and len(words) == 1 and words[0] in COMMANDS) or (
            p["kind"] == "digits" and 1 <= len(words) <= 5 and set(words) <= set(DIGITS))
    assert data._plan(4000, 0, COMMANDS, 0.3, 5, ACCENTS, VARIANTS, 0.25) == plan
    assert data._plan(4000, 1, COMMANDS, 0.3, 5, ACCENTS, VARIANTS, 0.25) != plan


def corpus_arrays(corpus):
    return [(u.audio, u.text, u.kind, u.voice, u.words, u.rate, u.pitch, u.pitch_range) for u in corpus.split("all")]


def assert_same_corpus(a, b):
    assert len(a) == len(b) and len(a.train) == len(b.train)
    for x, y in zip(corpus_arrays(a), corpus_arrays(b)):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]


def test_small_corpus_is_well_formed_and_split_by_voice(cache):
    corpus = load_corpus(60, seed=1, cache=False)
    assert isinstance(corpus, Corpus) and len(corpus) == 60 and corpus.path is None
    assert not set(corpus.voices("train")) & set(corpus.voices("test"))
    assert corpus.voices() == sorted(set(corpus.voices("train")) | set(corpus.voices("test")))
    assert corpus.split("all") == corpus.train + corpus.test
    for u in corpus.split("all"):
        assert_well_formed(u)
        assert u.kind == ("command" if u.text in COMMANDS else "digits")
    assert repr(corpus).startswith("Corpus(train: ")
    assert corpus.params["num_utterances"] == 60 and corpus.params["seed"] == 1
    assert not cache.exists()                                                  # cache=False writes nothing
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'all', got 'dev'"):
        corpus.split("dev")


def test_corpus_is_bit_identical_for_a_seed_whatever_the_workers(cache, monkeypatch):
    monkeypatch.setattr(data, "_CHUNK", 16)                                    # 48 utterances: 3 fresh workers
    one = load_corpus(48, seed=2, cache=False, workers=1)
    two = load_corpus(48, seed=2, cache=False, workers=3)
    assert_same_corpus(one, two)
    other = load_corpus(48, seed=3, cache=False, workers=2)
    assert [u.text for u in other.split("all")] != [u.text for u in one.split("all")]


def test_corpus_cache(cache):
    corpus = load_corpus(30, seed=4, workers=1)
    assert corpus.path.parent == cache and (corpus.path / "audio.npy").exists() and (corpus.path / "index.json").exists()
    assert corpus.path.name.startswith("corpus-30-seed4-")
    assert np.load(corpus.path / "audio.npy").dtype == np.int16               # 2 bytes a sample
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == [corpus.path.name]  # no leftovers
    assert load_corpus(30, seed=4) is corpus                                   # remembered in this process
    data._LOADED.clear()
    again = load_corpus(30, seed=4)                                            # read back from the cache
    assert again is not corpus and again.path == corpus.path
    assert_same_corpus(again, corpus)
    assert load_corpus(30, seed=4, commands_fraction=0.5).path != corpus.path  # other parameters, other folder


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("W2VC_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("W2VC_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "w2vc"


def test_corpus_with_other_commands_and_voices(cache):
    corpus = load_corpus(20, seed=5, commands=["cat", "dog"], commands_fraction=1.0, accents=["en", "en-us"],
                         variants=["", "f1"], test_fraction=0.5, cache=False)
    assert {u.text for u in corpus.split("all")} <= {"cat", "dog"}
    assert set(corpus.voices()) == {"en", "en-us", "en+f1", "en-us+f1"}
    assert len(corpus.voices("test")) == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_utterances=0), "num_utterances must be a whole number from 1"),
    (dict(seed=-1), "seed must be a whole number from 0"),
    (dict(max_digits=0), "max_digits must be a whole number from 1 to 100"),
    (dict(workers=0), "workers must be a whole number from 1"),
    (dict(commands_fraction=1.5), "commands_fraction must be from 0 to 1, got 1.5"),
    (dict(test_fraction=1.0), "test_fraction must be between 0 and 1, got 1.0"),
    (dict(accents=["en"]), r"the split by voice needs two or more accents, each once, got \['en'\]"),
    (dict(accents=["en", "en"]), "the split by voice needs two or more accents"),
    (dict(variants=[]), r"variants must name one or more voice variants, each once, got \[\]"),
    (dict(variants=["m1", "m1"]), "variants must name one or more voice variants, each once"),
    (dict(commands=["turn left"]), "commands must be single lowercase words"),
    (dict(commands=["Stop"]), "commands must be single lowercase words"),
    (dict(commands=[]), "commands must be single lowercase words"),
    (dict(accents=["en", "klingon"]), "espeak-ng has no language 'klingon'"),
    (dict(variants=["", "robot9000"]), "espeak-ng has no voice variant 'robot9000'"),
])
def test_load_corpus_errors(kwargs, match, cache):
    args = dict(num_utterances=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        load_corpus(**args)


def test_a_failing_worker_is_reported(tmp_path):
    job = dict(text="one", voice="xx", rate=175, pitch=50, pitch_range=50, seed=0)
    with pytest.raises(RuntimeError, match="(?s)a corpus worker failed \\(exit code 1\\).*espeak-ng has no voice 'xx'"):
        data._run_workers([job], 1)


def test_worker_refuses_words_that_espeak_splits(tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([dict(text="one,two", voice="en", rate=175, pitch=50, pitch_range=50, seed=0)]))
    with pytest.raises(RuntimeError, match=r"espeak-ng split 'one,two' into the words \['one', 'two'\]"):
        data._synthesize_file(str(jobs), str(tmp_path / "out.npz"))


def test_workers_need_an_installed_package(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="install it first"):
        data._package_root()


# ---------------------------------------------------------------------------------------------- folders

def test_save_and_load_folder_round_trip(tmp_path):
    utterances = [synthesize("yes", voice="en-us"), synthesize("two one", voice="en+f1"),
                  Utterance(synthesize("no").audio, "no", "command", "")]
    folder = save_folder(utterances, tmp_path / "speech")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*"))
    assert names == ["00002.flac", "00002.txt", "en+f1/00001.flac", "en+f1/00001.txt", "en-us/00000.flac", "en-us/00000.txt"]
    loaded = sorted(load_folder(folder), key=lambda u: u.path.name)
    assert [(u.text, u.voice, u.kind) for u in loaded] == [("yes", "en-us", "command"), ("two one", "en+f1", "digits"), ("no", "", "command")]
    for a, b in zip(utterances, loaded):
        np.testing.assert_array_equal(a.audio, b.audio)
        assert b.words == [] and b.rate is None and b.path.exists()


def test_load_folder_reads_your_own_recordings(tmp_path):
    speaker = tmp_path / "alice" / "session1"
    speaker.mkdir(parents=True)
    t = np.arange(44100) / 44100
    soundfile.write(speaker / "a.wav", np.stack([np.sin(2 * np.pi * 300 * t)] * 2, axis=1) * 0.3, 44100)  # stereo, 44.1 kHz
    (speaker / "a.txt").write_text("  Turn LEFT\nnow \n")
    soundfile.write(tmp_path / "b.flac", np.zeros(8000, np.int16), 16000)      # no transcript
    (tmp_path / "notes.md").write_text("not audio")
    utterances = load_folder(tmp_path)
    assert [(u.voice, u.text, u.kind, u.audio.shape) for u in utterances] == [
        ("alice/session1", "turn left now", "text", (16000,)), ("", "", "text", (8000,))]
    np.testing.assert_allclose(utterances[0].audio, load_audio(speaker / "a.wav"))


def test_load_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"folder '.*nowhere' does not exist"):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(NotADirectoryError, match="is a file; load_folder reads folders, load_audio reads files"):
        load_folder(tmp_path / "file.txt")
    with pytest.raises(ValueError, match=r"no audio files \(.wav, .flac, .ogg\) under"):
        load_folder(tmp_path)


def test_word_is_a_small_value():
    w = Word("one", 10, 20)
    assert w == Word("one", 10, 20) and hash(w) == hash(Word("one", 10, 20))
    with pytest.raises(AttributeError):
        w.start = 5
