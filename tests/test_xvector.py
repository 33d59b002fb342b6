"""Chapter 11: the x-vector head, its pieces, and verification scoring, against transformers and on their own."""
import dataclasses
import warnings

import pytest
import torch

from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.xvector import (
    AMSoftmaxLoss,
    TDNNLayer,
    Wav2Vec2ConformerForXVector,
    cosine_scores,
    det_curve,
    equal_error_rate,
    all_trials,
    statistics_pooling,
)

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), conv_bias=True, feat_extract_norm="layer",
             num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, conv_depthwise_kernel_size=3,
             num_labels=5, tdnn_dim=(16, 16, 24), tdnn_kernel=(5, 3, 1), tdnn_dilation=(1, 2, 1),
             xvector_output_dim=8)


def small_config(**overrides):
    return Wav2Vec2ConformerConfig(**{**SMALL, **overrides})


def hf_module():
    pytest.importorskip("transformers")
    from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer
    return modeling_wav2vec2_conformer


def transformers_folder(tmp_path, **overrides):
    """Save transformers' x-vector model with random weights (every parameter moved off its init)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2ConformerConfig(**{**SMALL, **overrides})
    torch.manual_seed(0)
    model = hf_module().Wav2Vec2ConformerForXVector(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save_pretrained(tmp_path)
    return model


def padded_batch(lengths=(3200, 2000, 1400), seed=0):
    g = torch.Generator().manual_seed(seed)
    S = max(lengths)
    x = torch.randn(len(lengths), S, generator=g)
    mask = (torch.arange(S)[None] < torch.tensor(lengths)[:, None]).long()  # (B, S)
    return x * mask, mask


def load(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Wav2Vec2ConformerForXVector.from_pretrained(folder)


# ---- parity with transformers -----------------------------------------------------------------------
@pytest.mark.parametrize("position", ["rotary", "relative"])
@pytest.mark.parametrize("weighted", [False, True])
def test_same_embeddings_logits_and_loss_as_transformers(tmp_path, weighted, position):
    theirs = transformers_folder(tmp_path, use_weighted_layer_sum=weighted, position_embeddings_type=position)
    ours = load(tmp_path)
    x, mask = padded_batch()
    labels = torch.tensor([0, 4, 2])
    with torch.no_grad():
        a = theirs(x, attention_mask=mask, labels=labels)
        b = ours(x, mask, labels=labels)
        c = theirs(x, labels=labels)  # no mask: every frame counts
        d = ours(x, labels=labels)
    for ref, got in ((a, b), (c, d)):
        torch.testing.assert_close(got.embeddings, ref.embeddings, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.logits, ref.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.loss, ref.loss, rtol=1e-5, atol=1e-5)


def test_folder_saved_by_w2vc_loads_in_transformers(tmp_path):
    torch.manual_seed(0)
    ours = Wav2Vec2ConformerForXVector(small_config(use_weighted_layer_sum=True)).eval()
    ours.save_pretrained(tmp_path)
    theirs, info = hf_module().Wav2Vec2ConformerForXVector.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    x, mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(ours(x, mask).embeddings, theirs.eval()(x, attention_mask=mask).embeddings,
                                   rtol=1e-5, atol=1e-5)


def test_tdnn_layer_equals_transformers_and_a_dilated_convolution():
    hf = hf_module()
    cfg = type("Cfg", (), dict(tdnn_dim=[6, 5], tdnn_kernel=[3, 3], tdnn_dilation=[1, 3]))
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        theirs = hf.TDNNLayer(cfg, i)
        ours = TDNNLayer(6, cfg.tdnn_dim[i], 3, cfg.tdnn_dilation[i])
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(2, 20, 6, generator=g)
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
        # the same as Conv1d with weight[o, c, j] = kernel.weight[o, j * C_in + c]
        weight = ours.kernel.weight.view(ours.out_dim, 3, 6).transpose(1, 2)  # (C_out, C_in, k)
        conv = torch.nn.functional.conv1d(x.transpose(1, 2), weight, ours.kernel.bias, dilation=ours.dilation)
        torch.testing.assert_close(ours(x), conv.relu().transpose(1, 2), rtol=1e-5, atol=1e-6)
        assert ours(x).shape == (2, 20 - ours.context + 1, cfg.tdnn_dim[i])


def test_am_softmax_equals_transformers():
    theirs = hf_module().AMSoftmaxLoss(7, 4, scale=20.0, margin=0.3)
    ours = AMSoftmaxLoss(7, 4, scale=20.0, margin=0.3)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 2, 1, 1])
    torch.testing.assert_close(ours(x, labels), theirs(x, labels))


# ---- behaviour ----------------------------------------------------------------------------------------
def test_statistics_pooling_is_mean_and_unbiased_std_of_the_real_frames():
    x = torch.randn(3, 10, 4, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([10, 5, 2])
    expected = torch.stack([torch.cat([x[b, :n].mean(0), x[b, :n].std(0)]) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(statistics_pooling(x, lengths), expected)
    torch.testing.assert_close(statistics_pooling(x), torch.cat([x.mean(1), x.std(1)], dim=-1))
    torch.testing.assert_close(statistics_pooling(x, torch.tensor([99, 99, 99])), statistics_pooling(x))


def test_statistics_pooling_gradient_is_finite_for_a_constant_channel():
    x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0))
    x[:, :, 1] = 0.0  # a ReLU channel that stays silent
    x.requires_grad_(True)
    statistics_pooling(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_exact_tdnn_lengths_make_a_padded_utterance_pool_like_it_does_alone():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForXVector(small_config()).eval()
    assert model._get_tdnn_output_lengths(40) == 40 - 4 - 2 - 0  # transformers: kernel - 1 per layer
    model.exact_tdnn_lengths = True
    assert model._get_tdnn_output_lengths(40) == 40 - 4 - 4 - 0  # (kernel - 1) * dilation per layer
    # the head alone (projector, TDNN, pooling) on frames with garbage padding behind 20 real frames
    g = torch.Generator().manual_seed(1)
    real = torch.randn(1, 20, 32, generator=g)
    padded = torch.cat([real, 100 * torch.randn(1, 12, 32, generator=g)], dim=1)

    def head(frames, n):
        x = model.projector(frames)
        for layer in model.tdnn:
            x = layer(x)
        return statistics_pooling(x, model._get_tdnn_output_lengths(torch.tensor([n])))

    with torch.no_grad():
        torch.testing.assert_close(head(padded, 20), head(real, 20))
        model.exact_tdnn_lengths = False
        assert not torch.allclose(head(padded, 20), head(real, 20))


def test_equal_error_rate_known_values():
    # sorted: 0.1 n, 0.2 n, 0.3 t, 0.7 n, 0.8 t, 0.9 t -> rejecting the 3 lowest: frr = far = 1/3
    eer, threshold = equal_error_rate([0.9, 0.8, 0.3, 0.7, 0.2, 0.1], [1, 1, 1, 0, 0, 0])
    assert eer == pytest.approx(1 / 3) and threshold == pytest.approx(0.5)
    assert equal_error_rate([0.9, 0.8, 0.7, 0.3, 0.2, 0.1], [1, 1, 1, 0, 0, 0])[0] == 0.0
    assert equal_error_rate([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [1, 1, 1, 0, 0, 0])[0] == 1.0
    assert equal_error_rate([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])[0] == 0.5  # ties cannot be split
    # two unit Gaussians 2 apart: EER = Phi(-1) = 0.1587
    g = torch.Generator().manual_seed(0)
    target = torch.rand(20000, generator=g) < 0.5
    scores = torch.randn(20000, generator=g) + 2.0 * target
    assert equal_error_rate(scores, target)[0] == pytest.approx(0.1587, abs=0.01)


def test_det_curve_is_monotone_from_all_accepted_to_all_rejected():
    g = torch.Generator().manual_seed(0)
    far, frr, thresholds = det_curve(torch.randn(50, generator=g), torch.rand(50, generator=g) < 0.3)
    assert far[0] == 1 and frr[0] == 0 and far[-1] == 0 and frr[-1] == 1
    assert (far[1:] <= far[:-1]).all() and (frr[1:] >= frr[:-1]).all() and (thresholds[1:] > thresholds[:-1]).all()


def test_all_trials_are_every_pair_once():
    speakers = ["a", "b", "a", "c", "a"]
    first, second, target = all_trials(speakers)
    assert len(first) == 10 and (first < second).all()
    assert target.tolist() == [speakers[i] == speakers[j] for i, j in zip(first.tolist(), second.tolist())]
    assert int(target.sum()) == 3


# ---- errors -------------------------------------------------------------------------------------------
def test_labels_outside_num_labels_are_an_error():
    model = Wav2Vec2ConformerForXVector(small_config()).eval()
    x, mask = padded_batch()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\] because config.num_labels = 5, got \[5\]"):
        model(x, mask, labels=torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        AMSoftmaxLoss(4, 3)(torch.randn(2, 4), torch.tensor([0, 3]))


def test_one_frame_for_the_standard_deviation_is_an_error():
    with pytest.raises(ValueError, match=r"needs at least 2 frames per utterance .* got \[5, 1\]"):
        statistics_pooling(torch.randn(2, 5, 3), torch.tensor([5, 1]))
    with pytest.raises(ValueError, match=r"needs at least 2 frames per utterance .* got \[1\]"):
        statistics_pooling(torch.randn(1, 1, 3))
    # a padded batch in which one utterance leaves a single frame after the TDNN layers
    # (the small config makes a frame every 20 samples: 145 samples give 7 frames, and transformers' count
    # of TDNN frames subtracts kernel - 1 = 4 + 2 + 0 of them, leaving 1)
    model = Wav2Vec2ConformerForXVector(small_config()).eval()
    assert model._get_tdnn_output_lengths(model._get_feat_extract_output_lengths(145)) == 1
    x, mask = padded_batch((3200, 145))
    with pytest.raises(ValueError, match="needs at least 2 frames per utterance"):
        model(x, mask)


def test_too_short_input_is_an_error():
    model = Wav2Vec2ConformerForXVector(small_config()).eval()
    assert model._get_feat_extract_output_lengths(165) == 8
    with pytest.raises(ValueError, match=r"gives 8 frames but the x-vector head needs at least 10"):
        model(torch.randn(1, 165))


def test_tdnn_lists_of_unequal_length_are_an_error():
    with pytest.raises(ValueError, match="tdnn_dim, tdnn_kernel and tdnn_dilation need one entry per TDNN layer"):
        small_config(tdnn_kernel=(5, 3))
    config = small_config()
    config = dataclasses.replace(config)  # a valid config changed afterwards, bypassing its own check
    config.tdnn_dilation = (1, 2)
    with pytest.raises(ValueError, match=r"got lengths \{'tdnn_dim': 3, 'tdnn_kernel': 3, 'tdnn_dilation': 2\}"):
        Wav2Vec2ConformerForXVector(config)


def test_scoring_errors():
    with pytest.raises(ValueError, match="need both target and non-target trials, got 2 target and 0"):
        equal_error_rate([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="one entry per trial, got 3 and 2"):
        det_curve([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(ValueError, match="same number of embeddings"):
        cosine_scores(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="trials need at least two speakers and a speaker with two utterances"):
        all_trials(["a", "a"])
    with pytest.raises(ValueError, match="got 3 utterances by 3 speakers"):
        all_trials(["a", "b", "c"])
    with pytest.raises(ValueError, match="kernel_size and dilation must be at least 1"):
        TDNNLayer(4, 4, 0, 1)
    with pytest.raises(ValueError, match="needs at least 5 frames, got 4"):
        TDNNLayer(3, 2, 3, 2)(torch.zeros(1, 4, 3))


def test_new_head_keeps_the_scale_of_its_input():
    """Our Kaiming init of the head (transformers' N(0, 0.02) shrinks the x-vector to about 1e-6)."""
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForXVector(small_config()).eval()
    x, mask = padded_batch()
    with torch.no_grad():
        out = model(x, mask)
    assert out.embeddings.std(0).mean() > 1e-2, out.embeddings
