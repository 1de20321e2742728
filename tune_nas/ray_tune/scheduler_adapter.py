"""One Ray Tune scheduler for every scheduler policy: Ray's results in, the policy's decisions out.

A policy (:mod:`tune_nas.schedulers`) decides; this adapter only translates. For each reported
result of a running trial it hands the policy ``(trial_id, epoch, value)`` — ``epoch`` from the
result's ``time_attr``, ``value`` the objective's metric in its own units — and returns the
policy's CONTINUE, PAUSE or STOP as Ray's ``TrialScheduler`` decision. A trial that ends with a
result (its budget spent, stopped, or done by itself) gives the policy its final result
(``on_end``); one that fails or is removed is forgotten (``forget``).

* The first result must carry the metric and ``time_attr``: a misspelled metric raises here
  instead of silently never stopping anything. Later results without them are passed over.
* A result with an ``error`` (a NaN loss, out of memory) is no observation: it is not fed, and
  a trial that ends on one is forgotten, not ended.
* Every epoch's result reaches the policy (no buffered training), whatever the policy.
* Which trial runs next is Ray's FIFO order; a paused trial resumes when a slot is free.
* ``save``/``restore`` pickle the adapter with its policy (Ray's experiment state).
"""

from __future__ import annotations

import pickle
from collections import Counter
from typing import Any

from ray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

from tune_nas.objectives import Objective
from tune_nas.schedulers import CONTINUE, PAUSE, STOP, SchedulerPolicy

#: A policy's decision → Ray's (the same strings today; spelled once here all the same).
RAY_DECISIONS: dict[str, str] = {
    CONTINUE: TrialScheduler.CONTINUE,
    PAUSE: TrialScheduler.PAUSE,
    STOP: TrialScheduler.STOP,
}


class PolicyScheduler(FIFOScheduler):
    """Ray Tune scheduler around ``policy``, on ``objective``'s metric, ``time_attr`` epochs.

    ``PolicyScheduler(create_policy("asha", spec), spec.objective)``.
    """

    def __init__(self, policy: SchedulerPolicy, objective: Objective, time_attr: str = "epoch") -> None:
        super().__init__()
        if not isinstance(policy, SchedulerPolicy):
            raise TypeError(f"policy={policy!r}: rule: an object with on_result, on_end and forget "
                            "(tune_nas.schedulers.SchedulerPolicy)")
        self.policy, self.objective, self.time_attr = policy, objective, time_attr
        self._metric, self._mode = objective.metric, objective.direction  # Ray's strict metric check
        self._checked = False  # whether a result with the metric and time_attr has been seen
        self._supports_buffered_results = False  # every epoch's value reaches the policy
        self.decisions: Counter[str] = Counter()

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Refuse (False: Ray raises) a TuneConfig metric or mode other than the objective's."""
        return metric in (None, self._metric) and mode in (None, self._mode)

    def _observation(self, result: dict[str, Any]) -> tuple[int, float] | None:
        """``(epoch, value)`` of ``result``, or None when it lacks either (after the first)."""
        missing = [key for key in (self.time_attr, self._metric) if key not in result]
        if missing:
            if not self._checked:
                raise ValueError(f"scheduler {type(self.policy).__name__}: the first result has no "
                                 f"{missing[0]!r}; rule: one of the reported keys {sorted(result)}")
            return None
        self._checked = True
        epoch, value = result[self.time_attr], result[self._metric]
        try:
            return int(epoch), float(value)
        except (TypeError, ValueError):
            raise ValueError(f"scheduler {type(self.policy).__name__}: {self.time_attr}={epoch!r}, "
                             f"{self._metric}={value!r}; rule: numbers") from None

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get("error"):
            return TrialScheduler.CONTINUE
        observation = self._observation(result)
        if observation is None:
            return TrialScheduler.CONTINUE
        decision = self.policy.on_result(trial.trial_id, *observation)
        if decision not in RAY_DECISIONS:
            raise ValueError(f"scheduler {type(self.policy).__name__} decided {decision!r} for trial "
                             f"{trial.trial_id}; rule: one of {', '.join(RAY_DECISIONS)}")
        self.decisions[decision] += 1
        return RAY_DECISIONS[decision]

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        """Ray passes the trial's last result: the policy's ``on_end`` with it, or ``forget``
        when it is an error or lacks the metric."""
        observation = None
        if result and not result.get("error") and all(k in result for k in (self.time_attr, self._metric)):
            observation = self._observation(result)
        if observation is None:
            self.policy.forget(trial.trial_id)
        else:
            self.policy.on_end(trial.trial_id, *observation)

    def on_trial_error(self, tune_controller, trial) -> None:
        self.policy.forget(trial.trial_id)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self.policy.forget(trial.trial_id)

    def debug_string(self) -> str:
        counts = ", ".join(f"{self.decisions[d]} {d}" for d in (STOP, PAUSE) if self.decisions[d])
        return f"Using {self.policy!r} on {self.objective.describe()}" + (f": {counts}" if counts else "")

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
