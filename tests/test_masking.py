"""Chapter 3: span masks follow transformers' rules and statistics; applying them matches transformers."""
import math

import numpy as np
import pytest
import torch
from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as hf

from helpers import hf_config, w2vc_config
from w2vc.masking import apply_spec_augment, compute_mask_indices, expected_masked_fraction, num_masked_spans


def _hf_span_counts(monkeypatch, shape, mask_prob, mask_length, attention_mask, min_masks, eps):
    """Run transformers' sampler with a fixed epsilon; return the span count it drew per utterance."""
    counts = []
    real_choice = np.random.choice

    def choice(a, size, replace):
        counts.append(int(size))
        return real_choice(a, size, replace=replace)

    monkeypatch.setattr(np.random, "rand", lambda *_: np.array([eps]))
    monkeypatch.setattr(np.random, "choice", choice)
    am = None if attention_mask is None else torch.as_tensor(attention_mask)
    hf._compute_mask_indices(shape, mask_prob, mask_length, attention_mask=am, min_masks=min_masks)
    monkeypatch.undo()
    return counts


@pytest.mark.parametrize("mask_prob, mask_length, min_masks", [
    (0.65, 10, 2), (0.05, 10, 2), (0.5, 5, 0), (1.0, 3, 0), (0.2, 7, 4), (0.0, 2, 1), (0.9, 1, 0),
])
@pytest.mark.parametrize("eps", [0.0, 0.3, 0.7, 0.999])
def test_span_counts_follow_transformers_rules(monkeypatch, mask_prob, mask_length, min_masks, eps):
    lengths = [60, 45, 30, 12, 7, 3]
    T = 60
    attention = [[1] * n + [0] * (T - n) for n in lengths]
    want = _hf_span_counts(monkeypatch, (len(lengths), T), mask_prob, mask_length, attention, min_masks, eps)
    got = [num_masked_spans(n, T, mask_prob, mask_length, min_masks, eps) for n in lengths]
    if num_masked_spans(T, T, mask_prob, mask_length, min_masks, eps) == 0:
        assert want == []  # transformers returns early: nothing to mask anywhere
        assert all(n == 0 for n in got)
    else:
        assert got == want


def _exact_profile(length, mask_prob, mask_length, min_masks, padded_length):
    """P(frame t is masked) for every frame, from the counting argument of chapter 3."""
    starts = length - mask_length + 1
    x = mask_prob * length / mask_length
    frac = x - math.floor(x)
    profile = np.zeros(length)
    for eps, weight in ((0.0, 1 - frac), (1 - 1e-9, frac)):
        n = num_masked_spans(length, padded_length, mask_prob, mask_length, min_masks, eps)
        for t in range(length):
            k = min(t, starts - 1) - max(0, t - mask_length + 1) + 1
            profile[t] += weight * (1 - math.comb(starts - k, n) / math.comb(starts, n))
    return profile


@pytest.mark.parametrize("length, padded, mask_prob, mask_length, min_masks", [
    (120, 120, 0.65, 10, 2), (80, 120, 0.5, 5, 2), (50, 50, 0.05, 10, 2),
])
def test_masked_fraction_and_profile_match_expectation_and_transformers(length, padded, mask_prob, mask_length,
                                                                        min_masks):
    draws = 1500
    attention = torch.zeros(1, padded, dtype=torch.long)
    attention[0, :length] = 1
    gen = torch.Generator().manual_seed(0)
    ours = torch.cat([compute_mask_indices((1, padded), mask_prob, mask_length, attention_mask=attention,
                                           min_masks=min_masks, generator=gen) for _ in range(draws)]).numpy()
    np.random.seed(0)
    theirs = np.concatenate([hf._compute_mask_indices((1, padded), mask_prob, mask_length,
                                                      attention_mask=attention, min_masks=min_masks)
                             for _ in range(draws)])
    assert not ours[:, length:].any()  # never on padding
    exact = expected_masked_fraction(length, mask_prob, mask_length, min_masks, padded_length=padded)
    profile = _exact_profile(length, mask_prob, mask_length, min_masks, padded)
    assert abs(profile.mean() - exact) < 1e-12
    for sample in (ours[:, :length], theirs[:, :length]):
        fractions = sample.mean(1)
        se = fractions.std() / math.sqrt(draws) + 1e-4
        assert abs(fractions.mean() - exact) < 5 * se, (fractions.mean(), exact, se)
        frame_se = np.sqrt(profile * (1 - profile) / draws) + 1e-3
        assert (np.abs(sample.mean(0) - profile) < 5 * frame_se).all()
    # the number of masked frames per utterance has the same distribution: two-sample Kolmogorov-Smirnov
    # statistic below its critical value at level 0.001 (1.95 * sqrt(2 / n); conservative for discrete data)
    grid = np.arange(length + 1)
    cdf_ours = (ours.sum(1)[:, None] <= grid).mean(0)
    cdf_theirs = (theirs[:, :length].sum(1)[:, None] <= grid).mean(0)
    assert np.abs(cdf_ours - cdf_theirs).max() < 1.95 * math.sqrt(2 / draws)


def test_paper_setting_masks_about_half():
    assert abs(expected_masked_fraction(500, 0.65, 10) - 0.49) < 0.01
    assert expected_masked_fraction(5, 0.65, 10) == 0.0
    assert expected_masked_fraction(100, 0.0, 10, min_masks=0) == 0.0


def test_spans_respect_lengths_and_seed():
    lengths = torch.tensor([100, 73, 40, 9, 5])
    attention = (torch.arange(100)[None, :] < lengths[:, None]).long()
    for seed in range(20):
        mask = compute_mask_indices((5, 100), 0.65, 10, attention_mask=attention, min_masks=2,
                                    generator=torch.Generator().manual_seed(seed))
        assert mask.dtype == torch.bool and mask.shape == (5, 100)
        assert not (mask & (attention == 0)).any()
        assert not mask[4].any()  # 5 frames cannot hold a span of 10
        assert not mask[3].any()  # neither can 9
        # each masked run is at least one span long
        for row, n in zip(mask, lengths.tolist()):
            runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row.numpy().astype(int), 0])))[::2]
            assert (runs >= 10).all()
    again = compute_mask_indices((5, 100), 0.65, 10, attention_mask=attention, min_masks=2,
                                 generator=torch.Generator().manual_seed(3))
    once_more = compute_mask_indices((5, 100), 0.65, 10, attention_mask=attention, min_masks=2,
                                     generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, once_more)
    assert compute_mask_indices((2, 30), 0.5, 3, attention_mask=attention[:2, :30].bool()).shape == (2, 30)


def test_min_masks_and_full_masking():
    mask = compute_mask_indices((3, 50), 0.0, 5, min_masks=2, generator=torch.Generator().manual_seed(0))
    assert (mask.sum(1) >= 5).all() and (mask.sum(1) <= 10).all()
    assert compute_mask_indices((2, 10), 1.0, 10).all()  # one span, one place for it
    ten = compute_mask_indices((1, 40), 1.0, 4, generator=torch.Generator().manual_seed(0))
    assert 16 <= ten.sum() <= 40  # ten distinct starts: overlaps merge them, but at least 16 frames are covered


@pytest.mark.parametrize("kwargs, match", [
    (dict(shape=(2, 20), mask_prob=0.5, mask_length=0), "mask_length must be at least 1, got 0"),
    (dict(shape=(2, 20), mask_prob=0.5, mask_length=21), r"mask_length \(21\) must not exceed the length of the masked axis \(20\)"),
    (dict(shape=(2, 20), mask_prob=0.5, mask_length=2, attention_mask=torch.ones(2, 19)),
     r"attention_mask must have shape \(2, 20\) like the masked axis, got \(2, 19\)"),
])
def test_sampler_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compute_mask_indices(**kwargs)


def _hf_model(**kwargs):
    torch.manual_seed(0)
    return hf.Wav2Vec2ConformerModel(hf_config(**kwargs))


def test_given_mask_gives_transformers_masked_output():
    model = _hf_model(mask_time_prob=0.3, mask_feature_prob=0.0)
    config = w2vc_config(mask_time_prob=0.3, mask_feature_prob=0.0)
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 25, 32, generator=gen)
    mask = torch.rand(3, 25, generator=gen) < 0.4
    for training in (False, True):
        model.train(training)
        want = model._mask_hidden_states(hidden.clone(), mask_time_indices=mask)
        got, used = apply_spec_augment(hidden, model.masked_spec_embed, config, mask_time_indices=mask,
                                       training=training)
        assert torch.equal(got, want) and torch.equal(used, mask)
    # 0/1 integers work like bools
    got_int, _ = apply_spec_augment(hidden, model.masked_spec_embed, config, mask_time_indices=mask.long())
    assert torch.equal(got_int, want)


def test_when_masking_applies():
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 40, 32, generator=gen)
    embed = torch.rand(32, generator=gen)
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[:, 3:8] = True
    config = w2vc_config(mask_time_prob=0.5, mask_time_length=4, mask_feature_prob=0.3, mask_feature_length=4)
    # eval, no mask given: unchanged
    out, used = apply_spec_augment(hidden, embed, config, training=False)
    assert torch.equal(out, hidden) and used is None
    # apply_spec_augment off: unchanged even with a given mask or in training (as transformers)
    off = w2vc_config(apply_spec_augment=False, mask_time_prob=0.5)
    out, used = apply_spec_augment(hidden, embed, off, mask_time_indices=mask, training=True)
    assert torch.equal(out, hidden) and used is None
    # training: time spans get the embedding, channel spans are zero in every frame
    out, used = apply_spec_augment(hidden, embed, config, training=True, generator=gen)
    assert used.any() and used.dtype == torch.bool
    zeroed = (out == 0).all(dim=1)  # (B, C)
    assert zeroed.any(dim=1).all()
    keep = ~zeroed[:, None, :].expand_as(out)
    assert torch.equal(out[used][keep[used]], embed.expand_as(out)[used][keep[used]])
    assert torch.equal(out[~used][keep[~used]], hidden[~used][keep[~used]])
    # training with mask_time_prob 0: no time mask sampled
    none = w2vc_config(mask_time_prob=0.0, mask_feature_prob=0.0)
    out, used = apply_spec_augment(hidden, embed, none, training=True)
    assert torch.equal(out, hidden) and used is None
    # the padded frames of a batch are never masked in training
    attention = torch.ones(2, 40, dtype=torch.long)
    attention[1, 20:] = 0
    for seed in range(10):
        _, used = apply_spec_augment(hidden, embed, config, attention_mask=attention, training=True,
                                     generator=torch.Generator().manual_seed(seed))
        assert not used[1, 20:].any()


def test_training_statistics_match_transformers_sampling():
    # the share of frames masked inside the model in training, ours against transformers'
    config = w2vc_config(mask_time_prob=0.5, mask_time_length=5, mask_time_min_masks=2)
    model = _hf_model(mask_time_prob=0.5, mask_time_length=5, mask_time_min_masks=2).train()
    hidden = torch.randn(1, 60, 32)
    embed = model.masked_spec_embed.detach()
    gen = torch.Generator().manual_seed(0)
    np.random.seed(0)
    ours, theirs = [], []
    for _ in range(600):
        _, used = apply_spec_augment(hidden, embed, config, training=True, generator=gen)
        ours.append(used.float().mean().item())
        with torch.no_grad():
            out = model._mask_hidden_states(hidden.clone())
        theirs.append((out == embed).all(-1).float().mean().item())
    exact = expected_masked_fraction(60, 0.5, 5, 2)
    for sample in (ours, theirs):
        se = np.std(sample) / math.sqrt(len(sample))
        assert abs(np.mean(sample) - exact) < 5 * se, (np.mean(sample), exact)


@pytest.mark.parametrize("mask, match", [
    (torch.zeros(2, 39, dtype=torch.bool), r"mask_time_indices must have shape \(batch, frames\) = \(2, 40\), got \(2, 39\)"),
    (torch.full((2, 40), 0.5), r"mask_time_indices must be a bool \(or 0/1 integer\) mask, got dtype torch.float32"),
    (torch.full((2, 40), 2), r"got dtype torch.int64"),
])
def test_bad_time_masks_are_rejected(mask, match):
    with pytest.raises(ValueError, match=match):
        apply_spec_augment(torch.randn(2, 40, 32), torch.rand(32), w2vc_config(), mask_time_indices=mask)


def test_mask_without_masked_spec_embed_is_rejected():
    config = w2vc_config(mask_time_prob=0.0, mask_feature_prob=0.0)
    with pytest.raises(ValueError, match="mask_time_indices were given but the model has no masked_spec_embed"):
        apply_spec_augment(torch.randn(2, 40, 32), None, config, mask_time_indices=torch.ones(2, 40, dtype=torch.bool))


@pytest.mark.parametrize("mask_prob, mask_length, min_masks", [(0.65, 10, 2), (0.05, 10, 2), (0.5, 5, 0), (1.0, 3, 4)])
def test_span_counts_of_a_tensor_of_lengths_equal_the_counts_one_by_one(mask_prob, mask_length, min_masks):
    T = 60
    lengths = torch.arange(0, T + 1)
    for eps in torch.rand(20, generator=torch.Generator().manual_seed(0)):
        got = num_masked_spans(lengths, T, mask_prob, mask_length, min_masks, eps)
        assert got.dtype == torch.long
        assert got.tolist() == [num_masked_spans(n, T, mask_prob, mask_length, min_masks, eps.item())
                                for n in range(T + 1)]
