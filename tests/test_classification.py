"""Chapter 10: utterance and frame classification heads, against transformers and on their own."""
import warnings

import pytest
import torch
import torch.nn.functional as F

from w2vc.classification import (
    IGNORE_INDEX,
    Wav2Vec2ConformerForAudioFrameClassification,
    Wav2Vec2ConformerForSequenceClassification,
    check_class_labels,
    collect_hidden_states,
    frame_labels_from_words,
    masked_mean,
    pad_hidden_states,
    weighted_layer_sum,
)
from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.data import Word

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), conv_bias=True, feat_extract_norm="layer",
             num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, conv_depthwise_kernel_size=3,
             classifier_proj_size=12, num_labels=5)
HEADS = ["ForSequenceClassification", "ForAudioFrameClassification"]
OURS = {"ForSequenceClassification": Wav2Vec2ConformerForSequenceClassification,
        "ForAudioFrameClassification": Wav2Vec2ConformerForAudioFrameClassification}


def small_config(**overrides):
    return Wav2Vec2ConformerConfig(**{**SMALL, **overrides})


def transformers_folder(tmp_path, head, **overrides):
    """Save a transformers head model with random weights (norms, biases and layer weights too) to a folder."""
    transformers = pytest.importorskip("transformers")
    from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as hf
    config = transformers.Wav2Vec2ConformerConfig(**{**SMALL, **overrides})
    torch.manual_seed(0)
    model = getattr(hf, "Wav2Vec2Conformer" + head)(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # move every parameter off its initial value (LayerNorms are 1 and 0)
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save_pretrained(tmp_path)
    return model


def padded_batch(lengths=(1600, 1000, 700), seed=0):
    g = torch.Generator().manual_seed(seed)
    S = max(lengths)
    x = torch.randn(len(lengths), S, generator=g)
    mask = (torch.arange(S)[None] < torch.tensor(lengths)[:, None]).long()  # (B, S)
    return x * mask, mask


def load(cls, folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_pretrained(folder)


# ---- parity with transformers -----------------------------------------------------------------------
@pytest.mark.parametrize("position", ["rotary", "relative"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("head", HEADS)
def test_same_logits_and_loss_as_transformers(tmp_path, head, weighted, position):
    theirs = transformers_folder(tmp_path, head, use_weighted_layer_sum=weighted, position_embeddings_type=position)
    ours = load(OURS[head], tmp_path)
    x, mask = padded_batch()
    T = ours._get_feat_extract_output_lengths(x.shape[1])
    if head == "ForSequenceClassification":
        labels = their_labels = torch.tensor([0, 4, 2])
    else:
        labels = torch.randint(0, 5, (3, T), generator=torch.Generator().manual_seed(1))
        their_labels = F.one_hot(labels, 5)  # transformers takes one-hot rows and their argmax
    with torch.no_grad():
        a = theirs(x, attention_mask=mask, labels=their_labels, output_hidden_states=True)
        b = ours(x, attention_mask=mask, labels=labels, output_hidden_states=True)
        c = theirs(x[:1, :1600])
        d = ours(x[:1, :1600])
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.loss, a.loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d.logits, c.logits, rtol=1e-5, atol=1e-5)
    assert len(b.hidden_states) == len(a.hidden_states) == SMALL["num_hidden_layers"] + 1
    if weighted:
        assert b.hidden_states is not None
        torch.testing.assert_close(ours.layer_weights, theirs.layer_weights)


def test_frame_labels_in_one_hot_form_give_the_same_loss_as_indices():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForAudioFrameClassification(small_config()).eval()
    x, mask = padded_batch()
    T = model._get_feat_extract_output_lengths(x.shape[1])
    labels = torch.randint(0, 5, (3, T), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model(x, mask, labels=labels).loss
        b = model(x, mask, labels=F.one_hot(labels, 5).float()).loss
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("head", HEADS)
def test_folder_saved_by_w2vc_loads_in_transformers(tmp_path, head, weighted):
    transformers = pytest.importorskip("transformers")
    from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as hf
    torch.manual_seed(0)
    ours = OURS[head](small_config(use_weighted_layer_sum=weighted)).eval()
    ours.save_pretrained(tmp_path)
    theirs, info = getattr(hf, "Wav2Vec2Conformer" + head).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    x, mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(ours(x, mask).logits, theirs.eval()(x, attention_mask=mask).logits,
                                   rtol=1e-5, atol=1e-5)


def test_state_dict_keys_are_transformers_keys():
    transformers = pytest.importorskip("transformers")
    from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as hf
    for head in HEADS:
        for weighted in (False, True):
            theirs = getattr(hf, "Wav2Vec2Conformer" + head)(
                transformers.Wav2Vec2ConformerConfig(**SMALL, use_weighted_layer_sum=weighted))
            ours = OURS[head](small_config(use_weighted_layer_sum=weighted))
            assert set(ours.state_dict()) == set(theirs.state_dict())


# ---- behaviour ----------------------------------------------------------------------------------------
def test_regression_with_one_label_uses_mean_squared_error():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForSequenceClassification(small_config(num_labels=1)).eval()
    x, mask = padded_batch()
    targets = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        out = model(x, mask, labels=targets)
    assert out.logits.shape == (3, 1)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits[:, 0], targets))


def test_padding_content_does_not_change_the_result():
    torch.manual_seed(0)
    for cls in OURS.values():
        model = cls(small_config(use_weighted_layer_sum=True)).eval()
        x, mask = padded_batch()
        noisy = x + (1 - mask) * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            a, b = model(x, mask).logits, model(noisy, mask).logits
        if a.dim() == 3:  # frame logits: compare the real frames only
            frames = model._get_feature_vector_attention_mask(a.shape[1], mask)
            a, b = a[frames], b[frames]
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_masked_mean_of_a_padded_batch_equals_each_item_alone():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 4, generator=g)
    lengths = torch.tensor([7, 3, 1])
    mask = torch.arange(7)[None] < lengths[:, None]
    pooled = masked_mean(x, mask)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(pooled[b], x[b, :n].mean(0))
    torch.testing.assert_close(masked_mean(x), x.mean(1))


def test_weighted_layer_sum_is_a_convex_mixture():
    g = torch.Generator().manual_seed(0)
    layers = [torch.randn(2, 5, 3, generator=g) for _ in range(4)]
    torch.testing.assert_close(weighted_layer_sum(layers, torch.zeros(4)), torch.stack(layers).mean(0))
    picked = weighted_layer_sum(layers, torch.tensor([0.0, 0.0, 50.0, 0.0]))
    torch.testing.assert_close(picked, layers[2])


def test_freezing():
    model = Wav2Vec2ConformerForSequenceClassification(small_config(use_weighted_layer_sum=True))
    total = model.num_parameters()
    model.freeze_feature_encoder()
    encoder = sum(p.numel() for p in model.wav2vec2_conformer.feature_extractor.parameters())
    assert model.num_parameters(only_trainable=True) == total - encoder
    model.freeze_base_model()
    head = {n for n, p in model.named_parameters() if p.requires_grad}
    assert head == {"layer_weights", "projector.weight", "projector.bias", "classifier.weight", "classifier.bias"}


def test_eval_is_deterministic_and_train_differs_with_dropout():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForSequenceClassification(small_config(hidden_dropout=0.3)).eval()
    x, mask = padded_batch()
    with torch.no_grad():
        a, b = model(x, mask).logits, model(x, mask).logits
        assert torch.equal(a, b)
        model.train()
        assert not torch.allclose(model(x, mask).logits, a)


def test_frame_labels_ignore_index_leaves_frames_out_of_the_loss():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForAudioFrameClassification(small_config()).eval()
    x, mask = padded_batch()
    T = model._get_feat_extract_output_lengths(x.shape[1])
    labels = torch.randint(0, 5, (3, T), generator=torch.Generator().manual_seed(0))
    frames = model._get_feature_vector_attention_mask(T, mask)
    labels[~frames] = IGNORE_INDEX
    with torch.no_grad():
        out = model(x, mask, labels=labels)
    expected = F.cross_entropy(out.logits[frames], labels[frames])
    torch.testing.assert_close(out.loss, expected)


def test_frame_labels_from_word_boundaries():
    config = Wav2Vec2ConformerConfig()  # receptive field 400, stride 320: frame t is centred on 320 t + 199.5
    words = [Word("go", 300, 1000), Word("stop", 1400, 2100)]
    labels = frame_labels_from_words(words, 8, {"go": 1, "stop": 2}, silence=0, config=config)
    # centres: 199.5, 519.5, 839.5, 1159.5, 1479.5, 1799.5, 2119.5, 2439.5
    assert labels.tolist() == [0, 1, 1, 0, 2, 2, 0, 0]
    assert frame_labels_from_words(words, 3, lambda w: len(w), silence=9).tolist() == [9, 2, 2]


# ---- errors -------------------------------------------------------------------------------------------
def test_sequence_labels_outside_num_labels_are_an_error():
    model = Wav2Vec2ConformerForSequenceClassification(small_config()).eval()
    x, mask = padded_batch()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\] because config.num_labels = 5, got \[5\]"):
        model(x, mask, labels=torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match=r"got \[-1\]"):
        model(x, mask, labels=torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="labels must be integer class indices"):
        model(x, mask, labels=torch.tensor([0.0, 1.0, 1.0]))


def test_frame_labels_whose_length_does_not_match_the_frames_are_an_error():
    model = Wav2Vec2ConformerForAudioFrameClassification(small_config()).eval()
    x, mask = padded_batch()
    T = model._get_feat_extract_output_lengths(x.shape[1])
    with pytest.raises(ValueError, match=rf"labels must have shape \(B, T\) = \(3, {T}\).*got \(3, {T + 1}\)"):
        model(x, mask, labels=torch.zeros(3, T + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have shape"):
        model(x, mask, labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have shape"):
        model(x, mask, labels=torch.zeros(3, T, 4))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\]"):
        model(x, mask, labels=torch.full((3, T), 7))


def test_adapter_is_an_error_for_classification_heads():
    for cls in OURS.values():
        with pytest.raises(ValueError, match="set config.add_adapter=False"):
            cls(small_config(add_adapter=True))


def test_helper_errors():
    with pytest.raises(ValueError, match="layer_weights has 3 entries but hidden_states holds 2 layers"):
        weighted_layer_sum([torch.zeros(1, 2, 3)] * 2, torch.zeros(3))
    with pytest.raises(ValueError, match=r"frame_mask must have shape \(B, T\) = \(2, 3\), got \(2, 4\)"):
        masked_mean(torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="frame_mask marks no frame of some utterance as real"):
        masked_mean(torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"got \[3, 9\]"):
        check_class_labels(torch.tensor([0, 3, 9, 3]), 3)
    check_class_labels(torch.tensor([0, IGNORE_INDEX, 2]), 3, ignore_index=IGNORE_INDEX)


def test_weighted_head_needs_every_hidden_state():
    model = Wav2Vec2ConformerForSequenceClassification(small_config(use_weighted_layer_sum=True)).eval()
    with pytest.raises(ValueError, match=r"config.use_weighted_layer_sum needs every hidden state.*got one \(B, T, C\)"):
        model.head_forward(torch.zeros(2, 3, SMALL["hidden_size"]))


# ---- a frozen body run once ---------------------------------------------------------------------------
@pytest.mark.parametrize("head", HEADS)
def test_head_on_collected_hidden_states_equals_the_full_forward(head):
    """collect_hidden_states + pad_hidden_states + head_forward = the model on the same padded batch.

    (Not = each utterance alone: like transformers', the conformer's depthwise convolution sees the padded
    frames after the first block, so padding changes the real frames slightly; see the notebook.)
    """
    from w2vc.audio import Wav2Vec2FeatureExtractor
    torch.manual_seed(0)
    model = OURS[head](small_config(use_weighted_layer_sum=True)).eval()
    g = torch.Generator().manual_seed(0)
    waves = [torch.randn(n, generator=g).numpy() for n in (1600, 700, 1000)]
    kept = collect_hidden_states(model.wav2vec2_conformer, waves, batch_size=3)
    frames = [model._get_feat_extract_output_lengths(len(w)) for w in waves]
    assert [tuple(k.shape) for k in kept] == [(SMALL["num_hidden_layers"] + 1, T, SMALL["hidden_size"]) for T in frames]
    hidden, frame_mask = pad_hidden_states(kept)
    assert hidden.shape == (SMALL["num_hidden_layers"] + 1, 3, max(frames), SMALL["hidden_size"])
    assert frame_mask.sum(-1).tolist() == frames
    batch = Wav2Vec2FeatureExtractor(return_attention_mask=True)(waves, padding=True, return_tensors="pt")
    with torch.no_grad():
        cached = model.head_forward(hidden, frame_mask).logits
        direct = model(batch["input_values"], batch["attention_mask"]).logits
    if cached.dim() == 3:  # frame logits: the real frames
        cached, direct = cached[frame_mask], direct[frame_mask]
    torch.testing.assert_close(cached, direct, rtol=1e-5, atol=1e-5)


# ---- a head on a checkpoint of the body alone (the chapters' path: pretrained body, new head) -----------
_LOAD_HEAD = """
import hashlib, sys, warnings, torch
import w2vc
warnings.simplefilter("ignore")
torch.manual_seed(0)
model = getattr(w2vc, sys.argv[2]).from_pretrained(sys.argv[1], use_weighted_layer_sum=True, num_labels=5)
print(hashlib.sha256(b"".join(v.contiguous().numpy().tobytes() for v in model.state_dict().values())).hexdigest())
"""


@pytest.mark.parametrize("head", ["Wav2Vec2ConformerForSequenceClassification",
                                  "Wav2Vec2ConformerForAudioFrameClassification", "Wav2Vec2ConformerForXVector"])
def test_head_on_a_body_checkpoint_starts_from_equal_layer_scores_every_time(tmp_path, head):
    """from_pretrained builds on the meta device: every weight the checkpoint lacks must still get its
    initial value (layer_weights was once left as whatever the fresh memory held, so the same
    seed gave other trainings from run to run)."""
    import subprocess
    import sys

    import w2vc
    torch.manual_seed(0)
    w2vc.Wav2Vec2ConformerModel(small_config()).save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(w2vc, head).from_pretrained(tmp_path, use_weighted_layer_sum=True)
    L = model.config.num_hidden_layers + 1
    assert torch.equal(model.layer_weights.detach(), torch.full((L,), 1.0 / L)), model.layer_weights
    assert all(torch.isfinite(p).all() for p in model.parameters())
    runs = [subprocess.run([sys.executable, "-c", _LOAD_HEAD, str(tmp_path), head], capture_output=True, text=True,
                           timeout=120) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-800:] for r in runs]
    assert runs[0].stdout == runs[1].stdout, "the same seed gave two different models from the same checkpoint"
