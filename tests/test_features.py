"""Chapter 2: the feature encoder and projection equal transformers' on the same weights."""
import pytest
import torch
import transformers
from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as hf

from helpers import ATOL, audio_batch, hf_config, max_diff, w2vc_config
from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.features import (
    Wav2Vec2ConformerFeatureEncoder,
    Wav2Vec2ConformerFeatureProjection,
    check_input_values,
    feature_output_lengths,
    lengths_to_mask,
    receptive_field,
    receptive_field_per_layer,
)


def _pair(norm, bias, activation="gelu"):
    torch.manual_seed(0)
    theirs = hf.Wav2Vec2ConformerFeatureEncoder(
        hf_config(feat_extract_norm=norm, conv_bias=bias, feat_extract_activation=activation)).eval()
    ours = Wav2Vec2ConformerFeatureEncoder(
        w2vc_config(feat_extract_norm=norm, conv_bias=bias, feat_extract_activation=activation)).eval()
    # randomise the norms' affine parameters so that they matter
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "layer_norm" in name:
                p.copy_(torch.randn_like(p))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs, ours


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize("bias", [False, True])
def test_feature_encoder_matches_transformers(norm, bias):
    theirs, ours = _pair(norm, bias)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x, _ = audio_batch([3000, 2000])
    with torch.no_grad():
        want = theirs(x).transpose(1, 2)  # (B, C, T) -> (B, T, C)
        got, lengths = ours(x, torch.tensor([3000, 2000]))
    assert max_diff(got, want) <= ATOL
    assert lengths.tolist() == [feature_output_lengths(3000, ours.config), feature_output_lengths(2000, ours.config)]


def test_feature_encoder_with_the_default_seven_layers_and_swish():
    torch.manual_seed(0)
    theirs = hf.Wav2Vec2ConformerFeatureEncoder(transformers.Wav2Vec2ConformerConfig(feat_extract_activation="swish"))
    ours = Wav2Vec2ConformerFeatureEncoder(Wav2Vec2ConformerConfig(feat_extract_activation="swish"))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x, _ = audio_batch([4000])
    with torch.no_grad():
        assert max_diff(ours(x)[0], theirs(x).transpose(1, 2)) <= ATOL


def test_feature_projection_matches_transformers():
    torch.manual_seed(0)
    theirs = hf.Wav2Vec2ConformerFeatureProjection(hf_config(layer_norm_eps=1e-3)).eval()
    ours = Wav2Vec2ConformerFeatureProjection(w2vc_config(layer_norm_eps=1e-3)).eval()
    with torch.no_grad():
        theirs.layer_norm.weight.normal_()
        theirs.layer_norm.bias.normal_()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 7, 24) * 0.01
    with torch.no_grad():
        want_hidden, want_normed = theirs(x)
        got_hidden, got_normed = ours(x)
    assert max_diff(got_hidden, want_hidden) <= ATOL and max_diff(got_normed, want_normed) <= ATOL


def test_feature_projection_dropout_only_in_training():
    proj = Wav2Vec2ConformerFeatureProjection(w2vc_config(feat_proj_dropout=0.5))
    x = torch.randn(2, 7, 24)
    with torch.no_grad():
        assert torch.equal(proj.eval()(x)[0], proj(x)[0])
        assert not torch.equal(proj.train()(x)[0], proj.eval()(x)[0])


@pytest.mark.parametrize("add_adapter", [False, True])
def test_output_lengths_match_transformers(add_adapter):
    for kwargs in [{}, dict(conv_dim=(16, 24, 24), conv_kernel=(10, 4, 4), conv_stride=(5, 4, 4))]:
        config = transformers.Wav2Vec2ConformerConfig(**kwargs, add_adapter=add_adapter, num_adapter_layers=2)
        model = hf.Wav2Vec2ConformerPreTrainedModel(config)
        ours = Wav2Vec2ConformerConfig(**kwargs, add_adapter=add_adapter, num_adapter_layers=2)
        lengths = torch.arange(400, 20000, 7)
        want = model._get_feat_extract_output_lengths(lengths)
        assert torch.equal(feature_output_lengths(lengths, ours), want)
        assert feature_output_lengths(16000, ours) == int(model._get_feat_extract_output_lengths(16000))
        # add_adapter given explicitly overrides the config
        assert torch.equal(feature_output_lengths(lengths, ours, add_adapter=False),
                           model._get_feat_extract_output_lengths(lengths, add_adapter=False))


def test_output_lengths_clamp_at_zero():
    config = Wav2Vec2ConformerConfig()
    assert feature_output_lengths(0, config) == 0 and feature_output_lengths(399, config) == 0
    assert feature_output_lengths(torch.tensor([0, 10, 400]), config).tolist() == [0, 0, 1]


def test_frames_from_lengths_match_transformers_attention_mask():
    model = hf.Wav2Vec2ConformerPreTrainedModel(transformers.Wav2Vec2ConformerConfig())
    _, mask = audio_batch([16000, 9000, 401, 12345])
    want = model._get_feature_vector_attention_mask(49, mask)
    got = lengths_to_mask(feature_output_lengths(mask.sum(-1), Wav2Vec2ConformerConfig()), 49)
    assert torch.equal(got, want)


def test_receptive_field_of_the_default_stack():
    config = Wav2Vec2ConformerConfig()
    assert receptive_field(config) == (400, 320)
    assert receptive_field_per_layer(config)[-1] == (400, 320)
    assert receptive_field_per_layer(config)[0] == (10, 5)
    # the field is the shortest input that gives one frame
    for name in ["tiny", "large-rope"]:
        c = Wav2Vec2ConformerConfig.preset(name)
        field, stride = receptive_field(c)
        assert feature_output_lengths(field, c) == 1 and feature_output_lengths(field - 1, c) == 0
        assert feature_output_lengths(field + stride, c) == 2 and stride == 320


@pytest.mark.parametrize("bad, error, match", [
    (torch.randn(1, 1, 1000), ValueError, r"input_values must have shape \(batch, samples\), got \(1, 1, 1000\) \(a channel axis"),
    (torch.randn(1000), ValueError, r"got \(1000,\); for one utterance use x\[None\]"),
    (torch.zeros(1, 1000, dtype=torch.int16), TypeError, r"must be floating point audio, got dtype torch.int16"),
    (torch.zeros(1, 1000, dtype=torch.long), TypeError, r"got dtype torch.int64"),
    (torch.randn(2, 60), ValueError, r"input_values has 60 samples, fewer than the receptive field of the feature encoder \(85 samples"),
    ([[0.0] * 1000], TypeError, r"input_values must be a torch.Tensor .* got list"),
])
def test_bad_input_is_rejected(bad, error, match):
    config = w2vc_config()
    assert receptive_field(config)[0] == 85
    with pytest.raises(error, match=match):
        check_input_values(bad, config)
    if isinstance(bad, torch.Tensor):
        with pytest.raises(error, match=match):
            Wav2Vec2ConformerFeatureEncoder(config)(bad)


def test_padding_leaves_layer_norm_frames_alone_but_moves_group_norm_frames():
    for norm, same in [("layer", True), ("group", False)]:
        torch.manual_seed(0)
        enc = Wav2Vec2ConformerFeatureEncoder(w2vc_config(feat_extract_norm=norm)).eval()
        x, _ = audio_batch([2000])
        padded = torch.cat([x, torch.zeros(1, 1500)], dim=1)
        n = feature_output_lengths(2000, enc.config)
        with torch.no_grad():
            assert (max_diff(enc(x)[0], enc(padded)[0][:, :n]) <= ATOL) == same, norm


def test_freeze_and_gradient_checkpointing():
    torch.manual_seed(0)
    enc = Wav2Vec2ConformerFeatureEncoder(w2vc_config(feat_extract_norm="layer")).train()
    x, _ = audio_batch([3000, 3000])
    enc(x)[0].square().mean().backward()
    plain = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    enc.gradient_checkpointing = True
    enc(x)[0].square().mean().backward()
    for a, p in zip(plain, enc.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)
    enc.freeze()
    assert not enc._requires_grad and not any(p.requires_grad for p in enc.parameters())
    out, _ = enc(x)
    assert not out.requires_grad  # nothing to train below this point
