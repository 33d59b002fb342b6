# GENERATED from notebooks/11_xvector.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/11_xvector.ipynb, cell 4
"""X-vector speaker embeddings on top of Wav2Vec2ConformerModel, and verification scoring (chapter 11)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from w2vc.classification import Wav2Vec2ConformerWithHead, check_class_labels
from w2vc.config import Wav2Vec2ConformerConfig


# %% notebooks/11_xvector.ipynb, cell 6
class TDNNLayer(nn.Module):
    """A time-delay layer: a Linear over ``kernel_size`` frames taken ``dilation`` frames apart, then ReLU.

    Output frame t sees the input frames t, t + d, ..., t + (k - 1) d, spliced into one vector of
    k * C_in numbers: the x-vector paper's "frame context". That is a dilated 1-D convolution written
    as a Linear; the Linear keeps transformers' parameter layout, ``kernel.weight`` of shape
    (C_out, k * C_in) with the k frames one after the other.

    Args:
        in_dim: C_in, channels of the input frames.
        out_dim: C_out, channels of the output frames.
        kernel_size: k, frames spliced together.
        dilation: d, the step between spliced frames.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 1, dilation: int = 1):
        super().__init__()
        if kernel_size < 1 or dilation < 1:
            raise ValueError(f"kernel_size and dilation must be at least 1, got {kernel_size} and {dilation}")
        self.in_dim, self.out_dim, self.kernel_size, self.dilation = in_dim, out_dim, kernel_size, dilation
        self.kernel = nn.Linear(in_dim * kernel_size, out_dim)
        self.activation = nn.ReLU()

    @property
    def context(self) -> int:
        """Input frames one output frame sees: (k - 1) * d + 1."""
        return (self.kernel_size - 1) * self.dilation + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args:
            x: (B, T, C_in).

        Returns:
            (B, T - context + 1, C_out).
        """
        B, T, C = x.shape
        if T < self.context:
            raise ValueError(f"this TDNN layer (kernel {self.kernel_size}, dilation {self.dilation}) needs at least "
                             f"{self.context} frames, got {T}; give longer audio")
        windows = x.unfold(1, self.context, 1)  # (B, T', C, context) with T' = T - context + 1
        taps = windows[..., :: self.dilation]  # (B, T', C, k)
        spliced = taps.transpose(2, 3).reshape(B, T - self.context + 1, self.kernel_size * C)  # (B, T', k*C)
        return self.activation(self.kernel(spliced))  # (B, T', C_out)


# %% notebooks/11_xvector.ipynb, cell 10
def statistics_pooling(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Mean and standard deviation over each utterance's real frames, concatenated.

    The standard deviation is the unbiased one (divided by n - 1), as ``torch.std`` computes it.
    It needs two frames: fewer raise an error here, where ``torch.std`` would return NaN.

    Args:
        x: (B, T, C) frame vectors.
        lengths: (B,) real frames of each utterance (values above T count as T); None: all T.

    Returns:
        (B, 2C): [mean, std].
    """
    B, T, C = x.shape
    if lengths is None:
        lengths = torch.full((B,), T, device=x.device)
    lengths = torch.as_tensor(lengths, device=x.device).clamp(max=T)  # (B,)
    if bool((lengths < 2).any()):
        raise ValueError(
            f"statistics pooling needs at least 2 frames per utterance for a standard deviation, got "
            f"{lengths.tolist()} frames after the TDNN layers; give longer audio (or shorter tdnn_kernel)")
    mask = (torch.arange(T, device=x.device) < lengths[:, None]).to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    n = lengths.to(x.dtype).unsqueeze(-1)  # (B, 1)
    mean = (x * mask).sum(dim=1) / n  # (B, C)
    var = (((x - mean.unsqueeze(1)) * mask) ** 2).sum(dim=1) / (n - 1)  # (B, C)
    # sqrt has an infinite slope at 0 (a ReLU channel silent over a whole utterance): keep the gradient finite
    std = torch.where(var > 0, var.clamp_min(1e-30).sqrt(), torch.zeros_like(var))  # (B, C)
    return torch.cat([mean, std], dim=-1)  # (B, 2C)


# %% notebooks/11_xvector.ipynb, cell 13
class AMSoftmaxLoss(nn.Module):
    """Additive-margin softmax: cross-entropy over scaled cosines, the true class's cosine lowered by a margin.

    logits_j = s * (cos(x, w_j) - m [j = y])

    Args:
        input_dim: D, size of the vectors to classify.
        num_labels: N, the number of classes (speakers).
        scale: s, sharpens the softmax over cosines (which lie in [-1, 1]).
        margin: m, how much closer to its own class than to any other a vector must be to stop paying.
    """

    def __init__(self, input_dim: int, num_labels: int, scale: float = 30.0, margin: float = 0.4):
        super().__init__()
        self.num_labels, self.scale, self.margin = num_labels, scale, margin
        self.weight = nn.Parameter(torch.randn(input_dim, num_labels))  # (D, N): one column per class

    def cosines(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, N): the cosine of each vector with each class's column."""
        return F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=0)  # (B, N)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Args:
            x: (B, D).
            labels: (B,) class indices in [0, N).

        Returns:
            The loss, a scalar averaged over the batch.
        """
        labels = labels.reshape(-1)
        check_class_labels(labels, self.num_labels)
        margins = self.margin * F.one_hot(labels, self.num_labels).to(x.dtype)  # (B, N)
        return F.cross_entropy(self.scale * (self.cosines(x) - margins), labels)


# %% notebooks/11_xvector.ipynb, cell 16
@dataclass
class XVectorOutput:
    """What ``Wav2Vec2ConformerForXVector`` returns.

    Attributes:
        loss: the AM-softmax loss when labels were given; else None.
        logits: (B, xvector_output_dim), the classifier's output that the loss compares with each speaker.
        embeddings: (B, xvector_output_dim), the x-vectors: compare these between utterances.
        hidden_states, attentions: the body's, when asked for (hidden states also with the weighted sum).
    """

    loss: torch.Tensor | None
    logits: torch.Tensor
    embeddings: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


# %% notebooks/11_xvector.ipynb, cell 17
class Wav2Vec2ConformerForXVector(Wav2Vec2ConformerWithHead):
    """Speaker embeddings: layers -> projector -> TDNN stack -> statistics pooling -> embedding -> classifier.

    Its ``state_dict`` keys are transformers': ``wav2vec2_conformer.*``, ``layer_weights``, ``projector.*``,
    ``tdnn.{i}.kernel.*``, ``feature_extractor.*`` (the embedding layer, despite its name),
    ``classifier.*`` and ``objective.weight`` (the AM-softmax's class columns).

    Attributes:
        exact_tdnn_lengths: how many TDNN output frames of a padded utterance count as real. False (the
            default) counts as transformers does, which subtracts ``kernel - 1`` per layer and forgets the
            dilation, so a padded utterance also pools a few frames that saw padding; True subtracts
            ``(kernel - 1) * dilation``, and a padded utterance gets the x-vector it gets alone.
    """

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__(config)
        sizes = {"tdnn_dim": len(config.tdnn_dim), "tdnn_kernel": len(config.tdnn_kernel),
                 "tdnn_dilation": len(config.tdnn_dilation)}
        if len(set(sizes.values())) != 1 or sizes["tdnn_dim"] == 0:
            raise ValueError(f"tdnn_dim, tdnn_kernel and tdnn_dilation need one entry per TDNN layer, got lengths "
                             f"{sizes}; give the three lists the same (non-zero) length")
        dims = config.tdnn_dim
        self.projector = nn.Linear(config.hidden_size, dims[0])
        self.tdnn = nn.ModuleList(
            TDNNLayer(dims[max(i - 1, 0)], dims[i], config.tdnn_kernel[i], config.tdnn_dilation[i])
            for i in range(len(dims)))
        self.feature_extractor = nn.Linear(2 * dims[-1], config.xvector_output_dim)
        self.classifier = nn.Linear(config.xvector_output_dim, config.xvector_output_dim)
        self.objective = AMSoftmaxLoss(config.xvector_output_dim, config.num_labels)
        self.exact_tdnn_lengths = False
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        head = [self.projector, *(layer.kernel for layer in self.tdnn), self.feature_extractor, self.classifier]
        if any(module is linear for linear in head):
            # transformers draws these from N(0, 0.02) like the body's layers; through seven Linear layers
            # that shrinks the x-vector to about 1e-6 and the head hardly trains. Kaiming keeps the scale.
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            module.bias.zero_()
        if isinstance(module, AMSoftmaxLoss):
            module.weight.normal_(0.0, 1.0)

    def _get_tdnn_output_lengths(self, frames):
        """Frames left after the TDNN stack, from frames entering it (int or tensor); see ``exact_tdnn_lengths``."""
        for layer in self.tdnn:
            frames = frames - (layer.context - 1 if self.exact_tdnn_lengths else layer.kernel_size - 1)
        return frames

    def head_forward(self, hidden_states, frame_mask: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None) -> XVectorOutput:
        """Embed each utterance from the body's hidden states.

        Args:
            hidden_states: see ``mix_layers``; (B, T, C) features after mixing.
            frame_mask: (B, T), True on real frames; None: no padding.
            labels: (B,) speaker indices in [0, num_labels) for the AM-softmax loss.

        Returns:
            ``XVectorOutput`` with embeddings and logits (B, xvector_output_dim), and the loss.
        """
        features = self.mix_layers(hidden_states)  # (B, T, C)
        B, T, C = features.shape
        needed = 2 + sum(layer.context - 1 for layer in self.tdnn)
        if T < needed:
            raise ValueError(f"input_values gives {T} frames but the x-vector head needs at least {needed} "
                             f"(the TDNN layers' context, then 2 for a standard deviation); give at least "
                             f"{needed * self.config.inputs_to_logits_ratio / 16000:.2f} s of audio")
        x = self.projector(features)  # (B, T, tdnn_dim[0])
        for layer in self.tdnn:
            x = layer(x)  # (B, T', tdnn_dim[i])
        lengths = None if frame_mask is None else self._get_tdnn_output_lengths(frame_mask.long().sum(-1))  # (B,)
        stats = statistics_pooling(x, lengths)  # (B, 2 * tdnn_dim[-1])
        embeddings = self.feature_extractor(stats)  # (B, D)
        logits = self.classifier(embeddings)  # (B, D)
        loss = None if labels is None else self.objective(logits, labels.to(logits.device))
        return XVectorOutput(loss, logits, embeddings)


# %% notebooks/11_xvector.ipynb, cell 20
def cosine_scores(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of paired embeddings: (N, D), (N, D) -> (N,)."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must hold the same number of embeddings of the same size, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    return F.cosine_similarity(a, b, dim=-1)  # (N,)


# %% notebooks/11_xvector.ipynb, cell 21
def det_curve(scores, is_target):
    """False-acceptance and false-rejection rates at every threshold.

    A trial is accepted when its score is at least the threshold. Raising the threshold past the k
    lowest scores rejects them: the target trials among them are false rejections, and the
    non-target trials above it are false acceptances.

    Args:
        scores: (N,) trial scores, higher meaning "same speaker".
        is_target: (N,) True for same-speaker (target) trials.

    Returns:
        far, frr, thresholds: three (K,) float64 tensors, far falling from 1 to 0 and frr rising from 0 to 1.
    """
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten().cpu()
    is_target = torch.as_tensor(is_target).flatten().bool().cpu()
    if scores.shape != is_target.shape:
        raise ValueError(f"scores and is_target must have one entry per trial, got {scores.numel()} "
                         f"and {is_target.numel()}")
    n_target, n_nontarget = int(is_target.sum()), int((~is_target).sum())
    if n_target == 0 or n_nontarget == 0:
        raise ValueError(f"need both target and non-target trials, got {n_target} target and {n_nontarget} "
                         "non-target; make trials from at least two speakers")
    order = torch.argsort(scores)
    s, t = scores[order], is_target[order].double()  # ascending scores
    zero = torch.zeros(1, dtype=torch.float64)
    frr = torch.cat([zero, t.cumsum(0)]) / n_target  # (N+1,) targets among the k lowest
    far = (n_nontarget - torch.cat([zero, (1 - t).cumsum(0)])) / n_nontarget  # (N+1,) non-targets above them
    # a threshold can only fall between two different scores: keep k = 0, k = N and the gaps between ties
    keep = torch.cat([torch.tensor([True]), s[1:] > s[:-1], torch.tensor([True])])  # (N+1,)
    thresholds = torch.cat([s[:1] - 1, (s[1:] + s[:-1]) / 2, s[-1:] + 1])  # (N+1,)
    return far[keep], frr[keep], thresholds[keep]


def equal_error_rate(scores, is_target) -> tuple[float, float]:
    """The error rate where false acceptances and false rejections are equally frequent.

    Args:
        scores: (N,) trial scores, higher meaning "same speaker".
        is_target: (N,) True for same-speaker trials.

    Returns:
        ``(eer, threshold)``: the EER in [0, 1], interpolated linearly between the two points of the
        DET curve around the crossing, and the first threshold at which frr >= far.
    """
    far, frr, thresholds = det_curve(scores, is_target)
    k = int(torch.nonzero(frr >= far)[0])  # frr - far rises from -1 to +1: it crosses 0 at some k >= 1
    below, above = frr[k - 1] - far[k - 1], frr[k] - far[k]  # below < 0 <= above
    w = below / (below - above)  # in (0, 1]
    return float((1 - w) * frr[k - 1] + w * frr[k]), float(thresholds[k])


# %% notebooks/11_xvector.ipynb, cell 25
def all_trials(speakers) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every verification trial of a set of utterances: each pair of two different utterances, once.

    Args:
        speakers: (N,) a speaker label per utterance (any values that compare with ==).

    Returns:
        ``(first, second, is_target)``: (N(N-1)/2,) indices with first < second, and True where one
        speaker spoke both utterances.
    """
    names = {s: k for k, s in enumerate(dict.fromkeys(speakers))}  # label -> id, in order of appearance
    ids = torch.tensor([names[s] for s in speakers])  # (N,)
    if len(names) < 2 or len(names) == len(ids):
        raise ValueError(f"trials need at least two speakers and a speaker with two utterances (for a target "
                         f"trial), got {len(ids)} utterances by {len(names)} speakers; give more utterances")
    first, second = torch.triu_indices(len(ids), len(ids), offset=1)  # (P,), (P,) with first < second
    return first, second, ids[first] == ids[second]
