"""The recognition task: CTC-decoded sequences (text, phonemes, tokens) and their agreement.

A CTC recognizer (CRNN text readers, speech models) outputs, per time step, scores over C
symbols, one of which is the *blank*: ``[N, T, C]`` for N sequences (lines, utterances) of T
steps, or ``[T, C]`` for one. Greedy decoding reads the best path:

1. ``path[t] = argmax_c output[t, c]`` (the same for probabilities, logits or log-probs);
2. collapse runs of the same symbol (``a a b b b`` -> ``a b``);
3. drop the blank (it separates real repeats: ``a _ a`` -> ``a a``, but ``a a`` -> ``a``).

Two metrics over every sequence of every sample:

- ``text``: the share of sequences decoded identically — the one that matters to a user, who
  sees a string, and the task's bounded metric;
- ``cer``: the character error rate ``sum_i lev(ref_i, cand_i) / sum_i len(ref_i)``, with
  ``lev`` the Levenshtein distance (insertions, deletions, substitutions, each costing 1). It
  is 0 when both are empty everywhere; when the reference decodes to nothing at all but the
  candidate does not, the denominator counts as 1, so ``cer`` is the number of extra symbols
  (finite, JSON-safe, and clearly bad).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from edgeopt.errors import ConfigError
from edgeopt.tasks.base import Outputs, Task, check_samples, read_output, same_shape

__all__ = ["RecognitionTask", "ctc_greedy", "levenshtein"]


def ctc_greedy(probs: np.ndarray, blank: int) -> list[list[int]]:
    """Greedy (best-path) CTC decoding: argmax per step, collapse repeats, drop the blank.

    Args:
        probs: ``[N, T, C]`` or ``[T, C]`` scores (probabilities, logits or log-probabilities).
        blank: The blank symbol's index in C.

    Returns:
        One decoded symbol list per sequence (one list for ``[T, C]``).

    Raises:
        ConfigError: Not 2-D or 3-D, no symbols, or ``blank`` outside ``[0, C)``.
    """
    array = np.asarray(probs)
    if array.ndim not in (2, 3) or array.shape[-1] == 0:
        raise ConfigError(f"CTC decoding needs [N, T, C] or [T, C] scores, not shape {array.shape}")
    if not 0 <= blank < array.shape[-1]:
        raise ConfigError(
            f"CTC blank {blank} is outside the {array.shape[-1]} symbols of shape "
            f"{array.shape}: set blank to the blank symbol's index"
        )
    paths = np.argmax(array.reshape((-1, *array.shape[-2:])), axis=-1)
    decoded = []
    for path in paths:
        keep = np.ones(path.shape, bool)
        keep[1:] = path[1:] != path[:-1]
        keep &= path != blank
        decoded.append([int(s) for s in path[keep]])
    return decoded


def levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """The edit distance of two sequences (insertion, deletion, substitution: 1 each)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


class RecognitionTask(Task):
    """CTC outputs: the share of sequences the candidate decodes identically, and the CER."""

    kind: Literal["recognition"] = Field(default="recognition", description="The task's kind.")
    output: str = Field(description="The output holding [N, T, C] or [T, C] symbol scores.")
    blank: int = Field(default=0, ge=0, description="The CTC blank symbol's index.")

    metric: ClassVar[str] = "text"
    default_bound: ClassVar[str] = "text>=0.95"

    def decode(self, outputs: Outputs) -> list[list[int]]:
        """One sample's decoded sequences (see `ctc_greedy`).

        Raises:
            ConfigError: The output missing or of a shape CTC decoding cannot read.
        """
        return self._decode(read_output(outputs, self.output, self.kind))

    def _decode(self, array: np.ndarray) -> list[list[int]]:
        try:
            return ctc_greedy(array, self.blank)
        except ConfigError as e:
            raise ConfigError(f"recognition task: output {self.output!r}: {e}") from e

    def score(self, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> dict[str, float]:
        """Sequence agreement and character error rate over every sequence of every sample.

        Returns:
            ``{"text": share identical, "cer": character error rate, "sequences": count}``.

        Raises:
            ConfigError: The output missing or of a shape CTC decoding cannot read.
        """
        check_samples(reference, candidate, self.kind)
        same = count = edits = length = 0
        for i, (ref_sample, cand_sample) in enumerate(zip(reference, candidate, strict=True)):
            ref = read_output(ref_sample, self.output, self.kind, i)
            cand = read_output(cand_sample, self.output, self.kind, i)
            same_shape(ref, cand, self.output, self.kind)
            for r, c in zip(self._decode(ref), self._decode(cand), strict=True):
                same += r == c
                count += 1
                edits += levenshtein(r, c)
                length += len(r)
        text = same / count if count else 1.0
        cer = edits / max(length, 1)
        return {"text": float(text), "cer": float(cer), "sequences": float(count)}

    def describe(self) -> str:
        """One line for reports."""
        return (
            f"recognition: greedy CTC decoding of {self.output!r} (blank {self.blank}), "
            "share of identical sequences"
        )
