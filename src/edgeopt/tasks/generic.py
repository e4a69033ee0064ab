r"""The generic task: any outputs, compared as signals, by their signal-to-noise ratio.

For an output :math:`r` of the reference and :math:`c` of the candidate, summed over every
sample and every element (in float64; integer and boolean outputs are cast first)::

    SNR = 10 log10( sum r^2 / sum (r - c)^2 )   dB

The noise is the candidate's error, the signal the reference itself, so the number reads the
same for any scale of output: 30 dB is an error energy a thousandth of the signal's, 20 dB a
hundredth. Cosine similarity alone misses a scale error (``c = 2 r`` has cosine 1 and an SNR
of 0 dB); the SNR does not.

Edges, so that JSON never sees ``inf`` or ``nan``:

- identical outputs (no error at all) score **200 dB**, a cap. For scale: float32 rounding
  alone (a relative error near 2^-24 per element) sits near 140 dB, so anything above about
  140 dB is "equal to rounding";
- every value is clamped to [-200, 200] dB; an all-zero reference with any error, or a
  non-finite error (``nan``/``inf`` in either output), scores -200 dB.

The task's score is the worst output's SNR (``snr``), with each output's own beside it
(``snr:<name>``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from edgeopt.errors import ConfigError
from edgeopt.tasks.base import Outputs, Task, check_samples, read_output, same_shape

__all__ = ["SNR_CAP_DB", "GenericTask", "snr_db"]

SNR_CAP_DB = 200.0
"""The SNR of identical outputs, and the bound of every SNR either way."""


def snr_db(signal: float, noise: float) -> float:
    """``10 log10(signal / noise)`` in dB, clamped to [-200, 200] (see the module docstring).

    Args:
        signal: Sum of the squared reference values.
        noise: Sum of the squared differences.
    """
    if noise == 0.0:
        return SNR_CAP_DB
    if not (math.isfinite(signal) and math.isfinite(noise)) or signal <= 0.0:
        return -SNR_CAP_DB
    return float(min(SNR_CAP_DB, max(-SNR_CAP_DB, 10.0 * math.log10(signal / noise))))


class GenericTask(Task):
    """Outputs compared as signals: SNR in dB per output, the worst one bounded."""

    kind: Literal["generic"] = Field(default="generic", description="The task's kind.")
    outputs: tuple[str, ...] | None = Field(
        default=None,
        description="The outputs to compare; None: every output present in the samples.",
    )

    metric: ClassVar[str] = "snr"
    default_bound: ClassVar[str] = "snr>=30"

    def _names(self, reference: Sequence[Outputs]) -> list[str]:
        if self.outputs is not None:
            return list(self.outputs)
        names: dict[str, None] = {}
        for sample in reference:
            names.update(dict.fromkeys(sample))
        return list(names)

    def score(self, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> dict[str, float]:
        """SNR per output over all samples, and the worst (see the module docstring).

        Returns:
            ``{"snr": worst, "snr:<name>": per output}``.

        Raises:
            ConfigError: An output missing, not numeric, or of different shapes in the two.
        """
        check_samples(reference, candidate, self.kind)
        names = self._names(reference)
        if not names:
            raise ConfigError(
                f"{self.kind} task: the samples have no outputs to compare: run the models first"
            )
        per_output: dict[str, float] = {}
        for name in names:
            signal = noise = 0.0
            for i, (ref_sample, cand_sample) in enumerate(zip(reference, candidate, strict=True)):
                ref = read_output(ref_sample, name, self.kind, i).astype(np.float64)
                cand = read_output(cand_sample, name, self.kind, i).astype(np.float64)
                same_shape(ref, cand, name, self.kind)
                with np.errstate(over="ignore", invalid="ignore"):
                    signal += float(np.sum(ref * ref))
                    noise += float(np.sum((ref - cand) ** 2))
            if math.isnan(noise):
                per_output[name] = -SNR_CAP_DB
            else:
                per_output[name] = snr_db(signal, noise)
        return {"snr": min(per_output.values()), **{f"snr:{k}": v for k, v in per_output.items()}}

    def describe(self) -> str:
        """One line for reports."""
        which = ", ".join(self.outputs) if self.outputs else "every output"
        return f"generic: SNR in dB of {which}, worst output bounded"
