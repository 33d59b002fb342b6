"""Chapter 6: Wav2Vec2ConformerModel equals transformers' on every checkpoint layout, both ways.

transformers' model is built with random weights, perturbed so that every parameter and buffer matters
(norm weights, BatchNorm statistics, position biases), saved with ``save_pretrained`` and loaded with w2vc,
and the other way round. Outputs are compared in eval mode in float32: max abs difference <= 1e-5 for small
configurations, <= 1e-4 for a 24-layer 1024-wide one.
"""
import dataclasses
import gc
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from torch import nn

from helpers import ATOL, ATOL_LARGE, audio_batch, hf_config, max_diff, w2vc_config
from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.model import (
    Wav2Vec2ConformerBaseModelOutput,
    Wav2Vec2ConformerModel,
    Wav2Vec2ConformerPreTrainedModel,
    match_checkpoint_keys,
    parameters_on_meta,
    read_state_dict,
    skip_weight_init,
)

HFModel = transformers.Wav2Vec2ConformerModel
BATCHES = {"single": [2600], "padded": [2600, 1900, 1200]}


@torch.no_grad()
def perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """Move every parameter and BatchNorm statistic off its initial value, reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        p.add_(0.1 * torch.randn(p.shape, generator=gen))
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(0.1 * torch.randn(b.shape, generator=gen))
        elif name.endswith("running_var"):
            b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return model


def make_hf(seed=0, cls=HFModel, **overrides):
    torch.manual_seed(seed)
    return perturb(cls(hf_config(**overrides)), seed).eval()


def run(model, lengths, **kwargs):
    x, mask = audio_batch(lengths, seed=1)
    with torch.no_grad():
        return model(x, attention_mask=mask if len(lengths) > 1 else None,
                     output_hidden_states=True, output_attentions=True, **kwargs)


def assert_same_outputs(ours, theirs, atol, context=""):
    assert max_diff(ours.last_hidden_state, theirs.last_hidden_state) <= atol, context
    assert max_diff(ours.extract_features, theirs.extract_features) <= atol, context
    assert len(ours.hidden_states) == len(theirs.hidden_states) > 1, context
    for i, (a, b) in enumerate(zip(ours.hidden_states, theirs.hidden_states)):
        assert max_diff(a, b) <= atol, f"{context} hidden_states[{i}]: {max_diff(a, b)}"
    assert len(ours.attentions) == len(theirs.attentions) > 0, context
    for i, (a, b) in enumerate(zip(ours.attentions, theirs.attentions)):
        assert max_diff(a, b) <= atol, f"{context} attentions[{i}]: {max_diff(a, b)}"


ADAPTER = dict(add_adapter=True, output_hidden_size=24, num_adapter_layers=2)
LAYOUTS = [(pos, norm, adapter) for pos in ("relative", "rotary", None) for norm in ("group", "layer")
           for adapter in (False, True)]


def _layout_kwargs(pos, norm, adapter):
    return dict(position_embeddings_type=pos, feat_extract_norm=norm, **(ADAPTER if adapter else {}))


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """One transformers model per layout, saved once: ``layout -> (model, folder)``."""
    cache = {}

    def get(layout):
        if layout not in cache:
            model = make_hf(**_layout_kwargs(*layout))
            folder = tmp_path_factory.mktemp("hf")
            model.save_pretrained(folder)
            cache[layout] = (model, folder)
        return cache[layout]

    return get


@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize("pos, norm, adapter", LAYOUTS)
def test_transformers_folder_loads_and_gives_the_same_outputs(hf_folders, pos, norm, adapter, batch):
    theirs, folder = hf_folders((pos, norm, adapter))
    ours = Wav2Vec2ConformerModel.from_pretrained(folder)
    assert not ours.training
    assert set(ours.state_dict()) == set(theirs.state_dict())
    want, got = run(theirs, BATCHES[batch]), run(ours, BATCHES[batch])
    assert isinstance(got, Wav2Vec2ConformerBaseModelOutput)
    assert_same_outputs(got, want, ATOL, f"{pos}/{norm}/adapter={adapter}/{batch}")
    if adapter:
        assert got.last_hidden_state.shape[-1] == 24
        assert got.last_hidden_state.shape[1] == ours._get_feat_extract_output_lengths(2600)


@pytest.mark.parametrize("pos, norm, adapter", LAYOUTS)
def test_w2vc_folder_loads_in_transformers_without_missing_keys(tmp_path, pos, norm, adapter):
    torch.manual_seed(0)
    ours = perturb(Wav2Vec2ConformerModel(w2vc_config(**_layout_kwargs(pos, norm, adapter)))).eval()
    ours.save_pretrained(tmp_path)
    theirs, info = HFModel.from_pretrained(tmp_path, output_loading_info=True, attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"] and not info["error_msgs"], info
    for batch in BATCHES.values():
        assert_same_outputs(run(ours, batch), run(theirs.eval(), batch), ATOL, f"{pos}/{norm}/{adapter}/{batch}")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["Wav2Vec2ConformerModel"] and config["model_type"] == "wav2vec2-conformer"


def test_pytorch_model_bin_both_ways(tmp_path):
    # transformers 5 always writes safetensors; published checkpoints often hold a pytorch_model.bin
    theirs = make_hf(position_embeddings_type="relative", feat_extract_norm="layer")
    theirs.config.save_pretrained(tmp_path / "hf")
    torch.save(theirs.state_dict(), tmp_path / "hf" / "pytorch_model.bin")
    ours = Wav2Vec2ConformerModel.from_pretrained(tmp_path / "hf")
    assert_same_outputs(run(ours, BATCHES["padded"]), run(theirs, BATCHES["padded"]), ATOL)
    ours.save_pretrained(tmp_path / "w2vc", safe_serialization=False)
    assert sorted(p.name for p in (tmp_path / "w2vc").iterdir()) == ["config.json", "pytorch_model.bin"]
    again, info = HFModel.from_pretrained(tmp_path / "w2vc", output_loading_info=True, attn_implementation="eager")
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert_same_outputs(run(again.eval(), BATCHES["padded"]), run(theirs, BATCHES["padded"]), ATOL)


def test_weight_norm_as_weight_g_and_weight_v(tmp_path):
    """Older checkpoints store the positional conv's weight norm as weight_g / weight_v."""
    theirs = make_hf(position_embeddings_type="rotary")
    state = {k: v.clone() for k, v in theirs.state_dict().items()}
    old = {}
    for k, v in state.items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                               "weight_v")
        old[k] = v
    assert "encoder.pos_conv_embed.conv.weight_g" in old and "encoder.pos_conv_embed.conv.weight_v" in old
    theirs.config.save_pretrained(tmp_path)
    torch.save(old, tmp_path / "pytorch_model.bin")
    ours = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    for suffix in ("original0", "original1"):
        key = f"encoder.pos_conv_embed.conv.parametrizations.weight.{suffix}"
        assert torch.equal(ours.state_dict()[key], state[key])
    assert_same_outputs(run(ours, BATCHES["single"]), run(theirs, BATCHES["single"]), ATOL)


def test_sharded_checkpoint(tmp_path):
    theirs = make_hf(position_embeddings_type=None)
    theirs.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ours = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    assert_same_outputs(run(ours, BATCHES["padded"]), run(theirs, BATCHES["padded"]), ATOL)


def test_same_mask_indices_give_the_same_masked_output_in_eval_and_training(tmp_path):
    # dropout and LayerDrop off, so that training mode is deterministic; BatchNorm then uses batch statistics
    # (padded frames included, in both libraries)
    no_dropout = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
                      conformer_conv_dropout=0.0, layerdrop=0.0, mask_time_prob=0.3, mask_feature_prob=0.0)
    theirs = make_hf(position_embeddings_type="relative", feat_extract_norm="layer", **no_dropout)
    theirs.save_pretrained(tmp_path)
    ours = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    x, mask = audio_batch(BATCHES["padded"], seed=2)
    frames = ours._get_feat_extract_output_lengths(x.shape[1])
    time_mask = torch.zeros(3, frames, dtype=torch.bool)
    time_mask[:, 3:9] = True
    time_mask[0, 20:25] = True
    for training in (False, True):
        theirs.train(training)
        ours.train(training)
        with torch.no_grad():
            want = theirs(x, attention_mask=mask, mask_time_indices=time_mask, output_hidden_states=True)
            got = ours(x, attention_mask=mask, mask_time_indices=time_mask, output_hidden_states=True)
        assert max_diff(got.last_hidden_state, want.last_hidden_state) <= ATOL, training
        assert max_diff(got.hidden_states[0], want.hidden_states[0]) <= ATOL
        assert torch.equal(got.mask_time_indices, time_mask)
    # training mode updated BatchNorm's running statistics the same way
    for key, value in theirs.state_dict().items():
        if "running" in key:
            assert max_diff(ours.state_dict()[key], value) <= ATOL, key


def test_training_samples_masks_only_inside_utterances():
    torch.manual_seed(0)
    ours = Wav2Vec2ConformerModel(w2vc_config(mask_time_prob=0.5, mask_time_length=3, feat_extract_norm="layer"))
    x, mask = audio_batch(BATCHES["padded"])
    ours.train()
    out = ours(x, attention_mask=mask, generator=torch.Generator().manual_seed(0))
    frames = ours._get_feature_vector_attention_mask(out.extract_features.shape[1], mask)
    assert out.mask_time_indices.any() and not (out.mask_time_indices & ~frames).any()
    ours.eval()
    assert ours(x, attention_mask=mask).mask_time_indices is None


def test_large_24_layer_1024_wide_model_matches(tmp_path):
    config = Wav2Vec2ConformerConfig.preset("large-rope")
    torch.manual_seed(0)
    hf_conf = transformers.Wav2Vec2ConformerConfig(**{k: v for k, v in config.to_dict().items()})
    hf_conf._attn_implementation = "eager"
    theirs = HFModel(hf_conf).eval()
    with torch.no_grad():  # perturb the norms, biases and BatchNorm statistics (the big matrices are random already)
        for name, value in list(theirs.named_parameters()) + list(theirs.named_buffers()):
            if value.dim() == 1 and value.is_floating_point() and "inv_freq" not in name:
                value.copy_((value + 0.1 * torch.randn_like(value)).abs() if "running_var" in name
                            else value + 0.1 * torch.randn_like(value))
    theirs.save_pretrained(tmp_path)
    x, mask = audio_batch([4800, 3600], seed=3)
    with torch.no_grad():
        want = theirs(x, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    del theirs
    gc.collect()
    ours = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    assert ours.num_parameters() > 590_000_000
    with torch.no_grad():
        got = ours(x, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    assert len(got.hidden_states) == 25 and len(got.attentions) == 24
    assert_same_outputs(got, want, ATOL_LARGE, "large-rope")


HAS_ATTN_IMPLEMENTATION = "attn_implementation" in {f.name for f in dataclasses.fields(Wav2Vec2ConformerConfig)}


@pytest.mark.skipif(not HAS_ATTN_IMPLEMENTATION, reason="needs the config field attn_implementation "
                                                        "(chapter 2, issue 10's attention backends)")
@pytest.mark.parametrize("pos", ["relative", "rotary", None])
def test_from_pretrained_chooses_the_attention_code(hf_folders, pos):
    theirs, folder = hf_folders((pos, "layer", False))
    x, mask = audio_batch(BATCHES["padded"], seed=1)
    with torch.no_grad():
        want = theirs(x, attention_mask=mask).last_hidden_state
    for name in ("eager", "sdpa"):
        ours = Wav2Vec2ConformerModel.from_pretrained(folder, attn_implementation=name)
        assert ours.config.attn_implementation == name
        with torch.no_grad():
            assert max_diff(ours(x, attention_mask=mask).last_hidden_state, want) <= ATOL, name
    # the default stays eager: chapters 8-12's stored training numbers were made with it (chapter 13)
    assert Wav2Vec2ConformerModel.from_pretrained(folder).config.attn_implementation == "eager"
    with pytest.raises(ValueError, match=r"attn_implementation: expected one of \['eager', 'sdpa'\].*got 'flash'"):
        Wav2Vec2ConformerModel.from_pretrained(folder, attn_implementation="flash")


# ---- heads: the base class that later chapters subclass ---------------------------------------------------

class TinyHead(Wav2Vec2ConformerPreTrainedModel):
    """A head like the ones of later chapters: a body under ``wav2vec2_conformer`` and a linear layer."""

    def __init__(self, config):
        super().__init__(config)
        self.wav2vec2_conformer = Wav2Vec2ConformerModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_values, attention_mask=None):
        hidden = self.wav2vec2_conformer(input_values, attention_mask=attention_mask).last_hidden_state
        return self.classifier(hidden.mean(1))


def test_body_checkpoint_into_a_head_model_warns_about_new_weights(tmp_path):
    theirs = make_hf(position_embeddings_type="rotary")
    theirs.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match=r"newly initialised .*classifier.weight, classifier.bias"):
        head = TinyHead.from_pretrained(tmp_path)
    assert head.base_model is head.wav2vec2_conformer
    # the new head is initialised by _init_weights (normal(0, 0.02), zero bias), not left empty
    assert head.classifier.bias.abs().max() == 0 and 0.01 < head.classifier.weight.std() < 0.03
    assert_same_outputs(run(head.wav2vec2_conformer, BATCHES["padded"]), run(theirs, BATCHES["padded"]), ATOL)


def test_head_checkpoint_into_the_body_warns_about_unused_weights(tmp_path):
    theirs = make_hf(cls=transformers.Wav2Vec2ConformerForCTC, position_embeddings_type="relative")
    theirs.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match=r"belong to another head and were not used: lm_head"):
        ours = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    assert_same_outputs(run(ours, BATCHES["padded"]), run(theirs.wav2vec2_conformer, BATCHES["padded"]), ATOL)


def test_head_round_trip_and_mismatched_head(tmp_path):
    torch.manual_seed(0)
    head = perturb(TinyHead(w2vc_config(num_labels=5))).eval()
    head.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = TinyHead.from_pretrained(tmp_path)
    x, mask = audio_batch(BATCHES["padded"])
    with torch.no_grad():
        assert torch.equal(again(x, mask), head(x, mask))
    assert "wav2vec2_conformer.encoder.layer_norm.weight" in load_file(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"shapes do not match TinyHead .*classifier.weight: checkpoint \(5, 32\), "
                                         r"model \(3, 32\).*ignore_mismatched_sizes=True"):
        TinyHead.from_pretrained(tmp_path, num_labels=3)
    with pytest.warns(UserWarning, match="re-initialised weights whose shapes differ"):
        resized = TinyHead.from_pretrained(tmp_path, num_labels=3, ignore_mismatched_sizes=True)
    assert resized.classifier.weight.shape == (3, 32)
    assert torch.equal(resized.wav2vec2_conformer.encoder.layers[0].ffn1.output_dense.weight,
                       head.wav2vec2_conformer.encoder.layers[0].ffn1.output_dense.weight)
    # a head's folder loads in the body too, like transformers' body loads a head checkpoint
    with pytest.warns(UserWarning, match="not used: classifier"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path)


def test_recomputable_buffers_and_masked_spec_embed_are_optional(tmp_path):
    theirs = make_hf(position_embeddings_type="rotary")
    state = {k: v for k, v in theirs.state_dict().items()
             if not k.endswith(("inv_freq", "num_batches_tracked"))}
    theirs.config.save_pretrained(tmp_path)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    assert_same_outputs(run(ours, BATCHES["single"]), run(theirs, BATCHES["single"]), ATOL)
    # loading without masking drops masked_spec_embed; loading with masking into a maskless checkpoint keeps ours
    no_embed = {k: v.contiguous() for k, v in state.items() if k != "masked_spec_embed"}
    save_file(no_embed, tmp_path / "model.safetensors", metadata={"format": "pt"})
    fresh = Wav2Vec2ConformerModel.from_pretrained(tmp_path)  # built without init, then initialised where unloaded
    assert 0 <= fresh.masked_spec_embed.min() and fresh.masked_spec_embed.max() < 1
    assert max_diff(fresh.masked_spec_embed, theirs.masked_spec_embed) > 0.01
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    no_mask = Wav2Vec2ConformerModel.from_pretrained(tmp_path, mask_time_prob=0.0)
    assert no_mask.masked_spec_embed is None
    match = match_checkpoint_keys(no_mask, state)
    assert "masked_spec_embed" in match.optional and not match.unexpected and not match.missing
    assert all(k.endswith(("masked_spec_embed", "inv_freq", "num_batches_tracked")) for k in match.optional)


def test_frame_mask_and_lengths_match_transformers():
    theirs = make_hf()
    ours = Wav2Vec2ConformerModel(w2vc_config())
    _, mask = audio_batch([5000, 3000, 86, 2999])
    frames = int(theirs._get_feat_extract_output_lengths(5000))
    assert torch.equal(ours._get_feature_vector_attention_mask(frames, mask),
                       theirs._get_feature_vector_attention_mask(frames, mask))
    for add_adapter in (False, True):
        lengths = torch.arange(85, 5000, 13)
        assert torch.equal(ours._get_feat_extract_output_lengths(lengths, add_adapter=add_adapter),
                           theirs._get_feat_extract_output_lengths(lengths, add_adapter=add_adapter))


def test_initialisation_follows_transformers_scheme():
    kwargs = dict(position_embeddings_type="relative", add_adapter=True, output_hidden_size=24,
                  hidden_size=64, intermediate_size=128, num_conv_pos_embeddings=32)
    torch.manual_seed(0)
    theirs = HFModel(hf_config(**kwargs)).state_dict()
    torch.manual_seed(1)
    ours = Wav2Vec2ConformerModel(w2vc_config(**kwargs)).state_dict()
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if key.startswith("encoder.pos_conv_embed."):
            # never applied; we follow fairseq's normal(0, 2 / sqrt(K * C)), which transformers means to use
            # but writes into the computed weight of the weight-normed conv, keeping PyTorch's default instead
            continue
        a, b = ours[key].float(), value.float()
        if b.min() == b.max() or key.endswith(("running_mean", "running_var", "num_batches_tracked", "inv_freq")):
            assert torch.equal(a, b), key  # constants: norms at 1 and 0, zero biases, buffers
            continue
        if b.numel() < 256:
            continue
        # same distribution: means within 5 standard errors of their difference, spreads within 25%
        assert abs(a.mean() - b.mean()) < 5 * b.std() * (2 / b.numel()) ** 0.5 + 1e-3, key
        assert 0.75 < a.std() / b.std() < 1.33, (key, a.std().item(), b.std().item())
    assert ours["masked_spec_embed"].min() >= 0 and ours["masked_spec_embed"].max() < 1


def test_freeze_and_gradient_checkpointing():
    torch.manual_seed(0)
    config = w2vc_config(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                         conformer_conv_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, feat_extract_norm="layer")
    model = Wav2Vec2ConformerModel(config).train()
    x, mask = audio_batch(BATCHES["padded"])

    def grads():
        model.zero_grad()
        model(x, attention_mask=mask).last_hidden_state.square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing and model.feature_extractor.gradient_checkpointing
    assert model.encoder.gradient_checkpointing
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-5), name
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing
    model.freeze_feature_encoder()
    frozen = grads()
    assert not any(n.startswith("feature_extractor.") for n in frozen)
    assert model.num_parameters(only_trainable=True) < model.num_parameters()


# ---- loading without a second copy ----------------------------------------------------------------------------

def _mapped_ranges(path) -> list[tuple[int, int]]:
    """Address ranges of this process that map ``path`` (from /proc/self/maps)."""
    ranges = []
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith(str(path)):
            start, stop = (int(x, 16) for x in line.split()[0].split("-"))
            ranges.append((start, stop))
    return ranges


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/self/maps (Linux)")
@pytest.mark.parametrize("safe", [True, False])
def test_loaded_parameters_are_the_mapped_file_itself(tmp_path, safe):
    torch.manual_seed(0)
    perturb(Wav2Vec2ConformerModel(w2vc_config(position_embeddings_type="relative"))).save_pretrained(
        tmp_path, safe_serialization=safe)
    loaded = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    ranges = _mapped_ranges(tmp_path / ("model.safetensors" if safe else "pytorch_model.bin"))
    assert ranges
    outside = [n for n, p in loaded.named_parameters()
               if not any(a <= p.data_ptr() and p.data_ptr() + p.numel() * p.element_size() <= b for a, b in ranges)]
    assert outside == []
    assert not any(t.is_meta for t in loaded.state_dict().values())


def test_loading_allocates_no_second_copy_of_the_weights(tmp_path):
    torch.manual_seed(0)
    Wav2Vec2ConformerModel(w2vc_config()).save_pretrained(tmp_path / "small")
    config = w2vc_config(hidden_size=256, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=4,
                         position_embeddings_type="rotary")
    Wav2Vec2ConformerModel(config).save_pretrained(tmp_path / "large")
    size = (tmp_path / "large" / "model.safetensors").stat().st_size       # about 39 MB
    child = ("import torch, w2vc\n"
             "def anon(): return int(dict(l.split(':', 1) for l in open('/proc/self/status'))['RssAnon'].split()[0]) * 1024\n"
             f"w2vc.Wav2Vec2ConformerModel.from_pretrained({str(tmp_path / 'small')!r})  # imports what loading needs\n"
             f"before = anon(); w2vc.Wav2Vec2ConformerModel.from_pretrained({str(tmp_path / 'large')!r}); "
             "print(anon() - before)")
    grown = int(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout)
    # the process's own (anonymous) memory: a model built with random weights, or a copy of the file, would add
    # at least the size of the weights; the mapped file's pages are the page cache's, shared, not the process's
    assert grown < 0.1 * size, (grown, size)


def test_writing_to_a_loaded_model_changes_neither_the_file_nor_a_second_load(tmp_path):
    torch.manual_seed(0)
    model = perturb(Wav2Vec2ConformerModel(w2vc_config(layerdrop=0.0))).eval()
    model.save_pretrained(tmp_path)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    first = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    second = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    with torch.no_grad():
        for p in first.parameters():
            p.add_(1.0)
    assert all(torch.equal(v, saved[k]) for k, v in second.state_dict().items())
    assert all(torch.equal(v, saved[k]) for k, v in read_state_dict(tmp_path).items())
    # a model saved over the file it was loaded from: the new file holds its weights, and it keeps them
    changed = {k: v.clone() for k, v in first.state_dict().items()}
    first.save_pretrained(tmp_path)
    assert all(torch.equal(v, changed[k]) for k, v in first.state_dict().items())
    assert all(torch.equal(v, changed[k]) for k, v in read_state_dict(tmp_path).items())
    assert all(torch.equal(v, saved[k]) for k, v in second.state_dict().items())
    x, mask = audio_batch(BATCHES["padded"])
    first.train()
    first(x, attention_mask=mask).last_hidden_state.square().mean().backward()   # trains: gradients everywhere
    assert [n for n, p in first.named_parameters() if p.grad is None] == [
        n for n, _ in first.named_parameters() if n.startswith("encoder.pos_conv_embed.")]   # never applied


def test_checkpoint_in_half_precision_loads_as_float32(tmp_path):
    torch.manual_seed(0)
    model = perturb(Wav2Vec2ConformerModel(w2vc_config()))
    model.config.save_pretrained(tmp_path)
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(half, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    for key, value in loaded.state_dict().items():
        assert value.dtype == model.state_dict()[key].dtype, key
        assert torch.equal(value, half[key].to(value.dtype)), key


def test_legacy_pytorch_model_bin_and_views_of_one_storage(tmp_path):
    torch.manual_seed(0)
    model = perturb(Wav2Vec2ConformerModel(w2vc_config())).eval()
    state = dict(model.state_dict())
    q, k = "encoder.layers.0.self_attn.linear_q.weight", "encoder.layers.0.self_attn.linear_k.weight"
    state[k] = state[q]                                            # one storage behind two keys
    model.config.save_pretrained(tmp_path)
    torch.save(state, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)   # not mappable
    loaded = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    a, b = loaded.get_parameter(q), loaded.get_parameter(k)
    assert torch.equal(a, state[q]) and torch.equal(b, state[q])
    with torch.no_grad():
        a.add_(1.0)
    assert torch.equal(b, state[q])                                # two parameters, not one memory
    torch.save(state, tmp_path / "pytorch_model.bin")              # the zip format, memory-mapped
    again = Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    with torch.no_grad():
        again.get_parameter(q).add_(1.0)
    assert torch.equal(again.get_parameter(k), state[q])


class TiedHead(TinyHead):
    """A head whose second classifier shares the first one's weight (as tied embeddings do)."""

    def __init__(self, config):
        super().__init__(config)
        self.tied = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.tied.weight = self.classifier.weight
        self.post_init()


@pytest.mark.parametrize("keys", ["both", "first", "second"])
def test_tied_parameters_stay_tied(keys):
    torch.manual_seed(0)
    config = w2vc_config(num_labels=3)
    head = perturb(TiedHead(config))
    state = head.state_dict()
    assert torch.equal(state["tied.weight"], state["classifier.weight"])
    drop = {"both": (), "first": ("tied.weight",), "second": ("classifier.weight",)}[keys]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # given under one name, the weight is not new
        loaded = TiedHead.from_state_dict(config, {k: v.clone() for k, v in state.items() if k not in drop})
    assert loaded.tied.weight is loaded.classifier.weight
    assert torch.equal(loaded.classifier.weight, head.classifier.weight)


def test_from_state_dict_takes_the_tensors_over():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerModel(w2vc_config())
    state = model.state_dict()
    taken = Wav2Vec2ConformerModel.from_state_dict(model.config, state)
    copied = Wav2Vec2ConformerModel.from_state_dict(model.config, {k: v.clone() for k, v in state.items()})
    key = "encoder.layers.0.ffn1.output_dense.weight"
    assert taken.get_parameter(key).data_ptr() == model.get_parameter(key).data_ptr()
    assert copied.get_parameter(key).data_ptr() != model.get_parameter(key).data_ptr()
    assert torch.equal(copied.get_parameter(key), model.get_parameter(key))


def test_parameters_on_meta_keeps_buffers_and_restores_register_parameter():
    register = nn.Module.register_parameter
    with skip_weight_init(), parameters_on_meta():
        model = Wav2Vec2ConformerModel(w2vc_config(position_embeddings_type="rotary"))
    assert nn.Module.register_parameter is register
    assert all(p.is_meta for p in model.parameters())
    fresh = Wav2Vec2ConformerModel(w2vc_config(position_embeddings_type="rotary"))
    for (name, buffer), (_, want) in zip(model.named_buffers(), fresh.named_buffers()):
        assert not buffer.is_meta and torch.equal(buffer, want), name
    with pytest.raises(ZeroDivisionError):
        with parameters_on_meta():
            1 / 0
    assert nn.Module.register_parameter is register
    assert not nn.Linear(2, 2).weight.is_meta


# ---- bad input -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return Wav2Vec2ConformerModel(w2vc_config()).eval()


@pytest.mark.parametrize("make, error, match", [
    (lambda x, m: (x[:, :80], None), ValueError, r"input_values has 80 samples, fewer than the receptive field"),
    (lambda x, m: (x, m[:, :-5]), ValueError, r"attention_mask must have the shape of input_values \(batch, samples\) "
                                              r"= \(3, 2600\), got \(3, 2595\)"),
    (lambda x, m: (x, m[0]), ValueError, r"attention_mask must have the shape of input_values"),
    (lambda x, m: (x, m * 2), ValueError, r"attention_mask must hold only 0 and 1"),
    (lambda x, m: (x[:, None], None), ValueError, r"input_values must have shape \(batch, samples\), got \(3, 1, 2600\)"),
    (lambda x, m: ((x * 32767).to(torch.int16), None), TypeError, r"must be floating point audio, got dtype torch.int16"),
])
def test_bad_input_is_rejected(small_model, make, error, match):
    x, mask = audio_batch(BATCHES["padded"])
    values, attention = make(x, mask)
    with pytest.raises(error, match=match):
        small_model(values, attention_mask=attention)


def test_bool_attention_mask_works_like_integers(small_model):
    x, mask = audio_batch(BATCHES["padded"])
    with torch.no_grad():
        a = small_model(x, attention_mask=mask).last_hidden_state
        b = small_model(x, attention_mask=mask.bool()).last_hidden_state
    assert torch.equal(a, b)


MODEL_FOLDER = r"A model folder holds config.json and the weights \(model.safetensors, pytorch_model.bin"


def test_folder_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"folder: 'nope' does not exist; pass the path of a model folder. "
                                                rf"{MODEL_FOLDER}"):
        Wav2Vec2ConformerModel.from_pretrained("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path / "missing")


def test_file_given_as_the_folder(tmp_path):
    path = w2vc_config().save_pretrained(tmp_path)              # config.json itself
    with pytest.raises(NotADirectoryError, match=rf"expected a model folder, got the file '.*config.json'; pass the "
                                                 rf"folder that holds it. {MODEL_FOLDER}"):
        Wav2Vec2ConformerModel.from_pretrained(path)


def test_folder_that_is_not_a_model_says_what_is_missing_and_what_it_holds(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"is not a model folder: it has no config.json and no weights file "
                                                rf"\(it holds nothing\). {MODEL_FOLDER}"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    for i in range(8):
        (tmp_path / f"clip{i}.wav").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"no config.json and no weights file \(it holds clip0.wav, clip1.wav, "
                                                r"clip2.wav, clip3.wav, clip4.wav, clip5.wav and 2 more\)"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path)


def test_folder_without_weights(tmp_path):
    w2vc_config().save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"is not a model folder: it has no weights file \(it holds "
                                                rf"config.json\). {MODEL_FOLDER}"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no weights found in .*: expected one of \['model.safetensors'"):
        read_state_dict(tmp_path)


def test_folder_without_config_json(tmp_path):
    torch.manual_seed(0)
    Wav2Vec2ConformerModel(w2vc_config()).save_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"it has no config.json \(it holds model.safetensors\)"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("safe", [True, False])
def test_weights_file_has_the_permissions_of_the_other_files(tmp_path, umask, safe):
    torch.manual_seed(0)
    model = Wav2Vec2ConformerModel(w2vc_config())
    old = os.umask(umask)
    try:
        model.save_pretrained(tmp_path, safe_serialization=safe)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"config.json": 0o666 & ~umask, ("model.safetensors" if safe else "pytorch_model.bin"): 0o666 & ~umask}


def test_checkpoint_whose_shapes_do_not_match_the_config(tmp_path):
    make_hf().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] = 48
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"shapes do not match Wav2Vec2ConformerModel built from its config: "
                                         r".*encoder.layers.0.ffn1.intermediate_dense.weight: checkpoint \(64, 32\), "
                                         r"model \(48, 32\)"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path)


def test_checkpoint_with_missing_and_unexpected_keys(tmp_path):
    make_hf(position_embeddings_type="relative").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"does not fit Wav2Vec2ConformerModel: missing keys: none; unexpected keys: "
                                         r"encoder.layers.0.self_attn.linear_pos.weight, .*position_embeddings_type"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path, position_embeddings_type=None)
    with pytest.raises(ValueError, match=r"missing keys: encoder.layers.2.ffn1_layer_norm.weight"):
        Wav2Vec2ConformerModel.from_pretrained(tmp_path, num_hidden_layers=3)


def test_config_of_the_wrong_type():
    with pytest.raises(TypeError, match="config must be a w2vc Wav2Vec2ConformerConfig, got Wav2Vec2ConformerConfig"):
        Wav2Vec2ConformerModel(hf_config())


def test_read_state_dict_gives_the_saved_tensors(tmp_path):
    torch.manual_seed(0)
    model = Wav2Vec2ConformerModel(w2vc_config())
    model.save_pretrained(tmp_path)
    state = read_state_dict(tmp_path)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
