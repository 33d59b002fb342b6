"""Chapter 13: the feature encoder as matrix products (w2vc.fast_features) equals chapter 2's encoder.

Forward to 1e-5 and the gradient of every parameter to 1e-5 relative (float32), for the LayerNorm stack (tiny
preset; the published large models' stack, with conv biases) and the GroupNorm stack (base), with and without
gradient checkpointing; inference (no autograd) overwrites in place and runs long audio a chunk of frames at a
time, with the same numbers; `attn_implementation="sdpa"` takes this path; bad input gets an error naming the fix.
"""
import pytest
import torch
from torch import nn

from w2vc.config import Wav2Vec2ConformerConfig
from torch.utils._python_dispatch import TorchDispatchMode

from w2vc.fast_features import conv_as_matmul, feature_encoder_forward, frames_of, in_chunks
from w2vc.features import Wav2Vec2ConformerFeatureEncoder

CONFIGS = {
    "tiny, LayerNorm": dict(preset="tiny"),
    "large's stack, LayerNorm and biases": dict(conv_dim=(32,) * 7, feat_extract_norm="layer", conv_bias=True),
    "base's stack, GroupNorm": dict(conv_dim=(32,) * 7),
}


def encoder_of(name, implementation="eager"):
    spec = dict(CONFIGS[name])
    preset = spec.pop("preset", None)
    config = (Wav2Vec2ConformerConfig.preset(preset, attn_implementation=implementation) if preset
              else Wav2Vec2ConformerConfig(**spec, attn_implementation=implementation))
    torch.manual_seed(0)
    return Wav2Vec2ConformerFeatureEncoder(config)


def forward_and_grads(encoder, fn, audio):
    encoder.zero_grad()
    out = fn(audio)
    out.pow(2).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in encoder.named_parameters()}


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_products_equal_chapter_2_forward_and_gradients(name, recompute):
    encoder = encoder_of(name).train()
    audio = torch.randn(3, 7001, generator=torch.Generator().manual_seed(1))   # odd length: partial windows
    eager_out, eager_grads = forward_and_grads(encoder, lambda a: encoder(a)[0], audio)
    fast_out, fast_grads = forward_and_grads(encoder, lambda a: feature_encoder_forward(encoder, a, recompute), audio)
    assert fast_out.shape == eager_out.shape
    assert (fast_out - eager_out).abs().max() <= 1e-5
    for n, g in eager_grads.items():
        assert (fast_grads[n] - g).abs().max() <= 1e-5 * g.abs().max(), n


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sdpa_encoder_runs_the_products(name, monkeypatch):
    import w2vc.fast_features
    calls = []
    real = w2vc.fast_features.feature_encoder_forward
    monkeypatch.setattr(w2vc.fast_features, "feature_encoder_forward", lambda *a: calls.append(1) or real(*a))
    eager, fast = encoder_of(name).eval(), encoder_of(name, "sdpa").eval()
    audio = torch.randn(2, 4000, generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([4000, 2500])
    with torch.no_grad():
        (a, frames_a), (b, frames_b) = eager(audio, lengths), fast(audio, lengths)
    assert calls == [1]
    assert torch.equal(frames_a, frames_b) and (a - b).abs().max() <= 1e-5


def test_frames_of_windows_and_their_view():
    x = torch.arange(14.0).reshape(1, 7, 2)                   # (B, L, C): seven samples, two channels
    overlapping = frames_of(x, kernel=3, stride=2)            # windows at 0, 2, 4 (sample 6 is left over)
    assert overlapping.shape == (1, 3, 6)
    assert overlapping[0, 1].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]     # samples 2, 3, 4, time-major
    tiling = frames_of(x, kernel=2, stride=2)                 # windows at 0, 2, 4: a view, no copy
    assert tiling.shape == (1, 3, 4) and tiling.data_ptr() == x.data_ptr()


def test_conv_as_matmul_refuses_a_padded_convolution():
    conv = nn.Conv1d(4, 8, kernel_size=3, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"conv_as_matmul: the feature encoder's convolutions have no padding.*"
                                         r"got padding \(1,\)"):
        conv_as_matmul(conv, torch.randn(1, 10, 4))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_inference_in_place_and_in_chunks_equals_chapter_2(name):
    """3 s of audio: 9599 frames after the first layer, so the chunks of 4096 frames are used; in place."""
    encoder = encoder_of(name).eval()
    audio = torch.randn(2, 48000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        eager, fast = encoder(audio)[0], feature_encoder_forward(encoder, audio)
    assert (fast - eager).abs().max() <= 1e-5


@pytest.mark.parametrize("dim", [1, 2])
def test_in_chunks_equals_the_whole_layer(dim):
    conv = nn.Conv1d(3, 5, kernel_size=3, stride=2)
    x = torch.randn(2, 3, 101, generator=torch.Generator().manual_seed(4))       # (B, C, L): 50 frames
    layer = conv if dim == 2 else (lambda part: conv_as_matmul(conv, part))
    x = x if dim == 2 else x.transpose(1, 2).contiguous()                          # (B, L, C) channels last
    with torch.no_grad():
        whole = layer(x)
        for frames in (1, 7, 49, 50, 64):                                          # ragged, exact and whole
            assert torch.allclose(in_chunks(layer, x, 3, 2, dim=dim, frames=frames), whole, atol=1e-6), frames


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(str(func))
        return func(*args, **(kwargs or {}))


def test_inference_overwrites_in_place_and_training_does_not():
    encoder = encoder_of("base's stack, GroupNorm")
    audio = torch.randn(1, 4000, generator=torch.Generator().manual_seed(5))
    with torch.no_grad(), _Ops() as ops:
        feature_encoder_forward(encoder, audio)
    assert "aten.gelu_.default" in ops.names and "aten.native_group_norm.default" not in ops.names
    with _Ops() as ops:
        feature_encoder_forward(encoder, audio)
    assert "aten.gelu_.default" not in ops.names and "aten.native_group_norm.default" in ops.names
