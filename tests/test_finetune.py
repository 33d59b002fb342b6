"""Chapter 12: `finetune-ctc` and `finetune-classify` on folders as a user's data looks, end to end on a few steps:
the best model kept, an interrupted run resumed, the output folders loaded by w2vc and by transformers."""
import json

import numpy as np
import pytest
import torch

from helpers import ATOL, audio_batch, w2vc_config
from w2vc import Utterance, Wav2Vec2ConformerModel, load_recognizer, save_folder
from w2vc import finetune
from w2vc.cli import main
from w2vc.training import load_checkpoint

transformers = pytest.importorskip("transformers")

WORDS = ["go", "stop", "left", "right"]


def _utterances(n, seed, voice=lambda i: ""):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        word = WORDS[i % len(WORDS)]
        length = 4000 + 400 * (i % 5)
        tone = np.sin(2 * np.pi * (200 + 150 * (i % len(WORDS))) * np.arange(length) / 16000)
        audio = (0.3 * tone + 0.02 * rng.standard_normal(length)).astype(np.float32)
        out.append(Utterance(audio, word, "command", voice(i)))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    save_folder(_utterances(12, 0), root / "train")
    save_folder(_utterances(4, 1), root / "valid")
    by_word = lambda i: WORDS[i % len(WORDS)]  # noqa: E731  (class folders named after the word)
    save_folder(_utterances(12, 2, by_word), root / "classes_train")
    save_folder(_utterances(8, 3, by_word), root / "classes_valid")
    body = root / "body"
    torch.manual_seed(0)
    Wav2Vec2ConformerModel(w2vc_config(feat_extract_norm="layer", hidden_act="swish")).save_pretrained(body)
    return root


def _train(capsys, *args):
    code = main([str(a) for a in args] + ["--device", "cpu"])
    out, err = capsys.readouterr()
    return code, out, err


def test_finetune_ctc_end_to_end(capsys, data, tmp_path):
    out = tmp_path / "recogniser"
    code, stdout, err = _train(capsys, "finetune-ctc", "--train", data / "train", "--valid", data / "valid",
                               "--model", data / "body", "--out", out, "--steps", 4, "--eval-every", 2,
                               "--batch-size", 4)
    assert code == 0, err
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("step")] == ["step 2/4", "step 4/4"]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["metric"] == "cer" and state["step"] in (2, 4) and stdout.startswith(f"best cer ")
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint", "config.json", "model.safetensors", "preprocessor_config.json", "special_tokens_map.json",
        "tokenizer_config.json", "trainer_state.json", "vocab.json"]
    vocab = json.loads((out / "vocab.json").read_text())
    assert set("gostplefrih") <= set(vocab)  # built from the transcripts
    model, processor = load_recognizer(out, device="cpu")
    theirs = transformers.Wav2Vec2ConformerForCTC.from_pretrained(str(out)).eval()
    assert transformers.Wav2Vec2Processor.from_pretrained(str(out)).tokenizer.get_vocab() == vocab
    x, mask = audio_batch([4000, 3000])
    with torch.no_grad():
        torch.testing.assert_close(model(x, attention_mask=mask).logits, theirs(x, attention_mask=mask).logits,
                                   atol=ATOL, rtol=0)


def test_finetune_classify_end_to_end(capsys, data, tmp_path):
    out = tmp_path / "classifier"
    code, stdout, err = _train(capsys, "finetune-classify", "--train", data / "classes_train", "--valid",
                               data / "classes_valid", "--model", data / "body", "--out", out, "--steps", 4,
                               "--eval-every", 2, "--batch-size", 4)
    assert code == 0, err
    assert stdout.startswith("best accuracy ")
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): w for i, w in enumerate(sorted(WORDS))}
    assert config["architectures"] == ["Wav2Vec2ConformerForSequenceClassification"]
    from w2vc import Wav2Vec2ConformerForSequenceClassification
    ours = Wav2Vec2ConformerForSequenceClassification.from_pretrained(out)
    theirs = transformers.Wav2Vec2ConformerForSequenceClassification.from_pretrained(str(out)).eval()
    assert theirs.config.id2label == ours.config.id2label
    x, mask = audio_batch([4000, 2600], seed=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, attention_mask=mask).logits, theirs(x, attention_mask=mask).logits,
                                   atol=ATOL, rtol=0)


def test_resume_after_an_interruption(data, tmp_path, monkeypatch):
    """Stopped after step 3 (the last checkpoint is step 2), then run again: the same weights as one run."""
    kwargs = dict(steps=6, eval_every=2, batch_size=4, device="cpu")
    finetune.finetune_ctc(data / "train", data / "valid", data / "body", tmp_path / "whole", **kwargs)

    real_train = finetune.train

    def interrupted(*args, hooks=(), **kw):
        def stop(step, model):
            if step == 3:
                raise KeyboardInterrupt
        return real_train(*args, hooks=[*hooks, stop], **kw)

    monkeypatch.setattr(finetune, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune.finetune_ctc(data / "train", data / "valid", data / "body", tmp_path / "resumed", **kwargs)
    assert torch.load(tmp_path / "resumed" / "checkpoint" / "last.pt", weights_only=False)["step"] == 2
    monkeypatch.setattr(finetune, "train", real_train)
    history = finetune.finetune_ctc(data / "train", data / "valid", data / "body", tmp_path / "resumed", **kwargs)
    assert [row["step"] for row in history if "cer" in row] == [2, 4, 6]
    whole = torch.load(tmp_path / "whole" / "checkpoint" / "last.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint" / "last.pt", weights_only=False)
    assert whole["step"] == resumed["step"] == 6
    for key, value in whole["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, atol=1e-6, rtol=0, msg=key)
    assert json.loads((tmp_path / "whole" / "trainer_state.json").read_text()) == \
        json.loads((tmp_path / "resumed" / "trainer_state.json").read_text())  # the same best model kept


def test_ctrl_c_is_one_line_and_the_same_command_resumes(capsys, data, tmp_path, monkeypatch):
    """Ctrl-C during finetune-ctc: one line that names the checkpoint and exit code 130, no traceback; the same
    command again says where it resumes; once more, that the run is complete."""
    args = ["finetune-ctc", "--train", data / "train", "--valid", data / "valid", "--model", data / "body",
            "--out", tmp_path / "run", "--steps", 6, "--eval-every", 2, "--batch-size", 4]
    real_train = finetune.train

    def interrupted_at(at):
        def fake(*a, hooks=(), **kw):
            def stop(step, model):
                if step == at:
                    raise KeyboardInterrupt
            return real_train(*a, hooks=[*hooks, stop], **kw)
        return fake

    monkeypatch.setattr(finetune, "train", interrupted_at(1))  # before the first evaluation (step 2)
    code, out, err = _train(capsys, *args)
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("python -m w2vc finetune-ctc: interrupted; no evaluation had finished, so "
                                            "nothing was kept: run the same command again to start over")
    monkeypatch.setattr(finetune, "train", interrupted_at(3))  # after the evaluation and checkpoint of step 2
    code, out, err = _train(capsys, *args)
    checkpoint = tmp_path / "run" / "checkpoint" / "last.pt"
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"python -m w2vc finetune-ctc: interrupted; run the same command again to "
                                            f"go on from the last evaluation ({checkpoint})")
    monkeypatch.setattr(finetune, "train", real_train)
    code, out, err = _train(capsys, *args)
    assert code == 0 and f"resuming from {checkpoint} (step 2 of 6)" in err.splitlines()
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("step")] == ["step 4/6", "step 6/6"]
    code, out, err = _train(capsys, *args)
    assert code == 0 and f"{checkpoint} is at step 6 of 6: the run is complete" in err.splitlines()
    assert not [line for line in err.splitlines() if line.startswith("step")]


def test_training_errors(capsys, data, tmp_path):
    def error(*args):
        code, out, err = _train(capsys, *args)
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    common = ["--valid", data / "valid", "--model", data / "body", "--out", tmp_path / "o"]
    assert error("finetune-ctc", "--train", tmp_path / "nowhere", *common).endswith(
        f"error: train: folder '{tmp_path / 'nowhere'}' does not exist")
    assert "error: model: the folder 'nope' does not exist" in error(
        "finetune-ctc", "--train", data / "train", "--valid", data / "valid", "--model", "nope", "--out", tmp_path)
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "a.wav").write_bytes((data / "train" / "00000.flac").read_bytes())  # flac bytes, .wav name
    import shutil
    shutil.copy(data / "train" / "00001.flac", tmp_path / "bare" / "b.flac")
    line = error("finetune-ctc", "--train", tmp_path / "bare", *common)
    assert "train: 2 of 2 audio files have no transcript beside them" in line and "write each one's words" in line
    line = error("finetune-classify", "--train", data / "train", *common)
    assert "train: " in line and "is not inside a class folder; put every file in a sub-folder named after its class" \
        in line
    (tmp_path / "other" / "maybe").mkdir(parents=True)
    shutil.copy(data / "train" / "00001.flac", tmp_path / "other" / "maybe" / "x.flac")
    line = error("finetune-classify", "--train", data / "classes_train", "--valid", tmp_path / "other", "--model",
                 data / "body", "--out", tmp_path / "o")
    assert "valid: class folders ['maybe'] do not exist in the training folder" in line
    line = error("finetune-ctc", "--train", data / "train", *common, "--batch-size", "50")
    assert "batch_size: expected at most the 12 training files, got 50" in line
