"""Chapter 7: the Gumbel vector quantizer (w2vc.quantizer), against transformers' and on its own."""
import pytest
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2ConformerConfig as HFConfig
from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import (
    Wav2Vec2ConformerGumbelVectorQuantizer as HFQuantizer,
)

from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.quantizer import (Wav2Vec2ConformerGumbelVectorQuantizer, codevector_perplexity, gumbel_noise,
                            gumbel_softmax_straight_through)

SIZES = dict(conv_dim=(8, 24), conv_kernel=(10, 3), conv_stride=(5, 2), num_codevector_groups=3,
             num_codevectors_per_group=7, codevector_dim=12)


def _pair(seed=0):
    """transformers' quantizer with random weights, and ours loaded from its state_dict (strict)."""
    torch.manual_seed(seed)
    theirs = HFQuantizer(HFConfig(**SIZES))
    torch.nn.init.normal_(theirs.weight_proj.weight)  # transformers' _init_weights does this in a model
    torch.nn.init.normal_(theirs.weight_proj.bias)
    torch.nn.init.uniform_(theirs.codevectors)
    ours = Wav2Vec2ConformerGumbelVectorQuantizer(Wav2Vec2ConformerConfig(**SIZES))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs, ours


def _inputs(B=3, T=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, SIZES["conv_dim"][-1], generator=g)
    mask = torch.rand(B, T, generator=g) < 0.4
    mask[0, 0] = True
    return x, mask


def test_parameter_names_and_shapes_are_transformers():
    theirs, ours = _pair()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert ours.codevectors.shape == (1, 3 * 7, 12 // 3)
    assert ours.temperature == 2.0


@pytest.mark.parametrize("with_mask", [False, True])
def test_eval_mode_equals_transformers(with_mask):
    theirs, ours = _pair()
    theirs.eval(), ours.eval()
    x, mask = _inputs()
    with torch.no_grad():
        q1, p1 = theirs(x, mask if with_mask else None)
        q2, p2 = ours(x, mask if with_mask else None)
    torch.testing.assert_close(q2, q1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(p2, p1, rtol=1e-5, atol=1e-5)


def test_eval_mode_accepts_an_integer_mask_like_transformers():
    theirs, ours = _pair()
    theirs.eval(), ours.eval()
    x, mask = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(ours(x, mask.long())[1], theirs(x, mask)[1], rtol=1e-5, atol=1e-5)


def test_training_mode_perplexity_equals_transformers_soft_perplexity():
    """The training perplexity uses the softmax of the logits without noise: deterministic, comparable."""
    theirs, ours = _pair()
    theirs.train(), ours.train()
    x, mask = _inputs()
    for m in (None, mask):
        torch.testing.assert_close(ours(x, m)[1], theirs(x, m)[1], rtol=1e-5, atol=1e-5)


def test_eval_output_is_the_concatenation_of_the_picked_entries():
    _, ours = _pair()
    ours.eval()
    x, _ = _inputs()
    q, _ = ours(x)
    index = ours.code_indices(x)  # (B, T, G)
    book = ours.codevectors.view(3, 7, 4)
    expected = torch.stack([book[g][index[..., g]] for g in range(3)], dim=-2).flatten(-2)  # (B, T, G*4)
    assert torch.equal(q, expected)


def test_training_output_is_made_of_codebook_entries_and_trains_projection_and_codebook():
    _, ours = _pair()
    ours.train()
    x, mask = _inputs()
    torch.manual_seed(0)
    q, ppl = ours(x, mask)
    pieces = q.detach().reshape(-1, 3, 4)  # (N, G, d/G)
    book = ours.codevectors.detach().view(3, 7, 4)
    distance = (pieces[:, :, None, :] - book[None]).abs().amax(-1).amin(-1)  # (N, G)
    assert distance.max() < 1e-6
    (q.square().sum() + ppl).backward()
    assert ours.weight_proj.weight.grad.abs().sum() > 0 and ours.codevectors.grad.abs().sum() > 0


def test_training_mode_samples_and_temperature_is_used():
    _, ours = _pair()
    ours.train()
    x, _ = _inputs()
    torch.manual_seed(0)
    a = ours(x)[0]
    b = ours(x)[0]
    assert not torch.equal(a, b)
    ours.temperature = 0.0
    with pytest.raises(ValueError, match="the Gumbel temperature tau must be > 0, got 0.0"):
        ours(x)


def test_mask_that_masks_nothing_is_an_error():
    _, ours = _pair()
    x, mask = _inputs()
    with pytest.raises(ValueError, match="mask_time_indices masks no frame"):
        ours(x, torch.zeros_like(mask))


def test_codevector_dim_must_split_into_the_groups():
    config = Wav2Vec2ConformerConfig(**SIZES)
    config.codevector_dim = 13  # after the configuration's own check
    with pytest.raises(ValueError, match=r"codevector_dim \(13\) must be divisible by num_codevector_groups \(3\)"):
        Wav2Vec2ConformerGumbelVectorQuantizer(config)
    # the configuration refuses it too, when it is made
    with pytest.raises(ValueError, match=r"codevector_dim \(13\) must be divisible by num_codevector_groups \(3\)"):
        Wav2Vec2ConformerConfig(**{**SIZES, "codevector_dim": 13})


def test_gumbel_max_trick_samples_from_the_softmax():
    logits = torch.tensor([1.0, 0.0, -0.5, 2.0, -3.0])
    draws = (logits + gumbel_noise((200_000, 5), generator=torch.Generator().manual_seed(0))).argmax(-1)
    freq = torch.bincount(draws, minlength=5) / draws.numel()
    torch.testing.assert_close(freq, logits.softmax(-1), atol=5e-3, rtol=0)


def test_straight_through_value_is_one_hot_and_gradient_is_the_soft_one():
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    weights = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    y, y_soft = gumbel_softmax_straight_through(logits, 0.7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(y.detach(), F.one_hot(y_soft.argmax(-1), 5).float(), atol=1e-6, rtol=0)
    (y * weights).sum().backward()
    straight = logits.grad.clone()
    logits.grad = None
    _, y_soft = gumbel_softmax_straight_through(logits, 0.7, generator=torch.Generator().manual_seed(2))
    (y_soft * weights).sum().backward()
    torch.testing.assert_close(straight, logits.grad)


def test_temperature_changes_the_soft_sample_not_the_pick():
    logits = torch.randn(50, 9, generator=torch.Generator().manual_seed(0))
    picks = [gumbel_softmax_straight_through(logits, tau, torch.Generator().manual_seed(5))[0].argmax(-1)
             for tau in (0.1, 0.5, 2.0, 10.0)]
    assert all(torch.equal(p, picks[0]) for p in picks)
    soft_hi = gumbel_softmax_straight_through(logits, 10.0, torch.Generator().manual_seed(5))[1]
    soft_lo = gumbel_softmax_straight_through(logits, 0.1, torch.Generator().manual_seed(5))[1]
    assert soft_hi.amax(-1).mean() < soft_lo.amax(-1).mean()


def test_perplexity_known_values_and_mask():
    G, V = 2, 4
    assert codevector_perplexity(torch.full((6, G, V), 1 / V)).item() == pytest.approx(G * V)
    collapsed = F.one_hot(torch.zeros(6, G, dtype=torch.long), V).float()
    assert codevector_perplexity(collapsed).item() == pytest.approx(G)
    probs = F.one_hot(torch.tensor([[0, 0], [1, 1], [2, 2], [3, 3], [0, 0], [0, 0]]), V).float()
    mask = torch.tensor([True, True, True, True, False, False])
    assert codevector_perplexity(probs, mask).item() == pytest.approx(G * V)
    assert codevector_perplexity(probs, mask.view(2, 3)).item() == pytest.approx(G * V)  # (B, T) masks too
