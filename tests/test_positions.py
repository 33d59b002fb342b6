"""Chapter 4: relative and rotary positions, equal to transformers' numbers (bit for bit where it computes the same)."""
import types

import pytest
import torch
from transformers import Wav2Vec2ConformerConfig as HFConfig
from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as hf

from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.positions import (Wav2Vec2ConformerRelPositionalEmbedding, Wav2Vec2ConformerRotaryPositionalEmbedding,
                            apply_rotary, relative_position_table, relative_shift, rotary_frequencies, rotate_half,
                            sinusoid_frequencies)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# (hidden_size, heads, max_source_positions): small, the base and large published widths, and a short table
SIZES = [(32, 4, 100), (768, 12, 5000), (1024, 16, 5000), (144, 4, 7)]


def _configs(hidden_size, heads, max_positions, **extra):
    kw = dict(hidden_size=hidden_size, num_attention_heads=heads, max_source_positions=max_positions,
              num_conv_pos_embedding_groups=4, **extra)
    return HFConfig(**kw), Wav2Vec2ConformerConfig(**kw)


@pytest.mark.parametrize("hidden_size,heads,max_positions", SIZES)
def test_relative_table_is_transformers_table_bit_for_bit(hidden_size, heads, max_positions):
    hf_config, config = _configs(hidden_size, heads, max_positions)
    theirs = hf.Wav2Vec2ConformerRelPositionalEmbedding(hf_config)
    ours = Wav2Vec2ConformerRelPositionalEmbedding(config)
    assert ours.pe.shape == theirs.pe.shape == (1, 2 * max_positions - 1, hidden_size)
    assert torch.equal(ours.pe, theirs.pe)
    # the table is not saved with the weights, in either implementation
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []


@pytest.mark.parametrize("hidden_size,heads,max_positions", SIZES)
def test_relative_rows_for_every_length_including_longer_than_max_source_positions(hidden_size, heads, max_positions):
    hf_config, config = _configs(hidden_size, heads, max_positions)
    theirs = hf.Wav2Vec2ConformerRelPositionalEmbedding(hf_config)
    ours = Wav2Vec2ConformerRelPositionalEmbedding(config)
    for T in [1, 5, max_positions, max_positions + 3, 2 * max_positions]:
        x = torch.zeros(2, T, hidden_size)
        got, want = ours(x), theirs(x)
        assert got.shape == (1, 2 * T - 1, hidden_size)
        assert torch.equal(got, want), T
    # the table grew to the longest input and keeps serving shorter ones
    assert ours.pe.shape[1] == 2 * (2 * max_positions) - 1
    assert torch.equal(ours(torch.zeros(1, 3, hidden_size))[0], relative_position_table(3, hidden_size))


def test_relative_table_values_and_order():
    table = relative_position_table(4, 6)                       # offsets 3, 2, 1, 0, -1, -2, -3
    assert table.shape == (7, 6)
    assert torch.equal(table[3], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    w = sinusoid_frequencies(6)
    assert torch.allclose(table[0, 0::2], torch.sin(3 * w)) and torch.allclose(table[6, 0::2], torch.sin(-3 * w))
    assert torch.allclose(table[1, 1::2], torch.cos(2 * w))
    assert torch.allclose(w, 10000 ** (-torch.arange(0, 6, 2) / 6.0))


def test_relative_positions_follow_the_input_dtype_and_device():
    hf_config, config = _configs(32, 4, 10)
    ours = Wav2Vec2ConformerRelPositionalEmbedding(config).to(DEVICE)
    theirs = hf.Wav2Vec2ConformerRelPositionalEmbedding(hf_config).to(DEVICE)
    x = torch.zeros(1, 6, 32, dtype=torch.bfloat16, device=DEVICE)
    got = ours(x)
    assert got.dtype == torch.bfloat16 and got.device.type == DEVICE
    assert torch.equal(got, theirs(x))


def _skew_by_transformers(scores_source, query, rel):
    """transformers' skew, isolated: its relative-position helper with linear_pos = identity and v = 0."""
    B, H, T, D = query.shape
    module = types.SimpleNamespace(linear_pos=torch.nn.Identity(), head_size=D, scaling=1.0,
                                   pos_bias_u=torch.zeros(H, D), pos_bias_v=torch.zeros(H, D))
    _, skewed = hf._apply_relative_position_encoding(module, query, query, rel)
    return skewed


def test_relative_shift_equals_transformers_skew_and_an_explicit_gather():
    g = torch.Generator().manual_seed(0)
    B, H, T, D = 2, 3, 9, 4
    query = torch.randn(B, H, T, D, generator=g)
    rel = torch.randn(1, 2 * T - 1, H * D, generator=g)
    scores = query @ rel.view(1, 2 * T - 1, H, D).permute(0, 2, 3, 1)      # (B, H, T, 2T-1)
    ours = relative_shift(scores)
    assert ours.shape == (B, H, T, T)
    assert torch.equal(ours, _skew_by_transformers(scores, query, rel))
    index = (T - 1) - torch.arange(T)[:, None] + torch.arange(T)[None, :]
    assert torch.equal(ours, scores.gather(-1, index.expand(B, H, T, T)))


def test_relative_shift_puts_offset_i_minus_j_at_i_j():
    for T in [1, 2, 5]:
        offsets = torch.arange(T - 1, -T, -1).repeat(T, 1)[None, None]       # (1, 1, T, 2T-1)
        i, j = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
        assert torch.equal(relative_shift(offsets)[0, 0], i - j)


@pytest.mark.parametrize("hidden_size,heads,max_positions", SIZES)
@pytest.mark.parametrize("base", [10000, 500])
def test_rotary_tables_equal_transformers(hidden_size, heads, max_positions, base):
    hf_config, config = _configs(hidden_size, heads, max_positions, rotary_embedding_base=base,
                                 position_embeddings_type="rotary")
    theirs = hf.Wav2Vec2ConformerRotaryPositionalEmbedding(hf_config)
    ours = Wav2Vec2ConformerRotaryPositionalEmbedding(config)
    assert torch.equal(ours.inv_freq, theirs.inv_freq)
    # inv_freq is saved, as transformers saves it
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["inv_freq"]
    D = hidden_size // heads
    for T in [1, 7, 300]:
        x = torch.zeros(2, T, hidden_size)
        got, want = ours(x), theirs(x)                          # (2, T, D) and transformers' (2, T, 1, 1, D)
        assert got.shape == (2, T, D)
        assert torch.equal(got, want.reshape(2, T, D))


@pytest.mark.parametrize("heads,head_size", [(4, 8), (2, 64)])
def test_apply_rotary_equals_transformers_rotation_of_the_layer_input(heads, head_size):
    hidden_size = heads * head_size
    hf_config, config = _configs(hidden_size, heads, 50, position_embeddings_type="rotary")
    attention = hf.Wav2Vec2ConformerSelfAttention(hf_config)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 11, hidden_size, generator=g)
    table = hf.Wav2Vec2ConformerRotaryPositionalEmbedding(hf_config)(x)
    want = attention._apply_rotary_embedding(x, table)
    got = apply_rotary(x, Wav2Vec2ConformerRotaryPositionalEmbedding(config)(x), heads)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_rotation_keeps_lengths_and_gives_offset_only_dot_products():
    config = Wav2Vec2ConformerConfig(hidden_size=16, num_attention_heads=2, position_embeddings_type="rotary")
    g = torch.Generator().manual_seed(2)
    T = 10
    table = Wav2Vec2ConformerRotaryPositionalEmbedding(config)(torch.zeros(1, T, 16))
    x = torch.randn(4, T, 16, generator=g)
    y = apply_rotary(x, table, 2)
    assert torch.allclose(x.view(4, T, 2, 8).norm(dim=-1), y.view(4, T, 2, 8).norm(dim=-1), atol=1e-5)
    assert torch.equal(x[:, 0], y[:, 0])                       # frame 0 does not turn
    q, k = torch.randn(1, 1, 16, generator=g), torch.randn(1, 1, 16, generator=g)
    qs = apply_rotary(q.expand(1, T, 16).contiguous(), table, 2)[0].view(T, 2, 8)
    ks = apply_rotary(k.expand(1, T, 16).contiguous(), table, 2)[0].view(T, 2, 8)
    dots = torch.einsum("mhd,nhd->hmn", qs, ks)                # (H, T, T)
    for offset in [0, 2, 5]:
        diag = torch.diagonal(dots, offset=-offset, dim1=1, dim2=2)   # [m, m - offset]
        assert torch.allclose(diag, diag[:, :1].expand_as(diag), atol=1e-5)
    assert torch.equal(rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([-3.0, -4.0, 1.0, 2.0]))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="dim: expected a positive even number of channels for sin/cos"):
        sinusoid_frequencies(7)
    with pytest.raises(ValueError, match="dim: expected a positive even number of channels for sin/cos"):
        sinusoid_frequencies(0)
    with pytest.raises(ValueError, match="length: expected at least 1 frame, got 0"):
        relative_position_table(0, 8)
    with pytest.raises(ValueError, match=r"scores: expected the last dimension to be 2T-1 = 9 offsets for T = 5"):
        relative_shift(torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="dim: expected a positive even number of channels per head"):
        rotary_frequencies(5)
    config = Wav2Vec2ConformerConfig(hidden_size=16, num_attention_heads=2, position_embeddings_type="rotary")
    table = Wav2Vec2ConformerRotaryPositionalEmbedding(config)(torch.zeros(1, 6, 16))
    with pytest.raises(ValueError, match=r"cos_sin: expected \(2, T=7, D=8\)"):
        apply_rotary(torch.zeros(1, 7, 16), table, 2)
    with pytest.raises(ValueError, match=r"cos_sin: expected \(2, T=6, D=4\)"):
        apply_rotary(torch.zeros(1, 6, 16), table, 4)
