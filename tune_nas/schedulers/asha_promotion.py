"""Pause-and-resume ASHA (Li et al. 2020, Algorithm 2): trials pause at each rung, the rung's ranking promotes them.

*A System for Massively Parallel Hyperparameter Tuning* (Li et al., MLSys 2020) describes
ASHA as promotions: a trial trains to a rung and waits there; whenever a worker is free it
takes, from the highest rung that has one, a trial in the top ``⌊n/η⌋`` of the ``n`` trials
recorded at that rung that was not promoted yet, and trains it to the next rung; only when no
rung has such a trial does it start a new trial at the bottom rung. The stopping variant
(:mod:`.asha`, Ray's ``AsyncHyperBandScheduler``) decides once, as a trial arrives; here a
trial that arrived early and looked average can still be promoted later, once enough trials
behind it did worse, and no trial is promoted on the strength of an early, thin rung.

As a pure policy:

* the rungs are ASHA's (:class:`tune_nas.schedulers.rungs.RungPolicy`, shared with ASHA and
  MOASHA): ``grace_period · η^k`` epochs up to ``max_t``, a trial recorded once per rung, its
  final result recorded when it ends;
* a result that records a trial at a rung below ``max_t`` answers :data:`PAUSE`, unless that
  trial is the one Algorithm 2 would take next (:meth:`promotable`'s first): then it is promoted
  on the spot and answers :data:`CONTINUE` (its worker would pick it anyway; no checkpoint
  round trip). A trial answers :data:`STOP` at ``max_t``;
* :meth:`promotable` lists the paused trials Algorithm 2 would resume, in its order (highest
  rung first, then best value first, then the earlier arrival); :meth:`resume` marks one
  promoted (it trains to the next rung, where it is recorded and decided again). A trial is
  promoted from a rung at most once;
* values are ranked "higher is better" (a ``min`` objective is negated); a NaN value is
  recorded but neither counted in ``n`` nor ever promoted;
* trials still paused when the search has nothing else to run (:meth:`waiting`) are ended by
  the caller (the Ray adapter stops them; the replay counts them as stopped at their rung);
  :meth:`forget` drops a paused trial, its records stay.

Who runs the policy must checkpoint a trial at every epoch it may pause at
(:attr:`pause_epochs`) and resume it from there: no epoch is trained twice. Ray does so
through :class:`tune_nas.ray_tune.scheduler_adapter.PolicyScheduler`, whose
``choose_trial_to_run`` asks :meth:`promotable` before it starts a new trial.

Settings (``EXPERIMENT``): ``max_epochs``, ``grace_period`` (<= ``max_epochs``),
``reduction_factor``; ``max_concurrent_trials`` must be 0 (paused trials would hold the
concurrency limiter's slots and the search could wait forever). One objective only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tune_nas.objectives import Objective
from tune_nas.schedulers.policy import CONTINUE, PAUSE, STOP, Value, direction_of
from tune_nas.schedulers.registry import SchedulerError, refuse_several_objectives
from tune_nas.schedulers.rungs import Rung, RungPolicy, rung_settings

if TYPE_CHECKING:
    from tune_nas.config.experiment import ExperimentSpec

__all__ = ["AshaPromotionPolicy", "create_policy"]


class AshaPromotionPolicy(RungPolicy):
    """Asynchronous successive halving by promotion, one bracket (grace 1, η = 4 by default,
    as :class:`~tune_nas.schedulers.asha.AshaPolicy`)."""

    def __init__(self, objective: Objective | str, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 4) -> None:
        self.mode = direction_of(objective)
        super().__init__(max_t, grace_period, reduction_factor)
        self._sign = 1.0 if self.mode == "max" else -1.0
        self.paused: dict[str, float] = {}  # trial -> the milestone of the rung it waits at
        self.paused_epoch: dict[str, int] = {}  # trial -> the epoch it paused after
        self.promoted: dict[float, list[str]] = {rung.milestone: [] for rung in self.rungs}
        self._top_cache: dict[float, tuple[int, list[str]]] = {}  # milestone -> (n recorded, top)

    @property
    def pause_epochs(self) -> tuple[int, ...]:
        """The epochs a trial may pause after (the rungs below ``max_t``, rounded up): a trial
        must be checkpointed there."""
        return tuple(sorted({math.ceil(m) for m in self.milestones if m < self.max_t}))

    def _score(self, value: Value) -> float:
        return self._sign * float(value)

    def on_result(self, trial_id: str, epoch: int, value: Value) -> str:
        self.paused.pop(trial_id, None)  # a result: it runs (a resumed trial included)
        self.paused_epoch.pop(trial_id, None)
        if epoch >= self.max_t:
            return STOP  # the budget is spent; on_end records the final
        rung = self._new_rung(trial_id, epoch)
        if rung is None:
            return CONTINUE  # between rungs, or at a rung it is recorded in already
        rung.recorded[trial_id] = self._score(value)
        self.paused[trial_id], self.paused_epoch[trial_id] = rung.milestone, epoch
        if next(iter(self.promotable()), None) == trial_id:
            self.resume(trial_id)  # the job Algorithm 2 gives its own worker
            return CONTINUE
        return PAUSE

    def on_end(self, trial_id: str, epoch: int, value: Value) -> None:
        """It ended (its budget spent, or stopped): no longer paused; the final result is
        recorded at the highest rung it reached without a record (as in ASHA)."""
        self.forget(trial_id)
        rung = self._new_rung(trial_id, epoch)
        if rung is not None:
            rung.recorded[trial_id] = self._score(value)

    def forget(self, trial_id: str) -> None:
        """A paused trial that failed, was removed or was ended unpromoted waits no more; its
        records stay in their rungs (they still count in ``n``)."""
        if self.paused.pop(trial_id, None) is not None:
            self.stopped[trial_id] = self.paused_epoch.get(trial_id, 0)
        self.paused_epoch.pop(trial_id, None)

    def _new_rung(self, trial_id: str, epoch: float) -> Rung | None:
        """The highest rung ``epoch`` reached that has no record of ``trial_id`` (None: none)."""
        return next((rung for rung in self.rungs
                     if epoch >= rung.milestone and trial_id not in rung.recorded), None)

    def top(self, rung: Rung) -> list[str]:
        """The trials in the top ``⌊n/η⌋`` of ``rung`` (``n``: its finite values), best first,
        the earlier arrival first among equals."""
        n = len(rung.recorded)
        cached = self._top_cache.get(rung.milestone)
        if cached is not None and cached[0] == n:
            return cached[1]
        finite = [(trial, score) for trial, score in rung.recorded.items() if math.isfinite(score)]
        keep = int(len(finite) // self.reduction_factor)
        ranked = sorted(range(len(finite)), key=lambda i: (-finite[i][1], i))[:keep]
        top = [finite[i][0] for i in ranked]
        self._top_cache[rung.milestone] = (n, top)
        return top

    def promotable(self) -> list[str]:
        """The paused trials Algorithm 2 would resume, in its order: highest rung first, then
        the best value first; each in the top ``⌊n/η⌋`` of its rung, not promoted from it yet."""
        if not self.paused:
            return []
        out = []
        for rung in self.rungs:  # highest first
            if rung.milestone >= self.max_t:
                continue  # nothing above it
            done = set(self.promoted[rung.milestone])
            out += [t for t in self.top(rung) if self.paused.get(t) == rung.milestone and t not in done]
        return out

    def resume(self, trial_id: str) -> None:
        """Promote paused ``trial_id`` from its rung: it trains on to the next rung. Raises a
        ValueError when it is not paused or not promotable."""
        if trial_id not in self.paused:
            raise ValueError(f"trial {trial_id!r} is not paused; rule: resume one of {sorted(self.paused)}")
        if trial_id not in self.promotable():
            raise ValueError(f"trial {trial_id!r} is not in the top 1/{self.reduction_factor:g} of its rung; "
                             "rule: resume one of promotable()")
        self.promoted[self.paused.pop(trial_id)].append(trial_id)
        self.paused_epoch.pop(trial_id, None)

    def waiting(self) -> dict[str, int]:
        """The paused trials (trial -> the epoch it paused after)."""
        return dict(self.paused_epoch)

    def __repr__(self) -> str:
        promoted = sum(len(v) for v in self.promoted.values())
        return (f"AshaPromotionPolicy({self.mode}, max_t={self.max_t}, grace_period={self.grace_period}, "
                f"reduction_factor={self.reduction_factor:g}; trials per rung {self._rung_counts()}, "
                f"{promoted} promoted, {len(self.paused)} paused, {len(self.stopped)} ended unpromoted)")


def create_policy(spec: ExperimentSpec) -> AshaPromotionPolicy:
    refuse_several_objectives("asha_promotion", spec)
    max_t, grace_period, reduction_factor = rung_settings(spec)
    if spec.max_concurrent_trials:
        raise SchedulerError(f"scheduler 'asha_promotion' with max_concurrent_trials={spec.max_concurrent_trials}: "
                             "paused trials would hold the concurrency limiter's slots; rule: "
                             "max_concurrent_trials 0 (trials at once follow cpus_per_trial/gpus_per_trial)")
    return AshaPromotionPolicy(spec.objective, max_t, grace_period, reduction_factor)
