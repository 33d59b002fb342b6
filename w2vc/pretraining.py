# GENERATED from notebooks/08_pretraining.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/08_pretraining.ipynb, cell 4
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


# %% notebooks/08_pretraining.ipynb, cell 8
def sample_negative_indices(features_shape: tuple[int, int], num_negatives: int,
                            mask_time_indices: torch.Tensor | None = None,
                            generator: torch.Generator | None = None,
                            device: torch.device | str | None = None) -> torch.Tensor:
    """Draw `num_negatives` distractors for every masked frame, from the other masked frames of its utterance.

    Args:
        features_shape: ``(B, T)`` frames of the batch (the feature encoder's output length).
        num_negatives: ``K``, distractors per frame (drawn with replacement).
        mask_time_indices: ``(B, T)`` bool (or 0/1), True on masked frames. ``None``: every frame counts as
            masked (transformers' convention).
        generator: a CPU ``torch.Generator`` for reproducible draws.
        device: where the result goes (default: the mask's device, else the CPU).

    Returns:
        ``(B, T, K)`` long: indices into the ``B * T`` frames of the batch flattened, ``b * T + t``. Rows of
        frames that are not masked point at frame 0 of their utterance (the loss ignores them).
    """
    B, T = features_shape
    if mask_time_indices is None:
        mask = torch.ones(B, T, dtype=torch.bool)
    else:
        mask = torch.as_tensor(mask_time_indices).detach().cpu().bool()
        if tuple(mask.shape) != (B, T):
            raise ValueError(f"mask_time_indices must have shape features_shape = {(B, T)}, got {tuple(mask.shape)}")
        device = mask_time_indices.device if device is None and torch.is_tensor(mask_time_indices) else device
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got {num_negatives}")
    counts = mask.sum(dim=1)                                                  # (B,) masked frames n_b
    if not bool(counts.any()):
        raise ValueError("mask_time_indices masks no frame, so there is nothing to predict and nowhere to draw "
                         "distractors from; mask at least 2 frames per utterance (w2vc.masking.compute_mask_indices "
                         "with min_masks >= 1)")
    lonely = ((counts == 1)).nonzero().flatten().tolist()
    if lonely:
        raise ValueError(f"utterance {lonely[0]} of the batch has a single masked frame, too few to draw "
                         f"{num_negatives} distractors from the other masked frames; every utterance needs 0 "
                         f"or at least 2 masked frames (longer audio, a larger mask_time_prob or min_masks=2)")
    number = mask.long().cumsum(dim=1) - 1                                    # (B, T): r, the masked frame's number
    positions = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices  # (B, T): masked frames first
    draw = torch.rand(B, T, num_negatives, generator=generator)               # (B, T, K) in [0, 1)
    draw = (draw * (counts - 1).clamp(min=0)[:, None, None]).long()           # (B, T, K) j in [0, n_b - 2]
    draw = draw + (draw >= number[:, :, None]).long()                         # skip the frame itself
    frames = positions.gather(1, draw.clamp(max=T - 1).view(B, T * num_negatives)).view(B, T, num_negatives)
    frames = torch.where(mask[:, :, None], frames, 0)                         # unmasked frames: frame 0
    flat = frames + (torch.arange(B) * T)[:, None, None]                      # (B, T, K) into B * T frames
    return flat.to(device) if device is not None else flat


# %% notebooks/08_pretraining.ipynb, cell 14
def compute_contrastive_logits(target_features: torch.Tensor, negative_features: torch.Tensor,
                               predicted_features: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Cosine similarities of the predictions with [positive, negatives], divided by the temperature.

    Args:
        target_features: ``(1, B, T, D)`` the positives (projected quantized frames).
        negative_features: ``(K, B, T, D)`` the distractors.
        predicted_features: ``(B, T, D)`` the projected context vectors.
        temperature: ``kappa``.

    Returns:
        ``(1 + K, B, T)`` logits; index 0 along the first axis is the positive.
    """
    candidates = torch.cat([target_features, negative_features], dim=0)                  # (1 + K, B, T, D)
    # cosine similarity in float32 also under autocast: it divides by norms
    logits = F.cosine_similarity(predicted_features.float(), candidates.float(), dim=-1)  # (1 + K, B, T)
    return (logits / temperature).type_as(candidates)


# %% notebooks/08_pretraining.ipynb, cell 16
def contrastive_logits(projected_states: torch.Tensor, projected_quantized_states: torch.Tensor,
                       sampled_negative_indices: torch.Tensor, temperature: float) -> torch.Tensor:
    """Batch-first logits over [positive, K distractors] for every frame.

    Args:
        projected_states: ``(B, T, D)`` context vectors ``c_t`` (after ``project_hid``).
        projected_quantized_states: ``(B, T, D)`` quantized targets ``q_t`` (after ``project_q``).
        sampled_negative_indices: ``(B, T, K)`` indices into the ``B * T`` frames (``sample_negative_indices``).
        temperature: ``kappa``.

    Returns:
        ``(B, T, 1 + K)`` logits, column 0 the positive; distractors equal to the positive are ``-inf``.
    """
    B, T, D = projected_quantized_states.shape
    K = sampled_negative_indices.shape[-1]
    flat = projected_quantized_states.reshape(B * T, D)                                       # (B*T, D)
    negatives = flat[sampled_negative_indices.reshape(-1).long()].view(B, T, K, D)           # (B, T, K, D)
    negatives = negatives.permute(2, 0, 1, 3)                                                 # (K, B, T, D)
    logits = compute_contrastive_logits(projected_quantized_states[None], negatives,
                                        projected_states, temperature)                        # (1 + K, B, T)
    same = (negatives == projected_quantized_states[None]).all(dim=-1)                        # (K, B, T)
    logits = torch.cat([logits[:1], logits[1:].masked_fill(same, float("-inf"))], dim=0)     # (1 + K, B, T)
    return logits.permute(1, 2, 0)                                                            # (B, T, 1 + K)


# %% notebooks/08_pretraining.ipynb, cell 18
def pretraining_losses(logits: torch.Tensor, mask_time_indices: torch.Tensor, codevector_perplexity: torch.Tensor,
                       num_codevectors: int, diversity_loss_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The contrastive, diversity and total loss, each summed over the masked frames.

    Args:
        logits: ``(B, T, 1 + K)`` from ``contrastive_logits``.
        mask_time_indices: ``(B, T)`` bool, the masked frames.
        codevector_perplexity: scalar, the quantizer's perplexity over the masked frames.
        num_codevectors: ``G * V``.
        diversity_loss_weight: ``alpha``.

    Returns:
        ``(loss, contrastive_loss, diversity_loss)``, scalars.
    """
    B, T, _ = logits.shape
    # the positive is column 0; frames that are not masked get the ignored target -100. (Picking the masked rows
    # with logits[mask] gives the same gradients, but a shape that depends on the data: torch.compile stops there.)
    target = torch.where(mask_time_indices.bool(), 0, -100).reshape(B * T)           # (B*T,)
    contrastive = F.cross_entropy(logits.reshape(B * T, -1).float(), target, ignore_index=-100, reduction="sum")
    diversity = (num_codevectors - codevector_perplexity) / num_codevectors * mask_time_indices.sum()
    return contrastive + diversity_loss_weight * diversity, contrastive, diversity


# %% notebooks/08_pretraining.ipynb, cell 22
from w2vc.config import Wav2Vec2ConformerConfig
from w2vc.model import Wav2Vec2ConformerModel, Wav2Vec2ConformerPreTrainedModel
from w2vc.quantizer import Wav2Vec2ConformerGumbelVectorQuantizer


@dataclass
class Wav2Vec2ConformerForPreTrainingOutput:
    """What ``Wav2Vec2ConformerForPreTraining.forward`` returns.

    Attributes:
        loss: scalar ``L_m + alpha * L_d`` summed over masked frames; None without negatives.
        projected_states: ``(B, T, proj_codevector_dim)`` the context vectors ``c_t``.
        projected_quantized_states: ``(B, T, proj_codevector_dim)`` the quantized targets ``q_t``.
        codevector_perplexity: scalar, the perplexity of the code distribution over the masked frames.
        hidden_states: the body's hidden states, when asked for.
        attentions: the body's attention weights, when asked for.
        contrastive_loss: scalar ``L_m``, summed over masked frames; None without negatives.
        diversity_loss: scalar ``L_d`` times the number of masked frames; None without negatives.
    """
    loss: torch.Tensor | None = None
    projected_states: torch.Tensor | None = None
    projected_quantized_states: torch.Tensor | None = None
    codevector_perplexity: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    contrastive_loss: torch.Tensor | None = None
    diversity_loss: torch.Tensor | None = None


# %% notebooks/08_pretraining.ipynb, cell 23
class Wav2Vec2ConformerForPreTraining(Wav2Vec2ConformerPreTrainedModel):
    """Wav2Vec2-Conformer with the quantizer and the contrastive head of wav2vec 2.0 pretraining.

    Args:
        config: the model configuration; pretraining reads ``num_codevector_groups``,
            ``num_codevectors_per_group``, ``codevector_dim``, ``proj_codevector_dim``,
            ``contrastive_logits_temperature``, ``diversity_loss_weight`` and ``feat_quantizer_dropout``.
    """

    def __init__(self, config: Wav2Vec2ConformerConfig):
        super().__init__(config)
        self.wav2vec2_conformer = Wav2Vec2ConformerModel(config)
        self.dropout_features = nn.Dropout(config.feat_quantizer_dropout)
        self.quantizer = Wav2Vec2ConformerGumbelVectorQuantizer(config)
        self.project_hid = nn.Linear(config.hidden_size, config.proj_codevector_dim)
        self.project_q = nn.Linear(config.codevector_dim, config.proj_codevector_dim)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """transformers' initialisation: the base rules, then the quantizer's own, then PyTorch's default
        for the two projections (``apply`` visits children first, so these override)."""
        super()._init_weights(module)
        if isinstance(module, Wav2Vec2ConformerGumbelVectorQuantizer):
            module.reset_parameters()
        elif module is self:
            self.project_hid.reset_parameters()
            self.project_q.reset_parameters()

    def set_gumbel_temperature(self, temperature: float) -> None:
        """Set the quantizer's Gumbel-softmax temperature (used in training mode only)."""
        self.quantizer.temperature = temperature

    compute_contrastive_logits = staticmethod(compute_contrastive_logits)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                mask_time_indices: torch.Tensor | None = None, sampled_negative_indices: torch.Tensor | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False,
                ) -> Wav2Vec2ConformerForPreTrainingOutput:
        """Project context vectors and quantized targets; with negatives, compute the losses.

        Args:
            input_values: ``(B, S)`` normalised 16 kHz audio.
            attention_mask: optional ``(B, S)``, 1 on real samples, 0 on padding.
            mask_time_indices: ``(B, T)`` bool (or 0/1), the frames to mask and predict.
            sampled_negative_indices: ``(B, T, K)`` distractor indices from ``sample_negative_indices``;
                with them the losses are computed (needs ``mask_time_indices``).
            output_hidden_states, output_attentions: passed to the body.

        Returns:
            ``Wav2Vec2ConformerForPreTrainingOutput``.
        """
        if sampled_negative_indices is not None and mask_time_indices is None:
            raise ValueError("sampled_negative_indices were given without mask_time_indices: the loss is computed "
                             "on the masked frames, so pass the mask the negatives were sampled from "
                             "(w2vc.masking.compute_mask_indices, then sample_negative_indices)")
        if mask_time_indices is not None:
            mask_time_indices = torch.as_tensor(mask_time_indices, device=input_values.device).bool()
        outputs = self.wav2vec2_conformer(input_values, attention_mask=attention_mask,
                                          mask_time_indices=mask_time_indices,
                                          output_hidden_states=output_hidden_states,
                                          output_attentions=output_attentions)
        projected_states = self.project_hid(outputs.last_hidden_state)                 # (B, T, D)
        features = self.dropout_features(outputs.extract_features)                      # (B, T, conv_dim[-1])
        quantized, perplexity = self.quantizer(features, mask_time_indices=mask_time_indices)  # (B, T, d)
        projected_quantized = self.project_q(quantized.to(self.project_q.weight.dtype))  # (B, T, D)
        loss = contrastive = diversity = None
        if sampled_negative_indices is not None:
            B, T, D = projected_quantized.shape
            if tuple(sampled_negative_indices.shape[:2]) != (B, T) or sampled_negative_indices.dim() != 3:
                raise ValueError(f"sampled_negative_indices must have shape (batch, frames, num_negatives) = "
                                 f"({B}, {T}, K), got {tuple(sampled_negative_indices.shape)}; sample them for "
                                 f"the feature encoder's output length")
            logits = contrastive_logits(projected_states, projected_quantized, sampled_negative_indices,
                                        self.config.contrastive_logits_temperature)    # (B, T, 1 + K)
            num_codevectors = self.config.num_codevector_groups * self.config.num_codevectors_per_group
            loss, contrastive, diversity = pretraining_losses(
                logits, mask_time_indices, perplexity, num_codevectors, self.config.diversity_loss_weight)
        return Wav2Vec2ConformerForPreTrainingOutput(
            loss=loss, projected_states=projected_states, projected_quantized_states=projected_quantized,
            codevector_perplexity=perplexity, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
            contrastive_loss=contrastive, diversity_loss=diversity)


# %% notebooks/08_pretraining.ipynb, cell 50
import numpy as np

from w2vc.audio import Wav2Vec2FeatureExtractor
from w2vc.features import feature_output_lengths, lengths_to_mask
from w2vc.masking import compute_mask_indices


@dataclass
class PretrainingCollator:
    """Turn waveforms into a pretraining batch: crop, normalise, pad, mask and draw distractors.

    Args:
        config: gives the feature encoder's lengths, ``mask_time_prob``, ``mask_time_length``,
            ``mask_time_min_masks`` and ``num_negatives``.
        max_seconds: crop longer waveforms at a random place to this length; None: keep them whole.
    """
    config: Wav2Vec2ConformerConfig
    max_seconds: float | None = 2.0

    @property
    def max_samples(self) -> int | None:
        """The crop length in samples (None: no crop)."""
        return None if self.max_seconds is None else int(self.max_seconds * 16000)

    def __call__(self, waveforms: list, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Args: waveforms: ``B`` arrays ``(L_b,)`` of 16 kHz audio; generator: for crops, masks and distractors.

        Returns:
            ``input_values`` ``(B, S)`` float, ``attention_mask`` ``(B, S)`` int, ``mask_time_indices`` ``(B, T)``
            bool and ``sampled_negative_indices`` ``(B, T, K)`` long.
        """
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        limit = self.max_samples
        crops = []
        for wave in waveforms:
            wave = np.asarray(wave, dtype=np.float32)
            if limit is not None and len(wave) > limit:
                start = int(torch.randint(0, len(wave) - limit + 1, (), generator=generator))
                wave = wave[start:start + limit]
            crops.append(wave)
        extractor = Wav2Vec2FeatureExtractor(return_attention_mask=True)
        batch = extractor(crops, padding=True, return_tensors="pt")
        input_values, attention_mask = batch["input_values"], batch["attention_mask"]  # (B, S), (B, S)
        B, S = input_values.shape
        T = feature_output_lengths(S, self.config)
        frames = lengths_to_mask(feature_output_lengths(attention_mask.sum(-1), self.config), T)  # (B, T) real
        mask = compute_mask_indices((B, T), self.config.mask_time_prob, self.config.mask_time_length,
                                    attention_mask=frames, min_masks=self.config.mask_time_min_masks,
                                    generator=generator)                                     # (B, T)
        negatives = sample_negative_indices((B, T), self.config.num_negatives, mask, generator=generator)
        return {"input_values": input_values, "attention_mask": attention_mask,
                "mask_time_indices": mask, "sampled_negative_indices": negatives}


# %% notebooks/08_pretraining.ipynb, cell 55
def pretraining_step(model: nn.Module, batch: dict) -> dict:
    """One step of pretraining, for ``w2vc.training.train``.

    Args:
        model: a ``Wav2Vec2ConformerForPreTraining`` (possibly wrapped in DDP).
        batch: from ``PretrainingCollator``.

    Returns:
        ``loss`` (summed over masked frames), ``num_items`` (masked frames), and per masked frame
        ``contrastive_loss`` and ``diversity_loss``, and ``perplexity``.
    """
    out = model(batch["input_values"], attention_mask=batch["attention_mask"],
                mask_time_indices=batch["mask_time_indices"],
                sampled_negative_indices=batch["sampled_negative_indices"])
    masked = batch["mask_time_indices"].sum()
    return {"loss": out.loss, "num_items": masked,
            "contrastive_loss": out.contrastive_loss.detach() / masked,
            "diversity_loss": out.diversity_loss.detach() / masked,
            "perplexity": out.codevector_perplexity.detach()}


# %% notebooks/08_pretraining.ipynb, cell 57
def gumbel_temperature_schedule(steps: int, start: float = 2.0, end: float = 0.5):
    """A hook for ``train`` that sets the Gumbel temperature to ``start * decay**step``, reaching ``end``
    (at most ``start``) at step ``steps - 1``. Returns ``hook(step, model) -> {"gumbel_temperature": tau}``."""
    decay = (end / start) ** (1.0 / max(1, steps - 1))

    def hook(step: int, model: nn.Module) -> dict:
        tau = max(end, start * decay ** step)
        model.set_gumbel_temperature(tau)
        return {"gumbel_temperature": tau}

    return hook


# %% notebooks/08_pretraining.ipynb, cell 60
@torch.no_grad()
def contrastive_accuracy(model: Wav2Vec2ConformerForPreTraining, batches: list[dict]) -> dict:
    """How often the positive has the largest logit among its candidates, over the masked frames.

    Args:
        model: the pretraining model (put in eval mode by the caller, as ``train`` does for ``eval_fn``).
        batches: batches from ``PretrainingCollator`` (fixed masks and distractors).

    Returns:
        ``accuracy``; ``chance``, the accuracy of a uniform guess among the candidates left (distractors
        identical to the positive drop out); ``eval_contrastive_loss`` per masked frame; ``code_perplexity``
        of the picked codes, averaged over batches.
    """
    device = next(model.parameters()).device
    correct = chance = loss = frames = perplexity = 0.0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch["input_values"], attention_mask=batch["attention_mask"],
                    mask_time_indices=batch["mask_time_indices"])
        logits = contrastive_logits(out.projected_states, out.projected_quantized_states,
                                    batch["sampled_negative_indices"], model.config.contrastive_logits_temperature)
        masked = logits[batch["mask_time_indices"]].float()                           # (M, 1 + K)
        correct += (masked.argmax(dim=-1) == 0).sum().item()
        chance += (1.0 / torch.isfinite(masked).sum(dim=-1)).sum().item()
        loss += F.cross_entropy(masked, torch.zeros(len(masked), dtype=torch.long, device=device),
                                reduction="sum").item()
        frames += len(masked)
        perplexity += out.codevector_perplexity.item()
    return {"accuracy": correct / frames, "chance": chance / frames, "eval_contrastive_loss": loss / frames,
            "code_perplexity": perplexity / len(batches)}


# %% notebooks/08_pretraining.ipynb, cell 63
import json
from dataclasses import asdict, field

from w2vc.data import cache_dir, load_corpus
from w2vc.training import History, TrainingConfig, init_distributed, sharded_batches, train


# a short run learns faster without dropout (section 8.7)
NO_DROPOUT = {"hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "conformer_conv_dropout": 0.0}


@dataclass
class PretrainingRecipe:
    """Everything that decides a pretraining run (the corpus, the model size, the optimisation).

    Attributes:
        preset: the model size (``Wav2Vec2ConformerConfig.preset``); ``config_overrides`` change entries
            (by default: no dropout, see section 8.7). They are saved with the model.
        num_utterances, corpus_seed: the corpus of chapter 1 (``load_corpus``); its train split is used.
        steps, batch_size, lr, warmup_steps, decay, weight_decay, max_grad_norm: the optimisation (global
            batch, all processes together).
        max_seconds: crop length of the training examples.
        gumbel_start, gumbel_end: the temperature schedule.
        eval_utterances, eval_every: size and frequency of the held-out evaluation (test voices).
        seed: model initialisation, batch order, masks.
    """
    preset: str = "tiny"
    config_overrides: dict = field(default_factory=lambda: dict(NO_DROPOUT))
    num_utterances: int = 4000
    corpus_seed: int = 0
    steps: int = 400
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    decay: str = "linear"
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_seconds: float = 2.0
    gumbel_start: float = 2.0
    gumbel_end: float = 0.5
    eval_utterances: int = 128
    eval_every: int = 100
    log_every: int = 10
    seed: int = 0


def pretrain(recipe: PretrainingRecipe, out_dir: str | Path | None = None, progress: bool = True,
             checkpoint_dir: str | Path | None = None) -> tuple[Wav2Vec2ConformerForPreTraining, History]:
    """Pretrain a model by ``recipe`` on the synthesized corpus; optionally save it.

    Runs in a notebook, or under ``torchrun --nproc_per_node=N`` (see ``tools/pretrain.py``).

    Args:
        recipe: what to train and how.
        out_dir: where to ``save_pretrained`` the model, with ``pretraining.json`` (the recipe and the
            history) beside it; None: do not save.
        progress: show a progress bar.
        checkpoint_dir: where to keep a resumable checkpoint (``w2vc.training``); None: none.

    Returns:
        ``(model, history)``: the trained model (in eval mode) and the logged history.
    """
    rank, world_size = init_distributed()
    config = Wav2Vec2ConformerConfig.preset(recipe.preset, **recipe.config_overrides)
    corpus = load_corpus(recipe.num_utterances, recipe.corpus_seed)
    torch.manual_seed(recipe.seed)
    model = Wav2Vec2ConformerForPreTraining(config)
    collate = PretrainingCollator(config, max_seconds=recipe.max_seconds)
    batches = sharded_batches([u.audio for u in corpus.train], recipe.batch_size, collate, seed=recipe.seed,
                              lengths=[min(len(u.audio), collate.max_samples or len(u.audio)) for u in corpus.train])
    test = corpus.test[:recipe.eval_utterances]
    held_out = [collate([u.audio for u in test[i:i + 16]], torch.Generator().manual_seed(10_000 + i))
                for i in range(0, len(test), 16)]
    training = TrainingConfig(steps=recipe.steps, lr=recipe.lr, warmup_steps=recipe.warmup_steps,
                              decay=recipe.decay, weight_decay=recipe.weight_decay,
                              max_grad_norm=recipe.max_grad_norm, log_every=recipe.log_every,
                              eval_every=recipe.eval_every, progress=progress, seed=recipe.seed,
                              checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir))
    history = train(model, batches, pretraining_step, training,
                    hooks=[gumbel_temperature_schedule(recipe.steps, recipe.gumbel_start, recipe.gumbel_end)],
                    eval_fn=lambda m: contrastive_accuracy(m, held_out))
    model.eval()
    if out_dir is not None and rank == 0:
        model.save_pretrained(out_dir)
        record = {"recipe": asdict(recipe), "world_size": world_size, "history": list(history)}
        (Path(out_dir) / "pretraining.json").write_text(json.dumps(record, indent=1) + "\n")
    return model, history


# %% notebooks/08_pretraining.ipynb, cell 65
TINY_RECIPE = PretrainingRecipe()


def pretrained_tiny(recipe: PretrainingRecipe = TINY_RECIPE, progress: bool = True) -> Path:
    """The folder of the tiny model pretrained by this chapter: ``cache_dir()/pretrained/tiny``.

    Trains it with ``recipe`` (and saves it there) when the folder is missing or holds another recipe's model.

    Returns:
        The folder, holding ``config.json``, ``model.safetensors`` and ``pretraining.json``.
    """
    folder = cache_dir() / "pretrained" / "tiny"
    record = folder / "pretraining.json"
    if record.is_file() and (folder / "model.safetensors").is_file():
        if json.loads(record.read_text())["recipe"] == json.loads(json.dumps(asdict(recipe))):
            return folder
    pretrain(recipe, out_dir=folder, progress=progress)
    return folder
