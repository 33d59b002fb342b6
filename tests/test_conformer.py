"""Chapter 5: attention, the conformer block and the encoder stack, equal to transformers' modules.

transformers' modules get random weights (including BatchNorm statistics and the relative biases u, v, which
a bare module leaves at their trivial initial values), we load their state_dict into ours with strict=True
and compare in float32 with atol 1e-5.
"""
import pytest
import torch
from transformers import Wav2Vec2ConformerConfig as HFConfig
from transformers import Wav2Vec2ConformerModel as HFModel
from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as hf

from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.conformer import (Wav2Vec2ConformerConvolutionModule, Wav2Vec2ConformerEncoder,
                            Wav2Vec2ConformerEncoderLayer, Wav2Vec2ConformerFeedForward,
                            Wav2Vec2ConformerPositionalConvEmbedding, Wav2Vec2ConformerSelfAttention)

ATOL = 1e-5
POSITIONS = ["relative", "rotary", None]
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, conv_depthwise_kernel_size=7,
             max_source_positions=20, layer_norm_eps=1e-3)


def configs(position="relative", **overrides):
    """transformers' config (eager attention, so that it returns weights) and ours, from the same values."""
    kw = {**SMALL, "position_embeddings_type": position, **overrides}
    hf_config = HFConfig(**kw)
    hf_config._attn_implementation = "eager"
    return hf_config, Wav2Vec2ConformerConfig(**kw)


def randomize(module, seed=0):
    """Give every parameter and BatchNorm statistic random values, deterministically."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict(keep_vars=True).items()):
            if tensor.dtype.is_floating_point and not name.endswith("inv_freq"):
                if name.endswith("running_var"):
                    tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
                else:
                    tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.3)
    return module


def pair(hf_class, our_class, position="relative", seed=0, **overrides):
    hf_config, config = configs(position, **overrides)
    theirs = randomize(hf_class(hf_config), seed).eval()
    ours = our_class(config).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs, ours


def inputs(B=3, T=30, C=32, lengths=(30, 22, 10), seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]      # (B, T) bool
    return x, mask


def maxdiff(a, b):
    return (a - b).abs().max().item()


def run_hf_encoder(encoder, x, mask):
    """transformers' encoder, with the hidden states and attentions its model would capture (hooks)."""
    states, weights = [], []
    hooks = []
    for layer in encoder.layers:
        hooks.append(layer.register_forward_hook(
            lambda m, args, out: states.extend(([args[0]] if not states else []) + [out])))
        hooks.append(layer.self_attn.register_forward_hook(lambda m, args, out: weights.append(out[1])))
    try:
        last = encoder(x.clone(), attention_mask=mask).last_hidden_state   # clone: it writes zeros into its input
    finally:
        for h in hooks:
            h.remove()
    return last, tuple(states), tuple(weights)


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("position", POSITIONS)
def test_state_dict_keys_and_shapes_equal_transformers(position):
    hf_config, config = configs(position)
    theirs = hf.Wav2Vec2ConformerEncoder(hf_config).state_dict()
    ours = Wav2Vec2ConformerEncoder(config).state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert "pos_conv_embed.conv.parametrizations.weight.original0" in ours          # weight norm g
    assert ("embed_positions.inv_freq" in ours) == (position == "rotary")           # saved; `pe` is not
    assert ("layers.0.self_attn.pos_bias_u" in ours) == (position == "relative")


@pytest.mark.parametrize("position", POSITIONS)
def test_transformers_loads_our_weights_without_missing_or_unexpected_keys(position):
    hf_config, config = configs(position)
    ours = randomize(Wav2Vec2ConformerEncoder(config), seed=5).eval()
    theirs = hf.Wav2Vec2ConformerEncoder(hf_config).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x, mask = inputs()
    with torch.no_grad():
        assert maxdiff(ours(x, mask)[0], theirs(x.clone(), attention_mask=mask).last_hidden_state) <= ATOL


# ------------------------------------------------------------------ parts
def test_feed_forward_equals_transformers():
    theirs, ours = pair(hf.Wav2Vec2ConformerFeedForward, Wav2Vec2ConformerFeedForward, hidden_act="swish")
    x, _ = inputs()
    with torch.no_grad():
        assert maxdiff(ours(x), theirs(x)) <= ATOL


@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_convolution_module_equals_transformers(act):
    theirs, ours = pair(hf.Wav2Vec2ConformerConvolutionModule, Wav2Vec2ConformerConvolutionModule, hidden_act=act)
    x, _ = inputs()
    with torch.no_grad():
        assert maxdiff(ours(x), theirs(x)) <= ATOL
    # in training mode BatchNorm uses the batch's statistics and updates the running ones: the same in both
    theirs.train(), ours.train()
    theirs.dropout.p = ours.dropout.p = 0.0
    assert maxdiff(ours(x), theirs(x)) <= ATOL
    assert maxdiff(ours.batch_norm.running_mean, theirs.batch_norm.running_mean) <= ATOL
    assert maxdiff(ours.batch_norm.running_var, theirs.batch_norm.running_var) <= ATOL


@pytest.mark.parametrize("kernel", [16, 15])
def test_positional_conv_embedding_equals_transformers_when_called(kernel):
    theirs, ours = pair(hf.Wav2Vec2ConformerPositionalConvEmbedding, Wav2Vec2ConformerPositionalConvEmbedding,
                        num_conv_pos_embeddings=kernel)
    x, _ = inputs()
    with torch.no_grad():
        got = ours(x)
        assert got.shape == x.shape
        assert maxdiff(got, theirs(x)) <= ATOL


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("masked", [False, True])
def test_self_attention_equals_transformers(position, masked):
    theirs, ours = pair(hf.Wav2Vec2ConformerSelfAttention, Wav2Vec2ConformerSelfAttention, position)
    x, mask = inputs()
    hf_config, config = configs(position)
    table = {"relative": hf.Wav2Vec2ConformerRelPositionalEmbedding, "rotary": hf.Wav2Vec2ConformerRotaryPositionalEmbedding,
             None: None}[position]
    hf_table = None if table is None else table(hf_config)(x)
    our_table = None if hf_table is None else (hf_table if position == "relative" else hf_table.reshape(2, 30, 8))
    hf_mask = None
    if masked:   # transformers' additive mask (B, 1, T, T): 0 for real keys, the dtype's minimum for padded ones
        hf_mask = torch.zeros(3, 1, 30, 30).masked_fill(~mask[:, None, None, :], torch.finfo(torch.float32).min)
    with torch.no_grad():
        want, want_w = theirs(x, attention_mask=hf_mask, relative_position_embeddings=hf_table)
        got, got_w = ours(x, mask if masked else None, our_table, output_attentions=True)
        assert maxdiff(got, want) <= ATOL and maxdiff(got_w, want_w) <= ATOL
        assert got_w.shape == (3, 4, 30, 30)
        assert ours(x, mask if masked else None, our_table)[1] is None
    if masked:
        assert torch.all(got_w.masked_select(~mask[:, None, None, :]) == 0)   # no weight on padded keys
    assert torch.allclose(got_w.sum(-1), torch.ones(3, 4, 30), atol=1e-6)


@pytest.mark.parametrize("position", POSITIONS)
def test_encoder_layer_equals_transformers(position):
    theirs, ours = pair(hf.Wav2Vec2ConformerEncoderLayer, Wav2Vec2ConformerEncoderLayer, position)
    hf_config, _ = configs(position)
    x, mask = inputs()
    table = None
    if position == "relative":
        table = hf.Wav2Vec2ConformerRelPositionalEmbedding(hf_config)(x)
    elif position == "rotary":
        table = hf.Wav2Vec2ConformerRotaryPositionalEmbedding(hf_config)(x)
    hf_mask = torch.zeros(3, 1, 30, 30).masked_fill(~mask[:, None, None, :], torch.finfo(torch.float32).min)
    with torch.no_grad():
        want = theirs(x, attention_mask=hf_mask, relative_position_embeddings=table)
        ours_table = table if position != "rotary" else table.reshape(2, 30, 8)
        got, weights = ours(x, mask, ours_table, output_attentions=True)
    assert maxdiff(got, want) <= ATOL and weights.shape == (3, 4, 30, 30)


# ------------------------------------------------------------------ the encoder
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("masked", [False, True])
def test_encoder_equals_transformers_with_hidden_states_and_attentions(position, masked):
    theirs, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, position, hidden_act="swish")
    x, mask = inputs()
    mask = mask if masked else None
    with torch.no_grad():
        want, want_states, want_weights = run_hf_encoder(theirs, x, mask)
        got, states, weights = ours(x, mask, output_attentions=True, output_hidden_states=True)
        assert ours(x, mask)[1:] == (None, None)
    assert maxdiff(got, want) <= ATOL
    assert len(states) == len(want_states) == SMALL["num_hidden_layers"] + 1
    assert len(weights) == len(want_weights) == SMALL["num_hidden_layers"]
    for a, b in zip(states, want_states):
        assert maxdiff(a, b) <= ATOL
    for a, b in zip(weights, want_weights):
        assert maxdiff(a, b) <= ATOL


@pytest.mark.parametrize("position", POSITIONS)
def test_encoder_matches_what_transformers_model_returns(position):
    """The encoder inside transformers' Wav2Vec2ConformerModel: same last state, hidden_states, attentions."""
    hf_config, config = configs(position, conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3))
    model = HFModel(hf_config).eval()
    randomize(model.encoder, seed=3)
    ours = Wav2Vec2ConformerEncoder(config).eval()
    ours.load_state_dict(model.encoder.state_dict(), strict=True)
    g = torch.Generator().manual_seed(4)
    wave = torch.randn(2, 400, generator=g)
    sample_mask = torch.ones(2, 400, dtype=torch.long)
    sample_mask[1, 250:] = 0
    with torch.no_grad():
        out = model(wave, attention_mask=sample_mask, output_hidden_states=True, output_attentions=True)
        frame_mask = model._get_feature_vector_attention_mask(out.hidden_states[0].shape[1], sample_mask)
        got, states, weights = ours(out.hidden_states[0], frame_mask.long(),
                                    output_attentions=True, output_hidden_states=True)
    assert maxdiff(got, out.last_hidden_state) <= ATOL
    assert len(states) == len(out.hidden_states) and len(weights) == len(out.attentions)
    assert all(maxdiff(a, b) <= ATOL for a, b in zip(states, out.hidden_states))
    assert all(maxdiff(a, b) <= ATOL for a, b in zip(weights, out.attentions))
    # transformers' last hidden state is the last block's output *before* the final LayerNorm
    assert maxdiff(ours.layer_norm(states[-1]), got) <= ATOL and maxdiff(states[-1], got) > 1e-2


def test_relative_encoder_beyond_max_source_positions_equals_transformers():
    theirs, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, "relative", max_source_positions=8)
    x, mask = inputs()                                         # 30 frames > 8
    with torch.no_grad():
        assert maxdiff(ours(x, mask)[0], theirs(x.clone(), attention_mask=mask).last_hidden_state) <= ATOL


@pytest.mark.parametrize("position", POSITIONS)
def test_training_mode_same_seed_same_dropout_and_layerdrop_as_transformers(position):
    """Dropout everywhere and LayerDrop draw from the global generator in the same order as transformers."""
    drops = dict(hidden_dropout=0.1, activation_dropout=0.1, attention_dropout=0.1, conformer_conv_dropout=0.1,
                 layerdrop=0.5, num_hidden_layers=4)
    theirs, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, position, **drops)
    theirs.train(), ours.train()
    x, mask = inputs()
    for seed in range(3):
        torch.manual_seed(seed)
        want = theirs(x.clone(), attention_mask=mask).last_hidden_state
        torch.manual_seed(seed)
        got = ours(x, mask)[0]
        assert maxdiff(got, want) <= ATOL


# ------------------------------------------------------------------ invariants
@pytest.mark.parametrize("position", POSITIONS)
def test_attention_padded_batch_equals_each_item_alone(position):
    _, config = configs(position)
    attention = randomize(Wav2Vec2ConformerSelfAttention(config)).eval()
    encoder = Wav2Vec2ConformerEncoder(config)
    x, mask = inputs()
    with torch.no_grad():
        table = None if encoder.embed_positions is None else encoder.embed_positions(x)
        batch, _ = attention(x, mask, table)
        for b, n in enumerate(mask.sum(-1).tolist()):
            alone_table = None if table is None else encoder.embed_positions(x[b:b + 1, :n])
            alone, _ = attention(x[b:b + 1, :n], None, alone_table)
            assert maxdiff(batch[b, :n], alone[0]) <= ATOL


@pytest.mark.parametrize("position", POSITIONS)
def test_encoder_padded_batch_vs_alone_what_holds_and_what_does_not(position):
    """Attention ignores padded keys, but the depthwise conv reads padded frames (which are no longer zero
    after the first feed-forward) near the end of a short utterance.

    One block: frames farther than (K-1)/2 from the end equal the item alone; the last frame does not.
    Two blocks: the second block's attention spreads the difference to every frame, so a padded item
    differs (slightly) everywhere. An unpadded item is equal everywhere. This is the original's behaviour."""
    x, mask = inputs()
    reach = (SMALL["conv_depthwise_kernel_size"] - 1) // 2                     # 3 frames
    for layers in [1, 2]:
        _, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, position, num_hidden_layers=layers)
        with torch.no_grad():
            batch = ours(x, mask)[0]
            for b, n in enumerate(mask.sum(-1).tolist()):
                alone = ours(x[b:b + 1, :n])[0][0]
                if n == x.shape[1]:
                    assert maxdiff(batch[b], alone) <= ATOL
                    continue
                assert maxdiff(batch[b, n - 1], alone[n - 1]) > 1e-3
                if layers == 1:
                    assert maxdiff(batch[b, :n - reach], alone[:n - reach]) <= ATOL
                else:
                    assert maxdiff(batch[b, 0], alone[0]) > ATOL


def test_encoder_zeroes_padded_frames_and_leaves_its_input_alone():
    _, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, "rotary")
    x, mask = inputs()
    garbage = x.clone()
    garbage[~mask] = 1e3
    with torch.no_grad():
        first, states, _ = ours(x, mask, output_hidden_states=True)
        second = ours(garbage, mask)[0]
    assert torch.equal(first, second)                          # what was in the padded frames does not matter
    assert torch.all(states[0][~mask] == 0)
    assert torch.all(garbage[~mask] == 1e3)                    # unlike transformers, no write into the input


def test_a_fully_padded_item_gives_finite_outputs():
    _, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, "relative")
    x, mask = inputs(lengths=(30, 0, 10))
    with torch.no_grad():
        out = ours(x, mask)[0]
    assert torch.isfinite(out).all()


def test_pos_conv_embed_is_never_applied():
    _, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, "relative")
    calls = []
    ours.pos_conv_embed.register_forward_hook(lambda *args: calls.append(1))
    x, mask = inputs()
    with torch.no_grad():
        before = ours(x, mask)[0]
        ours.pos_conv_embed.conv.bias.add_(10.0)
        after = ours(x, mask)[0]
    assert calls == [] and torch.equal(before, after)


def test_determinism_and_train_eval():
    _, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, "relative", layerdrop=0.0)
    x, mask = inputs()
    with torch.no_grad():
        assert torch.equal(ours(x, mask)[0], ours(x, mask)[0])          # eval: no randomness
        ours.train()
        torch.manual_seed(0)
        a = ours(x, mask)[0]
        torch.manual_seed(0)
        b = ours(x, mask)[0]
        c = ours(x, mask)[0]
        ours.eval()
        d = ours(x, mask)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)                 # train: seeded dropout
    assert maxdiff(a, d) > 1e-3                                        # train differs from eval


def test_layerdrop_skips_blocks_only_in_training():
    _, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, "rotary", layerdrop=1.0,
                   hidden_dropout=0.0)
    x, _ = inputs()
    with torch.no_grad():
        ours.train()
        out, states, weights = ours(x, output_hidden_states=True, output_attentions=True)
        # every block skipped: the output is the final LayerNorm of the input; states repeat, no attention maps
        assert maxdiff(out, ours.layer_norm(x)) <= ATOL
        assert len(states) == SMALL["num_hidden_layers"] + 1 and all(torch.equal(s, x) for s in states)
        assert weights == ()
        ours.eval()
        assert maxdiff(ours(x)[0], ours.layer_norm(x)) > 1e-2


def test_gradient_checkpointing_gives_the_same_gradients():
    _, ours = pair(hf.Wav2Vec2ConformerEncoder, Wav2Vec2ConformerEncoder, "relative", layerdrop=0.0,
                   hidden_dropout=0.0, activation_dropout=0.0, attention_dropout=0.0, conformer_conv_dropout=0.0)
    ours.train()
    x, mask = inputs()
    grads = []
    for flag in [False, True]:
        ours.gradient_checkpointing = flag
        ours.zero_grad()
        xin = x.clone().requires_grad_(True)
        ours(xin, mask)[0].pow(2).sum().backward()
        grads.append([xin.grad.clone()] + [p.grad.clone() for p in ours.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1])
    assert all(maxdiff(a, b) <= 1e-4 for a, b in zip(*grads))


def test_final_layer_norm_reads_layer_norm_eps_but_block_norms_do_not():
    _, config = configs("relative", layer_norm_eps=1e-3)
    encoder = Wav2Vec2ConformerEncoder(config)
    assert encoder.layer_norm.eps == 1e-3
    assert {m.eps for m in encoder.layers.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-5}


# ------------------------------------------------------------------ errors
def test_errors_name_the_argument():
    _, config = configs("relative")
    encoder = Wav2Vec2ConformerEncoder(config)
    x, mask = inputs()
    with pytest.raises(ValueError, match=r"hidden_states: expected \(batch, time, hidden_size=32\), got shape \(30, 32\)"):
        encoder(x[0])
    with pytest.raises(ValueError, match=r"hidden_states: expected \(batch, time, hidden_size=32\), got shape \(3, 30, 16\)"):
        encoder(x[..., :16])
    with pytest.raises(ValueError, match=r"attention_mask: expected one flag per frame, shape \(batch, time\) = \(3, 30\)"):
        encoder(x, torch.ones(3, 400))
    attention = Wav2Vec2ConformerSelfAttention(config)
    with pytest.raises(ValueError, match="position_embeddings: this layer uses 'relative' positions"):
        attention(x)
    with pytest.raises(ValueError, match=r"position_embeddings: expected 2T-1 = 59 relative offsets for T = 30"):
        attention(x, None, encoder.embed_positions(x[:, :10]))

    bad = Wav2Vec2ConformerConfig(**SMALL)
    bad.position_embeddings_type = "absolute"          # the config rejects it; a config changed afterwards too
    with pytest.raises(ValueError, match="config.position_embeddings_type: expected 'relative', 'rotary' or None"):
        Wav2Vec2ConformerSelfAttention(bad)
    with pytest.raises(ValueError, match="config.position_embeddings_type: expected 'relative', 'rotary' or None"):
        Wav2Vec2ConformerEncoder(bad)
    bad = Wav2Vec2ConformerConfig(**SMALL)
    bad.conv_depthwise_kernel_size = 4
    with pytest.raises(ValueError, match="config.conv_depthwise_kernel_size: expected an odd kernel.*use 5"):
        Wav2Vec2ConformerConvolutionModule(bad)
