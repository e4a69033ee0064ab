"""The recognition task: greedy CTC decoding, sequence agreement and CER by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import ConfigError
from edgeopt.tasks import RecognitionTask, ctc_greedy
from edgeopt.tasks.recognition import levenshtein


def one_hot(path: list[int], symbols: int = 5) -> np.ndarray:
    """[T, C] scores whose argmax at step t is path[t]."""
    out = np.full((len(path), symbols), 0.01)
    out[np.arange(len(path)), path] = 0.9
    return out


def test_ctc_collapses_repeats_and_drops_blanks() -> None:
    # 1 1 _ 1 2 2 _ _ 3 -> 1 1 2 3: the blank separates the two 1s, the repeated 2 collapses.
    assert ctc_greedy(one_hot([1, 1, 0, 1, 2, 2, 0, 0, 3]), blank=0) == [[1, 1, 2, 3]]
    batch = np.stack([one_hot([0, 0, 0]), one_hot([4, 4, 2])])
    assert ctc_greedy(batch, blank=0) == [[], [4, 2]]
    assert ctc_greedy(batch, blank=4) == [[0], [2]]  # a blank at the end of the alphabet


def test_levenshtein_of_known_pairs() -> None:
    assert levenshtein(list(b"kitten"), list(b"sitting")) == 3
    assert levenshtein([], [1, 2]) == 2
    assert levenshtein([1, 2, 3], [1, 2, 3]) == 0


def test_text_agreement_and_cer() -> None:
    # Reference sequences [1, 1, 2, 3] and [4]; the candidate loses one 1 (one deletion).
    ref = np.stack([one_hot([1, 1, 0, 1, 2, 3]), one_hot([4, 0, 0, 0, 0, 0])])
    cand = np.stack([one_hot([1, 1, 1, 1, 2, 3]), one_hot([4, 4, 0, 0, 0, 0])])
    got = RecognitionTask(output="ctc").score([{"ctc": ref}], [{"ctc": cand}])
    assert got == pytest.approx({"text": 0.5, "cer": 1 / 5, "sequences": 2.0})
    assert all(type(v) is float for v in got.values())
    # [T, C] is one sequence; all blanks on both sides agree with a CER of 0.
    blank = {"ctc": one_hot([0, 0, 0])}
    assert RecognitionTask(output="ctc").score([blank], [blank]) == {
        "text": 1.0,
        "cer": 0.0,
        "sequences": 1.0,
    }
    # Nothing in the reference, two symbols in the candidate: the CER counts them.
    extra = {"ctc": one_hot([1, 0, 2])}
    assert RecognitionTask(output="ctc").score([blank], [extra])["cer"] == 2.0


def test_bad_shapes_and_blank_raise_naming_the_output() -> None:
    flat = {"ctc": np.ones(7)}
    with pytest.raises(ConfigError, match=r"'ctc'.*shape \(7,\)"):
        RecognitionTask(output="ctc").score([flat], [flat])
    probs = {"ctc": one_hot([1, 2])}
    with pytest.raises(ConfigError, match=r"'ctc'.*blank 9"):
        RecognitionTask(output="ctc", blank=9).score([probs], [probs])
    with pytest.raises(ConfigError, match="'ctc'"):
        RecognitionTask(output="ctc").score([probs], [{"ctc": one_hot([1, 2, 3])}])
    assert RecognitionTask(output="ctc").decode(probs) == [[1, 2]]
