"""ASHA, asynchronous successive halving (Li et al., MLSys 2020): stop the bottom of each rung.

*A System for Massively Parallel Hyperparameter Tuning* (Li et al., MLSys 2020), as a pure
policy. Rungs sit at ``grace_period · η^k`` epochs (η the reduction factor) up to ``max_t``.
When a trial reaches a rung it is recorded there, and it stops if its value is below the
``1 - 1/η`` quantile of the values recorded at that rung before it (so roughly the top ``1/η``
go on); a trial is never compared again at a rung it was recorded in. Every trial stops at
``max_t``, and its final result is recorded too, so later trials compete with finished ones.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tune_nas.objectives import Objective
from tune_nas.schedulers.policy import CONTINUE, STOP, direction_of
from tune_nas.schedulers.registry import SchedulerError

if TYPE_CHECKING:
    from tune_nas.config.experiment import ExperimentSpec


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Rung:
    """A milestone (in epochs) and the values recorded there (higher is better), by trial."""

    milestone: float
    recorded: dict[str, float] = field(default_factory=dict)

    def cutoff(self, reduction_factor: float) -> float | None:
        """The ``1 - 1/η`` quantile of the recorded values (None while nothing is recorded)."""
        if not self.recorded:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # every value NaN: the cutoff is NaN
            return float(np.nanpercentile(list(self.recorded.values()), (1 - 1 / reduction_factor) * 100))


class AshaPolicy:
    """Asynchronous successive halving with one bracket (defaults as Ray's: grace 1, η = 4)."""

    def __init__(self, objective: Objective | str, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 4) -> None:
        self.mode = direction_of(objective)
        if not (_is_number(max_t) and max_t > 0):
            raise ValueError(f"max_t={max_t!r}: rule: a number > 0")
        if not (_is_number(grace_period) and 0 < grace_period <= max_t):
            raise ValueError(f"grace_period={grace_period!r}: rule: 0 < grace_period <= max_t={max_t}")
        if not (_is_number(reduction_factor) and reduction_factor > 1):
            raise ValueError(f"reduction_factor={reduction_factor!r}: rule: a number > 1")
        self.max_t, self.grace_period, self.reduction_factor = max_t, grace_period, reduction_factor
        self._sign = 1.0 if self.mode == "max" else -1.0
        count = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
        # highest milestone first: a result is judged at the highest rung it reached
        self.rungs = [Rung(grace_period * reduction_factor ** k) for k in reversed(range(count))]
        self.stopped: dict[str, int] = {}  # trial -> epoch of an early stop (below max_t)

    @property
    def milestones(self) -> list[float]:
        """The rungs' epochs, lowest first."""
        return [rung.milestone for rung in reversed(self.rungs)]

    def on_result(self, trial_id: str, epoch: int, value: float) -> str:
        if epoch >= self.max_t:
            return STOP  # the budget is spent; on_end records the final
        decision = self._record_at_highest_rung(trial_id, epoch, self._sign * value)
        if decision == STOP:
            self.stopped[trial_id] = epoch
        return decision

    def on_end(self, trial_id: str, epoch: int, value: float) -> None:
        """Record the final result at the highest rung the trial reached and is not recorded in
        yet (a completed trial joins the top rung): it raises the bar for later trials."""
        self._record_at_highest_rung(trial_id, epoch, self._sign * value)

    def forget(self, trial_id: str) -> None:
        """Nothing to drop: a failed or removed trial's recorded values stay in their rungs (as
        in Ray), and a retried trial is not judged twice at a rung."""

    def _record_at_highest_rung(self, trial_id: str, epoch: float, score: float) -> str:
        """Record ``score`` at the highest rung ``epoch`` reached that has no value of
        ``trial_id`` yet; STOP when it is below the cutoff of the values recorded there before."""
        for rung in self.rungs:
            if epoch < rung.milestone or trial_id in rung.recorded:
                continue
            cutoff = rung.cutoff(self.reduction_factor)
            rung.recorded[trial_id] = score
            return STOP if cutoff is not None and score < cutoff else CONTINUE
        return CONTINUE

    def __repr__(self) -> str:
        rungs = ", ".join(f"{rung.milestone:g}: {len(rung.recorded)}" for rung in reversed(self.rungs))
        return (f"AshaPolicy({self.mode}, max_t={self.max_t}, grace_period={self.grace_period}, "
                f"reduction_factor={self.reduction_factor:g}; trials per rung {{{rungs}}}, "
                f"{len(self.stopped)} stopped early)")


def create_policy(spec: ExperimentSpec) -> AshaPolicy:
    if spec.grace_period > spec.max_epochs:
        raise SchedulerError(f"grace_period={spec.grace_period} > max_epochs={spec.max_epochs}: "
                             "rule: grace_period <= max_epochs")
    try:
        return AshaPolicy(spec.objective, spec.max_epochs, spec.grace_period, spec.reduction_factor)
    except ValueError as exc:
        raise SchedulerError(f"scheduler 'asha': {exc}") from None
