"""One Ray Tune scheduler for every scheduler policy: Ray's results in, the policy's decisions out.

A policy (:mod:`tune_nas.schedulers`) decides; this adapter only translates. For each reported
result of a running trial it hands the policy ``(trial_id, epoch, value)`` — ``epoch`` from the
result's ``time_attr``, ``value`` the objective's metric in its own units (a float), or with
several objectives the tuple of their metrics' values in the order given
(``spec.objective_list``) — and returns the policy's CONTINUE, PAUSE or STOP as Ray's
``TrialScheduler`` decision. A trial that ends with a result (its budget spent, stopped, or
done by itself) gives the policy its final result (``on_end``); one that fails or is removed
is forgotten (``forget``).

* The first result must carry every objective's metric and ``time_attr``: a misspelled metric
  raises here instead of silently never stopping anything. Later results without them are
  passed over.
* Constraints on what training cannot change (:data:`FIXED_METRICS`: the parameter count and
  FLOPs, measured before the first epoch and reported with every result) stop a trial that
  breaks one at its first result, whatever the policy (``none`` included): its result is not
  fed to the policy and it is forgotten when it ends, so an infeasible trial never raises a
  rung's bar for feasible ones. The first result must carry those metrics too. Constraints on
  other metrics (an accuracy, a latency) are left to the study, which marks infeasible trials
  when they end.
* A result with an ``error`` (a NaN loss, out of memory) is no observation: it is not fed, and
  a trial that ends on one is forgotten, not ended.
* Every epoch's result reaches the policy (no buffered training), whatever the policy.
* Which trial runs next (``choose_trial_to_run``, asked by Ray at every step): for a policy
  that pauses (:class:`~tune_nas.schedulers.PromotionPolicy`, ``asha_promotion``) the first of
  its ``promotable`` trials that Ray holds PAUSED (promoted now; Ray restores it from the
  checkpoint of the epoch it paused after), else the first PENDING trial; a paused trial is
  never resumed otherwise. When no trial is running or pending, none is promotable and the
  searcher has no more, the trials still paused are stopped (Ray tells the callbacks, which
  record them PRUNED at their rung, with :meth:`PolicyScheduler.end_reason`). Any other
  policy keeps Ray's FIFO order (pending trials first, then paused ones).
* :meth:`PolicyScheduler.paused_at` says which trials the policy paused (the epoch) and that
  have not resumed: the callbacks show them as PAUSED.
* ``save``/``restore`` pickle the adapter with its policy. Ray 2.60 keeps the scheduler only
  as it was built (``tuner.pkl``): a resumed search starts with a fresh policy. For a policy
  that pauses, the callbacks carry the adapter's state in Ray's experiment snapshot instead
  (:meth:`PolicyScheduler.state`, :meth:`PolicyScheduler.load_state`), and a trial the
  restored adapter knows as paused comes back PAUSED (:meth:`PolicyScheduler.on_trial_add`),
  not PENDING (Ray's choice for every unfinished trial): it waits to be promoted as before.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

from tune_nas.objectives import Constraint, Objective, is_number
from tune_nas.schedulers import CONTINUE, PAUSE, STOP, PromotionPolicy, SchedulerPolicy
from tune_nas.schedulers.policy import Value

#: A policy's decision → Ray's (the same strings today; spelled once here all the same).
RAY_DECISIONS: dict[str, str] = {
    CONTINUE: TrialScheduler.CONTINUE,
    PAUSE: TrialScheduler.PAUSE,
    STOP: TrialScheduler.STOP,
}

#: Metrics a trial's training cannot change: a constraint on one is decided at its first result.
FIXED_METRICS = ("model/params", "model/flops")


class PolicyScheduler(FIFOScheduler):
    """Ray Tune scheduler around ``policy``, on ``objective``'s metric (or on several objectives'
    metrics: the policy then gets tuples), ``time_attr`` epochs, stopping trials that break a
    constraint on a :data:`FIXED_METRICS` metric at their first result.

    ``PolicyScheduler(create_policy("asha", spec), spec.objective)``;
    ``PolicyScheduler(create_policy("moasha", spec), spec.objective_list, constraints=spec.constraint_list)``.
    """

    def __init__(self, policy: SchedulerPolicy, objective: Objective | Sequence[Objective],
                 time_attr: str = "epoch", constraints: Sequence[Constraint] = ()) -> None:
        super().__init__()
        if not isinstance(policy, SchedulerPolicy):
            raise TypeError(f"policy={policy!r}: rule: an object with on_result, on_end and forget "
                            "(tune_nas.schedulers.SchedulerPolicy)")
        objectives = (objective,) if isinstance(objective, Objective) else tuple(objective)
        if not objectives or not all(isinstance(o, Objective) for o in objectives):
            raise TypeError(f"objective={objective!r}: rule: an Objective or a sequence of them "
                            "(tune_nas.objectives.Objective)")
        constraints = tuple(constraints)
        if not all(isinstance(c, Constraint) for c in constraints):
            raise TypeError(f"constraints={constraints!r}: rule: a sequence of tune_nas.objectives.Constraint")
        self.policy, self.objectives, self.time_attr = policy, objectives, time_attr
        self.objective = objectives[0]  # the primary one: Ray checks every result for its metric
        self.constraints = constraints
        self._metric, self._mode = self.objective.metric, self.objective.direction  # Ray's strict metric check
        self._checked = False  # whether a result with the metrics and time_attr has been seen
        self._supports_buffered_results = False  # every epoch's value reaches the policy
        self.decisions: Counter[str] = Counter()
        self.infeasible: dict[str, str] = {}  # trial -> the constraint it broke (stopped, not fed)
        self.paused: dict[str, int] = {}  # trial -> the epoch the policy paused it after (not resumed)
        self.ended_paused: dict[str, str] = {}  # trial -> why it was stopped while paused

    @property
    def stopping_constraints(self) -> tuple[Constraint, ...]:
        """The constraints this adapter decides: those on a metric training cannot change."""
        return tuple(c for c in self.constraints if c.metric in FIXED_METRICS)

    @property
    def _metrics(self) -> tuple[str, ...]:
        return tuple(o.metric for o in self.objectives)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Refuse (False: Ray raises) a TuneConfig metric or mode other than the objective's."""
        return metric in (None, self._metric) and mode in (None, self._mode)

    def _observation(self, result: dict[str, Any]) -> tuple[int, Value] | None:
        """``(epoch, value)`` of ``result`` (``value`` a number for one objective, a tuple for
        several), or None when it lacks one of them (after the first result, which must also
        carry the metrics of the stopping constraints)."""
        needed = (self.time_attr, *self._metrics)
        if not self._checked:
            missing = [key for key in (*needed, *(c.metric for c in self.stopping_constraints)) if key not in result]
            if missing:
                raise ValueError(f"scheduler {type(self.policy).__name__}: the first result has no "
                                 f"{missing[0]!r}; rule: one of the reported keys {sorted(result)}")
        elif any(key not in result for key in needed):
            return None
        self._checked = True
        try:
            epoch, values = int(result[self.time_attr]), tuple(float(result[m]) for m in self._metrics)
        except (TypeError, ValueError):
            shown = ", ".join(f"{key}={result[key]!r}" for key in needed)
            raise ValueError(f"scheduler {type(self.policy).__name__}: {shown}; rule: numbers") from None
        return epoch, values[0] if len(values) == 1 else values

    def _broken_constraint(self, result: dict[str, Any]) -> Constraint | None:
        """The first stopping constraint ``result`` breaks (a value that is missing or not a
        finite number is not judged)."""
        for constraint in self.stopping_constraints:
            value = result.get(constraint.metric)
            if is_number(value) and not constraint.kept_by(value):
                return constraint
        return None

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get("error"):
            return TrialScheduler.CONTINUE
        observation = self._observation(result)
        if observation is None:
            return TrialScheduler.CONTINUE
        broken = self._broken_constraint(result)
        if broken is not None:
            self.infeasible[trial.trial_id] = broken.describe()
            self.decisions[STOP] += 1
            return TrialScheduler.STOP
        decision = self.policy.on_result(trial.trial_id, *observation)
        if decision not in RAY_DECISIONS:
            raise ValueError(f"scheduler {type(self.policy).__name__} decided {decision!r} for trial "
                             f"{trial.trial_id}; rule: one of {', '.join(RAY_DECISIONS)}")
        self.decisions[decision] += 1
        if decision == PAUSE:
            self.paused[trial.trial_id] = observation[0]
        else:
            self.paused.pop(trial.trial_id, None)
        return RAY_DECISIONS[decision]

    def paused_at(self, trial_id: str) -> int | None:
        """The epoch ``trial_id`` was paused after, while it waits (None: not paused)."""
        return self.paused.get(trial_id)

    def end_reason(self, trial_id: str) -> str | None:
        """Why ``trial_id`` was stopped while paused (None: it was not)."""
        return self.ended_paused.get(trial_id)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        """A promotable paused trial, else the first pending one (see the module doc)."""
        if not isinstance(self.policy, PromotionPolicy):
            return super().choose_trial_to_run(tune_controller)
        trials = tune_controller.get_trials()
        promotable = self.policy.promotable()
        if promotable:
            paused = {t.trial_id: t for t in trials if t.status == Trial.PAUSED}
            chosen = next((paused[t] for t in promotable if t in paused), None)
            if chosen is not None:  # Algorithm 2: a promotion before a new trial
                self.policy.resume(chosen.trial_id)
                self.paused.pop(chosen.trial_id, None)
                return chosen
        pending = next((t for t in trials if t.status == Trial.PENDING), None)
        if pending is not None:
            return pending
        if promotable or any(t.status == Trial.RUNNING for t in trials) \
                or not tune_controller.search_alg.is_finished():
            return None
        for trial in [t for t in trials if t.status == Trial.PAUSED]:  # nothing left to run
            epoch = self.paused.pop(trial.trial_id, None)
            self.ended_paused[trial.trial_id] = (f"paused after epoch {epoch}, not promoted when the "
                                                 "search ran out of trials")
            tune_controller.stop_trial(trial)
        return None

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        """Ray passes the trial's last result: the policy's ``on_end`` with it, or ``forget``
        when it is an error, lacks a metric, or the trial was stopped for a constraint."""
        observation = None
        if (result and not result.get("error") and trial.trial_id not in self.infeasible
                and all(k in result for k in (self.time_attr, *self._metrics))):
            observation = self._observation(result)
        self.paused.pop(trial.trial_id, None)
        if observation is None:
            self.policy.forget(trial.trial_id)
        else:
            self.policy.on_end(trial.trial_id, *observation)

    def on_trial_error(self, tune_controller, trial) -> None:
        self.paused.pop(trial.trial_id, None)
        self.policy.forget(trial.trial_id)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self.paused.pop(trial.trial_id, None)
        self.policy.forget(trial.trial_id)

    def debug_string(self) -> str:
        parts = []
        if self.decisions[STOP]:
            for_constraints = f" ({len(self.infeasible)} for constraints)" if self.infeasible else ""
            parts.append(f"{self.decisions[STOP]} {STOP}{for_constraints}")
        if self.decisions[PAUSE]:
            parts.append(f"{self.decisions[PAUSE]} {PAUSE}")
        counts = ", ".join(parts)
        on = ", ".join(o.describe() for o in self.objectives)
        if self.stopping_constraints:
            on += "; " + ", ".join(c.describe() for c in self.stopping_constraints)
        return f"Using {self.policy!r} on {on}" + (f": {counts}" if counts else "")

    def __setstate__(self, state: dict[str, Any]) -> None:
        """An adapter pickled before it took several objectives and constraints (a search
        resumed across the upgrade) gets their defaults: its one objective, no constraints."""
        state.setdefault("objectives", (state["objective"],))
        state.setdefault("constraints", ())
        state.setdefault("infeasible", {})
        state.setdefault("paused", {})
        state.setdefault("ended_paused", {})
        self.__dict__.update(state)

    def on_trial_add(self, tune_controller, trial) -> None:
        """A trial Ray re-queues on resume that this (restored) adapter paused goes back to
        PAUSED (Ray files it by its status right after this call). A trial Ray re-queues after
        a failure is not paused here: ``on_trial_error`` came first and dropped it."""
        if trial.trial_id in self.paused and trial.status == Trial.PENDING:
            trial.set_status(Trial.PAUSED)

    def state(self) -> bytes:
        """The adapter with its policy, pickled (what Ray's experiment snapshot keeps of it)."""
        return pickle.dumps(self.__dict__)

    def load_state(self, state: bytes) -> None:
        """Take the state :meth:`state` returned (a resumed search)."""
        self.__setstate__(pickle.loads(state))

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))
