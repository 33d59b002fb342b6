# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 64
from __future__ import annotations


def edit_distance(reference, hypothesis) -> int:
    """Levenshtein distance between two sequences (substitutions, deletions and insertions count 1)."""
    previous = list(range(len(hypothesis) + 1))  # distances from the empty reference prefix
    for i, r in enumerate(reference, start=1):
        current = [i]
        for j, h in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1,  # delete r
                               current[j - 1] + 1,  # insert h
                               previous[j - 1] + (r != h)))  # substitute (or match)
        previous = current
    return previous[-1]


def _error_rate(references, hypotheses, split) -> float:
    if isinstance(references, str):
        references = [references]
    if isinstance(hypotheses, str):
        hypotheses = [hypotheses]
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"hypotheses: expected one per reference ({len(references)}), got {len(hypotheses)}")
    errors = total = 0
    for ref, hyp in zip(references, hypotheses):
        ref, hyp = split(ref), split(hyp)
        errors += edit_distance(ref, hyp)
        total += len(ref)
    if total == 0:
        raise ValueError("references: all references are empty, so the error rate is undefined; "
                         "drop empty references")
    return errors / total


def word_error_rate(references, hypotheses) -> float:
    """Word errors (edit distance over words) divided by the number of reference words, over a whole set.

    Args:
        references: a string or a list of strings.
        hypotheses: as many strings.

    Returns:
        The WER (0 is perfect; it can exceed 1 when the hypotheses insert words).
    """
    return _error_rate(references, hypotheses, str.split)


def char_error_rate(references, hypotheses) -> float:
    """Character errors divided by the number of reference characters (spaces count), over a whole set.

    Args:
        references: a string or a list of strings (leading and trailing spaces are ignored).
        hypotheses: as many strings.

    Returns:
        The CER.
    """
    return _error_rate(references, hypotheses, lambda text: list(text.strip()))
