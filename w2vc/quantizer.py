# GENERATED from notebooks/07_quantization.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/07_quantization.ipynb, cell 4
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# %% notebooks/07_quantization.ipynb, cell 8
def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Standard Gumbel noise ``-log(-log(u))``, ``u ~ U(0, 1)``.

    Args:
        shape: the shape of the noise, e.g. ``(N, G, V)``.
        generator: a ``torch.Generator`` on ``device`` for reproducible noise (default: the global one).
        device: where to make the noise.

    Returns:
        A float32 tensor of ``shape``.
    """
    u = torch.rand(shape, generator=generator, device=device)
    # u = 0 would give -log(-log 0) = -inf: that entry is never picked, which is harmless
    return -torch.log(-torch.log(u))


# %% notebooks/07_quantization.ipynb, cell 12
def gumbel_softmax_straight_through(logits: torch.Tensor, tau: float,
                                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one-hot vectors along the last axis with the straight-through Gumbel-softmax.

    Args:
        logits: ``(..., V)`` unnormalised log-probabilities.
        tau: the temperature, > 0. It does not change *which* entry is picked, only the gradient.
        generator: for reproducible noise (default: the global generator).

    Returns:
        ``(y, y_soft)``, both ``(..., V)``: ``y`` is exactly one-hot in value with the gradient of
        ``y_soft = softmax((logits + noise) / tau)``.
    """
    if not tau > 0:
        raise ValueError(f"the Gumbel temperature tau must be > 0, got {tau}; wav2vec 2.0 anneals it from 2 to 0.5")
    noise = gumbel_noise(tuple(logits.shape), generator=generator, device=logits.device)
    y_soft = ((logits + noise) / tau).softmax(dim=-1)                                          # (..., V)
    y_hard = F.one_hot(y_soft.argmax(dim=-1), logits.shape[-1]).to(y_soft.dtype)              # (..., V)
    return y_hard - y_soft.detach() + y_soft, y_soft


# %% notebooks/07_quantization.ipynb, cell 21
def codevector_perplexity(probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Perplexity of the average code distribution, summed over the groups.

    Args:
        probs: ``(N, G, V)`` per-frame distributions over each group's ``V`` entries (soft or one-hot).
        mask: optional ``(N,)`` or ``(B, T)`` with ``B * T = N``, True on the frames to average over.

    Returns:
        A scalar tensor between ``G`` (collapsed) and ``G * V`` (uniform use).
    """
    if mask is None:
        average = probs.mean(dim=0)                                           # (G, V)
    else:
        keep = mask.reshape(-1).to(device=probs.device, dtype=probs.dtype)   # (N,)
        if not torch.compiler.is_compiling() and not bool(keep.any()):  # eager only: no graph break
            raise ValueError("mask_time_indices masks no frame, so the perplexity of the masked frames is "
                             "undefined; mask at least one frame (see w2vc.masking.compute_mask_indices)")
        average = (probs * keep[:, None, None]).sum(dim=0) / keep.sum()      # (G, V)
    entropy = -torch.xlogy(average, average).sum(dim=-1)                     # (G,); 0 log 0 = 0
    return entropy.exp().sum()


# %% notebooks/07_quantization.ipynb, cell 25
class Wav2Vec2ConformerGumbelVectorQuantizer(nn.Module):
    """Product quantizer with G codebooks of V entries, picked by a straight-through Gumbel-softmax.

    Args:
        config: gives ``num_codevector_groups`` (G), ``num_codevectors_per_group`` (V),
            ``codevector_dim`` (d, divisible by G) and ``conv_dim[-1]`` (the input width C).

    Attributes:
        codevectors: ``(1, G * V, d / G)`` the entries, group by group.
        weight_proj: ``Linear(C, G * V)`` the logits.
        temperature: the Gumbel-softmax temperature used in training mode (``set_gumbel_temperature``
            of the pretraining model changes it).
    """

    def __init__(self, config):
        super().__init__()
        G, V, d = config.num_codevector_groups, config.num_codevectors_per_group, config.codevector_dim
        if d % G != 0:
            raise ValueError(f"codevector_dim ({d}) must be divisible by num_codevector_groups ({G}): each "
                             f"group's entry has codevector_dim / num_codevector_groups channels and they are "
                             f"concatenated; choose e.g. codevector_dim={G * max(1, d // G)}")
        self.num_groups, self.num_vars = G, V
        self.codevectors = nn.Parameter(torch.empty(1, G * V, d // G))
        self.weight_proj = nn.Linear(config.conv_dim[-1], G * V)
        self.temperature = 2.0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """transformers' initialisation: N(0, 1) projection weights, zero bias, U(0, 1) codevectors."""
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        nn.init.uniform_(self.codevectors)

    def logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Args: hidden_states ``(B, T, C)``. Returns: ``(B, T, G, V)`` the codebook logits."""
        B, T, C = hidden_states.shape
        return self.weight_proj(hidden_states).view(B, T, self.num_groups, self.num_vars)  # (B, T, G, V)

    def code_indices(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The entries eval mode picks. Args: ``(B, T, C)``. Returns: ``(B, T, G)`` long, in ``[0, V)``."""
        return self.logits(hidden_states).argmax(dim=-1)

    def forward(self, hidden_states: torch.Tensor,
                mask_time_indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize every frame.

        Args:
            hidden_states: ``(B, T, C)`` the feature encoder's (projected, normalised) output.
            mask_time_indices: optional ``(B, T)`` bool (or 0/1); only these frames count in the perplexity.

        Returns:
            ``(codevectors, perplexity)``: ``(B, T, d)`` the concatenated entries, and the scalar
            perplexity of the (soft in training, hard in eval) code distribution.
        """
        B, T, C = hidden_states.shape
        G, V = self.num_groups, self.num_vars
        logits = self.logits(hidden_states).reshape(B * T, G, V)                 # (N, G, V), N = B*T
        if self.training:
            # sample in float32 (also under bf16 autocast): the softmax of small differences needs it
            one_hot, _ = gumbel_softmax_straight_through(logits.float(), self.temperature)
            one_hot = one_hot.type_as(logits)                                     # (N, G, V)
            probs = logits.float().softmax(dim=-1)                                # (N, G, V), no noise
        else:
            one_hot = F.one_hot(logits.argmax(dim=-1), V).type_as(logits)         # (N, G, V)
            probs = one_hot
        mask = None if mask_time_indices is None else mask_time_indices.bool()
        perplexity = codevector_perplexity(probs, mask)
        book = self.codevectors.view(G, V, -1).to(one_hot.dtype)                  # (G, V, d/G)
        # pick entry i_g of codebook g: a one-hot weighted sum, so the gradient reaches the logits
        picked = torch.einsum("ngv,gvd->ngd", one_hot, book)                      # (N, G, d/G)
        return picked.reshape(B, T, -1), perplexity                               # (B, T, d)
