"""A trial's state, one identity everywhere: the terminal, summary.json, trials.json,
curves.csv, TensorBoard and the Optuna study.

* ``RUNNING`` — it is training (or was, when the driver stopped);
* ``PAUSED`` — a scheduler policy set it aside at a rung, checkpointed, to continue later
  (``asha_promotion``); a trial still paused when the search ends is ended PRUNED;
* ``COMPLETE`` — it trained its full budget (``max_epochs``);
* ``PRUNED`` — a scheduler stopped it early, or the search's time budget ran out;
* ``FAIL`` — it raised after its retries, its loss became NaN, or it ran out of memory.

The members are strings (:class:`enum.StrEnum`), so JSON, CSV and comparisons with the plain
names (``"COMPLETE"``) read and write them unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class TrialState(StrEnum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"

    @property
    def is_finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


#: The states a trial can end in, in the order reports list them.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def final_state(last_result: dict[str, Any] | None, max_epochs: int) -> TrialState:
    """How a trial that Ray reports as ended ended: FAIL when its last result carries an
    ``error``; COMPLETE when it reached its budget (``max_epochs``, or the ``budget`` a
    warm-started trial reports: fewer epochs from its parent's weights); PRUNED when it was
    stopped before."""
    if last_result and last_result.get("error"):
        return TrialState.FAIL
    if not last_result or "epoch" not in last_result:
        return TrialState.PRUNED  # stopped before its first epoch ended
    budget = last_result.get("budget")
    budget = min(max_epochs, int(budget)) if isinstance(budget, (int, float)) and budget > 0 else max_epochs
    return TrialState.COMPLETE if int(last_result["epoch"]) >= budget else TrialState.PRUNED
