"""w2vc.recognizer: load_recognizer and transcribe (chapter 9), on recognisers written by transformers and by w2vc.
The command line around them is tested in test_cli.py (chapter 12)."""
import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from helpers import hf_config, w2vc_config
from w2vc.audio import Wav2Vec2FeatureExtractor
from w2vc import (CTCTokenizer, Wav2Vec2ConformerForCTC, Wav2Vec2Processor, chunk_windows, frame_logits,
                  load_recognizer, transcribe)
from w2vc import recognizer

transformers = pytest.importorskip("transformers")

ENGLISH = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONIHSRDLUMWCFGYPBVKXJQZ'")


def _waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny recogniser written entirely by transformers: model, tokenizer and feature extractor."""
    folder = tmp_path_factory.mktemp("hf_recogniser")
    (folder / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(ENGLISH)}))
    tokenizer = transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"))
    extractor = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                                      do_normalize=True, return_attention_mask=True)
    transformers.Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(str(folder))
    torch.manual_seed(0)
    model = transformers.Wav2Vec2ConformerForCTC(hf_config(
        vocab_size=len(ENGLISH), feat_extract_norm="layer", position_embeddings_type="rotary"))
    with torch.no_grad():
        model.lm_head.weight.mul_(50)  # confident frames, so that greedy decoding is not a coin toss
    model.save_pretrained(str(folder))
    return folder


@functools.lru_cache(maxsize=4)
def _hf_recogniser(folder):
    processor = transformers.Wav2Vec2Processor.from_pretrained(str(folder))
    return processor, transformers.Wav2Vec2ConformerForCTC.from_pretrained(str(folder)).eval()


def _hf_transcribe(folder, wave):
    processor, model = _hf_recogniser(folder)
    inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = model(inputs.input_values, attention_mask=inputs.attention_mask).logits
    return processor.batch_decode(logits.argmax(-1))[0], logits[0]


def test_transcribe_matches_transformers_item_by_item(hf_folder):
    waves = _waves([16000, 9000, 23000])
    ours = transcribe(waves, model=hf_folder, batch_size=1, chunk_length_s=None, device="cpu")
    for wave, text in zip(waves, ours):
        theirs, _ = _hf_transcribe(hf_folder, wave)
        assert text == theirs
    assert any(ours)  # the transcripts are not all empty: the comparison means something
    assert transcribe(waves[0], model=hf_folder, chunk_length_s=None, device="cpu") == ours[0]  # one in, one out


def test_frame_logits_match_transformers(hf_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # transformers 5 writes processor_config.json: read without complaint
        model, processor = load_recognizer(hf_folder, device="cpu")
    assert processor.feature_extractor.return_attention_mask and processor.tokenizer.vocab_size == len(ENGLISH)
    wave = _waves([20000])[0]
    ours = frame_logits(model, processor, [wave], chunk_length_s=None)[0]
    _, theirs = _hf_transcribe(hf_folder, wave)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_files_at_any_rate_and_arrays_agree(hf_folder, tmp_path):
    wave = _waves([16000])[0]
    soundfile.write(tmp_path / "a.wav", wave, 16000)
    soundfile.write(tmp_path / "b.flac", wave, 16000)
    from_files = transcribe([tmp_path / "a.wav", str(tmp_path / "b.flac")], model=hf_folder, device="cpu")
    assert from_files == [transcribe(wave, model=hf_folder, device="cpu")] * 2
    soundfile.write(tmp_path / "c.wav", _waves([8000], seed=3)[0], 8000)  # resampled on reading
    assert isinstance(transcribe(tmp_path / "c.wav", model=hf_folder, device="cpu"), str)


def test_equal_lengths_batch_like_single_items(hf_folder):
    waves = _waves([12000, 12000, 12000], seed=5)
    assert transcribe(waves, model=hf_folder, batch_size=3, device="cpu") == \
        transcribe(waves, model=hf_folder, batch_size=1, device="cpu")


def test_beam_search_option(hf_folder):
    waves = _waves([16000, 12000], seed=2)
    greedy = transcribe(waves, model=hf_folder, device="cpu")
    beam = transcribe(waves, model=hf_folder, beam_width=8, device="cpu")
    assert len(beam) == 2 and all(isinstance(t, str) for t in beam)
    model, processor = load_recognizer(hf_folder, device="cpu")
    one = transcribe(waves, model, processor, beam_width=1)
    assert one == greedy


def test_progress_bar_for_many_files(hf_folder, capsys):
    waves = _waves([4000] * 3)
    transcribe(waves, model=hf_folder, device="cpu", batch_size=2)
    assert "transcribe" in capsys.readouterr().err
    transcribe(waves, model=hf_folder, device="cpu", progress=False)
    assert "transcribe" not in capsys.readouterr().err


# ---------------------------------------------------------------- long audio in windows

def test_chunk_windows_tile_the_recording():
    for n in [1000, 96000, 96001, 200_000, 321_111, 1_000_000]:
        windows = chunk_windows(n, 64000, 9600, 320)
        assert windows[0][2] == 0 and windows[-1][3] == n and windows[-1][1] == n
        for (s, e, a, b), nxt in zip(windows, windows[1:] + [None]):
            assert s % 320 == 0 and e - s < 64000 + 320 and s <= a < b <= e
            if nxt is not None:
                assert nxt[2] == b and a % 320 == 0 and b % 320 == 0
                assert b - s >= 9600 or s == 0  # a kept frame has context on its left...
                assert e - b >= 9600  # ... and on its right


def test_chunked_logits_equal_whole_logits_for_a_local_model():
    """Without conformer layers the model only sees its conv receptive field: then stitched windows must give
    exactly the logits of the whole recording (so the stitching puts every frame in its place)."""
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForCTC(w2vc_config(num_hidden_layers=0, feat_extract_norm="layer",
                                                position_embeddings_type="rotary")).eval()
    tok = CTCTokenizer({s: i for i, s in enumerate(ENGLISH[:12])})
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=True), tok)
    # the small test config has a frame stride of 80 samples = 5 ms; windows of 0.1 s with 0.01 s overlaps
    waves = _waves([16000, 3333, 800], seed=1)
    whole = frame_logits(model, processor, waves, chunk_length_s=None)
    chunked = frame_logits(model, processor, waves, chunk_length_s=0.1, stride_length_s=0.01, batch_size=3)
    for a, b, wave in zip(whole, chunked, waves):
        assert a.shape == b.shape == (int(model._get_feat_extract_output_lengths(len(wave))), 12)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_chunked_long_audio_with_a_conformer(hf_folder):
    model, processor = load_recognizer(hf_folder, device="cpu")
    wave = _waves([50_000], seed=4)[0]
    whole = frame_logits(model, processor, [wave], chunk_length_s=None)[0]
    chunked = frame_logits(model, processor, [wave], chunk_length_s=1.0, stride_length_s=0.2)[0]
    assert chunked.shape == whole.shape
    # a chunk longer than the audio changes nothing
    torch.testing.assert_close(frame_logits(model, processor, [wave], chunk_length_s=10.0)[0], whole)
    assert isinstance(transcribe(wave, model=hf_folder, chunk_length_s=1.0, device="cpu"), str)


# ---------------------------------------------------------------- our own folders, and errors

@pytest.fixture(scope="module")
def w2vc_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("w2vc_recogniser")
    tok = CTCTokenizer.from_texts(["go left", "three two one"])
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForCTC(w2vc_config(vocab_size=tok.vocab_size, feat_extract_norm="layer"))
    model.save_pretrained(folder)
    Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), tok).save_pretrained(folder)
    return folder


def test_our_folder_loads_in_transformers_and_transcribes_alike(w2vc_folder):
    wave = _waves([16000], seed=7)[0]
    theirs, _ = _hf_transcribe(w2vc_folder, wave)
    assert transcribe(wave, model=w2vc_folder, chunk_length_s=None, device="cpu") == theirs


def test_processor_round_trip_with_transformers(w2vc_folder, tmp_path):
    ours = Wav2Vec2Processor.from_pretrained(w2vc_folder)
    theirs = transformers.Wav2Vec2Processor.from_pretrained(str(w2vc_folder))
    waves = _waves([5000, 3000])
    a = ours(waves, text=["go left", "one"], sampling_rate=16000)
    b = theirs(audio=waves, text=["go left", "one"], sampling_rate=16000, padding=True, return_tensors="pt")
    torch.testing.assert_close(a["input_values"], b["input_values"])
    assert a["attention_mask"].tolist() == b["attention_mask"].tolist()
    hf_labels = b["labels"].masked_fill(b["labels"] == theirs.tokenizer.pad_token_id, -100)
    assert a["labels"].tolist() == hf_labels.tolist()
    theirs.save_pretrained(str(tmp_path))
    again = Wav2Vec2Processor.from_pretrained(tmp_path)
    assert again.tokenizer.vocab == ours.tokenizer.vocab and again.feature_extractor == ours.feature_extractor


def test_processor_errors(w2vc_folder):
    processor = Wav2Vec2Processor.from_pretrained(w2vc_folder)
    with pytest.raises(ValueError, match=r"text: transcripts \[1\] are empty; CTC would train them towards 'all blank'"):
        processor(text=["go", " "])
    with pytest.raises(ValueError, match=r"Wav2Vec2Processor: expected audio, text or both, got neither"):
        processor()
    with pytest.raises(ValueError, match=r"expected 16000 Hz audio, got 8000 Hz"):
        processor(_waves([4000]), sampling_rate=8000)


def test_wrong_sampling_rate(hf_folder):
    with pytest.raises(ValueError, match=r"sampling_rate: expected 16000 Hz audio, got 44100 Hz; resample first"):
        transcribe(_waves([44100])[0], model=hf_folder, sampling_rate=44100)


def test_folder_without_vocabulary(hf_folder, tmp_path):
    for name in ("config.json", "model.safetensors", "processor_config.json"):
        (tmp_path / name).write_bytes((hf_folder / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=r"model: the folder .* has no vocab.json, so the model's output ids "
                                                r"cannot be turned into text"):
        transcribe(_waves([4000])[0], model=tmp_path)


def test_folder_errors(hf_folder, w2vc_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model: the folder '.*nowhere' does not exist; pass a recogniser's folder"):
        load_recognizer(tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match=r"model: expected a checkpoint folder, got the file '.*config.json'"):
        load_recognizer(hf_folder / "config.json")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "vocab.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"model: .*notes is not a model folder: it has no config.json and no "
                                                r"weights \(model.safetensors or pytorch_model.bin\)"):
        load_recognizer(tmp_path / "notes")
    # a pretrained body without a CTC head
    body = tmp_path / "body"
    torch.manual_seed(0)
    transformers.Wav2Vec2ConformerModel(hf_config(vocab_size=len(ENGLISH))).save_pretrained(str(body))
    for name in ("vocab.json", "tokenizer_config.json", "processor_config.json"):
        (body / name).write_bytes((hf_folder / name).read_bytes())
    with pytest.raises(ValueError, match=r"model: the weights in .* have no CTC head \(lm_head\): it is a pretrained body"):
        load_recognizer(body)
    # a vocabulary that belongs to another model
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("config.json", "model.safetensors", "processor_config.json"):
        (mixed / name).write_bytes((hf_folder / name).read_bytes())
    for name in ("vocab.json", "tokenizer_config.json"):
        (mixed / name).write_bytes((w2vc_folder / name).read_bytes())
    with pytest.raises(ValueError, match=r"model: config.json says vocab_size=32, pad_token_id=0, but vocab.json has 15 "
                                         r"symbols .* the folder mixes files of different models"):
        load_recognizer(mixed)
    # no preprocessor_config.json: a warning, and the extractor that the model's config implies
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json"):
        (bare / name).write_bytes((hf_folder / name).read_bytes())
    (bare / "processor_config.json").unlink(missing_ok=True)
    with pytest.warns(UserWarning, match=r"has no preprocessor_config.json; using Wav2Vec2FeatureExtractor\("):
        _, processor = load_recognizer(bare, device="cpu")
    assert processor.feature_extractor.return_attention_mask  # a layer-norm model


def test_model_object_needs_its_processor(hf_folder):
    model, _ = load_recognizer(hf_folder, device="cpu")
    with pytest.raises(ValueError, match=r"processor: a model object needs its processor"):
        transcribe(_waves([4000])[0], model)


def test_chunk_errors():
    with pytest.raises(ValueError, match=r"stride_length_s: the two overlaps \(64000 samples\) leave nothing"):
        chunk_windows(100_000, 64000, 32000, 320)
    with pytest.raises(ValueError, match=r"must be multiples of the frame stride 320"):
        chunk_windows(100_000, 64001, 3200, 320)


def test_audio_errors(hf_folder, tmp_path):
    with pytest.raises(ValueError, match=r"audio has 100 samples, fewer than the 400"):
        transcribe(np.zeros(100, dtype=np.float32), model=hf_folder)
    with pytest.raises(FileNotFoundError):
        transcribe(tmp_path / "missing.wav", model=hf_folder)


def test_short_audio_errors_name_the_file(hf_folder, tmp_path):
    soundfile.write(tmp_path / "short.wav", np.full(100, 0.1, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match=r"the audio in '.*short.wav' has 100 samples, fewer than the 400"):
        transcribe(tmp_path / "short.wav", model=hf_folder, device="cpu")
    with pytest.raises(ValueError, match=r"audio_or_paths\[1\] has 100 samples, fewer than the 400"):
        transcribe([_waves([4000])[0], np.full(100, 0.1, dtype=np.float32)], model=hf_folder, device="cpu")


@pytest.mark.parametrize("name,value", [("batch_size", 0), ("beam_width", 0), ("batch_size", 2.5),
                                        ("beam_width", -3), ("chunk_length_s", 0.0)])
def test_settings_must_be_positive(hf_folder, name, value):
    with pytest.raises(ValueError, match=rf"{name}: expected (a whole number of at least 1|a number above 0)"):
        transcribe(_waves([4000])[0], model=hf_folder, device="cpu", **{name: value})


def test_device_errors(hf_folder, monkeypatch):
    with pytest.raises(ValueError, match=r"device: expected a device such as 'cpu' or 'cuda', got 'gpu'"):
        transcribe(_waves([4000])[0], model=hf_folder, device="gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device: 'cuda' asks for a CUDA GPU, but this PyTorch sees none .*"
                                         r"use device='cpu'"):
        transcribe(_waves([4000])[0], model=hf_folder, device="cuda")


# ---------------------------------------------------------------- silence

@pytest.mark.parametrize("kind", ["zeros", "hiss"])
def test_silence_gives_an_empty_transcript_and_a_warning(hf_folder, tmp_path, kind):
    """3 s of digital silence, or of noise at -80 dBFS: nothing to transcribe (run anyway, chapter 9's recogniser says 'se')."""
    wave = np.zeros(48000, dtype=np.float32) if kind == "zeros" else (1e-4 * _waves([48000], seed=1)[0] / 0.1)
    soundfile.write(tmp_path / "quiet.wav", wave, 16000, subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"'.*quiet.wav' is silent \(RMS level (-inf|-80) dBFS, below "
                                         r"silence_threshold_db=-60\): its transcript is empty"):
        assert transcribe(tmp_path / "quiet.wav", model=hf_folder, device="cpu") == ""
    loud = _waves([16000], seed=2)[0]
    with pytest.warns(UserWarning, match=r"audio_or_paths\[0\] is silent"):
        texts = transcribe([wave, loud], model=hf_folder, device="cpu")
    assert texts[0] == "" and texts[1] == transcribe(loud, model=hf_folder, device="cpu") != ""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        anyway = transcribe(wave, model=hf_folder, device="cpu", silence_threshold_db=None)
    assert anyway == _hf_transcribe(hf_folder, wave)[0]  # the model's own answer, as transformers gives it


def test_rms_db():
    assert recognizer.rms_db(np.zeros(10)) == -np.inf
    assert abs(recognizer.rms_db(np.ones(10)) - 0.0) < 1e-9
    assert abs(recognizer.rms_db(np.full(10, 0.001)) + 60.0) < 1e-9


# ---------------------------------------------------------------- bfloat16

def test_bfloat16_close_to_float32(hf_folder, monkeypatch):
    monkeypatch.setattr(recognizer, "_bf16_supported", lambda device: True)
    model, processor = load_recognizer(hf_folder, device="cpu")
    wave = _waves([16000], seed=3)[0]
    full = frame_logits(model, processor, [wave])[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = frame_logits(model, processor, [wave])[0]
    assert half.dtype == torch.float32 and half.shape == full.shape
    assert 0 < (half - full).abs().max() < 0.1 * full.abs().max()  # bf16 keeps 8 bits of mantissa: close, not equal
    waves = _waves([16000, 9000], seed=3)
    assert transcribe(waves, model, processor, dtype="bfloat16") == transcribe(waves, model, processor,
                                                                               dtype=torch.bfloat16)


def test_bfloat16_refused_where_it_is_not_native(hf_folder, monkeypatch):
    monkeypatch.setattr(recognizer, "_bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match=r"dtype: bfloat16 asked for, but this CPU has no native bfloat16 arithmetic "
                                         r".* use dtype='float32'"):
        transcribe(_waves([4000])[0], model=hf_folder, device="cpu", dtype="bfloat16")
    with pytest.raises(ValueError, match=r"dtype: expected 'float32' or 'bfloat16', got 'float16'"):
        transcribe(_waves([4000])[0], model=hf_folder, device="cpu", dtype="float16")


def test_bf16_probe_on_this_machine():
    """The probe answers with a bool for the CPU; on x86 it is the AVX512-BF16/AMX flag."""
    import platform
    answer = recognizer._bf16_supported(torch.device("cpu"))
    assert isinstance(answer, bool)
    if platform.machine() == "x86_64":
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        if flags:
            assert answer == (" avx512_bf16" in flags or " amx_tile" in flags)
