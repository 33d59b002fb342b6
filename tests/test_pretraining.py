"""Chapter 8: negatives, contrastive and diversity losses, and Wav2Vec2ConformerForPreTraining (w2vc.pretraining)."""
import math

import pytest
import torch
from transformers import Wav2Vec2ConformerConfig as HFConfig
from transformers import Wav2Vec2ConformerForPreTraining as HFForPreTraining

from w2vc.masking import compute_mask_indices
from w2vc.pretraining import (compute_contrastive_logits, contrastive_logits, pretraining_losses,
                              sample_negative_indices)

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             position_embeddings_type="rotary", hidden_act="swish", feat_extract_norm="layer", conv_bias=True,
             conv_dim=(16, 24), conv_kernel=(10, 4), conv_stride=(5, 4), num_conv_pos_embeddings=16,
             num_conv_pos_embedding_groups=4, conv_depthwise_kernel_size=7, layerdrop=0.0,
             mask_time_prob=0.5, mask_time_length=3, num_codevector_groups=2, num_codevectors_per_group=8,
             codevector_dim=16, proj_codevector_dim=12, num_negatives=6, diversity_loss_weight=0.1)


def _hf_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = HFForPreTraining(HFConfig(**{**SMALL, **overrides}))
    return model.eval()


def _batch(B=3, S=1600, seed=0, lengths=None):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(B, S, generator=g)
    attention = None
    if lengths is not None:
        attention = (torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]).long()
        audio = audio * attention
    return audio, attention


# ---------------------------------------------------------------- negatives: transformers' rules

def _check_rules(mask, negatives, T):
    B = mask.shape[0]
    b, t = negatives // T, negatives % T
    rows = torch.arange(B)[:, None, None]
    assert ((b == rows)[mask]).all(), "a distractor from another utterance"
    assert mask[b, t][mask].all(), "a distractor that is not a masked frame"
    assert (t != torch.arange(T)[None, :, None])[mask].all(), "the positive drawn as its own distractor"


def test_negatives_come_from_other_masked_frames_of_the_same_utterance():
    g = torch.Generator().manual_seed(0)
    attention = torch.tensor([[1] * 50, [1] * 35 + [0] * 15, [1] * 20 + [0] * 30])
    mask = compute_mask_indices((3, 50), 0.5, 4, attention_mask=attention, min_masks=2, generator=g)
    negatives = sample_negative_indices((3, 50), 30, mask, generator=g)
    assert negatives.shape == (3, 50, 30) and negatives.dtype == torch.long
    _check_rules(mask, negatives, 50)
    b, t = negatives // 50, negatives % 50
    assert attention[b, t][mask].bool().all(), "padding drawn"
    # frames that are not masked point at frame 0 of their own utterance, like transformers'
    assert (negatives[~mask] == (torch.arange(3)[:, None].expand(3, 50)[~mask] * 50)[:, None]).all()


def test_without_a_mask_every_frame_is_a_candidate():
    negatives = sample_negative_indices((2, 9), 12, generator=torch.Generator().manual_seed(0))
    _check_rules(torch.ones(2, 9, dtype=torch.bool), negatives, 9)
    assert set((negatives[0] % 9).flatten().tolist()) == set(range(9))


def test_negatives_are_uniform_over_the_other_masked_frames():
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[0, [1, 2, 3, 7, 8, 10]] = True
    negatives = sample_negative_indices((1, 12), 60_000, mask, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(negatives[0, 7], minlength=12).float()
    others = [1, 2, 3, 8, 10]
    assert counts[[i for i in range(12) if i not in others]].sum() == 0
    expected = 60_000 / 5
    chi2 = ((counts[others] - expected) ** 2 / expected).sum()
    assert chi2 < 20.5, chi2  # chi-square, 4 degrees of freedom: p < 0.0004 when uniform


def test_with_replacement_so_k_may_exceed_the_candidates():
    mask = torch.tensor([[True, True, False, False]])
    negatives = sample_negative_indices((1, 4), 5, mask, generator=torch.Generator().manual_seed(0))
    assert negatives[0, 0].tolist() == [1] * 5 and negatives[0, 1].tolist() == [0] * 5


def test_negatives_reproducible_with_a_generator_and_on_the_masks_device():
    mask = compute_mask_indices((2, 30), 0.5, 3, min_masks=2, generator=torch.Generator().manual_seed(0))
    a = sample_negative_indices((2, 30), 5, mask, generator=torch.Generator().manual_seed(1))
    b = sample_negative_indices((2, 30), 5, mask, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.device == mask.device
    assert torch.equal(sample_negative_indices((2, 30), 5, mask.long(), generator=torch.Generator().manual_seed(1)), a)


def test_negative_sampling_errors():
    with pytest.raises(ValueError, match="mask_time_indices masks no frame"):
        sample_negative_indices((2, 10), 4, torch.zeros(2, 10, dtype=torch.bool))
    lonely = torch.zeros(2, 10, dtype=torch.bool)
    lonely[0, :4] = True
    lonely[1, 5] = True
    with pytest.raises(ValueError, match="utterance 1 of the batch has a single masked frame, too few to draw 4 distractors"):
        sample_negative_indices((2, 10), 4, lonely)
    with pytest.raises(ValueError, match="utterance 0 of the batch has a single masked frame"):
        sample_negative_indices((1, 1), 4)  # one frame, no mask: nothing else to draw
    with pytest.raises(ValueError, match=r"mask_time_indices must have shape features_shape = \(2, 10\), got \(2, 9\)"):
        sample_negative_indices((2, 10), 4, torch.ones(2, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="num_negatives must be at least 1, got 0"):
        sample_negative_indices((2, 10), 0)


# ---------------------------------------------------------------- logits and losses against transformers

def test_compute_contrastive_logits_equals_transformers():
    g = torch.Generator().manual_seed(0)
    target, negs, pred = torch.randn(1, 2, 5, 8, generator=g), torch.randn(4, 2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    ours = compute_contrastive_logits(target, negs, pred, 0.1)
    theirs = HFForPreTraining.compute_contrastive_logits(target, negs, pred, 0.1)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_losses_from_transformers_outputs_equal_transformers_losses():
    """Our logits and losses, computed from transformers' projected states, give transformers' losses."""
    model = _hf_model()
    model.train()  # a training-mode (soft) perplexity, the one the loss uses in training
    audio, _ = _batch()
    T = int(model._get_feat_extract_output_lengths(torch.tensor(audio.shape[1])))
    g = torch.Generator().manual_seed(3)
    mask = compute_mask_indices((3, T), 0.5, 3, min_masks=2, generator=g)
    negatives = sample_negative_indices((3, T), 6, mask, generator=g)
    for module in model.modules():  # no dropout: only the Gumbel noise is random, and it is shared below
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.manual_seed(5)
    out = model(audio, mask_time_indices=mask, sampled_negative_indices=negatives)
    logits = contrastive_logits(out.projected_states, out.projected_quantized_states, negatives, 0.1)
    loss, contrastive, diversity = pretraining_losses(logits, mask, out.codevector_perplexity, 16, 0.1)
    torch.testing.assert_close(contrastive, out.contrastive_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(diversity, out.diversity_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, out.loss, rtol=1e-5, atol=1e-5)


def test_identical_distractors_drop_out_of_the_softmax():
    g = torch.Generator().manual_seed(0)
    c = torch.randn(1, 4, 8, generator=g)
    q = torch.randn(1, 4, 8, generator=g)
    q[0, 2] = q[0, 1]  # frames 1 and 2 share a codevector
    negatives = torch.tensor([[[2, 3], [2, 3], [1, 0], [0, 1]]])  # frame 1's first distractor is frame 2
    logits = contrastive_logits(c, q, negatives, 0.1)
    assert logits[0, 1, 1] == float("-inf") and logits[0, 2, 1] == float("-inf")
    assert torch.isfinite(logits[0, 1, 2]) and torch.isfinite(logits[0, 0]).all()
    mask = torch.tensor([[True, True, True, True]])
    _, contrastive, _ = pretraining_losses(logits, mask, torch.tensor(4.0), 4, 0.1)
    assert torch.isfinite(contrastive)


def test_random_vectors_give_chance_loss():
    g = torch.Generator().manual_seed(0)
    B, T, D, K = 4, 50, 4096, 10
    mask = compute_mask_indices((B, T), 0.5, 5, min_masks=2, generator=g)
    negatives = sample_negative_indices((B, T), K, mask, generator=g)
    logits = contrastive_logits(torch.randn(B, T, D, generator=g), torch.randn(B, T, D, generator=g), negatives, 0.1)
    _, contrastive, _ = pretraining_losses(logits, mask, torch.tensor(8.0), 8, 0.1)
    assert contrastive.item() / mask.sum().item() == pytest.approx(math.log(K + 1), abs=0.05)


# ---------------------------------------------------------------- the model against transformers

from w2vc.config import Wav2Vec2ConformerConfig  # noqa: E402
from w2vc.pretraining import (Wav2Vec2ConformerForPreTraining, Wav2Vec2ConformerForPreTrainingOutput,  # noqa: E402
                              PretrainingCollator, contrastive_accuracy, gumbel_temperature_schedule,
                              pretraining_step)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_pretraining")
    _hf_model().save_pretrained(folder)
    return folder


def _masks(model_or_config, audio, attention=None, seed=3, K=6):
    config = model_or_config
    from w2vc.features import feature_output_lengths, lengths_to_mask
    B, S = audio.shape
    T = feature_output_lengths(S, config)
    frames = None
    if attention is not None:
        frames = lengths_to_mask(feature_output_lengths(attention.sum(-1), config), T)
    g = torch.Generator().manual_seed(seed)
    mask = compute_mask_indices((B, T), 0.5, 3, attention_mask=frames, min_masks=2, generator=g)
    return mask, sample_negative_indices((B, T), K, mask, generator=g)


def _compare(ours, theirs):
    for name in ("projected_states", "projected_quantized_states", "codevector_perplexity", "loss",
                 "contrastive_loss", "diversity_loss"):
        a, b = getattr(ours, name), getattr(theirs, name)
        if b is None:
            assert a is None, name
            continue
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("padded", [False, True])
def test_eval_outputs_equal_transformers_from_their_folder(hf_folder, padded):
    theirs = HFForPreTraining.from_pretrained(hf_folder).eval()
    ours = Wav2Vec2ConformerForPreTraining.from_pretrained(hf_folder).eval()
    audio, attention = _batch(lengths=[1600, 1300, 900] if padded else None)
    mask, negatives = _masks(ours.config, audio, attention)
    with torch.no_grad():
        a = ours(audio, attention_mask=attention, mask_time_indices=mask, sampled_negative_indices=negatives)
        b = theirs(audio, attention_mask=attention, mask_time_indices=mask, sampled_negative_indices=negatives)
        _compare(a, b)
        # without negatives: projections and perplexity only
        a = ours(audio, attention_mask=attention, mask_time_indices=mask)
        b = theirs(audio, attention_mask=attention, mask_time_indices=mask)
        _compare(a, b)
        assert a.loss is None and a.contrastive_loss is None
        # without a mask: the perplexity over all frames
        _compare(ours(audio, attention_mask=attention), theirs(audio, attention_mask=attention))


def test_state_dict_keys_are_transformers_and_our_folder_loads_there(tmp_path):
    torch.manual_seed(0)
    config = Wav2Vec2ConformerConfig(**SMALL)
    ours = Wav2Vec2ConformerForPreTraining(config).eval()
    theirs = _hf_model()
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.save_pretrained(tmp_path)
    loaded, info = HFForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    audio, _ = _batch()
    mask, negatives = _masks(config, audio)
    with torch.no_grad():
        _compare(ours(audio, mask_time_indices=mask, sampled_negative_indices=negatives),
                 loaded.eval()(audio, mask_time_indices=mask, sampled_negative_indices=negatives))


def test_initialisation_follows_transformers():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForPreTraining(Wav2Vec2ConformerConfig(**SMALL))
    w = model.quantizer.weight_proj.weight
    assert 0.8 < w.std().item() < 1.2 and model.quantizer.weight_proj.bias.abs().max() == 0
    assert 0 <= model.quantizer.codevectors.min() and model.quantizer.codevectors.max() < 1
    bound = 1 / math.sqrt(model.project_hid.in_features)  # PyTorch's default Linear init, not N(0, 0.02)
    assert model.project_hid.weight.abs().max() <= bound and model.project_hid.weight.std() > 0.05
    assert model.wav2vec2_conformer.encoder.layers[0].ffn1.intermediate_dense.weight.std() < 0.03


def test_training_mode_loss_backpropagates_and_temperature_is_set():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForPreTraining(Wav2Vec2ConformerConfig(**SMALL)).train()
    model.set_gumbel_temperature(0.7)
    assert model.quantizer.temperature == 0.7
    audio, _ = _batch()
    mask, negatives = _masks(model.config, audio)
    out = model(audio, mask_time_indices=mask, sampled_negative_indices=negatives)
    assert isinstance(out, Wav2Vec2ConformerForPreTrainingOutput)
    torch.testing.assert_close(out.loss, out.contrastive_loss + 0.1 * out.diversity_loss)
    out.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert all("pos_conv_embed" in n for n in no_grad), no_grad  # in the weights, never applied (chapter 5)
    assert model.quantizer.weight_proj.weight.grad.abs().sum() > 0


def test_pretraining_model_errors():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForPreTraining(Wav2Vec2ConformerConfig(**SMALL)).eval()
    audio, _ = _batch()
    mask, negatives = _masks(model.config, audio)
    with pytest.raises(ValueError, match="sampled_negative_indices were given without mask_time_indices"):
        model(audio, sampled_negative_indices=negatives)
    with pytest.raises(ValueError, match="mask_time_indices masks no frame"):
        model(audio, mask_time_indices=torch.zeros_like(mask), sampled_negative_indices=negatives)
    with pytest.raises(ValueError, match=r"sampled_negative_indices must have shape \(batch, frames, num_negatives\)"):
        model(audio, mask_time_indices=mask, sampled_negative_indices=negatives[:, :-1])
    config = Wav2Vec2ConformerConfig(**SMALL)
    config.codevector_dim = 15
    with pytest.raises(ValueError, match=r"codevector_dim \(15\) must be divisible by num_codevector_groups \(2\)"):
        Wav2Vec2ConformerForPreTraining(config)


# ---------------------------------------------------------------- the recipe's pieces

def test_collator_crops_normalises_pads_and_masks_inside_each_utterance():
    config = Wav2Vec2ConformerConfig(**SMALL)
    g = torch.Generator().manual_seed(0)
    waves = [torch.randn(n, generator=g).numpy() * 0.1 for n in (5000, 1200, 700)]
    batch = PretrainingCollator(config, max_seconds=0.2)(waves, torch.Generator().manual_seed(1))
    assert batch["input_values"].shape == (3, 3200) and batch["attention_mask"].sum(1).tolist() == [3200, 1200, 700]
    row = batch["input_values"][1, :1200]
    assert abs(row.mean().item()) < 1e-4 and abs(row.std().item() - 1) < 1e-2
    assert batch["input_values"][1, 1200:].abs().max() == 0
    from w2vc.features import feature_output_lengths
    T = feature_output_lengths(3200, config)
    frames = feature_output_lengths(torch.tensor([3200, 1200, 700]), config)
    mask = batch["mask_time_indices"]
    assert mask.shape == (3, T) and batch["sampled_negative_indices"].shape == (3, T, 6)
    for b in range(3):
        assert not mask[b, frames[b]:].any() and mask[b].sum() >= 2
    _check_rules(mask, batch["sampled_negative_indices"], T)
    again = PretrainingCollator(config, max_seconds=0.2)(waves, torch.Generator().manual_seed(1))
    assert all(torch.equal(batch[k], again[k]) for k in batch)


def test_pretraining_step_reports_per_frame_losses():
    torch.manual_seed(0)
    config = Wav2Vec2ConformerConfig(**SMALL)
    model = Wav2Vec2ConformerForPreTraining(config).eval()
    waves = [w.numpy() for w in torch.randn(2, 1600, generator=torch.Generator().manual_seed(0))]
    batch = PretrainingCollator(config, max_seconds=None)(waves, torch.Generator().manual_seed(1))
    out = pretraining_step(model, batch)
    n = batch["mask_time_indices"].sum()
    assert out["num_items"] == n
    torch.testing.assert_close(out["loss"], (out["contrastive_loss"] + 0.1 * out["diversity_loss"]) * n)
    assert set(out) == {"loss", "num_items", "contrastive_loss", "diversity_loss", "perplexity"}
    result = contrastive_accuracy(model, [batch])
    assert set(result) == {"accuracy", "chance", "eval_contrastive_loss", "code_perplexity"}
    assert 0 <= result["accuracy"] <= 1 and 1 / 7 <= result["chance"] <= 1
    torch.testing.assert_close(torch.tensor(result["eval_contrastive_loss"]), out["contrastive_loss"], rtol=1e-5, atol=1e-5)


def test_gumbel_temperature_schedule_runs_from_start_to_end():
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForPreTraining(Wav2Vec2ConformerConfig(**SMALL))
    hook = gumbel_temperature_schedule(101, 2.0, 0.5)
    taus = [hook(s, model)["gumbel_temperature"] for s in range(101)]
    assert taus[0] == 2.0 and taus[-1] == pytest.approx(0.5) and model.quantizer.temperature == taus[-1]
    assert taus[50] == pytest.approx(1.0)  # exponential: the geometric mean half way
    assert all(a > b for a, b in zip(taus, taus[1:]))


# ---------------------------------------------------------------- the recipe end to end (a micro run)

import json as _json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from w2vc.pretraining import PretrainingRecipe, pretrain, pretrained_tiny  # noqa: E402

MICRO = dict(num_utterances=48, steps=3, batch_size=4, warmup_steps=1, eval_utterances=4, eval_every=3,
             log_every=1, max_seconds=1.0)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def micro_cache(tmp_path_factory):
    """A cache folder with a 48-utterance corpus (synthesized once for this module)."""
    folder = tmp_path_factory.mktemp("w2vc_cache")
    old = os.environ.get("W2VC_CACHE")
    os.environ["W2VC_CACHE"] = str(folder)
    from w2vc.data import load_corpus
    load_corpus(MICRO["num_utterances"], 0)
    yield folder
    if old is None:
        del os.environ["W2VC_CACHE"]
    else:
        os.environ["W2VC_CACHE"] = old


def test_pretrain_runs_logs_and_saves_a_folder_both_libraries_load(micro_cache, tmp_path):
    torch.set_num_threads(2)
    model, history = pretrain(PretrainingRecipe(**MICRO), out_dir=tmp_path / "run", progress=False)
    assert not model.training
    logged = [row for row in history if "loss" in row]
    assert [row["step"] for row in logged] == [1, 2, 3]
    assert {"contrastive_loss", "diversity_loss", "perplexity", "gumbel_temperature", "lr", "grad_norm"} <= set(logged[0])
    assert logged[0]["gumbel_temperature"] == 2.0 and logged[-1]["gumbel_temperature"] == pytest.approx(0.5)
    final = [row for row in history if "accuracy" in row]
    assert [row["step"] for row in final] == [3]
    record = _json.loads((tmp_path / "run" / "pretraining.json").read_text())
    assert record["recipe"]["steps"] == 3 and len(record["history"]) == len(history)
    again = Wav2Vec2ConformerForPreTraining.from_pretrained(tmp_path / "run")
    theirs = HFForPreTraining.from_pretrained(tmp_path / "run").eval()
    audio, _ = _batch(B=2, S=4000)
    mask, negatives = _masks(again.config, audio, K=again.config.num_negatives)
    with torch.no_grad():
        _compare(again(audio, mask_time_indices=mask, sampled_negative_indices=negatives),
                 theirs(audio, mask_time_indices=mask, sampled_negative_indices=negatives))
        torch.testing.assert_close(again(audio).projected_states, model(audio).projected_states)


def test_pretrained_tiny_trains_once_per_recipe(micro_cache):
    recipe = PretrainingRecipe(**MICRO)
    folder = pretrained_tiny(recipe, progress=False)
    assert folder == micro_cache / "pretrained" / "tiny"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert pretrained_tiny(recipe, progress=False) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # found, not trained again
    pretrained_tiny(PretrainingRecipe(**{**MICRO, "steps": 2}), progress=False)  # another recipe: retrained
    assert _json.loads((folder / "pretraining.json").read_text())["recipe"]["steps"] == 2


def test_tools_pretrain_under_torchrun_with_two_processes(micro_cache, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tools" / "pretrain.py"), "--out", str(tmp_path / "ddp"), "--no-progress", "--threads", "1",
           *[a for k, v in MICRO.items() for a in ("--" + k.replace("_", "-"), str(v))]]
    env = {**os.environ, "W2VC_CACHE": str(micro_cache), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = _json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["steps"] == 3 and 0 <= summary["accuracy"] <= 1
    assert _json.loads((tmp_path / "ddp" / "pretraining.json").read_text())["world_size"] == 2
    Wav2Vec2ConformerForPreTraining.from_pretrained(tmp_path / "ddp")
