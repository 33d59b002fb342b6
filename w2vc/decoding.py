# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 50
from __future__ import annotations

import itertools
import math

import torch

from w2vc.ctc import ctc_min_frames


def _frame_lengths(B: int, T: int, lengths) -> list[int]:
    if lengths is None:
        return [T] * B
    lengths = [int(n) for n in (lengths.tolist() if hasattr(lengths, "tolist") else lengths)]
    if len(lengths) != B or any(n < 0 or n > T for n in lengths):
        raise ValueError(f"lengths: expected {B} numbers of frames between 0 and {T}, got {lengths}")
    return lengths


def ctc_greedy_decode(logits: torch.Tensor, lengths=None, blank_id: int = 0) -> list[list[int]]:
    """Best symbol per frame, then merge repeats and drop blanks.

    Args:
        logits: ``(B, T, V)`` frame scores (logits or log-probabilities).
        lengths: optional ``(B,)`` number of valid frames per item.
        blank_id: id of the CTC blank (``tokenizer.pad_token_id``).

    Returns:
        ``B`` lists of label ids (decode them with ``tokenizer.decode(ids, group_tokens=False)``).
    """
    if logits.ndim != 3:
        raise ValueError(f"logits: expected shape (B, T, V), got {tuple(logits.shape)}; add a batch axis with [None]")
    B, T, V = logits.shape
    best = logits.argmax(dim=-1).tolist()  # (B, T)
    out = []
    for row, n in zip(best, _frame_lengths(B, T, lengths)):
        merged = [s for s, _run in itertools.groupby(row[:n])]
        out.append([s for s in merged if s != blank_id])
    return out


# %% notebooks/09_ctc.ipynb, cell 54
def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def ctc_prefix_beam_search(log_probs: torch.Tensor, beam_width: int = 8, blank_id: int = 0,
                           token_min_logp: float = -math.inf) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix beam search over one utterance.

    Args:
        log_probs: ``(T, V)`` log-probabilities of one utterance (``logits.log_softmax(-1)``), without padding.
        beam_width: how many prefixes survive each frame.
        blank_id: id of the CTC blank.
        token_min_logp: skip symbols whose log-probability in a frame is below this (a speed-up; the default
            keeps all).

    Returns:
        Up to ``beam_width`` pairs ``(labels, log_prob)``, best first: a transcript as a tuple of ids and the
        log-probability of all the paths to it that the search kept.
    """
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs: expected shape (T, V) for one utterance, got {tuple(log_probs.shape)}; "
                         f"loop over the batch and cut each item to its length")
    if beam_width < 1:
        raise ValueError(f"beam_width: expected at least 1, got {beam_width}")
    T, V = log_probs.shape
    table = log_probs.detach().double().cpu().tolist()  # (T, V) as Python floats: the loop is scalar work
    beams = {(): (0.0, -math.inf)}  # prefix -> (log p_b, log p_nb)
    for t in range(T):
        frame = table[t]
        symbols = [s for s in range(V) if s != blank_id and frame[s] >= token_min_logp]
        grown: dict[tuple[int, ...], list[float]] = {}

        def add(prefix, which, value):
            if value == -math.inf:  # e.g. a repeat after a prefix that has no blank-ending paths
                return
            entry = grown.setdefault(prefix, [-math.inf, -math.inf])
            entry[which] = _logaddexp(entry[which], value)

        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            add(prefix, 0, total + frame[blank_id])  # a blank: the prefix stays
            last = prefix[-1] if prefix else None
            for s in symbols:
                if s == last:
                    add(prefix, 1, pnb + frame[s])  # repeat without a blank: merged, the prefix stays
                    add(prefix + (s,), 1, pb + frame[s])  # after a blank: a new, repeated symbol
                else:
                    add(prefix + (s,), 1, total + frame[s])
        ranked = sorted(grown.items(), key=lambda item: _logaddexp(*item[1]), reverse=True)
        beams = {prefix: (pb, pnb) for prefix, (pb, pnb) in ranked[:beam_width]}
    return [(prefix, _logaddexp(pb, pnb)) for prefix, (pb, pnb) in beams.items()]


def ctc_beam_search_decode(logits: torch.Tensor, lengths=None, beam_width: int = 8,
                           blank_id: int = 0) -> list[list[int]]:
    """Prefix beam search for each item of a batch; returns the best transcript of each.

    Args:
        logits: ``(B, T, V)`` frame scores.
        lengths: optional ``(B,)`` number of valid frames per item.
        beam_width: prefixes kept per frame.
        blank_id: id of the CTC blank.

    Returns:
        ``B`` lists of label ids.
    """
    if logits.ndim != 3:
        raise ValueError(f"logits: expected shape (B, T, V), got {tuple(logits.shape)}; add a batch axis with [None]")
    B, T, V = logits.shape
    log_probs = logits.float().log_softmax(dim=-1)
    return [list(ctc_prefix_beam_search(log_probs[b, :n], beam_width, blank_id)[0][0])
            for b, n in enumerate(_frame_lengths(B, T, lengths))]


# %% notebooks/09_ctc.ipynb, cell 60
def ctc_forced_align(log_probs: torch.Tensor, labels, blank_id: int = 0, return_states: bool = False):
    """The most likely CTC path of one utterance that collapses to ``labels`` (Viterbi).

    Args:
        log_probs: ``(T, V)`` log-probabilities of one utterance, without padding.
        labels: the transcript as ids, shape ``(U,)``, without blanks or padding.
        blank_id: id of the CTC blank.
        return_states: also return the lattice state of each frame (0 to ``2U``: even states are blanks,
            state ``2u + 1`` is label ``u``).

    Returns:
        ``T`` ids, one per frame (``blank_id`` where the path is in a blank); with ``return_states``, the pair
        ``(ids, states)``.
    """
    labels = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    T, V = log_probs.shape
    if T < ctc_min_frames(labels):
        raise ValueError(f"log_probs: {T} frames cannot hold the {len(labels)} labels, which need at least "
                         f"{ctc_min_frames(labels)} (one per symbol, plus a blank between equal neighbours)")
    states = [blank_id]
    for s in labels:
        states += [s, blank_id]  # - a - b -: (2U+1,)
    S = len(states)
    ids = torch.tensor(states)
    # a state may skip the blank before it when it holds a symbol that differs from the one two states back
    can_skip = torch.zeros(S, dtype=torch.bool)
    can_skip[2:] = (ids[2:] != blank_id) & (ids[2:] != ids[:-2])
    lp = log_probs.detach().double().cpu()[:, ids]  # (T, S)
    score = torch.full((S,), -math.inf, dtype=torch.float64)
    score[:2] = lp[0, :2]  # start in the first blank or the first symbol
    back = torch.zeros(T, S, dtype=torch.long)
    for t in range(1, T):
        padded = torch.cat([torch.full((2,), -math.inf, dtype=score.dtype), score])  # (S + 2,)
        stay, step = score, padded[1:-1]  # from state s, from state s - 1
        skip = padded[:-2].masked_fill(~can_skip, -math.inf)  # from state s - 2
        choice = torch.stack([stay, step, skip])  # (3, S)
        score, move = choice.max(dim=0)
        score = score + lp[t]
        back[t] = move
    state = S - 1 if S == 1 or score[S - 1] >= score[S - 2] else S - 2  # end in the last blank or last symbol
    path = [state]
    for t in range(T - 1, 0, -1):
        state -= int(back[t, state])
        path.append(state)
    path.reverse()
    ids = [states[s] for s in path]
    return (ids, path) if return_states else ids
