"""Chapter 9: CTC decoding (greedy, prefix beam search, forced alignment), error rates, and the CTC head
against transformers' Wav2Vec2ConformerForCTC."""
import itertools
import math
import random

import jiwer
import pytest
import torch
import torch.nn.functional as F

from w2vc import (char_error_rate, ctc_beam_search_decode, ctc_forced_align, ctc_greedy_decode,
                  ctc_min_frames, ctc_prefix_beam_search, edit_distance, word_error_rate)


def _collapse(path, blank=0):
    return tuple(s for s, _ in itertools.groupby(path) if s != blank)


def _enumerate_labellings(log_probs, blank=0):
    """Every labelling's probability, by summing over all V**T paths (small T and V only)."""
    T, V = log_probs.shape
    out = {}
    for path in itertools.product(range(V), repeat=T):
        p = math.exp(sum(log_probs[t, s].item() for t, s in enumerate(path)))
        key = _collapse(path, blank)
        out[key] = out.get(key, 0.0) + p
    return out


def _random_log_probs(T, V, seed, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(T, V, generator=gen, dtype=torch.float64)).log_softmax(-1)


# ---------------------------------------------------------------- greedy and beam search

def test_greedy_merges_repeats_drops_blanks_and_respects_lengths():
    V = 5
    frames = torch.tensor([[1, 1, 0, 1, 2, 2, 3, 4], [0, 0, 3, 3, 3, 0, 0, 4]])
    logits = F.one_hot(frames, V).float() * 5  # (B, T, V)
    assert ctc_greedy_decode(logits) == [[1, 1, 2, 3, 4], [3, 4]]
    assert ctc_greedy_decode(logits, lengths=torch.tensor([4, 6])) == [[1, 1], [3]]
    assert ctc_greedy_decode(logits, blank_id=3) == [[1, 0, 1, 2, 4], [0, 0, 4]]


@pytest.mark.parametrize("seed", range(20))
def test_beam_one_equals_greedy_on_confident_frames(seed):
    rng = random.Random(seed)
    T, V = rng.randint(1, 30), rng.randint(2, 8)
    best = torch.tensor([rng.choice([0, 0] + list(range(V))) for _ in range(T)])
    # every frame puts at least 0.9 on its best symbol
    probs = torch.full((T, V), 0.1 / (V - 1), dtype=torch.float64)
    probs[torch.arange(T), best] = 0.9
    log_probs = probs.log()
    (labels, _), = ctc_prefix_beam_search(log_probs, beam_width=1)
    assert list(labels) == ctc_greedy_decode(log_probs[None])[0]


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_is_exact_on_small_lattices(seed):
    T, V = 5, 3
    log_probs = _random_log_probs(T, V, seed, scale=2.0)
    exact = _enumerate_labellings(log_probs)
    found = dict(ctc_prefix_beam_search(log_probs, beam_width=len(exact)))
    assert found.keys() == exact.keys()
    for labels, logp in found.items():
        assert math.exp(logp) == pytest.approx(exact[labels], rel=1e-9, abs=1e-12)
        if labels:  # and the same number from PyTorch's forward algorithm
            nll = F.ctc_loss(log_probs[:, None], torch.tensor([labels]), torch.tensor([T]),
                             torch.tensor([len(labels)]), reduction="sum")
            assert math.exp(-nll.item()) == pytest.approx(exact[labels], rel=1e-9, abs=1e-12)


def test_hand_made_lattice_where_the_best_path_is_not_the_best_labelling():
    # two frames, blank 0.6 and "a" 0.4 each: best path "- -" (0.36) -> "", but P("a") = 0.64
    log_probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()
    assert ctc_greedy_decode(log_probs[None]) == [[]]
    ranked = ctc_prefix_beam_search(log_probs, beam_width=2)
    assert ranked[0][0] == (1,) and math.exp(ranked[0][1]) == pytest.approx(0.64)
    assert ranked[1][0] == () and math.exp(ranked[1][1]) == pytest.approx(0.36)
    # random 4-frame lattices: wherever greedy decoding misses the best labelling, beam search finds it
    misses = 0
    for seed in range(40):
        log_probs = _random_log_probs(4, 3, seed)
        exact = _enumerate_labellings(log_probs)
        best = max(exact, key=exact.get)
        greedy = tuple(ctc_greedy_decode(log_probs[None])[0])
        misses += greedy != best
        assert ctc_prefix_beam_search(log_probs, beam_width=16)[0][0] == best  # wide enough to keep all
    assert misses >= 3, misses  # the lattices do exercise the difference


def test_beam_search_decode_batch_uses_lengths():
    log_probs = torch.stack([_random_log_probs(6, 4, 1), _random_log_probs(6, 4, 2)]).float()
    out = ctc_beam_search_decode(log_probs, lengths=[6, 3], beam_width=5)
    assert out[0] == list(ctc_prefix_beam_search(log_probs[0], 5)[0][0])
    assert out[1] == list(ctc_prefix_beam_search(log_probs[1, :3], 5)[0][0])


def test_token_min_logp_prunes_unlikely_symbols():
    log_probs = torch.tensor([[math.log(0.5), math.log(0.49), math.log(0.01)]])
    full = dict(ctc_prefix_beam_search(log_probs, beam_width=3))
    pruned = dict(ctc_prefix_beam_search(log_probs, beam_width=3, token_min_logp=math.log(0.1)))
    assert (2,) in full and (2,) not in pruned and pruned.keys() == {(), (1,)}


def test_decoding_errors():
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, T, V\), got \(4, 3\)"):
        ctc_greedy_decode(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, T, V\), got \(4, 3\)"):
        ctc_beam_search_decode(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"lengths: expected 1 numbers of frames between 0 and 4, got \[5\]"):
        ctc_greedy_decode(torch.zeros(1, 4, 3), lengths=[5])
    with pytest.raises(ValueError, match=r"log_probs: expected shape \(T, V\) for one utterance, got \(1, 4, 3\)"):
        ctc_prefix_beam_search(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match=r"beam_width: expected at least 1, got 0"):
        ctc_prefix_beam_search(torch.zeros(4, 3), beam_width=0)


# ---------------------------------------------------------------- forced alignment

def test_min_frames_counts_a_blank_between_equal_neighbours():
    assert ctc_min_frames([]) == 0
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames(torch.tensor([1, 1, 2, 2, 2])) == 8


@pytest.mark.parametrize("labels", [(1,), (1, 2), (1, 1), (2, 1, 2), ()])
def test_forced_alignment_is_the_best_path_of_the_labelling(labels):
    T, V = 5, 3
    log_probs = _random_log_probs(T, V, seed=len(labels) * 10 + sum(labels), scale=2.0)
    path = ctc_forced_align(log_probs, list(labels))
    assert len(path) == T and _collapse(path) == labels
    same, states = ctc_forced_align(log_probs, list(labels), return_states=True)
    lattice = [0] + [x for s in labels for x in (s, 0)]  # - a - b -
    assert same == path and [lattice[k] for k in states] == path
    assert states[0] in (0, 1) and states[-1] in (len(lattice) - 1, len(lattice) - 2)
    assert all(0 <= b - a <= 2 for a, b in zip(states, states[1:]))
    score = sum(log_probs[t, s].item() for t, s in enumerate(path))
    best = max(sum(log_probs[t, s].item() for t, s in enumerate(p))
               for p in itertools.product(range(V), repeat=T) if _collapse(p) == labels)
    assert score == pytest.approx(best, abs=1e-9)


def test_forced_alignment_needs_enough_frames():
    with pytest.raises(ValueError, match=r"log_probs: 3 frames cannot hold the 3 labels, which need at least 5"):
        ctc_forced_align(torch.zeros(3, 4), [2, 2, 2])


# ---------------------------------------------------------------- error rates against jiwer

def _random_sentence(rng):
    words = ["one", "two", "three", "go", "left", "stop", "on", "off", "tree", "to"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))


def _corrupt(rng, text):
    chars = list(text)
    for _ in range(rng.randint(0, 4)):
        op, i = rng.choice("sdi"), rng.randint(0, max(0, len(chars) - 1))
        if op == "s" and chars:
            chars[i] = rng.choice("abcdefg ")
        elif op == "d" and chars:
            del chars[i]
        else:
            chars.insert(i, rng.choice("xyz "))
    return "".join(chars)


def test_error_rates_match_jiwer():
    rng = random.Random(0)
    refs = [_random_sentence(rng) for _ in range(200)]
    hyps = [_corrupt(rng, r) for r in refs]
    hyps = [h if h.strip() else "x" for h in hyps]
    assert word_error_rate(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert char_error_rate(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    for r, h in zip(refs[:50], hyps[:50]):
        assert word_error_rate(r, h) == pytest.approx(jiwer.wer(r, h), abs=1e-12)
        assert char_error_rate(r, h) == pytest.approx(jiwer.cer(r, h), abs=1e-12)


def test_edit_distance_known_values():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3 and edit_distance("", "") == 0
    assert edit_distance("go left now".split(), "go now".split()) == 1
    assert word_error_rate("a b c", "a b c d e") == pytest.approx(2 / 3)  # insertions count
    assert word_error_rate(["a b", "c"], ["a b", ""]) == pytest.approx(1 / 3)  # an empty hypothesis


def test_error_rate_errors():
    with pytest.raises(ValueError, match=r"hypotheses: expected one per reference \(2\), got 1"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"references: all references are empty, so the error rate is undefined"):
        char_error_rate(["", " "], ["a", "b"])


# ---------------------------------------------------------------- the loss on its own

def _padded_problem(seed=0, B=4, T=30, V=9, U=8):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=gen)
    frames = torch.tensor([T, T - 7, T - 3, 12])[:B]
    labels = torch.randint(1, V, (B, U), generator=gen)
    lengths = [U, 5, 1, 4][:B]
    for b, n in enumerate(lengths):
        labels[b, n:] = -100
    labels[0, 2] = labels[0, 1]  # a repeat, which needs a blank between
    return logits, labels, frames


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_ctc_loss_matches_transformers(reduction):
    from transformers.loss.loss_ctc import ForCTCLoss
    from w2vc import ctc_loss
    logits, labels, frames = _padded_problem()
    ours = ctc_loss(logits, labels, frames, blank_id=0, reduction=reduction)
    theirs = ForCTCLoss(logits, labels, frames, blank_token_id=0, reduction=reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=0)
    # a label equal to the blank id is padding as well
    blank_padded = labels.masked_fill(labels == -100, 0)
    torch.testing.assert_close(ctc_loss(logits, blank_padded, frames, reduction=reduction), theirs, rtol=1e-5, atol=0)


def test_ctc_loss_gradient_matches_transformers():
    from transformers.loss.loss_ctc import ForCTCLoss
    from w2vc import ctc_loss
    logits, labels, frames = _padded_problem(seed=3)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ctc_loss(a, labels, frames, reduction="mean").backward()
    ForCTCLoss(b, labels, frames, blank_token_id=0, reduction="mean").backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_ctc_loss_labels_longer_than_the_frames():
    from transformers.loss.loss_ctc import ForCTCLoss
    from w2vc import ctc_loss
    logits, labels, frames = _padded_problem()
    frames = frames.clone()
    frames[3] = 4  # item 3 has 4 labels: fits exactly (no repeats)...
    ctc_loss(logits, labels, frames)
    frames[0] = 8  # ... item 0 has 8 labels with at least one repeat: needs more than 8 frames
    needed = ctc_min_frames(labels[0])
    assert needed > 8
    with pytest.raises(ValueError, match=rf"labels: item 0 has 8 labels, which need at least {needed} frames .* gives only "
                                         r"8 frames\. .* config\.ctc_zero_infinity=True to give them zero loss"):
        ctc_loss(logits, labels, frames)
    # transformers returns an infinite loss here
    assert torch.isinf(ForCTCLoss(logits, labels, frames, blank_token_id=0, reduction="sum"))
    # with zero_infinity the item gets zero loss and zero gradient, the others are untouched
    x = logits.clone().requires_grad_()
    per_item = ctc_loss(x, labels, frames, reduction="none", zero_infinity=True)
    assert per_item[0] == 0 and torch.isfinite(per_item).all()
    per_item.sum().backward()
    assert (x.grad[0] == 0).all() and (x.grad[1] != 0).any()
    theirs = ForCTCLoss(logits, labels, frames, blank_token_id=0, reduction="sum", zero_infinity=True)
    torch.testing.assert_close(ctc_loss(logits, labels, frames, zero_infinity=True), theirs, rtol=1e-5, atol=0)


def test_ctc_loss_errors():
    from w2vc import ctc_loss
    logits, labels, frames = _padded_problem()
    with pytest.raises(ValueError, match=r"labels: ids must be in \[0, vocab_size=9\) or -100 for padding, got \[9\]"):
        ctc_loss(logits, labels.masked_fill(labels == 3, 9), frames)
    with pytest.raises(ValueError, match=r"labels: ids must be in \[0, vocab_size=9\) or -100 for padding, got \[-1\]"):
        ctc_loss(logits, labels.masked_fill(labels == -100, -1), frames)
    with pytest.raises(ValueError, match=r"labels: expected shape \(B=4, U\), padded with -100, got \(8,\)"):
        ctc_loss(logits, labels[0], frames)
    with pytest.raises(ValueError, match=r"reduction \(config.ctc_loss_reduction\): expected 'sum', 'mean' or 'none'"):
        ctc_loss(logits, labels, frames, reduction="max")


# ---------------------------------------------------------------- the CTC head against transformers

import transformers  # noqa: E402  (test-only oracle)

from helpers import audio_batch, hf_config  # noqa: E402
from w2vc.config import Wav2Vec2ConformerConfig  # noqa: E402
from w2vc.ctc import IGNORE_INDEX, Wav2Vec2ConformerForCTC  # noqa: E402

LENGTHS = [4000, 2600, 3300]  # samples: a padded batch of three


def _labels():
    labels = torch.full((3, 9), IGNORE_INDEX)
    labels[0, :9] = torch.tensor([3, 4, 4, 5, 1, 6, 7, 7, 8])  # repeats and the word delimiter id 1...
    labels[1, :4] = torch.tensor([5, 5, 2, 11])  # ...the largest id
    labels[2, :6] = torch.tensor([9, 10, 9, 10, 3, 3])
    return labels


def _pair(tmp_path, **overrides):
    torch.manual_seed(0)
    theirs = transformers.Wav2Vec2ConformerForCTC(hf_config(**overrides)).eval()
    theirs.save_pretrained(tmp_path)
    ours = Wav2Vec2ConformerForCTC.from_pretrained(tmp_path).eval()
    return ours, theirs


@pytest.mark.parametrize("overrides", [
    dict(position_embeddings_type="relative"),
    dict(position_embeddings_type="rotary"),
    dict(position_embeddings_type=None),
    dict(position_embeddings_type="rotary", feat_extract_norm="layer", ctc_loss_reduction="mean"),
    dict(position_embeddings_type="relative", add_adapter=True, output_hidden_size=48, num_adapter_layers=1),
], ids=["relative", "rotary", "none", "layer-norm-mean", "adapter"])
def test_logits_and_loss_match_transformers(tmp_path, overrides):
    ours, theirs = _pair(tmp_path, **overrides)
    x, mask = audio_batch(LENGTHS)
    labels = _labels()
    with torch.no_grad():
        a = ours(x, attention_mask=mask, labels=labels)
        b = theirs(x, attention_mask=mask, labels=labels)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=0)
    expected_frames = theirs._get_feat_extract_output_lengths(mask.sum(-1))
    assert a.frame_lengths.tolist() == expected_frames.tolist()


def test_no_attention_mask_matches_transformers(tmp_path):
    ours, theirs = _pair(tmp_path, position_embeddings_type="rotary")
    x, _ = audio_batch([3200, 3200], seed=1)
    labels = _labels()[:2]
    with torch.no_grad():
        a = ours(x, labels=labels)
        b = theirs(x, labels=labels)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=0)
    assert a.frame_lengths.tolist() == [a.logits.shape[1]] * 2


def test_padded_batch_against_each_item_alone(tmp_path):
    """The longest item (no padding) is unaffected by the others. A padded item is not exactly itself alone:
    the conformer's depthwise convolution reads the padded frames after it (transformers does the same), so we
    compare our padded item with transformers' padded item and our lone item with transformers' lone item."""
    ours, theirs = _pair(tmp_path, position_embeddings_type="rotary", feat_extract_norm="layer")
    x, mask = audio_batch(LENGTHS)
    with torch.no_grad():
        batch = ours(x, attention_mask=mask)
        longest = ours(x[:1, :LENGTHS[0]])
        torch.testing.assert_close(batch.logits[0], longest.logits[0], rtol=1e-5, atol=1e-5)
        for b, n in enumerate(LENGTHS[1:], start=1):
            alone, theirs_alone = ours(x[b:b + 1, :n]), theirs(x[b:b + 1, :n])
            torch.testing.assert_close(alone.logits, theirs_alone.logits, rtol=1e-5, atol=1e-5)
            assert batch.frame_lengths[b] == alone.logits.shape[1]


def test_zero_infinity_matches_transformers(tmp_path):
    ours, theirs = _pair(tmp_path, ctc_zero_infinity=True, ctc_loss_reduction="sum")
    x, mask = audio_batch([4000, 300])  # the second item has 3 frames: too few for its labels
    labels = _labels()[:2]
    with torch.no_grad():
        a = ours(x, attention_mask=mask, labels=labels)
        b = theirs(x, attention_mask=mask, labels=labels)
    assert a.frame_lengths.tolist() == [a.logits.shape[1], 3]
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=0)
    ours.config.ctc_zero_infinity = False
    with pytest.raises(ValueError, match=r"labels: item 1 has 4 labels, which need at least 5 frames .* only 3 frames"):
        ours(x, attention_mask=mask, labels=labels)


@pytest.mark.parametrize("attn_implementation, dtype, relative", [("eager", torch.float32, None),
                                                                   ("sdpa", torch.float64, 1e-10),
                                                                   ("sdpa", torch.float32, 1e-4)])
def test_training_mode_gradients_match_transformers(tmp_path, attn_implementation, dtype, relative):
    """Dropout off, so that train mode is deterministic: the gradient of the loss against transformers' (eager
    attention, helpers.hf_config). Our eager attention is the same computation: the gradients agree entry by
    entry. Chapter 13's fused attention ("sdpa") adds in another order: in float64 it agrees to 1e-10 of
    the largest entry (the same mathematics); in float32 the rounding differences of every block add up on the
    way back to the first convolution (1.4e-5 of the largest entry here), so float32 is held to 1e-4."""
    zero = dict(hidden_dropout=0.0, activation_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0,
                final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, conformer_conv_dropout=0.0)
    _, theirs = _pair(tmp_path, ctc_loss_reduction="mean", **zero)
    ours = Wav2Vec2ConformerForCTC.from_pretrained(tmp_path, attn_implementation=attn_implementation)
    ours, theirs = ours.to(dtype).train(), theirs.to(dtype).train()
    x, mask = audio_batch(LENGTHS)
    labels = _labels()
    ours(x.to(dtype), attention_mask=mask, labels=labels).loss.backward()
    theirs(x.to(dtype), attention_mask=mask, labels=labels).loss.backward()
    pairs = {"lm_head": (ours.lm_head.weight.grad, theirs.lm_head.weight.grad),
             "first conv": (ours.wav2vec2_conformer.feature_extractor.conv_layers[0].conv.weight.grad,
                            theirs.wav2vec2_conformer.feature_extractor.conv_layers[0].conv.weight.grad)}
    for name, (a, b) in pairs.items():
        if relative is None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
        else:
            assert (a - b).abs().max() <= relative * b.abs().max(), (name, (a - b).abs().max(), b.abs().max())


def test_dropout_makes_train_mode_differ_from_eval(tmp_path):
    ours, _ = _pair(tmp_path, final_dropout=0.5, mask_time_prob=0.0)
    x, _ = audio_batch([3200])
    with torch.no_grad():
        eval_logits = ours.eval()(x).logits
        again = ours(x).logits
        train_logits = ours.train()(x).logits  # dropout, and BatchNorm on batch statistics
    assert torch.equal(eval_logits, again)  # eval mode is deterministic
    assert not torch.allclose(eval_logits, train_logits)


def test_freeze_feature_encoder(tmp_path):
    ours, _ = _pair(tmp_path)
    ours.freeze_feature_encoder()
    assert not any(p.requires_grad for p in ours.wav2vec2_conformer.feature_extractor.parameters())
    assert all(p.requires_grad for n, p in ours.named_parameters() if ".feature_extractor." not in n)


def test_transformers_loads_our_saved_model(tmp_path):
    ours, theirs = _pair(tmp_path / "a", position_embeddings_type="rotary")
    ours.save_pretrained(tmp_path / "b")
    again = transformers.Wav2Vec2ConformerForCTC.from_pretrained(str(tmp_path / "b")).eval()
    x, mask = audio_batch(LENGTHS)
    with torch.no_grad():
        torch.testing.assert_close(again(x, attention_mask=mask).logits, theirs(x, attention_mask=mask).logits,
                                   rtol=1e-5, atol=1e-5)


def test_a_pretrained_body_gets_a_new_head(tmp_path):
    torch.manual_seed(0)
    body = transformers.Wav2Vec2ConformerModel(hf_config()).eval()
    body.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match=r"newly initialised .*lm_head.weight"):
        model = Wav2Vec2ConformerForCTC.from_pretrained(tmp_path, vocab_size=7)
    assert model.lm_head.out_features == 7


def test_head_errors():
    with pytest.raises(ValueError, match=r"config.vocab_size: expected the size of the tokenizer's vocabulary, got None"):
        Wav2Vec2ConformerForCTC(Wav2Vec2ConformerConfig(hidden_size=32, num_attention_heads=4))
    with pytest.raises(ValueError, match=r"config.pad_token_id: expected the blank's id in \[0, 8\), got None"):
        Wav2Vec2ConformerForCTC(Wav2Vec2ConformerConfig(vocab_size=8, pad_token_id=None))
    from helpers import w2vc_config
    model = Wav2Vec2ConformerForCTC(w2vc_config()).eval()
    x, mask = audio_batch([3200])
    with pytest.raises(ValueError, match=r"labels: ids must be in \[0, vocab_size=12\) or -100 for padding, got \[12\]"):
        model(x, attention_mask=mask, labels=torch.tensor([[1, 12]]))


# ---------------------------------------------------------------- training helpers

def _toy_processor():
    from w2vc.audio import Wav2Vec2FeatureExtractor
    from w2vc import CTCTokenizer, Wav2Vec2Processor
    tok = CTCTokenizer.from_texts(["go left", "three two one", "stop"])
    return Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), tok)


def test_length_sorted_batches_group_neighbours_and_cover_an_epoch():
    from w2vc import length_sorted_batches
    items = [list(range(n)) for n in random.Random(0).sample(range(1, 200), 50)]
    batches = length_sorted_batches(items, 8, lambda xs, gen: [len(x) for x in xs], seed=3)
    lengths = sorted(len(x) for x in items)
    seen = []
    for step in range(6):  # 50 // 8 = 6 batches per epoch, the last 2 items dropped
        batch = batches(step)
        assert len(batch) == 8 and batch == sorted(batch)
        start = lengths.index(batch[0])
        assert batch == lengths[start:start + 8]  # neighbours in length
        seen += batch
    assert sorted(seen) == lengths[:48]
    assert batches(6) != batches(0) or batches(7) != batches(1)  # a new order in the next epoch
    assert batches(2) == length_sorted_batches(items, 8, lambda xs, gen: [len(x) for x in xs], seed=3)(2)
    # with two processes, each takes every other example of the same global batch
    whole = batches(4)
    assert sorted(batches(4, 0, 2) + batches(4, 1, 2)) == whole
    with pytest.raises(ValueError, match=r"batch_size: expected 1 to 50 \(the number of items\), got 51"):
        length_sorted_batches(items, 51, list)


def test_collator_makes_a_padded_training_batch():
    from w2vc import CTCCollator
    processor = _toy_processor()
    waves = [torch.randn(n, generator=torch.Generator().manual_seed(n)).numpy() for n in (4000, 2500)]

    class Utt:
        def __init__(self, audio, text):
            self.audio, self.text = audio, text

    a = CTCCollator(processor)([Utt(waves[0], "go left"), Utt(waves[1], "stop")])
    b = CTCCollator(processor)([(waves[0], "go left"), (waves[1], "stop")])
    assert a.keys() == {"input_values", "attention_mask", "labels"}
    for key in a:
        assert torch.equal(a[key], b[key])
    assert a["input_values"].shape == (2, 4000) and a["attention_mask"].dtype == torch.long
    assert a["labels"][1].tolist() == processor.tokenizer.encode("stop") + [-100] * 3


def test_training_step_and_evaluation_run_on_a_tiny_model():
    from helpers import w2vc_config
    from w2vc import CTCCollator, ctc_training_step, evaluate_recognizer
    processor = _toy_processor()
    torch.manual_seed(0)
    model = Wav2Vec2ConformerForCTC(w2vc_config(vocab_size=processor.tokenizer.vocab_size,
                                                feat_extract_norm="layer")).eval()

    class Utt:
        def __init__(self, n, text):
            self.audio = torch.randn(n, generator=torch.Generator().manual_seed(n)).numpy()
            self.text = text

    utts = [Utt(4000, "go left"), Utt(3000, "stop"), Utt(5000, "three two one")]
    batch = CTCCollator(processor)(utts)
    out = ctc_training_step(model, batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    result = evaluate_recognizer(model, processor, utts, batch_size=2)
    assert result.keys() == {"cer", "wer", "empty"} and result["cer"] >= 0 and 0 <= result["empty"] <= 1


# ---------------------------------------------------------------- what pretraining buys (9.5)

class _FakeCorpus:
    """A few noise 'utterances' with transcripts: enough for ctc_experiment's code path, in seconds."""

    def __init__(self, train=20, test=4):
        texts = ["go left", "stop", "three two one", "yes"]

        class Utt:
            def __init__(self, i):
                self.audio = torch.randn(12800 + 320 * (i % 7), generator=torch.Generator().manual_seed(i)).numpy()
                self.text = texts[i % len(texts)] if i < 16 else "zebra"  # letters only beyond the 16th

        self.train = [Utt(i) for i in range(train)]
        self.test = [Utt(1000 + i) for i in range(test)]


def test_ctc_experiment_names_a_bad_init_and_a_bad_label_count():
    from w2vc import ctc_experiment
    with pytest.raises(ValueError, match=r"init: expected 'pretrained' .* or 'scratch', got 'random'"):
        ctc_experiment("random", 50, steps=1, lr=1e-3, corpus=_FakeCorpus())
    with pytest.raises(ValueError, match=r"labels: expected 16 \(one batch\) to 20 \(the training set\), got 8"):
        ctc_experiment("scratch", 8, steps=1, lr=1e-3, corpus=_FakeCorpus())
    with pytest.raises(ValueError, match=r"got 21"):
        ctc_experiment("scratch", 21, steps=1, lr=1e-3, corpus=_FakeCorpus())


def test_ctc_experiment_trains_on_the_first_labels_and_reports_its_run():
    from w2vc import ctc_experiment
    corpus = _FakeCorpus()
    result = ctc_experiment("scratch", 16, steps=2, lr=1e-3, warmup_steps=1, eval_every=1, corpus=corpus,
                            device="cpu", keep_model=True)
    assert {k: result[k] for k in ("init", "labels", "steps", "lr", "warmup_steps", "decay")} == {
        "init": "scratch", "labels": 16, "steps": 2, "lr": 1e-3, "warmup_steps": 1, "decay": "linear"}
    assert [step for step, _ in result["curve"]] == [1, 2] and result["cer"] == result["curve"][-1][1]
    assert result["seconds"] > 0 and result["history"].last("cer") == result["cer"]
    # the vocabulary holds every letter of the whole training set, also those only beyond the first 16: z, b, a
    assert result["model"].lm_head.out_features == 5 + len(set("goleftstopthreetwooneyes") | set("zebra"))


def test_the_stored_label_efficiency_results_are_complete_and_fair():
    """w2vc/results/label_efficiency.json, which chapter 9 reads: what tools/label_efficiency.py must have written."""
    import json
    from importlib import resources

    from w2vc.ctc_training import FINETUNE_RECIPE, LABEL_COUNTS, LABEL_EFFICIENCY_FILE, SCRATCH_CANDIDATES
    assert resources.files("w2vc").joinpath("results/label_efficiency.json").is_file()
    stored = json.loads(LABEL_EFFICIENCY_FILE.read_text())
    fair = stored["fair_baseline"]
    assert fair["budget_seconds"] == pytest.approx(fair["pretraining_seconds"] + fair["finetune"]["seconds"])
    assert {k: fair["finetune"][k] for k in FINETUNE_RECIPE} == FINETUNE_RECIPE and fair["finetune"]["labels"] == 3000
    recipes = [{k: run[k] for k in ("lr", "warmup_steps", "decay")} for run in fair["candidates"]]
    assert recipes == [dict(c) for c in SCRATCH_CANDIDATES]
    for run in fair["candidates"]:  # every candidate trained from scratch on all labels, within the budget
        assert run["init"] == "scratch" and run["labels"] == 3000 and run["steps"] == fair["scratch_steps"]
        assert run["seconds"] <= 1.15 * fair["budget_seconds"], run
    assert fair["scratch_best"] == min(fair["candidates"], key=lambda r: r["cer"])
    assert fair["scratch_recipe"] == {k: fair["scratch_best"][k] for k in ("lr", "warmup_steps", "decay")}
    curve = stored["curve"]
    assert curve["steps"] == FINETUNE_RECIPE["steps"]
    points = {(p["init"], p["labels"]): p for p in curve["points"]}
    assert set(points) == {(init, n) for init in ("pretrained", "scratch") for n in LABEL_COUNTS} and len(LABEL_COUNTS) >= 4
    for (init, n), p in points.items():
        recipe = FINETUNE_RECIPE if init == "pretrained" else {**fair["scratch_recipe"], "steps": curve["steps"]}
        assert {k: p[k] for k in recipe} == recipe and 0 <= p["cer"] <= 2, p


def _label_efficiency_tool(*args):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, str(root / "tools" / "label_efficiency.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})


@pytest.mark.parametrize("command", [["curve"], ["point", "--init", "scratch", "--labels", "200"]])
def test_label_efficiency_tool_says_to_tune_before_the_curve(tmp_path, command):
    out = tmp_path / "results.json"
    result = _label_efficiency_tool(*command, "--out", out)
    assert result.returncode != 0 and not out.exists()
    assert "Traceback" not in result.stderr
    assert "has no scratch recipe yet: run `python tools/label_efficiency.py tune` first" in result.stderr


@pytest.mark.parametrize("labels", [[], ["--labels"], ["--labels", "50", "200"]])
def test_label_efficiency_point_needs_one_label_count(tmp_path, labels):
    out = tmp_path / "results.json"
    result = _label_efficiency_tool("point", "--init", "pretrained", *labels, "--out", out)
    assert result.returncode == 2 and not out.exists()
    assert "Traceback" not in result.stderr
    assert "point trains one model: give one number of labelled utterances, e.g. --labels 200" in result.stderr
