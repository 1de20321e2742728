"""What a scheduler policy is: a small object fed a stream of results that answers, for each
result, whether the trial continues, pauses or stops (the Syne Tune design).

A policy never sees Ray: :class:`tune_nas.ray_tune.scheduler_adapter.PolicyScheduler` feeds it
Ray Tune's results and hands its decisions back to Ray, and :mod:`tune_nas.replay` feeds it
recorded learning curves in simulated time. Both call it the same way:

* :meth:`SchedulerPolicy.on_result` for every reported epoch of a running trial, in the order
  results arrive, answering :data:`CONTINUE`, :data:`PAUSE` or :data:`STOP`;
* :meth:`SchedulerPolicy.on_end` once when a trial ends with a result (it finished its budget,
  the policy stopped it, or it ended by itself): its final result, which a policy may keep as
  a reference for later trials; the policy drops what it keeps per running trial;
* :meth:`SchedulerPolicy.forget` when a trial failed or was removed without a final result.

Values are in the objective's own units (an accuracy, a loss); a policy is built with the
:class:`~tune_nas.objectives.Objective` (or just its direction, ``"max"``/``"min"``) to know
which way is better. When the experiment has several objectives (``spec.multi_objective``), a
value is a tuple of the objectives' values in ``spec.objective_list`` order (the primary
first), e.g. ``(val/acc, model/params)``; a value may be NaN (nothing was measured). Only a
policy that ranks vectors (``moasha``) or ignores values (``none``) takes tuples: the
single-objective policies refuse a multi-objective experiment in their ``create_policy``.
Epochs count from 1; a policy stops a trial at its budget ``max_t``.

The decisions are the strings Ray Tune's ``TrialScheduler`` uses (``"CONTINUE"``, ``"PAUSE"``,
``"STOP"``). A paused trial keeps its checkpoint and is resumed later. A policy that pauses
(:class:`PromotionPolicy`, e.g. ``asha_promotion``) also says which paused trial to resume
next (``promotable``, ``resume``), which trials still wait (``waiting``) and at which epochs a
trial must be checkpointed to be paused there (``pause_epochs``); whoever runs it (the Ray
adapter, the replay) resumes only the trials it names and ends those still waiting when
nothing else is left to run.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, runtime_checkable

from tune_nas.objectives import DIRECTIONS, Objective

#: What a result hands a policy: the objective's value, or with several objectives a tuple of
#: their values in ``spec.objective_list`` order.
Value: TypeAlias = float | tuple[float, ...]

CONTINUE = "CONTINUE"  #: train the next epoch
PAUSE = "PAUSE"  #: set the trial aside (checkpointed) to resume later
STOP = "STOP"  #: end the trial now
DECISIONS = (CONTINUE, PAUSE, STOP)


@runtime_checkable
class SchedulerPolicy(Protocol):
    """A stopping (or pausing) rule fed ``(trial_id, epoch, value)`` results."""

    def on_result(self, trial_id: str, epoch: int, value: Value) -> str:
        """The decision (one of :data:`DECISIONS`) after ``trial_id`` reported ``value`` at
        ``epoch``."""
        ...

    def on_end(self, trial_id: str, epoch: int, value: Value) -> None:
        """``trial_id`` ended; ``(epoch, value)`` is its last result."""
        ...

    def forget(self, trial_id: str) -> None:
        """``trial_id`` failed or was removed without a final result: drop its running state."""
        ...


@runtime_checkable
class PromotionPolicy(SchedulerPolicy, Protocol):
    """A policy that pauses trials and decides which paused trial resumes next."""

    @property
    def pause_epochs(self) -> tuple[int, ...]:
        """The epochs a trial may pause after: it must be checkpointed there."""
        ...

    def promotable(self) -> list[str]:
        """The paused trials to resume, the first first (empty: start a new trial)."""
        ...

    def resume(self, trial_id: str) -> None:
        """``trial_id`` (one of :meth:`promotable`) is resumed now."""
        ...

    def waiting(self) -> dict[str, int]:
        """The paused trials and the epoch each paused after."""
        ...


def direction_of(objective: Objective | str) -> str:
    """``"max"`` or ``"min"``: the direction of ``objective`` (an :class:`Objective` or a mode
    string); anything else raises a ValueError naming the value and the rule."""
    direction = objective.direction if isinstance(objective, Objective) else objective
    if direction not in DIRECTIONS:
        raise ValueError(f"mode={direction!r}: rule: one of {DIRECTIONS}")
    return direction
