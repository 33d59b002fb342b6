# GENERATED from notebooks/10_classification.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/10_classification.ipynb, cell 5
"""Heads for utterance and frame classification on top of Wav2Vec2ConformerModel (chapter 10)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.features import lengths_to_mask, receptive_field
from w2vc.model import Wav2Vec2ConformerModel, Wav2Vec2ConformerPreTrainedModel


# %% notebooks/10_classification.ipynb, cell 6
def weighted_layer_sum(hidden_states: Sequence[torch.Tensor], layer_weights: torch.Tensor) -> torch.Tensor:
    """Mix the encoder's layers with learned, softmax-normalised weights.

    Args:
        hidden_states: L tensors of shape (B, T, C): the input of the first conformer block, then the
            output of every block (what the model returns with ``output_hidden_states=True``).
        layer_weights: (L,) unnormalised scores, one per layer.

    Returns:
        (B, T, C): the sum over l of softmax(layer_weights)[l] * hidden_states[l].
    """
    if len(hidden_states) != layer_weights.numel():
        raise ValueError(
            f"layer_weights has {layer_weights.numel()} entries but hidden_states holds {len(hidden_states)} "
            "layers; give one weight per hidden state (config.num_hidden_layers + 1)")
    stacked = torch.stack(tuple(hidden_states), dim=0)  # (L, B, T, C)
    mix = torch.softmax(layer_weights, dim=0)  # (L,)
    return (stacked * mix.view(-1, 1, 1, 1)).sum(dim=0)  # (B, T, C)


# %% notebooks/10_classification.ipynb, cell 10
def masked_mean(x: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Average over time, counting only the frames that hold the utterance (not the padding).

    Args:
        x: (B, T, C) frame vectors.
        frame_mask: (B, T), True (or 1) at real frames and False at padding; None: every frame is real.

    Returns:
        (B, C): the mean of each utterance's real frames.
    """
    B, T, C = x.shape
    if frame_mask is None:
        return x.mean(dim=1)
    if tuple(frame_mask.shape) != (B, T):
        raise ValueError(f"frame_mask must have shape (B, T) = {(B, T)}, got {tuple(frame_mask.shape)}")
    weights = frame_mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    counts = weights.sum(dim=1)  # (B, 1)
    if not torch.compiler.is_compiling() and bool((counts == 0).any()):  # eager only: no graph break
        raise ValueError("frame_mask marks no frame of some utterance as real; every utterance needs at least "
                         "one frame (is its audio shorter than the feature encoder's receptive field?)")
    return (x * weights).sum(dim=1) / counts  # (B, C)


# %% notebooks/10_classification.ipynb, cell 14
IGNORE_INDEX = -100  # a frame label that the loss skips (padding, or frames we do not want to score)


def check_class_labels(labels: torch.Tensor, num_labels: int, ignore_index: int | None = None) -> None:
    """Raise a clear error unless every label is an integer in ``[0, num_labels)``.

    Args:
        labels: integer tensor of any shape.
        num_labels: the number of classes (``config.num_labels``).
        ignore_index: a value to let through (``IGNORE_INDEX`` for unlabelled frames), or None.
    """
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}; use labels.long()")
    if torch.compiler.is_compiling():  # the values are checked in eager calls only (no graph break)
        return
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    bad = valid[(valid < 0) | (valid >= num_labels)]
    if bad.numel():
        raise ValueError(
            f"labels must lie in [0, {num_labels - 1}] because config.num_labels = {num_labels}, got "
            f"{bad.unique()[:5].tolist()}; number the classes 0..{num_labels - 1} or raise config.num_labels")


# %% notebooks/10_classification.ipynb, cell 17
@dataclass
class ClassifierOutput:
    """What the classification heads return.

    Attributes:
        loss: scalar, when labels were given; else None.
        logits: (B, num_labels) for a whole utterance, (B, T, num_labels) for frames.
        hidden_states: the body's hidden states (num_hidden_layers + 1 tensors (B, T, C)) when they were
            asked for or used by the weighted layer sum; else None.
        attentions: the body's attention maps when asked for; else None.
    """

    loss: torch.Tensor | None
    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


# %% notebooks/10_classification.ipynb, cell 18
class Wav2Vec2ConformerWithHead(Wav2Vec2ConformerPreTrainedModel):
    """A Wav2Vec2ConformerModel body (``self.wav2vec2_conformer``) with the pieces every head shares.

    With ``config.use_weighted_layer_sum`` the head reads a learned mixture of all hidden states
    (``self.layer_weights``, one score per layer, softmax-normalised); without it, the last hidden state.
    ``forward`` runs the body, then ``head_forward``, which a subclass writes; ``head_forward`` can also
    be called on hidden states computed earlier (``collect_hidden_states``), to train a head on a frozen
    body without running the body at every step. Subclasses call ``self.post_init()`` at the end of ``__init__``.
    """

    def __init__(self, config: Wav2Vec2ConformerConfig, allow_adapter: bool = True):
        super().__init__(config)
        if config.add_adapter and not allow_adapter:
            raise ValueError(f"{type(self).__name__} reads every hidden state at the frame rate, which the "
                             "adapter changes; set config.add_adapter=False")
        self.wav2vec2_conformer = Wav2Vec2ConformerModel(config)
        if config.use_weighted_layer_sum:
            num_layers = config.num_hidden_layers + 1  # the first block's input, then each block's output
            self.layer_weights = nn.Parameter(torch.full((num_layers,), 1.0 / num_layers))

    def _init_weights(self, module: nn.Module) -> None:
        """As the body's, and ``layer_weights`` back to equal scores.

        ``from_pretrained`` (chapter 6) builds the model on the ``meta`` device and then initialises only the
        modules whose weights the checkpoint lacks, with this method: the value ``__init__`` wrote is not there,
        so without this line the layer scores would be whatever the fresh memory held.
        """
        super()._init_weights(module)
        if module is self and self.config.use_weighted_layer_sum:
            with torch.no_grad():
                self.layer_weights.fill_(1.0 / self.layer_weights.numel())

    def freeze_base_model(self) -> None:
        """Train only the head: every parameter of the body gets ``requires_grad=False``."""
        for param in self.wav2vec2_conformer.parameters():
            param.requires_grad = False

    def layer_mixture(self) -> torch.Tensor | None:
        """The softmax-normalised layer weights, (L,); None without ``use_weighted_layer_sum``."""
        if not self.config.use_weighted_layer_sum:
            return None
        return torch.softmax(self.layer_weights.detach(), dim=0)

    def mix_layers(self, hidden_states) -> torch.Tensor:
        """What the head reads: the weighted layer sum, or the last hidden state.

        Args:
            hidden_states: the body's L = num_hidden_layers + 1 hidden states, a sequence of (B, T, C)
                tensors or one (L, B, T, C) tensor; or, without ``use_weighted_layer_sum``, the last hidden
                state (B, T, C) alone.

        Returns:
            (B, T, C).
        """
        if isinstance(hidden_states, torch.Tensor) and hidden_states.dim() == 3:
            if self.config.use_weighted_layer_sum:
                raise ValueError("config.use_weighted_layer_sum needs every hidden state, (L, B, T, C) or a "
                                 "sequence of L (B, T, C) tensors, got one (B, T, C) tensor")
            return hidden_states
        if self.config.use_weighted_layer_sum:
            return weighted_layer_sum(hidden_states, self.layer_weights)  # (B, T, C)
        return hidden_states[-1]  # (B, T, C)

    def head_forward(self, hidden_states, frame_mask: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None):
        """The head alone, from the body's hidden states (see ``mix_layers``) and a (B, T) frame mask."""
        raise NotImplementedError

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False):
        """Run the body on audio, then the head.

        Args:
            input_values: (B, S) normalised 16 kHz audio.
            attention_mask: (B, S), 1 on real samples and 0 on padding; or None (no padding).
            labels: what the head's loss compares with (see the subclass's ``head_forward``), or None.
            output_hidden_states: also return the body's hidden states.
            output_attentions: also return the body's attention maps.

        Returns:
            The head's output dataclass, with the body's hidden states and attentions filled in.
        """
        weighted = self.config.use_weighted_layer_sum
        body = self.wav2vec2_conformer(input_values, attention_mask=attention_mask,
                                       output_hidden_states=output_hidden_states or weighted,
                                       output_attentions=output_attentions)
        frame_mask = None
        if attention_mask is not None:
            T = body.last_hidden_state.shape[1]
            frame_mask = self._get_feature_vector_attention_mask(T, attention_mask)  # (B, T)
        out = self.head_forward(body.hidden_states if weighted else body.last_hidden_state, frame_mask, labels)
        out.hidden_states, out.attentions = body.hidden_states, body.attentions
        return out


# %% notebooks/10_classification.ipynb, cell 20
class Wav2Vec2ConformerForSequenceClassification(Wav2Vec2ConformerWithHead):
    """One label per utterance: layers -> projector -> mean over real frames -> classifier.

    Its ``state_dict`` keys are transformers': ``wav2vec2_conformer.*``, ``layer_weights`` (with
    ``use_weighted_layer_sum``), ``projector.*`` and ``classifier.*``.
    """

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__(config, allow_adapter=False)
        self.projector = nn.Linear(config.hidden_size, config.classifier_proj_size)
        self.classifier = nn.Linear(config.classifier_proj_size, config.num_labels)
        self.post_init()

    def head_forward(self, hidden_states, frame_mask: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None) -> ClassifierOutput:
        """Classify each utterance from the body's hidden states.

        Args:
            hidden_states: see ``mix_layers``; (B, T, C) features after mixing.
            frame_mask: (B, T), True on real frames; None: no padding.
            labels: (B,) class indices in [0, num_labels) for cross-entropy; with ``num_labels == 1``,
                (B,) real targets for a mean squared error.

        Returns:
            ``ClassifierOutput`` with logits (B, num_labels), and the loss when labels are given.
        """
        projected = self.projector(self.mix_layers(hidden_states))  # (B, T, P)
        pooled = masked_mean(projected, frame_mask)  # (B, P)
        logits = self.classifier(pooled)  # (B, N)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.num_labels == 1:  # one output: regression
                loss = F.mse_loss(logits.view(-1), labels.view(-1).to(logits.dtype))
            else:
                check_class_labels(labels, self.config.num_labels)
                loss = F.cross_entropy(logits, labels.view(-1))
        return ClassifierOutput(loss, logits)


# %% notebooks/10_classification.ipynb, cell 26
class Wav2Vec2ConformerForAudioFrameClassification(Wav2Vec2ConformerWithHead):
    """One label per 20 ms frame: layers -> classifier on every frame.

    Its ``state_dict`` keys are transformers': ``wav2vec2_conformer.*``, ``layer_weights`` (with
    ``use_weighted_layer_sum``) and ``classifier.*``.
    """

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__(config, allow_adapter=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def head_forward(self, hidden_states, frame_mask: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None) -> ClassifierOutput:
        """Classify every frame from the body's hidden states.

        Args:
            hidden_states: see ``mix_layers``; (B, T, C) features after mixing.
            frame_mask: (B, T), True on real frames. Not used: padded frames get logits too, and their
                labels should be ``IGNORE_INDEX``.
            labels: (B, T) class indices, ``IGNORE_INDEX`` (-100) on frames to leave out of the loss (give it
                to padded frames); or (B, T, num_labels) one-hot rows, as transformers takes them (the
                argmax of each row is the class, and every frame counts).

        Returns:
            ``ClassifierOutput`` with logits (B, T, num_labels), and the mean cross-entropy over the
            labelled frames when labels are given.
        """
        logits = self.classifier(self.mix_layers(hidden_states))  # (B, T, N)
        B, T, N = logits.shape
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            one_hot = labels.dim() == 3
            if labels.dim() not in (2, 3) or tuple(labels.shape[:2]) != (B, T) or (one_hot and labels.shape[2] != N):
                raise ValueError(
                    f"labels must have shape (B, T) = {(B, T)} (or (B, T, num_labels) = {(B, T, N)}): one label "
                    f"per frame of the model's output, got {tuple(labels.shape)}; make them for "
                    f"model._get_feat_extract_output_lengths(samples) frames (frame_labels_from_words)")
            if one_hot:
                labels = labels.argmax(dim=-1)  # (B, T)
            check_class_labels(labels, N, ignore_index=IGNORE_INDEX)
            loss = F.cross_entropy(logits.reshape(B * T, N), labels.reshape(B * T), ignore_index=IGNORE_INDEX)
        return ClassifierOutput(loss, logits)


# %% notebooks/10_classification.ipynb, cell 29
def frame_labels_from_words(words, num_frames: int, label_of: Mapping[str, int] | Callable[[str], int],
                            silence: int = 0, config: Wav2Vec2ConformerConfig | None = None) -> torch.Tensor:
    """One class label per encoder frame, from word boundaries in samples.

    Frame t sees the samples [t * stride, t * stride + field) (the receptive field of the feature
    encoder); it takes the label of the word whose span holds the frame's centre, else ``silence``.

    Args:
        words: objects with ``text``, ``start`` and ``end`` (samples, end exclusive), e.g. an
            ``Utterance``'s ``words``.
        num_frames: T, the frames the model makes for the utterance.
        label_of: a word's class index: a dict from text to index, or a function.
        silence: the class index of frames outside every word.
        config: gives the encoder's receptive field and stride; None: transformers' default 400 and 320.

    Returns:
        (T,) int64 labels.
    """
    field, stride = receptive_field(config if config is not None else Wav2Vec2ConformerConfig())
    lookup = label_of.__getitem__ if isinstance(label_of, Mapping) else label_of
    centres = torch.arange(num_frames) * stride + (field - 1) / 2  # (T,) in samples
    labels = torch.full((num_frames,), silence, dtype=torch.long)  # (T,)
    for word in words:
        inside = (centres >= word.start) & (centres < word.end)  # (T,)
        labels[inside] = lookup(word.text)
    return labels


# %% notebooks/10_classification.ipynb, cell 32
@torch.no_grad()
def collect_hidden_states(body: Wav2Vec2ConformerModel, waveforms: Sequence, batch_size: int = 32,
                          dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Run a (frozen) body once over many utterances and keep every hidden state of each.

    Utterances are batched by length (little padding), normalised and padded as the feature extractor
    of chapter 1 does, and run in eval mode without gradients.

    Args:
        body: the ``Wav2Vec2ConformerModel`` (e.g. ``model.wav2vec2_conformer``).
        waveforms: 16 kHz float waveforms (arrays or tensors), any lengths.
        batch_size: utterances per forward pass.
        dtype: what to keep them in (``torch.float16`` halves the memory).

    Returns:
        One (L, T_i, C) tensor per utterance, on the CPU, in the order of ``waveforms``: the
        L = num_hidden_layers + 1 hidden states of its T_i real frames.
    """
    from w2vc.audio import Wav2Vec2FeatureExtractor

    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=True)
    was_training = body.training
    body.eval()
    order = sorted(range(len(waveforms)), key=lambda i: len(waveforms[i]))
    out: list[torch.Tensor | None] = [None] * len(waveforms)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        batch = extractor([waveforms[i] for i in chosen], padding=True, return_tensors="pt")
        mask = batch["attention_mask"].to(body.device)  # (B, S)
        hidden = body(batch["input_values"].to(body.device), attention_mask=mask,
                      output_hidden_states=True).hidden_states
        stacked = torch.stack(hidden, dim=1).to("cpu", dtype)  # (B, L, T, C)
        frames = body._get_feat_extract_output_lengths(mask.sum(-1)).tolist()  # (B,)
        for row, i in enumerate(chosen):
            out[i] = stacked[row, :, :frames[row]].clone()  # (L, T_i, C)
    body.train(was_training)
    return out


def pad_hidden_states(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad per-utterance hidden states (L, T_i, C) into a batch.

    Returns:
        ``(hidden_states, frame_mask)``: (L, B, T, C) with zeros after each utterance's frames, and
        (B, T) bool, True on real frames; ``head_forward`` takes both.
    """
    L, _, C = items[0].shape
    lengths = torch.tensor([x.shape[1] for x in items])  # (B,)
    hidden = items[0].new_zeros(L, len(items), int(lengths.max()), C)  # (L, B, T, C)
    for b, x in enumerate(items):
        hidden[:, b, :x.shape[1]] = x
    return hidden, lengths_to_mask(lengths, hidden.shape[2])
