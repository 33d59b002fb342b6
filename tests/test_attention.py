"""Chapter 13: the fused attention kernels (w2vc.attention) equal chapter 5's eager attention.

Forward to 1e-5 and the gradient of every parameter to 1e-5 relative (float32, dropout off), for relative,
rotary and no positions, padded batches, odd lengths, and lengths below, at and above the block size; the
relative path's largest tensor grows linearly in T; bad input gets errors that name the fix.
"""
import pytest
import torch

from w2vc.attention import (ATTN_IMPLEMENTATIONS, AllocationLog, attention_forward, check_attn_implementation,
                            relative_attention_blocked, relative_window, skew_block)
from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.conformer import Wav2Vec2ConformerSelfAttention
from w2vc.positions import (Wav2Vec2ConformerRelPositionalEmbedding, Wav2Vec2ConformerRotaryPositionalEmbedding,
                            relative_shift)

ATOL = 1e-5
RTOL_GRAD = 1e-5
POSITIONS = ["relative", "rotary", None]
BLOCK = 8


def layer_and_table(position, T, seed=0, hidden=32, heads=4):
    """A small attention layer with random weights (u and v too) and its position table for T frames."""
    config = Wav2Vec2ConformerConfig(hidden_size=hidden, num_attention_heads=heads, attention_dropout=0.0,
                                     position_embeddings_type=position, max_source_positions=16,
                                     attn_implementation="eager")   # layer(...) is the reference: chapter 5's code
    torch.manual_seed(seed)
    layer = Wav2Vec2ConformerSelfAttention(config)
    if position == "relative":
        with torch.no_grad():
            layer.pos_bias_u.normal_(), layer.pos_bias_v.normal_()
    x = torch.randn(3, T, hidden)
    embed = {"relative": Wav2Vec2ConformerRelPositionalEmbedding,
             "rotary": Wav2Vec2ConformerRotaryPositionalEmbedding}.get(position)
    return layer, x, (embed(config)(x) if embed else None)


def padding_mask(T):
    lengths = torch.tensor([T, max(1, T - 3), max(1, T // 2)])
    return torch.arange(T)[None, :] < lengths[:, None]          # (B, T)


def grads(layer, fn):
    layer.zero_grad()
    fn().pow(2).sum().backward()
    return {name: p.grad.clone() for name, p in layer.named_parameters()}


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("T", [2, 7, BLOCK, 13, 3 * BLOCK + 1])     # below, at, above the block; odd lengths
def test_forward_and_every_gradient_equal_eager(position, T):
    layer, x, table = layer_and_table(position, T)
    layer.train()                                                   # dropout is 0: train mode, no difference
    mask = padding_mask(T)
    eager = grads(layer, lambda: layer(x, mask, table)[0])
    fast = grads(layer, lambda: attention_forward(layer, x, mask, table, block_size=BLOCK))
    with torch.no_grad():
        diff = (attention_forward(layer, x, mask, table, block_size=BLOCK) - layer(x, mask, table)[0]).abs().max()
    assert diff <= ATOL, f"{position}, T={T}: forward max |diff| {diff:.2e}"
    largest = max(g.abs().max() for g in eager.values())
    assert largest > 0
    for name, g in eager.items():
        # linear_k.bias: exactly zero in exact arithmetic (softmax ignores a shift by q.b), so both give
        # rounding noise; compare it with the layer's largest gradient instead of its own
        scale = largest if name == "linear_k.bias" else g.abs().max()
        err = ((fast[name] - g).abs().max() / scale).item()
        assert err <= RTOL_GRAD, f"{position}, T={T}: gradient of {name} differs by {err:.2e} relative"


@pytest.mark.parametrize("position", POSITIONS)
def test_padded_item_equals_itself_alone(position):
    T, n = 13, 6
    layer, x, table = layer_and_table(position, T)
    layer.eval()
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[1, n:] = False
    embed_alone = None
    if position is not None:                                        # the table for n frames, same config
        config = Wav2Vec2ConformerConfig(hidden_size=32, num_attention_heads=4, position_embeddings_type=position,
                                         max_source_positions=16)
        cls = {"relative": Wav2Vec2ConformerRelPositionalEmbedding,
               "rotary": Wav2Vec2ConformerRotaryPositionalEmbedding}[position]
        embed_alone = cls(config)(x[1:, :n])
    with torch.no_grad():
        batch = attention_forward(layer, x[:2], mask, table, block_size=4)[1, :n]
        alone = attention_forward(layer, x[1:2, :n], None, embed_alone, block_size=4)[0]
    assert (batch - alone).abs().max() <= ATOL


@pytest.mark.parametrize("block_size", [1, 3, 5, 100])
def test_relative_block_sizes_agree(block_size):
    layer, x, table = layer_and_table("relative", 11)
    layer.eval()
    mask = padding_mask(11)
    with torch.no_grad():
        ref = layer(x, mask, table)[0]
        out = attention_forward(layer, x, mask, table, block_size=block_size)
    assert (out - ref).abs().max() <= ATOL


def test_skew_block_is_relative_shift_row_by_row():
    T, Bq = 9, 4
    scores = torch.randn(2, 3, T, 2 * T - 1)
    shifted = relative_shift(scores)
    for i0 in range(0, T, Bq):
        i1 = min(i0 + Bq, T)
        assert torch.equal(skew_block(scores[:, :, i0:i1, T - i1:2 * T - 1 - i0], T), shifted[:, :, i0:i1])
    pos = torch.arange(2 * T - 1.0).view(1, 1, -1, 1)
    assert relative_window(pos, 4, 8).flatten().tolist() == list(range(T - 8, 2 * T - 1 - 4))


def _largest_tensor(fn):
    with torch.no_grad(), AllocationLog() as log:
        fn()
    return log.largest


def test_relative_path_memory_grows_linearly_eager_quadratically():
    """On the meta device (nothing computed): quadruple T and eager's largest tensor grows ~16x, ours ~4x."""
    config = Wav2Vec2ConformerConfig(hidden_size=64, num_attention_heads=4, position_embeddings_type="relative",
                                     attn_implementation="eager")
    with torch.device("meta"):
        layer = Wav2Vec2ConformerSelfAttention(config).eval()
    sizes = {}
    for T in (500, 2000):
        x = torch.empty(1, T, 64, device="meta")
        table = torch.empty(1, 2 * T - 1, 64, device="meta")
        mask = torch.ones(1, T, dtype=torch.bool, device="meta")
        sizes[T] = (_largest_tensor(lambda: layer(x, mask, table)),
                    _largest_tensor(lambda: attention_forward(layer, x, mask, table, block_size=64)))
    eager_growth = sizes[2000][0] / sizes[500][0]
    fast_growth = sizes[2000][1] / sizes[500][1]
    assert eager_growth > 14, eager_growth
    assert fast_growth < 4.5, fast_growth
    H, Bq, T = 4, 64, 2000                                          # one block's (B, H, Bq, Bq+T-1) scores
    assert sizes[T][1] <= 4 * max(H * Bq * (Bq + T), (2 * T - 1) * 64) * 1.01, sizes[T][1]


def test_allocation_log_skips_views():
    x = torch.zeros(10, 10)
    with AllocationLog() as log:
        x.view(100), x.t(), x[2:], x + 1
    assert [name for name, *_ in log.allocations] == ["add"] and log.largest == 400


def test_unknown_attn_implementation_names_the_valid_ones():
    assert check_attn_implementation("sdpa") == "sdpa" and "eager" in ATTN_IMPLEMENTATIONS
    with pytest.raises(ValueError, match=r"attn_implementation: expected one of \['eager', 'sdpa'\], got 'flash'"):
        check_attn_implementation("flash")


def test_bad_block_size_and_missing_positions_are_named():
    layer, x, table = layer_and_table("relative", 5)
    with pytest.raises(ValueError, match="block_size: expected a whole number"):
        attention_forward(layer, x, None, table, block_size=0)
    with pytest.raises(ValueError, match="position_embeddings: this layer uses 'relative'"):
        attention_forward(layer, x, None, None)
    with pytest.raises(ValueError, match="expected 2T-1 = 9 relative offsets"):
        attention_forward(layer, x, None, table[:, 1:-1])
    with pytest.raises(ValueError, match="expected Bq \\+ T - 1 = 7 window rows"):
        skew_block(torch.zeros(1, 1, 3, 6), 5)
    q = torch.zeros(1, 1, 5, 4)
    with pytest.raises(ValueError, match="pos: expected 2T-1 = 9"):
        relative_attention_blocked(q, q, q, torch.zeros(1, 1, 7, 4), torch.zeros(1, 4), torch.zeros(1, 4), 0.5)


# ---------------------------------------------------------------------------------------------------
# Wiring: config.attn_implementation and from_pretrained(..., attn_implementation=...)
# ---------------------------------------------------------------------------------------------------

def _tiny_model_folder(tmp_path, position):
    from w2vc.model import Wav2Vec2ConformerModel
    config = Wav2Vec2ConformerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                                     conv_dim=(16, 16), conv_kernel=(10, 4), conv_stride=(5, 4),
                                     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                                     conv_depthwise_kernel_size=7, position_embeddings_type=position,
                                     feat_extract_norm="layer")
    torch.manual_seed(0)
    model = Wav2Vec2ConformerModel(config)
    with torch.no_grad():
        for layer in model.encoder.layers:
            if position == "relative":
                layer.self_attn.pos_bias_u.normal_(), layer.self_attn.pos_bias_v.normal_()
    model.save_pretrained(tmp_path)
    return tmp_path


def test_default_is_eager_and_is_not_written_to_config_json(tmp_path):
    import json
    assert Wav2Vec2ConformerConfig().attn_implementation == "eager"
    config = Wav2Vec2ConformerConfig(attn_implementation="sdpa")
    assert "attn_implementation" not in config.to_dict()
    config.save_pretrained(tmp_path)
    assert "attn_implementation" not in json.loads((tmp_path / "config.json").read_text())
    assert Wav2Vec2ConformerConfig.from_pretrained(tmp_path).attn_implementation == "eager"


def test_config_rejects_an_unknown_attn_implementation():
    with pytest.raises(ValueError, match=r"attn_implementation: expected one of \['eager', 'sdpa'\], got 'flash'"):
        Wav2Vec2ConformerConfig(attn_implementation="flash")


@pytest.mark.parametrize("position", POSITIONS)
def test_from_pretrained_with_sdpa_equals_eager(tmp_path, position):
    from w2vc.model import Wav2Vec2ConformerModel
    folder = _tiny_model_folder(tmp_path, position)
    eager = Wav2Vec2ConformerModel.from_pretrained(folder).eval()
    fast = Wav2Vec2ConformerModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    assert fast.config.attn_implementation == "sdpa"
    assert all(layer.self_attn.attn_implementation == "sdpa" for layer in fast.encoder.layers)
    audio = torch.randn(2, 4000, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 4000, dtype=torch.long)
    mask[1, 2500:] = 0
    with torch.no_grad():
        a = eager(audio, attention_mask=mask).last_hidden_state
        b = fast(audio, attention_mask=mask).last_hidden_state
    assert (a - b).abs().max() <= ATOL
    # asking for the weights falls back to eager attention for that call: the same weights and output, up to
    # the rounding of the feature encoder, which "sdpa" still runs as matrix products (chapter 13)
    with torch.no_grad():
        wa = eager(audio, attention_mask=mask, output_attentions=True)
        wb = fast(audio, attention_mask=mask, output_attentions=True)
        features_a, features_b = eager.feature_extractor(audio)[0], fast.feature_extractor(audio)[0]
    assert wb.attentions is not None and len(wb.attentions) == 2
    assert max((x - y).abs().max() for x, y in zip(wa.attentions, wb.attentions)) <= 1e-6
    assert (wa.last_hidden_state - wb.last_hidden_state).abs().max() <= ATOL
    assert (features_a - features_b).abs().max() <= ATOL


def test_sdpa_layer_asked_for_weights_runs_eager_exactly():
    """The fallback itself, one attention layer: with output_attentions the "sdpa" layer is eager, bit for bit."""
    for position in POSITIONS:
        layer, x, table = layer_and_table(position, 9)
        layer.eval()
        mask = padding_mask(9)
        with torch.no_grad():
            out_a, weights_a = layer(x, mask, table, output_attentions=True)
            layer.attn_implementation = "sdpa"
            out_b, weights_b = layer(x, mask, table, output_attentions=True)
        assert weights_b is not None and torch.equal(weights_a, weights_b) and torch.equal(out_a, out_b)


def test_sdpa_layer_dispatches_to_chapter_13(monkeypatch):
    import w2vc.attention
    calls = []
    real = w2vc.attention.attention_forward
    monkeypatch.setattr(w2vc.attention, "attention_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    config = Wav2Vec2ConformerConfig(hidden_size=32, num_attention_heads=4, position_embeddings_type=None,
                                     attn_implementation="sdpa")
    layer = Wav2Vec2ConformerSelfAttention(config).eval()
    x = torch.randn(1, 5, 32)
    out, weights = layer(x)
    assert calls == [1] and weights is None
    out, weights = layer(x, output_attentions=True)
    assert calls == [1] and weights.shape == (1, 4, 5, 5)


def test_the_bench_is_in_the_package_and_prints_its_table(tmp_path, capsys):
    """`python -m w2vc bench` runs chapter 13's benchmark (w2vc.bench), wherever w2vc is installed;
    --table-from prints the side-by-side ratios of stored cases without running any."""
    import json

    from w2vc.cli import main as cli_main
    rows = [{"position": "relative", "audio_s": 60, "library": lib, "attn": attn, "seconds": s, "peak_gib": g,
             "probe": [[0.0]]} for lib, attn, s, g in [("w2vc", "sdpa", 20.0, 2.0), ("transformers", "eager", 50.0, 3.0),
                                                       ("transformers", "sdpa", 30.0, 3.0)]]
    rows.append({"position": "relative", "audio_s": 60, "library": "w2vc", "attn": "eager",
                 "skipped": "needs about 11.0 GiB (> --memory-gb 10)"})
    lines = tmp_path / "cases.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli_main(["bench", "--table-from", str(lines)]) == 0
    out = capsys.readouterr().out
    assert "w2vc sdpa" in out and "1.50x" in out and "0.67x" in out, out      # 30 / 20 s; 2 / 3 GiB
    assert "w2vc eager" in out and "w2vc eager: skipped, needs about 11.0 GiB" in out, out


def test_the_bench_compares_each_dtype_with_transformers_in_the_same_dtype(tmp_path, capsys):
    import json

    from w2vc.bench import main as bench_main
    rows = [{"position": "rotary", "audio_s": 10, "library": lib, "attn": attn, "dtype": dtype, "seconds": s,
             "peak_gib": 1.0, "probe": [[0.0]], "compile_s": c}
            for lib, attn, dtype, s, c in [("w2vc", "sdpa", "float32", 2.0, None), ("w2vc", "sdpa+compile", "float32", 1.6, 40.0),
                                           ("transformers", "sdpa", "float32", 2.0, None),
                                           ("w2vc", "sdpa", "bfloat16", 1.0, None), ("transformers", "sdpa", "bfloat16", 1.5, None)]]
    lines = tmp_path / "cases.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert bench_main(["--table-from", str(lines)]) == 0
    out = capsys.readouterr().out
    assert "w2vc sdpa+compile" in out and "1.25x" in out, out                                  # 2.0 / 1.6 s
    assert "rotary     10s  w2vc sdpa+compile: compiling took 40 s" in out, out
    assert "w2vc sdpa bfloat16" in out and "1.50x" in out, out                                  # 1.5 / 1.0 s, not 2.0


def test_the_bench_skips_bfloat16_on_a_cpu_without_it_and_says_why(tmp_path, capsys, monkeypatch):
    import w2vc.bench
    import w2vc.recognizer
    monkeypatch.setattr(w2vc.recognizer, "_bf16_supported", lambda device: False)
    monkeypatch.setattr(w2vc.bench, "make_folder", lambda folder, position: None)
    monkeypatch.setattr(w2vc.bench, "run_case", lambda *a: pytest.fail("a bfloat16 case ran on a CPU without bf16"))
    assert w2vc.bench.main(["--seconds", "10", "--positions", "rotary", "--dtype", "bfloat16", "--compile",
                            "--folder", str(tmp_path / "weights")]) == 0
    cases = [line for line in capsys.readouterr().out.splitlines() if line.startswith("rotary")]
    assert len(cases) >= 3 and "w2vc sdpa+compile bfloat16" in "\n".join(cases), cases     # eager, sdpa, compiled
    assert all("skipped, dtype: bfloat16 asked for, but this CPU has no native bfloat16 arithmetic" in line
               for line in cases), cases


def test_the_bench_compiles_only_up_to_compile_up_to_and_says_so(tmp_path, capsys, monkeypatch):
    """Compiling the model for 60 or 120 s of audio takes minutes on a CPU: --compile stops at 10 s unless asked."""
    import w2vc.bench
    ran = []
    monkeypatch.setattr(w2vc.bench, "make_folder", lambda folder, position: None)
    monkeypatch.setattr(w2vc.bench, "run_case", lambda library, implementation, folder, seconds, *rest:
                        ran.append((implementation, seconds)) or {"seconds": 1.0, "peak_gib": 1.0})
    assert w2vc.bench.main(["--seconds", "10", "60", "--positions", "rotary", "--compile",
                            "--folder", str(tmp_path / "weights")]) == 0
    assert ("sdpa+compile", 10) in ran and ("sdpa+compile", 60) not in ran and ("sdpa", 60) in ran, ran
    assert "rotary     60s  w2vc sdpa+compile: skipped, compiled only up to 10 s (--compile-up-to)" in \
        capsys.readouterr().out
    ran.clear()
    assert w2vc.bench.main(["--seconds", "60", "--positions", "rotary", "--compile", "--compile-up-to", "60",
                            "--folder", str(tmp_path / "weights")]) == 0
    assert ("sdpa+compile", 60) in ran, ran


@pytest.mark.parametrize("args, message", [(["--repeats", "0"], "--repeats: expected at least 1 pass, got 0"),
                                           (["--seconds", "10", "-5"], "--seconds: expected lengths above 0, got [10.0, -5.0]")])
def test_the_bench_refuses_bad_arguments(capsys, args, message):
    from w2vc.bench import main as bench_main
    with pytest.raises(SystemExit) as exit_:
        bench_main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
