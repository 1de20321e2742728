"""ASHA, asynchronous successive halving (Li et al., MLSys 2020): stop the bottom of each rung.

*A System for Massively Parallel Hyperparameter Tuning* (Li et al., MLSys 2020), as a pure
policy. Rungs sit at ``grace_period · η^k`` epochs (η the reduction factor) up to ``max_t``.
When a trial reaches a rung it is recorded there, and it stops if its value is below the
``1 - 1/η`` quantile of the values recorded at that rung before it (so roughly the top ``1/η``
go on); a trial is never compared again at a rung it was recorded in. Every trial stops at
``max_t``, and its final result is recorded too, so later trials compete with finished ones.

The rungs, the once-per-rung recording and the stop at ``max_t`` are
:class:`tune_nas.schedulers.rungs.RungPolicy`, shared with MOASHA (:mod:`.moasha`); this module
adds the comparison at a rung. A multi-objective experiment is refused (use ``moasha``).

This reproduces Ray Tune 2.60's ``AsyncHyperBandScheduler`` with one bracket decision for
decision (``tests/test_schedulers.py`` feeds both the same random result streams): the same
rung count (``int(log(max_t / grace) / log η + 1)``, in numpy's floating point), the same
cutoff (``numpy.nanpercentile``, linear interpolation, NaN values ignored), a value at the
cutoff continues, NaN values are recorded but never stop a trial, and a trial's records stay
when it fails or is removed.

Settings (``EXPERIMENT``): ``max_epochs``, ``grace_period`` (<= ``max_epochs``),
``reduction_factor``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from tune_nas.objectives import Objective
from tune_nas.schedulers.policy import direction_of
from tune_nas.schedulers.registry import refuse_several_objectives
from tune_nas.schedulers.rungs import Rung, RungPolicy, rung_settings

if TYPE_CHECKING:
    from tune_nas.config.experiment import ExperimentSpec

__all__ = ["AshaPolicy", "Rung", "create_policy", "quantile_cutoff"]  # Rung: where pickles of earlier versions find it


def quantile_cutoff(values: list[float], reduction_factor: float) -> float | None:
    """The ``1 - 1/η`` quantile of ``values`` (Ray's ``numpy.nanpercentile``, linear
    interpolation, NaN ignored; NaN when every value is NaN); None while there are none."""
    if not values:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every value NaN: the cutoff is NaN
        return float(np.nanpercentile(values, (1 - 1 / reduction_factor) * 100))


class AshaPolicy(RungPolicy):
    """Asynchronous successive halving with one bracket (defaults as Ray's: grace 1, η = 4).

    What it records at a rung is ``sign · value`` (higher is better); a trial continues unless
    its score is below the cutoff of the scores recorded there before it (a NaN score, or a
    cutoff of only NaN values, never stops it)."""

    def __init__(self, objective: Objective | str, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 4) -> None:
        self.mode = direction_of(objective)
        super().__init__(max_t, grace_period, reduction_factor)
        self._sign = 1.0 if self.mode == "max" else -1.0

    def _score(self, value: float) -> float:
        return self._sign * value

    def _continues(self, earlier: list[float], score: float) -> bool:
        cutoff = quantile_cutoff(earlier, self.reduction_factor)
        return not (cutoff is not None and score < cutoff)

    def __repr__(self) -> str:
        return (f"AshaPolicy({self.mode}, max_t={self.max_t}, grace_period={self.grace_period}, "
                f"reduction_factor={self.reduction_factor:g}; trials per rung {self._rung_counts()}, "
                f"{len(self.stopped)} stopped early)")


def create_policy(spec: ExperimentSpec) -> AshaPolicy:
    refuse_several_objectives("asha", spec)
    max_t, grace_period, reduction_factor = rung_settings(spec)
    return AshaPolicy(spec.objective, max_t, grace_period, reduction_factor)
