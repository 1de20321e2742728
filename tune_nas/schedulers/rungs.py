"""The rung ladder of asynchronous successive halving, shared by ASHA and MOASHA.

Li et al. (MLSys 2020) and Schmucker et al. (2021) differ only in how a trial is compared with
the others recorded at a rung: one value against a quantile (:mod:`.asha`), or a vector ranked
by non-dominated sorting (:mod:`.moasha`). Everything else is this module's
:class:`RungPolicy`, written once:

* rungs at ``grace_period · η^k`` epochs (η the reduction factor) below or at ``max_t``, as many
  as Ray Tune 2.60's ``AsyncHyperBandScheduler`` makes (``int(log(max_t / grace) / log η + 1)``
  in numpy's floating point);
* a result is judged at the highest rung its epoch reached that the trial has no record in
  yet: what the trial scored there is recorded, and the subclass decides from the records made
  before it (:meth:`RungPolicy._continues`); a trial is never judged twice at a rung, not even
  when it is retried after a failure;
* every trial stops at ``max_t``; its final result (``on_end``) is recorded at the highest rung
  it reached and has no record in, so later trials compete with finished ones;
* a failed or removed trial keeps its records (as in Ray).

No Ray, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tune_nas.schedulers.policy import CONTINUE, STOP, Value
from tune_nas.schedulers.registry import SchedulerError

if TYPE_CHECKING:
    from tune_nas.config.experiment import ExperimentSpec


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Rung:
    """A milestone (in epochs) and what each trial scored there (the policy's own score: a
    "higher is better" value for ASHA, a vector of the objectives' values for MOASHA)."""

    milestone: float
    recorded: dict[str, Any] = field(default_factory=dict)


class RungPolicy:
    """Asynchronous successive halving with one bracket, less the comparison at a rung.

    A subclass says what it records for a reported value (:meth:`_score`) and whether a trial
    with that score continues given the scores recorded at the rung before it
    (:meth:`_continues`).
    """

    def __init__(self, max_t: int, grace_period: int, reduction_factor: float) -> None:
        if not (_is_number(max_t) and max_t > 0):
            raise ValueError(f"max_t={max_t!r}: rule: a number > 0")
        if not (_is_number(grace_period) and 0 < grace_period <= max_t):
            raise ValueError(f"grace_period={grace_period!r}: rule: 0 < grace_period <= max_t={max_t}")
        if not (_is_number(reduction_factor) and reduction_factor > 1):
            raise ValueError(f"reduction_factor={reduction_factor!r}: rule: a number > 1")
        self.max_t, self.grace_period, self.reduction_factor = max_t, grace_period, reduction_factor
        count = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
        # highest milestone first: a result is judged at the highest rung it reached
        self.rungs = [Rung(grace_period * reduction_factor ** k) for k in reversed(range(count))]
        self.stopped: dict[str, int] = {}  # trial -> epoch of an early stop (below max_t)

    @property
    def milestones(self) -> list[float]:
        """The rungs' epochs, lowest first."""
        return [rung.milestone for rung in reversed(self.rungs)]

    def on_result(self, trial_id: str, epoch: int, value: Value) -> str:
        if epoch >= self.max_t:
            return STOP  # the budget is spent; on_end records the final
        decision = self._record_at_highest_rung(trial_id, epoch, self._score(value))
        if decision == STOP:
            self.stopped[trial_id] = epoch
        return decision

    def on_end(self, trial_id: str, epoch: int, value: Value) -> None:
        """Record the final result at the highest rung the trial reached and is not recorded in
        yet (a completed trial joins the top rung): it raises the bar for later trials."""
        self._record_at_highest_rung(trial_id, epoch, self._score(value))

    def forget(self, trial_id: str) -> None:
        """Nothing to drop: a failed or removed trial's recorded values stay in their rungs (as
        in Ray), and a retried trial is not judged twice at a rung."""

    def _score(self, value: Value) -> Any:
        """What is recorded at a rung for a reported ``value``."""
        raise NotImplementedError

    def _continues(self, earlier: list[Any], score: Any) -> bool:
        """Whether a trial that scored ``score`` at a rung goes on, ``earlier`` being the scores
        recorded at that rung before it (in the order they were recorded)."""
        raise NotImplementedError

    def _record_at_highest_rung(self, trial_id: str, epoch: float, score: Any) -> str:
        """Record ``score`` at the highest rung ``epoch`` reached that has no value of
        ``trial_id`` yet, and decide there from the scores recorded before it."""
        for rung in self.rungs:
            if epoch < rung.milestone or trial_id in rung.recorded:
                continue
            earlier = list(rung.recorded.values())
            rung.recorded[trial_id] = score
            return CONTINUE if self._continues(earlier, score) else STOP
        return CONTINUE

    def _rung_counts(self) -> str:
        """``{1: 12, 3: 4, 9: 1}``: trials recorded per rung, lowest first."""
        return "{" + ", ".join(f"{rung.milestone:g}: {len(rung.recorded)}" for rung in reversed(self.rungs)) + "}"


def rung_settings(spec: ExperimentSpec) -> tuple[int, int, float]:
    """``(max_epochs, grace_period, reduction_factor)`` of ``spec``; :class:`SchedulerError`
    when the grace period does not fit in the budget."""
    if spec.grace_period > spec.max_epochs:
        raise SchedulerError(f"grace_period={spec.grace_period} > max_epochs={spec.max_epochs}: "
                             "rule: grace_period <= max_epochs")
    return spec.max_epochs, spec.grace_period, spec.reduction_factor
