"""No early stopping: every trial trains its full budget, ``max_epochs``.

The reference every stopping policy is measured against. A trial's own training ends at
``max_epochs`` and its report of that epoch is its last, so stopping it there (as ASHA and
curve-fit do too) ends it exactly where it would end by itself: one rule for every policy, and
a trainable that would run past its budget cannot.

Values are never looked at, so any experiment can use it: one objective (a number per result)
or several (a tuple of their values, :mod:`.policy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tune_nas.schedulers.policy import CONTINUE, STOP, Value

if TYPE_CHECKING:
    from tune_nas.config.experiment import ExperimentSpec


class NoStopping:
    """CONTINUE below ``max_t`` epochs, STOP at ``max_t``; keeps no state."""

    def __init__(self, max_t: int) -> None:
        if not (isinstance(max_t, int) and not isinstance(max_t, bool) and max_t >= 1):
            raise ValueError(f"max_t={max_t!r}: rule: an integer >= 1")
        self.max_t = max_t

    def on_result(self, trial_id: str, epoch: int, value: Value) -> str:
        return STOP if epoch >= self.max_t else CONTINUE

    def on_end(self, trial_id: str, epoch: int, value: Value) -> None:
        """Nothing to keep: no trial is compared with another."""

    def forget(self, trial_id: str) -> None:
        """Nothing to drop."""

    def __repr__(self) -> str:
        return f"NoStopping(max_t={self.max_t})"


def create_policy(spec: ExperimentSpec) -> NoStopping:
    return NoStopping(spec.max_epochs)
