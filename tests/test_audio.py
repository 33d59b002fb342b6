"""w2vc.audio: loading, resampling, checking, pictures, and the feature extractor against transformers'."""
import json

import numpy as np
import pytest
import soundfile
import torch

from w2vc.audio import (
    FRAME_STRIDE, RECEPTIVE_FIELD, SAMPLING_RATE, BatchFeatures, Wav2Vec2FeatureExtractor, check_waveform,
    load_audio, needs_attention_mask, play, plot_spectrogram, plot_waveform, resample, save_audio, spectrogram,
    zero_mean_unit_var,
)

ATOL = 1e-6  # float32 parity with transformers' extractor (the same float32 arithmetic; observed difference 0)


def tone(freq=440.0, seconds=1.0, rate=SAMPLING_RATE, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def random_batch(lengths, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * rng.uniform(0.01, 0.5) + rng.uniform(-0.1, 0.1)).astype(dtype) for n in lengths]


# ---------------------------------------------------------------------------------------------- constants

def test_constants_describe_the_feature_encoder():
    assert SAMPLING_RATE == 16000
    assert RECEPTIVE_FIELD == 400 and FRAME_STRIDE == 320
    assert (SAMPLING_RATE - RECEPTIVE_FIELD) // FRAME_STRIDE + 1 == 49  # 49 frames per second, as the paper says


# ---------------------------------------------------------------------------------------------- check_waveform

def test_check_waveform_accepts_good_audio_and_returns_it():
    x = tone()
    assert check_waveform(x) is x
    batch = np.stack([x, x])
    assert check_waveform(batch, batched=True) is batch
    t = torch.from_numpy(x)
    assert check_waveform(t) is t
    assert check_waveform(x.astype(np.float64)) is not None
    assert check_waveform(x[:RECEPTIVE_FIELD]) is not None


@pytest.mark.parametrize("bad, error, match", [
    ([0.0] * 1000, TypeError, "must be a NumPy array or a torch tensor, got list"),
    ((np.ones(1000) * 100).astype(np.int16), TypeError, r"dtype int16, expected floating-point .* / 32768"),
    (torch.ones(1000, dtype=torch.int32), TypeError, "dtype torch.int32, expected floating-point"),
    (np.zeros((2, 1000), np.float32), ValueError, r"shape \(2, 1000\), expected one mono signal \(samples,\)"),
    (np.zeros((1, 1, 1000), np.float32), ValueError, r"shape \(1, 1, 1000\)"),
    (np.zeros(0, np.float32), ValueError, "is empty"),
    (np.full(1000, np.nan, np.float32), ValueError, "is all NaN"),
    (torch.full((1000,), float("nan")), ValueError, "is all NaN"),
    (np.where(np.arange(1000) < 3, np.nan, 0.1).astype(np.float32), ValueError, "has 3 NaN or infinite samples out of 1000"),
    (np.where(np.arange(1000) < 2, np.inf, 0.1).astype(np.float32), ValueError, "has 2 NaN or infinite samples"),
    (torch.tensor([0.1] * 999 + [float("-inf")]), ValueError, "has 1 NaN or infinite samples"),
    (np.zeros(RECEPTIVE_FIELD - 1, np.float32), ValueError, r"has 399 samples, fewer than the 400 .* \(25 ms at 16000 Hz\); pad"),
])
def test_check_waveform_errors(bad, error, match):
    with pytest.raises(error, match=match):
        check_waveform(bad)


def test_check_waveform_names_the_sampling_rate_and_the_fix():
    with pytest.raises(ValueError, match=r"^expected 16000 Hz audio, got 44100 Hz; resample first \(w2vc.audio.resample\)$"):
        check_waveform(tone(), sampling_rate=44100)


def test_check_waveform_batched_rank_and_argument_name():
    with pytest.raises(ValueError, match=r"^clip has shape \(2, 2, 500\), expected one mono signal \(samples,\) or \(batch, samples\)"):
        check_waveform(np.zeros((2, 2, 500), np.float32), batched=True, name="clip")
    with pytest.raises(ValueError, match="is empty"):
        check_waveform(np.zeros((3, 0), np.float32), batched=True)


# ---------------------------------------------------------------------------------------------- files

def test_load_audio_int16_wav_is_scaled_exactly(tmp_path):
    pcm = np.array([0, 1, -1, 16384, -32768, 32767] * 100, np.int16)
    soundfile.write(tmp_path / "a.wav", pcm, SAMPLING_RATE, subtype="PCM_16")
    x = load_audio(tmp_path / "a.wav")
    assert x.dtype == np.float32 and x.shape == (600,)
    np.testing.assert_array_equal(x, pcm.astype(np.float32) / 32768)


def test_load_audio_float_flac_and_float_wav(tmp_path):
    x = tone(amplitude=0.25)
    soundfile.write(tmp_path / "f.wav", x, SAMPLING_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "f.wav"), x)
    save_audio(tmp_path / "f.flac", x)
    np.testing.assert_array_equal(load_audio(tmp_path / "f.flac"), np.round(x * 32768) / 32768)


def test_load_audio_mixes_stereo_down_by_averaging(tmp_path):
    left, right = tone(amplitude=0.5), tone(300, amplitude=0.25)
    soundfile.write(tmp_path / "s.wav", np.stack([left, right], axis=1), SAMPLING_RATE, subtype="FLOAT")  # (L, 2)
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), (left + right) / 2, atol=1e-7)
    both = load_audio(tmp_path / "s.wav", mono=False)
    assert both.shape == (2, SAMPLING_RATE)                   # channels first
    np.testing.assert_array_equal(both[1], right)


def test_load_audio_resamples_to_16k(tmp_path):
    soundfile.write(tmp_path / "cd.wav", tone(1000, rate=44100), 44100, subtype="FLOAT")
    x = load_audio(tmp_path / "cd.wav")
    assert x.shape == (SAMPLING_RATE,)
    assert np.argmax(np.abs(np.fft.rfft(x))) == 1000          # one bin per Hz for one second
    assert load_audio(tmp_path / "cd.wav", sampling_rate=8000).shape == (8000,)
    assert load_audio(tmp_path / "cd.wav", sampling_rate=44100, mono=False).shape == (1, 44100)


def test_load_audio_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"audio file '.*missing.wav' does not exist"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage garbage garbage")
    with pytest.raises(ValueError, match=r"could not decode audio file '.*bad.wav' .*: it is corrupt or not in a format"):
        load_audio(tmp_path / "bad.wav")
    with pytest.raises(IsADirectoryError, match="is a folder, not an audio file; use w2vc.data.load_folder"):
        load_audio(tmp_path)
    (tmp_path / "zero.wav").write_bytes(b"")  # a file that was never written: 0 bytes, not even a header
    with pytest.raises(ValueError, match=r"audio file '.*zero.wav' is empty \(0 bytes\): nothing was recorded or "
                                         r"copied into it; record or copy it again"):
        load_audio(tmp_path / "zero.wav")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.int16), SAMPLING_RATE)
    with pytest.raises(ValueError, match=r"the audio in 'empty.wav' is empty"):
        load_audio(tmp_path / "empty.wav")
    soundfile.write(tmp_path / "nan.wav", np.full(100, np.nan, np.float32), SAMPLING_RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"the audio in 'nan.wav' is all NaN"):
        load_audio(tmp_path / "nan.wav")


def test_save_audio_round_trip_and_errors(tmp_path):
    x = np.round(tone() * 32768) / 32768
    for suffix in (".wav", ".flac"):
        path = save_audio(tmp_path / "sub" / f"x{suffix}", x)
        assert path.exists()
        np.testing.assert_array_equal(load_audio(path), x)
    ogg = load_audio(save_audio(tmp_path / "x.ogg", tone()))   # lossy, but the same tone
    assert abs(len(ogg) - SAMPLING_RATE) < 2000 and np.argmax(np.abs(np.fft.rfft(ogg[:SAMPLING_RATE // 2]))) == 220
    np.testing.assert_array_equal(load_audio(save_audio(tmp_path / "t.wav", torch.from_numpy(x))), x)
    clipped = load_audio(save_audio(tmp_path / "loud.wav", np.array([2.0, -2.0] * 300, np.float32)))
    assert clipped.max() == 32767 / 32768 and clipped.min() == -1.0
    with pytest.raises(ValueError, match=r"cannot tell the format from 'x.mp4': use one of .wav, .flac, .ogg"):
        save_audio(tmp_path / "x.mp4", x)
    with pytest.raises(ValueError, match="expected 8000 Hz audio|is empty"):
        save_audio(tmp_path / "e.wav", np.zeros(0, np.float32))


# ---------------------------------------------------------------------------------------------- resample

def test_resample_keeps_frequency_and_duration():
    x = tone(440, rate=22050)
    y = resample(x, 22050, SAMPLING_RATE)
    assert y.dtype == np.float32 and y.shape == (SAMPLING_RATE,)
    assert np.argmax(np.abs(np.fft.rfft(y))) == 440
    assert np.abs(y[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)


def test_resample_channels_first_tensor_and_identity():
    x = np.stack([tone(rate=44100), tone(300, rate=44100)])      # (2, L)
    y = resample(torch.from_numpy(x), 44100, SAMPLING_RATE)
    assert y.shape == (2, SAMPLING_RATE)
    np.testing.assert_allclose(y[1], resample(x[1], 44100, SAMPLING_RATE), atol=1e-6)
    same = resample(x[0], 44100, 44100)
    np.testing.assert_array_equal(same, x[0])
    assert same is not x[0]


@pytest.mark.parametrize("orig, target, arg", [(0, 16000, "orig_sr"), (-8000, 16000, "orig_sr"),
                                               (16000, True, "target_sr"), (16000, "16k", "target_sr")])
def test_resample_rejects_bad_rates(orig, target, arg):
    with pytest.raises(ValueError, match=f"{arg} must be a positive number of Hz"):
        resample(tone(), orig, target)


def test_resample_rejects_integer_samples():
    with pytest.raises(TypeError, match="dtype int16"):
        resample(np.zeros(100, np.int16), 8000, 16000)


# ---------------------------------------------------------------------------------------------- pictures, playback

def test_spectrogram_shape_and_known_bin():
    power = spectrogram(tone())
    assert power.shape == (201, 1 + (SAMPLING_RATE - 400) // 160) and power.dtype == np.float32
    assert np.all(power.argmax(axis=0) == 11)                  # 440 Hz / (16000 / 400 Hz per bin)
    assert spectrogram(tone()[:100]).shape == (201, 1)           # short input is padded to one window
    assert spectrogram(torch.from_numpy(tone()), n_fft=512, hop_length=256).shape == (257, 1 + (16000 - 512) // 256)


def test_plots_draw_words_and_return_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = [("one", 100, 4000), ("two", 5000, 9000)]
    ax = plot_waveform(tone(), words=words, title="t")
    assert ax.get_title() == "t" and len(ax.patches) == 2 and [t.get_text() for t in ax.texts] == ["one", "two"]
    ax = plot_spectrogram(tone(), words=words)
    assert len(ax.lines) == 4 and len(ax.images) == 1
    plt.close("all")


def test_play_gives_an_audio_player():
    player = play(torch.from_numpy(tone()))
    assert "<audio" in player._repr_html_()
    assert player.data[:4] == b"RIFF" and int.from_bytes(player.data[24:28], "little") == SAMPLING_RATE  # a WAV at 16 kHz
    with pytest.raises(ValueError, match="is all NaN"):
        play(np.full(100, np.nan, np.float32))


# ---------------------------------------------------------------------------------------------- feature extractor

hf = pytest.importorskip("transformers")


def hf_extractor(**kwargs):
    return hf.Wav2Vec2FeatureExtractor(**kwargs)


def assert_same(ours, theirs):
    """Our BatchFeatures equal transformers' BatchFeature: keys, types, shapes, dtypes, values."""
    assert set(ours) == set(theirs)
    for key in theirs:
        a, b = ours[key], theirs[key]
        if isinstance(a, list) and isinstance(b, np.ndarray):
            # return_tensors=None: transformers gives the rows as a list when it normalises and as one
            # NumPy array (an object array if ragged) when it does not; we always give a list of rows
            b = list(b)
        if isinstance(b, torch.Tensor):
            assert isinstance(a, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, key
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
        elif isinstance(b, np.ndarray):
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, key
            np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
        else:                                                    # lists of arrays, one per utterance
            assert len(a) == len(b), key
            for x, y in zip(a, b):
                assert x.dtype == y.dtype and x.shape == y.shape, key
                np.testing.assert_allclose(x, y, atol=ATOL, rtol=0)


CALLS = [
    dict(),
    dict(padding=True),
    dict(padding="longest", return_tensors="pt"),
    dict(padding=True, return_tensors="np"),
    dict(padding="max_length", max_length=3000, return_tensors="pt"),
    dict(padding="max_length", max_length=1500, truncation=True, return_tensors="pt"),
    dict(padding=True, pad_to_multiple_of=320, return_tensors="pt"),
    dict(padding=True, max_length=1000, truncation=True, pad_to_multiple_of=320, return_tensors="np"),
    dict(padding=False, max_length=700, truncation=True),
    dict(padding=True, return_attention_mask=False, return_tensors="pt"),
    dict(padding=True, return_attention_mask=True, return_tensors="pt"),
    dict(padding="do_not_pad", return_attention_mask=True),
]


@pytest.mark.parametrize("settings", [
    dict(return_attention_mask=True), dict(return_attention_mask=False),
    dict(return_attention_mask=True, do_normalize=False), dict(padding_value=-1.0, return_attention_mask=True),
])
@pytest.mark.parametrize("call", CALLS)
def test_extractor_matches_transformers_on_padded_batches(settings, call):
    batch = random_batch([2400, 800, 1700, 401])
    ours = Wav2Vec2FeatureExtractor(**settings)(batch, sampling_rate=16000, **call)
    theirs = hf_extractor(**settings)(batch, sampling_rate=16000, **call)
    assert_same(ours, theirs)


@pytest.mark.parametrize("call", [dict(), dict(return_tensors="pt"), dict(padding=True, return_tensors="np")])
def test_extractor_matches_transformers_on_single_waveforms_and_other_input_types(call):
    ours, theirs = Wav2Vec2FeatureExtractor(return_attention_mask=True), hf_extractor(return_attention_mask=True)
    x = random_batch([1234], seed=1, dtype=np.float64)[0]
    for raw in (x, x.astype(np.float32), x.tolist(), np.stack([x, x[::-1]]), [x, x[:500]] if call.get("padding") else [x]):
        assert_same(ours(raw, sampling_rate=16000, **call), theirs(raw, sampling_rate=16000, **call))
    as_tensor = ours(torch.from_numpy(x), sampling_rate=16000, **call)          # transformers wants NumPy here
    assert_same(as_tensor, theirs(x, sampling_rate=16000, **call))


def test_extractor_on_speech_like_signals_of_very_different_loudness():
    batch = [tone(200, 0.5, amplitude=0.9), tone(3000, 0.2, amplitude=1e-4), np.zeros(800, np.float32)]
    for mask in (True, False):
        call = dict(padding=True, return_tensors="pt", sampling_rate=16000)
        assert_same(Wav2Vec2FeatureExtractor(return_attention_mask=mask)(batch, **call),
                    hf_extractor(return_attention_mask=mask)(batch, **call))


def test_padded_batch_with_mask_equals_each_item_alone():
    batch = random_batch([3000, 1000, 450], seed=3)
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=True)
    features = extractor(batch, padding=True, return_tensors="pt")
    x, mask = features.input_values, features.attention_mask                      # (B, L), attribute access
    assert x.shape == mask.shape == (3, 3000) and mask.dtype == torch.int32
    assert mask.sum(dim=1).tolist() == [3000, 1000, 450]
    for b, item in enumerate(batch):
        alone = extractor(item, return_tensors="pt")["input_values"][0]
        assert torch.equal(x[b, : len(item)], alone)
        assert torch.all(x[b, len(item):] == 0)
        assert abs(float(alone.mean())) < 1e-5 and abs(float(alone.std(correction=0)) - 1) < 1e-4


def test_without_mask_padding_enters_the_statistics():
    batch = random_batch([3000, 1000], seed=4)
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=False)
    padded = extractor(batch, padding=True, return_tensors="np")
    assert list(padded) == ["input_values"]
    alone = extractor(batch[1], return_tensors="np")["input_values"][0]
    assert np.abs(padded["input_values"][1, :1000] - alone).max() > 1e-3
    np.testing.assert_allclose(padded["input_values"][1], zero_mean_unit_var(np.pad(batch[1], (0, 2000))), atol=0)


def test_zero_mean_unit_var():
    x = random_batch([1000], seed=5)[0]
    y = zero_mean_unit_var(np.pad(x, (0, 100)), 1000, padding_value=7.0)
    assert y.shape == (1100,) and y.dtype == np.float32
    assert np.all(y[1000:] == 7.0)
    assert abs(y[:1000].mean()) < 1e-5 and abs(y[:1000].std() - 1) < 1e-4
    assert np.all(np.isfinite(zero_mean_unit_var(np.zeros(500, np.float32))))   # eps keeps silence finite


def test_extractor_returns_lists_without_padding_and_batchfeatures_attributes():
    features = Wav2Vec2FeatureExtractor()(random_batch([500, 600]))
    assert isinstance(features, BatchFeatures) and isinstance(features["input_values"], list)
    assert [len(v) for v in features.input_values] == [500, 600]
    with pytest.raises(AttributeError):
        features.attention_mask


def test_extractor_settings_round_trip_through_transformers(tmp_path):
    ours = Wav2Vec2FeatureExtractor(return_attention_mask=True, padding_value=0.5, do_normalize=False)
    path = ours.save_pretrained(tmp_path / "ours")
    assert path.name == "preprocessor_config.json"
    theirs = hf.Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "ours")
    assert (theirs.return_attention_mask, theirs.padding_value, theirs.do_normalize, theirs.sampling_rate) == (True, 0.5, False, 16000)
    theirs.save_pretrained(tmp_path / "theirs")
    assert Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "theirs") == ours
    assert Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "theirs" / "preprocessor_config.json") == ours
    written = json.loads(path.read_text())
    for key, value in json.loads((tmp_path / "theirs" / "preprocessor_config.json").read_text()).items():
        if key in written:
            assert written[key] == value, key
    assert repr(ours).startswith("Wav2Vec2FeatureExtractor(do_normalize=False")


def test_from_pretrained_ignores_other_keys_and_rejects_other_extractors(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"processor_class": "Wav2Vec2Processor", "return_attention_mask": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor"}))
    assert Wav2Vec2FeatureExtractor.from_pretrained(tmp_path).return_attention_mask
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"feature_extractor_type": "WhisperFeatureExtractor"}))
    with pytest.raises(ValueError, match="describes a WhisperFeatureExtractor, not a Wav2Vec2FeatureExtractor"):
        Wav2Vec2FeatureExtractor.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no preprocessor_config.json at '.*nowhere'"):
        Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "nowhere")


def test_needs_attention_mask_from_transformers_configs(tmp_path):
    for norm, expected in (("layer", True), ("group", False)):
        config = hf.Wav2Vec2ConformerConfig(feat_extract_norm=norm)
        assert needs_attention_mask(config) is expected
        assert needs_attention_mask(norm) is expected
        assert needs_attention_mask(config.to_dict()) is expected
        config.save_pretrained(tmp_path / norm)
        assert needs_attention_mask(tmp_path / norm) is expected
        assert needs_attention_mask(str(tmp_path / norm / "config.json")) is expected
        assert Wav2Vec2FeatureExtractor.for_model(config).return_attention_mask is expected
    with pytest.raises(ValueError, match="feat_extract_norm must be 'layer' or 'group', got 'batch'"):
        needs_attention_mask("batch")
    with pytest.raises(ValueError, match="feat_extract_norm must be 'layer' or 'group', got None"):
        needs_attention_mask({})
    with pytest.raises(FileNotFoundError, match=r"no model config at .*missing.;"):
        needs_attention_mask(tmp_path / "missing")


def test_extractor_constructor_errors():
    with pytest.raises(ValueError, match="feature_size must be 1"):
        Wav2Vec2FeatureExtractor(feature_size=80)
    with pytest.raises(ValueError, match="padding_side must be 'right'"):
        Wav2Vec2FeatureExtractor(padding_side="left")


@pytest.mark.parametrize("raw, call, error, match", [
    (tone(), dict(sampling_rate=8000), ValueError, r"^expected 16000 Hz audio, got 8000 Hz; resample first"),
    (tone(), dict(padding="shortest"), ValueError, "padding must be True, False, 'longest', 'max_length' or 'do_not_pad'"),
    (tone(), dict(padding=1), ValueError, "padding must be True, False"),
    (tone(), dict(padding="max_length"), ValueError, "padding='max_length' needs max_length"),
    (tone(), dict(truncation=True), ValueError, "truncation=True needs max_length"),
    (tone(), dict(return_tensors="tf"), ValueError, "return_tensors must be 'pt', 'np' or None"),
    ([tone(), tone()[:1000]], dict(return_tensors="pt"), ValueError, r"cannot stack waveforms of lengths \[1000, 16000\]"),
    ([tone(), tone()[:1000]], dict(padding="max_length", max_length=2000, return_tensors="np"), ValueError, "cannot stack"),
    ("speech.wav", dict(), TypeError, "raw_speech must be a waveform or a batch of them .* got str"),
    ([], dict(), ValueError, "raw_speech is an empty list"),
    (np.zeros((2, 2, 1000), np.float32), dict(), ValueError, r"raw_speech has shape \(2, 2, 1000\), expected one mono waveform"),
    ([tone(), tone()[:399]], dict(padding=True), ValueError, r"raw_speech\[1\] has 399 samples, fewer than the 400"),
    (tone()[:10], dict(), ValueError, r"^raw_speech has 10 samples"),
    ([tone(), (tone() * 32767).astype(np.int16)], dict(padding=True), TypeError, r"raw_speech\[1\] has dtype int16"),
    ([tone(), np.full(1000, np.nan, np.float32)], dict(padding=True), ValueError, r"raw_speech\[1\] is all NaN"),
])
def test_extractor_errors(raw, call, error, match):
    with pytest.raises(error, match=match):
        Wav2Vec2FeatureExtractor(return_attention_mask=True)(raw, **call)
