"""Chapter 12: `python -m w2vc` and every mistake a user makes with it (issue 11's table): one line on stderr that
says what went wrong and what to do, exit code 2; the good files of a run are still transcribed."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from helpers import w2vc_config
from w2vc import CTCTokenizer, Wav2Vec2ConformerForCTC, Wav2Vec2FeatureExtractor, Wav2Vec2Processor, transcribe
from w2vc import recognizer
from w2vc.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _wave(n, seed=0, scale=0.1):
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recogniser")
    tok = CTCTokenizer.from_texts(["go left", "three two one"])
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForCTC(w2vc_config(vocab_size=tok.vocab_size, feat_extract_norm="layer"))
    with torch.no_grad():
        model.lm_head.weight.mul_(50)  # confident frames: transcripts that are not empty
    model.save_pretrained(folder)
    Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), tok).save_pretrained(folder)
    return folder


@pytest.fixture
def audio(tmp_path):
    """Two good files in a folder, and one beside it."""
    (tmp_path / "calls").mkdir()
    soundfile.write(tmp_path / "calls" / "a.wav", _wave(16000, 1), 16000)
    soundfile.write(tmp_path / "calls" / "b.flac", _wave(9000, 2), 16000)
    soundfile.write(tmp_path / "c.wav", _wave(12000, 3), 16000)
    return tmp_path


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------- what works

def test_files_and_folders(capsys, model_folder, audio):
    code, out, err = run(capsys, "transcribe", audio / "calls", audio / "c.wav", "--model", model_folder,
                         "--device", "cpu")
    assert code == 0 and err == ""  # no progress bar: stderr is not a terminal
    paths = [audio / "calls" / "a.wav", audio / "calls" / "b.flac", audio / "c.wav"]
    expected = transcribe(paths, model=model_folder, device="cpu")
    assert out.splitlines() == [f"{p}\t{t}" for p, t in zip(paths, expected)]
    assert any(expected)


def test_json_lines_and_progress(capsys, model_folder, audio):
    jsonl = audio / "out.jsonl"
    code, out, err = run(capsys, "transcribe", audio / "calls", "--model", model_folder, "--output", jsonl,
                         "--progress")
    assert code == 0 and "transcribe" in err  # the bar, asked for
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(audio / "calls" / "a.wav"), str(audio / "calls" / "b.flac")]
    assert [r["seconds"] for r in rows] == [1.0, 0.5625] and all(r["error"] is None for r in rows)
    assert [r["text"] for r in rows] == [line.split("\t")[1] for line in out.splitlines()]


def test_the_real_command(model_folder, audio):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "w2vc", "transcribe", str(audio / "calls"), str(audio / "gone.wav"),
                           "--model", str(model_folder)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert len(done.stdout.splitlines()) == 2
    assert one_line(done.stderr) == f"error: {audio / 'gone.wav'}: the file '{audio / 'gone.wav'}' does not exist"


# ---------------------------------------------------------------- issue 11's table, row by row

def test_a_folder_given_as_the_audio(capsys, model_folder, audio):
    (audio / "empty").mkdir()
    code, out, err = run(capsys, "transcribe", audio / "empty", "--model", model_folder)
    assert code == 2 and out == ""
    assert one_line(err) == f"error: {audio / 'empty'}: the folder '{audio / 'empty'}' holds no audio files " \
                            f"(.wav, .flac, .ogg)"


def test_cuda_on_a_cpu_only_torch(capsys, model_folder, audio, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run(capsys, "transcribe", audio / "c.wav", "--model", model_folder, "--device", "cuda")
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("python -m w2vc transcribe: error: device: 'cuda' asks for a CUDA GPU, but this PyTorch "
                           "sees none") and "use --device cpu" in line


@pytest.mark.parametrize("option", ["--batch-size", "--beam-width"])
@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_counts_below_one(capsys, model_folder, audio, option, value):
    with pytest.raises(SystemExit) as stop:
        main(["transcribe", str(audio / "c.wav"), "--model", str(model_folder), option, value])
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert one_line(err) == (f"python -m w2vc transcribe: error: argument {option}: expected a whole number of at "
                             f"least 1, got '{value}' (see python -m w2vc transcribe --help)")


def test_audio_too_short_names_the_file(capsys, model_folder, audio):
    soundfile.write(audio / "blip.wav", _wave(100), 16000)
    code, out, err = run(capsys, "transcribe", audio / "blip.wav", audio / "c.wav", "--model", model_folder)
    assert code == 2 and out.startswith(f"{audio / 'c.wav'}\t")  # the good file is still transcribed
    assert one_line(err) == (f"error: {audio / 'blip.wav'}: the audio in '{audio / 'blip.wav'}' has 100 samples, "
                             f"fewer than the 400 that the feature encoder needs for one frame (25 ms at 16000 Hz); "
                             f"pad it with zeros or drop it")


def test_one_missing_file_among_several(capsys, model_folder, audio):
    code, out, err = run(capsys, "transcribe", audio / "calls" / "a.wav", audio / "nope.wav", audio / "c.wav",
                         "--model", model_folder, "--output", audio / "o.jsonl")
    assert code == 2
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(audio / "calls" / "a.wav"), str(audio / "c.wav")]
    assert one_line(err) == f"error: {audio / 'nope.wav'}: the file '{audio / 'nope.wav'}' does not exist"
    rows = [json.loads(line) for line in (audio / "o.jsonl").read_text().splitlines()]
    assert [r["error"] is None for r in rows] == [True, False, True] and rows[1]["text"] is None


def test_model_folder_that_is_not_a_model(capsys, audio):
    (audio / "notes").mkdir()
    (audio / "notes" / "vocab.json").write_text("{}")
    code, out, err = run(capsys, "transcribe", audio / "c.wav", "--model", audio / "notes")
    assert code == 2
    assert one_line(err) == (f"python -m w2vc transcribe: error: model: {audio / 'notes'} is not a model folder: it "
                             f"has no config.json and no weights (model.safetensors or pytorch_model.bin); pass the "
                             f"folder that save_pretrained (or `python -m w2vc finetune-ctc`) wrote")


def test_model_folder_that_does_not_exist(capsys, audio):
    code, out, err = run(capsys, "transcribe", audio / "c.wav", "--model", "nope")
    assert code == 2
    assert one_line(err).startswith("python -m w2vc transcribe: error: model: the folder 'nope' does not exist; pass")


@pytest.mark.parametrize("kind", ["silence", "near-silence"])
def test_silence(capsys, model_folder, audio, kind):
    wave = np.zeros(48000, np.float32) if kind == "silence" else _wave(48000, 4, scale=1e-4)  # 3 s; -80 dBFS
    soundfile.write(audio / "quiet.wav", wave, 16000, subtype="FLOAT")
    code, out, err = run(capsys, "transcribe", audio / "quiet.wav", "--model", model_folder, "--output",
                         audio / "q.jsonl")
    assert code == 0 and out == f"{audio / 'quiet.wav'}\t\n"  # an empty transcript ...
    line = one_line(err)  # ... and a warning
    assert line.startswith(f"warning: {audio / 'quiet.wav'}: silent: RMS level ") and \
        line.endswith("dBFS is below -60 dBFS, so nothing was transcribed")
    row = json.loads((audio / "q.jsonl").read_text())
    assert row["text"] == "" and row["error"] is None and row["warning"].startswith("silent") and row["seconds"] == 3.0
    code, out, err = run(capsys, "transcribe", audio / "quiet.wav", "--model", model_folder, "--silence-db", "off")
    assert code == 0 and err == ""  # asked to transcribe anyway: the model's own guess, no warning


def test_empty_wav_file(capsys, model_folder, audio):
    (audio / "zero.wav").write_bytes(b"")
    code, out, err = run(capsys, "transcribe", audio / "zero.wav", "--model", model_folder)
    assert code == 2 and out == ""
    assert one_line(err) == (f"error: {audio / 'zero.wav'}: audio file '{audio / 'zero.wav'}' is empty (0 bytes): "
                             f"nothing was recorded or copied into it; record or copy it again")


# ---------------------------------------------------------------- other mistakes

def test_bfloat16_where_it_is_not_native(capsys, model_folder, audio, monkeypatch):
    monkeypatch.setattr(recognizer, "_bf16_supported", lambda device: False)
    code, out, err = run(capsys, "transcribe", audio / "c.wav", "--model", model_folder, "--dtype", "bfloat16")
    assert code == 2
    assert "dtype: bfloat16 asked for, but this CPU has no native bfloat16" in one_line(err)
    assert one_line(err).endswith("use --dtype float32")
    monkeypatch.setattr(recognizer, "_bf16_supported", lambda device: True)
    code, out, err = run(capsys, "transcribe", audio / "c.wav", "--model", model_folder, "--dtype", "bfloat16")
    assert code == 0 and out.startswith(str(audio / "c.wav"))


def test_no_command_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2
    assert one_line(capsys.readouterr().err).startswith("python -m w2vc: error: the following arguments are required")
    with pytest.raises(SystemExit) as stop:
        main(["transcibe"])
    assert stop.value.code == 2
    assert "invalid choice: 'transcibe'" in one_line(capsys.readouterr().err)


def test_bench_forwards_or_says_it_is_missing(capsys, monkeypatch):
    import importlib.util
    import types
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "w2vc.bench" else real(name, *a))
    code, out, err = run(capsys, "bench", "--quick")
    assert code == 2 and one_line(err).startswith("python -m w2vc bench: error: the benchmarks (w2vc.bench, chapter "
                                                  "13) are not in this installation")
    seen = []
    fake = types.ModuleType("w2vc.bench")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "w2vc.bench", fake)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "w2vc.bench" else real(name, *a))
    assert main(["bench", "--quick", "-n", "3"]) == 0 and seen == [["--quick", "-n", "3"]]


def test_ctrl_c_while_transcribing(capsys, model_folder, audio, monkeypatch, tmp_path):
    """Ctrl-C in transcribe: one line, exit code 130; the lines written before it stay in --output."""
    from w2vc import cli
    real = cli.transcribe_files

    def stopped_after_one(*args, **kwargs):
        for i, row in enumerate(real(*args, **kwargs)):
            if i == 1:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(cli, "transcribe_files", stopped_after_one)
    output = tmp_path / "out.jsonl"
    code, out, err = run(capsys, "transcribe", audio / "calls", "--model", model_folder, "--device", "cpu",
                         "--output", output)
    assert code == 130 and len(out.splitlines()) == 1
    assert one_line(err) == f"python -m w2vc transcribe: interrupted; the files transcribed before it are in {output}"
    assert [Path(json.loads(line)["path"]).name for line in output.read_text().splitlines()] == ["a.wav"]
    code, out, err = run(capsys, "transcribe", audio / "calls", "--model", model_folder, "--device", "cpu")
    assert code == 130 and one_line(err) == "python -m w2vc transcribe: interrupted"


def test_transcribe_files_in_python(model_folder, audio):
    from w2vc import transcribe_files
    (audio / "zero.wav").write_bytes(b"")
    rows = list(transcribe_files([audio / "calls", audio / "zero.wav", audio / "gone.flac"], model=model_folder,
                                 device="cpu", batch_size=2))
    assert [Path(r["path"]).name for r in rows] == ["a.wav", "b.flac", "zero.wav", "gone.flac"]
    assert [r["error"] is None for r in rows] == [True, True, False, False]
    assert [r["text"] for r in rows[:2]] == transcribe([audio / "calls" / "a.wav", audio / "calls" / "b.flac"],
                                                       model=model_folder, device="cpu")
    assert rows[2]["seconds"] is None and "is empty (0 bytes)" in rows[2]["error"]
