"""``python -m tune_nas.replay trials/<name>``: stopping policies re-run on recorded curves.

Nothing is trained: the learning curves an experiment recorded (``curves.csv``) are fed, in
simulated time, to each stopping policy, and each policy's decisions are replayed:

* ``none`` — every trial trains ``max_epochs`` (the reference);
* ``asha(g,rf)`` — :class:`tune_nas.schedulers.asha.AshaPolicy` (grace period ``g``,
  reduction factor ``rf``), which decides exactly as Ray Tune's ASHA does in a search;
* ``asha_promotion(g,rf)`` — :class:`tune_nas.schedulers.asha_promotion.AshaPromotionPolicy`,
  the same rungs by promotion: a trial pauses at each rung (holding no worker) and continues
  from there when the rung's ranking promotes it; trials still paused at the end stop there;
* ``curvefit(m,p)`` — :class:`tune_nas.schedulers.curve_fit.CurveFitPolicy` (no stop before
  ``m`` epochs; stop when P(final ≥ best final) < ``p``).

Each policy is fed as in a search (:mod:`tune_nas.schedulers.policy`): ``on_result`` per
epoch, ``on_end`` with a trial's last result.

Simulated time: trials start in their trial-number order on ``workers`` parallel workers
(default 1); every epoch takes one time unit, so results arrive in the order a real run
with equally fast trials would produce them.

Censoring: only trials that ran ``max_epochs`` have complete curves. A trial stopped early
in the recorded run (PRUNED) has no values after its last epoch; when a policy would have
continued it past them, the replay ends it there and counts it as *censored* (its epochs so
far are counted, it can never be the policy's pick, and its final is unknown). A FAIL trial
ends at its last epoch under every policy. ``--trials complete`` replays only the trials
with complete curves (no censoring, but a population that the recorded run's own stopping
already thinned). A search run without stopping (``scheduler: "none"``) gives an exact
replay of every policy.

Per policy the report gives the epochs spent (and the recorded seconds those epochs took),
the trials run to the full budget, whether it kept the true best trial (one with the best
final metric among the replayed complete curves), its pick (the best final among the trials
it ran to the end) and the regret of that pick. Inspection never writes into an experiment:
``replay.json`` is written only with ``--out``.

Several objectives (the experiment's ``objectives``, e.g. ``val/acc`` max and ``model/params``
min): each epoch feeds the policy the tuple of the objectives' values from ``curves.csv`` (the
cost metrics are columns there, the same every epoch), and the policies are ``none`` and
``moasha(g,rf)`` (:class:`tune_nas.schedulers.moasha.MoashaPolicy`) for every grace period ×
reduction factor. What a policy returns is the Pareto front of the finals of the trials it ran
to ``max_epochs``; no stopping returns the front of every complete curve, the reference. Per
policy the report gives the epochs spent (and their share of no stopping's), the hypervolume
of its front and its share of the reference front's, and the *gap*: for every point ``r`` of
the reference front, the smallest shortfall in the primary objective among the policy's front
points at least as good as ``r`` in every other objective; the gap is the largest of those
(0: every point matched; infinite, listed as *unmatched*, when no point of the policy's front
is as good as ``r`` in the other objectives). "Within 1 accuracy point at every size" is
``gap <= 0.01``. The hypervolume's reference point is the worst value of each objective over
every recorded final (the complete curves' values at ``max_epochs``), pushed outward by
:data:`REFERENCE_MARGIN` of that objective's range (of ``max(|worst|, 1)`` when every final is
equal), the same for every policy, so a front point at the worst value still adds volume.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from tune_nas.analysis.experiment import Experiment, ExperimentError, load_experiment
from tune_nas.bad_input import EXIT_BAD_INPUT, DefaultsHelp, OneLineParser, unwritable_reason
from tune_nas.layout import CURVES_FILE
from tune_nas.objectives import (  # noqa: F401  (REFERENCE_MARGIN, reference_point: the replay's, re-exported)
    REFERENCE_MARGIN,
    Objective,
    hypervolume,
    is_number,
    pareto_front,
    reference_point,
)
from tune_nas.record import formatting
from tune_nas.record.bookkeeper import strict_json
from tune_nas.schedulers.policy import CONTINUE, PAUSE, PromotionPolicy, SchedulerPolicy, Value, direction_of
from tune_nas.states import TrialState

REPLAY_FILE = "replay.json"
TRIAL_SETS = ("all", "complete")


@dataclass(frozen=True)
class RecordedTrial:
    """One trial's recorded curve: ``values[epoch]`` (a number, or with several objectives a
    tuple of their values) and, when known, ``seconds[epoch]``."""

    number: int
    state: str
    values: dict[int, Value]
    seconds: dict[int, float] = field(default_factory=dict)

    @property
    def last_epoch(self) -> int:
        return max(self.values) if self.values else 0


@dataclass(frozen=True)
class PolicySpec:
    """A named policy and how to make a fresh instance of it for one replay."""

    name: str
    make: Callable[[], SchedulerPolicy]
    settings: dict[str, Any] = field(default_factory=dict)


def default_policies(mode: str, max_epochs: int, metric: str = "", *,
                     grace_periods: Sequence[int] = (1, 2, 3),
                     reduction_factors: Sequence[float] = (2, 3, 4),
                     thresholds: Sequence[float] = (0.01, 0.05, 0.2),
                     min_epochs: Sequence[int] = (4,)) -> list[PolicySpec]:
    """``none``, ASHA and ASHA by promotion for every grace period × reduction factor,
    curve-fit for every minimum × threshold (settings that do not fit in ``max_epochs`` are
    left out)."""
    from tune_nas.schedulers.asha import AshaPolicy
    from tune_nas.schedulers.asha_promotion import AshaPromotionPolicy
    from tune_nas.schedulers.curve_fit import CurveFitPolicy, CurvePredictor, default_bounds

    specs = rung_grid("asha", lambda g, r: AshaPolicy(mode, max_epochs, g, r), max_epochs,
                      grace_periods, reduction_factors)
    specs += rung_grid("asha_promotion", lambda g, r: AshaPromotionPolicy(mode, max_epochs, g, r), max_epochs,
                       grace_periods, reduction_factors)[1:]  # "none" is there once
    predictor = CurvePredictor(bounds=default_bounds(metric))  # shared: its cache serves all
    for minimum in min_epochs:
        for threshold in thresholds:
            if minimum < max_epochs:
                specs.append(PolicySpec(
                    f"curvefit(m={minimum},p={threshold:g})",
                    lambda m=minimum, p=threshold: CurveFitPolicy(
                        mode, max_epochs, min_epochs=m, threshold=p, predictor=predictor),
                    {"kind": "curvefit", "min_epochs": minimum, "threshold": threshold}))
    return specs


@dataclass
class SpentOutcome:
    """What a replayed policy spent: its name and settings, the epochs (and simulated seconds)
    it trained, which trials ran to the end, which it stopped (at which epoch), which were
    censored."""

    policy: str
    settings: dict[str, Any]
    epochs: int
    seconds: float | None
    full_trials: list[int]
    stopped: dict[int, int]
    censored: list[int]

    #: The header of :meth:`spent_columns` in a text table.
    SPENT_HEADER = f"  {'policy':<26} {'epochs':>6} {'of full':>7} {'seconds':>8} {'full':>4} {'cens':>4}"

    def spent_columns(self) -> str:
        """The policy's name and what it spent, as the first columns of a text table row."""
        epochs = f"≥{self.epochs}" if self.censored else str(self.epochs)
        return (f"  {self.policy:<26} {epochs:>6} {getattr(self, 'fraction_of_full', math.nan):>7.0%} "
                f"{formatting.number(self.seconds, 1):>8} {len(self.full_trials):>4} {len(self.censored):>4}")

    def spent_dict(self) -> dict[str, Any]:
        rounded = formatting.rounded
        return {"policy": self.policy, "settings": self.settings, "epochs": self.epochs,
                "fraction_of_full": rounded(getattr(self, "fraction_of_full", math.nan)),
                "seconds": rounded(self.seconds), "full_trials": self.full_trials,
                "stopped": {str(k): v for k, v in self.stopped.items()}, "censored": self.censored}


@dataclass
class PolicyOutcome(SpentOutcome):
    """What one policy would have done with the recorded trials."""

    pick: int | None
    pick_value: float | None
    keeps_best: bool
    regret: float | None
    fraction_of_full: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        rounded = formatting.rounded
        return {**self.spent_dict(), "pick": self.pick, "pick_value": rounded(self.pick_value),
                "keeps_best": self.keeps_best, "regret": rounded(self.regret)}


def _objective(objective: Objective | str, metric: str = "") -> Objective:
    """What the replay ranks finals by: ``objective``, or a bare direction (``"max"``/``"min"``,
    as a policy takes it) for the values of ``metric``."""
    if isinstance(objective, Objective):
        return objective
    return Objective(metric or "value", direction_of(objective))


def true_best(trials: Sequence[RecordedTrial], max_epochs: int,
              objective: Objective | str) -> tuple[float | None, list[int]]:
    """The best final value (by ``objective``) among complete curves and every trial number
    that reaches it."""
    finals = {t.number: t.values[max_epochs] for t in trials if max_epochs in t.values}
    best = _objective(objective).best(finals.values())
    if best is None:
        return None, []
    return best, sorted(n for n, v in finals.items() if v == best)


@dataclass(frozen=True)
class Played:
    """What a policy did with the recorded trials, before anything is ranked."""

    reached: dict[int, int]  # trial number -> the last epoch it ran
    stopped: dict[int, int]  # trial number -> the epoch the policy stopped it at (below max_epochs)
    censored: list[int]
    full_trials: list[int]  # the trials it ran to max_epochs
    epochs: int
    seconds: float | None  # the recorded seconds of those epochs (None when one is unknown)


def play(trials: Sequence[RecordedTrial], policy: SchedulerPolicy, max_epochs: int,
         workers: int = 1) -> Played:
    """Feed ``policy`` the recorded trials in simulated time (see the module doc for time and
    censoring) and note where each trial ended.

    A policy that pauses (:class:`~tune_nas.schedulers.PromotionPolicy`, ``asha_promotion``):
    a paused trial holds no worker; a free worker resumes the first of the policy's
    ``promotable`` trials (from the epoch it paused after: no epoch is counted twice), else
    starts the next trial; the trials still paused when nothing is left to run end there (as
    stopped)."""
    if workers < 1:
        raise ValueError(f"workers={workers}: rule: workers >= 1")
    queue = deque(sorted(trials, key=lambda t: t.number))
    events: list[tuple[float, int, int]] = []  # (time an epoch ends, trial number, epoch)
    by_number = {t.number: t for t in trials}
    reached: dict[int, int] = {}
    stopped: dict[int, int] = {}
    censored: list[int] = []
    paused: dict[int, int] = {}  # trial number -> the epoch it paused after
    promotes = isinstance(policy, PromotionPolicy)

    def end(number: int, epoch: int, value: Value) -> None:
        trial = by_number[number]
        if epoch < max_epochs and trial.state != TrialState.FAIL:
            censored.append(number)  # the policy would go on; the recording does not
        policy.on_end(str(number), epoch, value)

    def next_epoch(now: float, number: int, epoch: int) -> None:
        """Train ``number``'s next epoch, or end it where its recording ends."""
        if epoch + 1 in by_number[number].values:
            heapq.heappush(events, (now + 1, number, epoch + 1))
        else:
            end(number, epoch, by_number[number].values[epoch])

    def next_job(now: float) -> bool:
        """Give a free worker a promotion, else a new trial; False when there is neither."""
        for trial_id in policy.promotable() if promotes and paused else ():
            number = int(trial_id)
            if number in paused:
                policy.resume(trial_id)
                next_epoch(now, number, paused.pop(number))
                return True
        while queue:
            trial = queue.popleft()
            if 1 in trial.values:
                heapq.heappush(events, (now + 1, trial.number, 1))
                return True
            reached[trial.number] = 0  # nothing recorded: it ended before its first epoch
        return False

    def fill(now: float) -> None:
        while len(events) < workers and next_job(now):
            pass

    fill(0.0)
    while events:
        now, number, epoch = heapq.heappop(events)
        value = by_number[number].values[epoch]
        decision = policy.on_result(str(number), epoch, value)
        reached[number] = epoch
        if decision == CONTINUE and epoch < max_epochs:
            next_epoch(now, number, epoch)
        elif decision == PAUSE and epoch < max_epochs:
            paused[number] = epoch
        elif decision == CONTINUE:
            end(number, epoch, value)
        else:
            if epoch < max_epochs:
                stopped[number] = epoch
            policy.on_end(str(number), epoch, value)
        fill(now)
    for number, epoch in sorted(paused.items()):  # never promoted: they end where they wait
        stopped[number] = epoch
        policy.forget(str(number))
    full = sorted(n for n, e in reached.items() if e >= max_epochs)
    seconds = [by_number[n].seconds.get(e) for n, last in reached.items()
               for e in range(1, last + 1)]
    total_seconds = (sum(s for s in seconds if s is not None)
                     if seconds and all(s is not None for s in seconds) else None)
    return Played(reached, stopped, sorted(censored), full, sum(reached.values()), total_seconds)


def simulate(trials: Sequence[RecordedTrial], policy: SchedulerPolicy, max_epochs: int,
             objective: Objective | str, workers: int = 1, name: str = "",
             settings: dict[str, Any] | None = None) -> PolicyOutcome:
    """Replay ``policy`` over ``trials`` (see the module doc for time and censoring); its pick
    and regret are by ``objective`` (or a bare direction, ``"max"``/``"min"``)."""
    objective = _objective(objective)
    played = play(trials, policy, max_epochs, workers)
    by_number = {t.number: t for t in trials}
    full = played.full_trials
    finals = {n: by_number[n].values[max_epochs] for n in full
              if math.isfinite(by_number[n].values[max_epochs])}
    pick = objective.best_of(sorted(finals), finals.get)  # ties: the lowest trial number
    best, best_numbers = true_best(trials, max_epochs, objective)
    regret = None
    if pick is not None and best is not None:
        regret = objective.regret(best, finals[pick])
    return PolicyOutcome(policy=name, settings=dict(settings or {}), epochs=played.epochs,
                         seconds=played.seconds, full_trials=full, stopped=played.stopped,
                         censored=played.censored, pick=pick,
                         pick_value=finals.get(pick) if pick is not None else None,
                         keeps_best=bool(set(best_numbers) & set(full)), regret=regret)


@dataclass
class ReplayReport:
    """Every policy's outcome on one experiment's recorded trials."""

    experiment: str
    objective: Objective
    max_epochs: int
    trial_set: str
    workers: int
    trials: int
    complete_trials: int
    best_value: float | None
    best_trials: list[int]
    outcomes: list[PolicyOutcome]

    @property
    def metric(self) -> str:
        return self.objective.metric

    @property
    def mode(self) -> str:
        return self.objective.direction

    @property
    def best_policy(self) -> PolicyOutcome | None:
        """Least regret, then fewest epochs (policies without a pick do not qualify)."""
        ranked = [o for o in self.outcomes if o.regret is not None]
        return min(ranked, key=lambda o: (round(o.regret, 12), o.epochs)) if ranked else None

    def as_dict(self) -> dict[str, Any]:
        best = self.best_policy
        return {"experiment": self.experiment, "metric": self.metric, "mode": self.mode,
                "max_epochs": self.max_epochs, "trial_set": self.trial_set,
                "workers": self.workers, "trials": self.trials,
                "complete_trials": self.complete_trials,
                "best_value": formatting.rounded(self.best_value),
                "best_trials": self.best_trials, "best_policy": best.policy if best else None,
                "policies": [o.as_dict() for o in self.outcomes]}

    def text(self) -> str:
        number = formatting.number
        lines = [(f"Replay of {self.experiment}: {self.trials} trials ({self.trial_set}; "
                 f"{self.complete_trials} with complete curves), {self.workers} worker(s), "
                 f"{self.objective.describe()}, max_epochs={self.max_epochs}."),
                 (f"True best final {self.metric}: {number(self.best_value)} (trial(s) "
                 f"{', '.join(map(str, self.best_trials)) or '-'})."),
                 SpentOutcome.SPENT_HEADER + f" {'best?':>5} {'pick':>5} {'value':>7} {'regret':>7}"]
        for o in self.outcomes:
            lines.append(o.spent_columns() + f" {'yes' if o.keeps_best else 'no':>5} "
                         f"{'-' if o.pick is None else o.pick:>5} {number(o.pick_value):>7} "
                         f"{number(o.regret):>7}")
        best = self.best_policy
        if best is not None:
            lines.append(f"Best policy: {best.policy} (regret {number(best.regret)}, "
                         f"{best.epochs} epochs = {best.fraction_of_full:.0%} of no stopping).")
        if any(o.censored for o in self.outcomes):
            lines.append("cens: trials the policy would have continued past their recorded "
                         "end (≥: epochs counted up to there; such a trial is never picked).")
        return "\n".join(lines) + "\n"


def recorded_trials(curves, metric: str | Sequence[str], trial_set: str = "all",
                    max_epochs: int | None = None) -> list[RecordedTrial]:
    """The trials of a curves table (as :func:`tune_nas.analysis.experiment.load_experiment`
    reads it): each trial's values of ``metric`` by epoch, or for several metrics the tuple of
    their values (an epoch missing one of them counts as not recorded, as a missing value of
    the one metric does)."""
    if trial_set not in TRIAL_SETS:
        raise ValueError(f"trial_set={trial_set!r}: rule: one of {TRIAL_SETS}")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    for name in metrics:
        if name not in curves.columns:
            raise ExperimentError(f"metric {name!r} is not in {CURVES_FILE}; rule: the metric a "
                                  "search reported every epoch")
    trials = []
    for number, rows in curves.groupby("trial_number", sort=True):
        rows = rows[rows[metrics].notna().all(axis=1)]
        values: dict[int, Value]
        if len(metrics) == 1:
            values = {int(e): float(v) for e, v in zip(rows["epoch"], rows[metrics[0]])}
        else:
            values = {int(e): tuple(float(v) for v in vector)
                      for e, vector in zip(rows["epoch"], rows[metrics].itertuples(index=False))}
        seconds = ({int(e): float(s) for e, s in zip(rows["epoch"], rows["time/epoch_s"])
                    if math.isfinite(s)} if "time/epoch_s" in rows.columns else {})
        state = str(rows["state"].iloc[-1]) if len(rows) else TrialState.FAIL
        trial = RecordedTrial(int(number), state, values, seconds)
        if trial_set == "complete" and (max_epochs is None or max_epochs not in values):
            continue
        trials.append(trial)
    return trials


def no_stopping_epochs(trials: Sequence[RecordedTrial], max_epochs: int) -> int:
    """The epochs every trial would train without stopping: ``max_epochs`` each, a failed one
    up to where it failed."""
    return sum(min(t.last_epoch, max_epochs) if t.state == TrialState.FAIL else max_epochs for t in trials)


def replay(trials: Sequence[RecordedTrial], policies: Sequence[PolicySpec], max_epochs: int,
           objective: Objective | str, *, metric: str = "", experiment: str = "",
           trial_set: str = "all", workers: int = 1) -> ReplayReport:
    """Every policy of ``policies`` replayed over ``trials``; finals ranked by ``objective``
    (or a bare direction for the values of ``metric``)."""
    objective = _objective(objective, metric)
    outcomes = [simulate(trials, spec.make(), max_epochs, objective, workers, spec.name,
                         spec.settings) for spec in policies]
    full_cost = no_stopping_epochs(trials, max_epochs)
    for outcome in outcomes:
        outcome.fraction_of_full = outcome.epochs / full_cost if full_cost else math.nan
    best, best_numbers = true_best(trials, max_epochs, objective)
    return ReplayReport(experiment, objective, max_epochs, trial_set, workers, len(trials),
                        sum(1 for t in trials if max_epochs in t.values), best, best_numbers,
                        outcomes)


def replay_experiment(experiment: Experiment | str | Path, *, trial_set: str = "all",
                      workers: int = 1, policies: Sequence[PolicySpec] | None = None,
                      **grid: Sequence[Any]) -> ReplayReport | FrontReplayReport:
    """Replay an experiment's curves (a directory, or one already loaded) with its
    objective and ``max_epochs`` (with several objectives: :func:`replay_fronts` with ``none``
    and MOASHA over the grid's ``grace_periods`` × ``reduction_factors``; the curve-fit grid
    does not apply). Raises :class:`ExperimentError` when it is not an experiment or no trial
    has reported an epoch yet."""
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    if experiment.curves is None or experiment.curves.empty:
        raise ExperimentError(f"{experiment.layout.curves}: no trial has reported an epoch yet; "
                              "rule: a replay needs recorded learning curves")
    if experiment.spec.multi_objective:
        objectives, max_epochs = experiment.spec.objective_list, experiment.spec.max_epochs
        trials = recorded_trials(experiment.curves, [o.metric for o in objectives], trial_set, max_epochs)
        if policies is None:
            front_grid = {k: v for k, v in grid.items() if k in ("grace_periods", "reduction_factors")}
            policies = default_front_policies(objectives, max_epochs, **front_grid)
        return replay_fronts(trials, policies, max_epochs, objectives, experiment=experiment.name,
                             trial_set=trial_set, workers=workers)
    objective, max_epochs = experiment.objective, experiment.spec.max_epochs
    trials = recorded_trials(experiment.curves, objective.metric, trial_set, max_epochs)
    if policies is None:
        policies = default_policies(objective.direction, max_epochs, objective.metric, **grid)
    return replay(trials, policies, max_epochs, objective, experiment=experiment.name,
                  trial_set=trial_set, workers=workers)


# --------------------------------------------------------------------------- several objectives

Vector: TypeAlias = tuple[float, ...]


def default_front_policies(objectives: Sequence[Objective], max_epochs: int, *,
                           grace_periods: Sequence[int] = (1, 2, 3),
                           reduction_factors: Sequence[float] = (2, 3, 4)) -> list[PolicySpec]:
    """``none`` and MOASHA for every grace period × reduction factor (those that do not fit in
    ``max_epochs`` left out): the policies that take several objectives."""
    from tune_nas.schedulers.moasha import MoashaPolicy

    objectives = tuple(objectives)
    return rung_grid("moasha", lambda g, r: MoashaPolicy(objectives, max_epochs, g, r), max_epochs,
                     grace_periods, reduction_factors)


def rung_grid(kind: str, make: Callable[[int, float], SchedulerPolicy], max_epochs: int,
              grace_periods: Sequence[int], reduction_factors: Sequence[float]) -> list[PolicySpec]:
    """``none`` and a rung policy (``make(grace, rf)``: ASHA or MOASHA) for every grace period ×
    reduction factor that fits in ``max_epochs``."""
    from tune_nas.schedulers.none import NoStopping

    specs = [PolicySpec("none", lambda: NoStopping(max_epochs), {"kind": "none"})]
    for grace in grace_periods:
        for rf in reduction_factors:
            if grace < max_epochs:
                specs.append(PolicySpec(f"{kind}(g={grace},rf={rf:g})", lambda g=grace, r=rf: make(g, r),
                                        {"kind": kind, "grace_period": grace, "reduction_factor": rf}))
    return specs


def complete_finals(trials: Sequence[RecordedTrial], max_epochs: int,
                    numbers: Sequence[int] | None = None) -> dict[int, Vector]:
    """Trial number → its final vector (the values at ``max_epochs``), for the trials of
    ``numbers`` (default: all) that recorded one with every value a finite number."""
    chosen = None if numbers is None else set(numbers)
    return {t.number: tuple(t.values[max_epochs]) for t in trials
            if (chosen is None or t.number in chosen) and max_epochs in t.values
            and all(is_number(v) for v in t.values[max_epochs])}


def front_gap(reference_front: Sequence[Vector], front: Sequence[Vector],
              objectives: Sequence[Objective]) -> tuple[float, list[int]]:
    """How far ``front`` falls short of ``reference_front`` in the primary objective (the
    first): for each reference point ``r``, the smallest shortfall of ``r``'s primary value
    among the points of ``front`` at least as good as ``r`` in every other objective (0 when
    one is as good in the primary too); the gap is the largest such shortfall. Returns the gap
    (infinite when a reference point has no such match) and the indices of the unmatched
    reference points."""
    primary, others = objectives[0], list(enumerate(objectives))[1:]
    gap, unmatched = 0.0, []
    for i, r in enumerate(reference_front):
        shortfalls = [max(0.0, primary.regret(r[0], q[0])) for q in front
                      if not any(objective.better(r[k], q[k]) for k, objective in others)]
        if shortfalls:
            gap = max(gap, min(shortfalls))
        else:
            unmatched.append(i)
    return (math.inf if unmatched else gap), unmatched


@dataclass
class FrontOutcome(SpentOutcome):
    """What one policy would have done with the recorded trials, judged by its Pareto front."""

    front: list[int]  # trial numbers on the front of the finals of the trials it ran to the end
    hypervolume: float
    gap: float  # see front_gap; infinite when a point of the no-stopping front is unmatched
    unmatched: list[int]  # trial numbers of the no-stopping front's points without a match
    fraction_of_full: float = math.nan
    hypervolume_fraction: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        rounded = formatting.rounded
        return {**self.spent_dict(), "front": self.front,
                "hypervolume": rounded(self.hypervolume),
                "hypervolume_fraction": rounded(self.hypervolume_fraction),
                "gap": rounded(self.gap), "unmatched": self.unmatched}


def simulate_front(trials: Sequence[RecordedTrial], policy: SchedulerPolicy, max_epochs: int,
                   objectives: Sequence[Objective], reference: Sequence[float] | None,
                   reference_front: Sequence[int], workers: int = 1, name: str = "",
                   settings: dict[str, Any] | None = None) -> FrontOutcome:
    """Replay ``policy`` over ``trials`` (values: vectors in ``objectives`` order) and judge
    the front of the finals it ran to ``max_epochs``: its hypervolume from ``reference`` and
    its gap to the front of the trials ``reference_front`` (the no-stopping front)."""
    played = play(trials, policy, max_epochs, workers)
    finals = complete_finals(trials, max_epochs, played.full_trials)
    numbers = sorted(finals)
    front = [numbers[i] for i in pareto_front([finals[n] for n in numbers], objectives)]
    all_finals = complete_finals(trials, max_epochs)
    volume = hypervolume([finals[n] for n in front], objectives, reference) if reference else 0.0
    gap, unmatched = front_gap([all_finals[n] for n in reference_front], [finals[n] for n in front], objectives)
    return FrontOutcome(policy=name, settings=dict(settings or {}), epochs=played.epochs,
                        seconds=played.seconds, full_trials=played.full_trials,
                        stopped=played.stopped, censored=played.censored, front=front,
                        hypervolume=volume, gap=gap, unmatched=[reference_front[i] for i in unmatched])


@dataclass
class FrontReplayReport:
    """Every policy's outcome on one multi-objective experiment's recorded trials."""

    experiment: str
    objectives: tuple[Objective, ...]
    max_epochs: int
    trial_set: str
    workers: int
    trials: int
    complete_trials: int
    reference_point: tuple[float, ...] | None
    front: list[int]  # the no-stopping front: trial numbers, every complete curve's finals
    hypervolume: float
    outcomes: list[FrontOutcome]

    @property
    def objective(self) -> Objective:
        """The primary objective (the gap is measured in it)."""
        return self.objectives[0]

    @property
    def best_policy(self) -> FrontOutcome | None:
        """Smallest gap, then fewest epochs (policies with an unmatched point do not qualify)."""
        ranked = [o for o in self.outcomes if math.isfinite(o.gap)]
        return min(ranked, key=lambda o: (round(o.gap, 12), o.epochs)) if ranked else None

    def as_dict(self) -> dict[str, Any]:
        best = self.best_policy
        rounded = formatting.rounded
        return {"experiment": self.experiment, "objectives": [o.as_dict() for o in self.objectives],
                "metric": self.objective.metric, "mode": self.objective.direction,
                "max_epochs": self.max_epochs, "trial_set": self.trial_set,
                "workers": self.workers, "trials": self.trials,
                "complete_trials": self.complete_trials,
                "reference_point": None if self.reference_point is None else [rounded(v) for v in self.reference_point],
                "front": self.front, "hypervolume": rounded(self.hypervolume),
                "best_policy": best.policy if best else None,
                "policies": [o.as_dict() for o in self.outcomes]}

    def text(self) -> str:
        number = formatting.number
        significant = formatting.significant
        objectives = ", ".join(o.describe() for o in self.objectives)
        reference = ("-" if self.reference_point is None
                     else "(" + ", ".join(significant(v, 4) for v in self.reference_point) + ")")
        lines = [(f"Replay of {self.experiment}: {self.trials} trials ({self.trial_set}; "
                  f"{self.complete_trials} with complete curves), {self.workers} worker(s), "
                  f"objectives {objectives}, max_epochs={self.max_epochs}."),
                 (f"No-stopping front: trial(s) {', '.join(map(str, self.front)) or '-'}; hypervolume "
                  f"{significant(self.hypervolume, 4)} (reference point {reference})."),
                 SpentOutcome.SPENT_HEADER + f" {'front':>5} {'hypervol':>9} {'of HV':>6} {'gap':>7}"]
        for o in self.outcomes:
            gap = "inf" if math.isinf(o.gap) else number(o.gap)
            lines.append(o.spent_columns() + f" {len(o.front):>5} {significant(o.hypervolume, 4):>9} "
                         f"{o.hypervolume_fraction:>6.0%} {gap:>7}")
        best = self.best_policy
        if best is not None:
            lines.append(f"Best policy: {best.policy} (gap {number(best.gap)}, "
                         f"{best.epochs} epochs = {best.fraction_of_full:.0%} of no stopping).")
        lines.append(f"gap: the largest shortfall in {self.objective.metric} of a policy's front against a "
                     "point of the no-stopping front, among its points at least as good in every other "
                     "objective (inf: a point without such a match).")
        if any(o.censored for o in self.outcomes):
            lines.append("cens: trials the policy would have continued past their recorded "
                         "end (≥: epochs counted up to there; such a trial is on no front).")
        return "\n".join(lines) + "\n"


def replay_fronts(trials: Sequence[RecordedTrial], policies: Sequence[PolicySpec], max_epochs: int,
                  objectives: Sequence[Objective], *, experiment: str = "", trial_set: str = "all",
                  workers: int = 1) -> FrontReplayReport:
    """Every policy of ``policies`` replayed over ``trials`` (values: vectors in ``objectives``
    order), each judged by the front it returns (see the module doc)."""
    objectives = tuple(objectives)
    all_finals = complete_finals(trials, max_epochs)
    numbers = sorted(all_finals)
    reference = reference_point(list(all_finals.values()), objectives)
    front = [numbers[i] for i in pareto_front([all_finals[n] for n in numbers], objectives)]
    volume = hypervolume([all_finals[n] for n in front], objectives, reference) if reference else 0.0
    outcomes = [simulate_front(trials, spec.make(), max_epochs, objectives, reference, front, workers,
                               spec.name, spec.settings) for spec in policies]
    full_cost = no_stopping_epochs(trials, max_epochs)
    for outcome in outcomes:
        outcome.fraction_of_full = outcome.epochs / full_cost if full_cost else math.nan
        outcome.hypervolume_fraction = outcome.hypervolume / volume if volume else math.nan
    return FrontReplayReport(experiment, objectives, max_epochs, trial_set, workers, len(trials),
                             sum(1 for t in trials if max_epochs in t.values), reference, front,
                             volume, outcomes)


# --------------------------------------------------------------------------- CLI


def _number_list(flag: str, kind: type, low: float, rule: str, inclusive: bool = False):
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: rule: {rule}") from None
        if not values or any(not ((v >= low if inclusive else v > low) and math.isfinite(v)) for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: rule: {rule}")
        return values
    return parse


def _below_max_epochs(flag: str, values: Sequence[int], max_epochs: int, what: str, there: str) -> None:
    """Values of ``flag`` at or above the experiment's ``max_epochs`` stop nothing: all of them
    is bad input (one line, exit 2), some of them are left out, said on stderr."""
    beyond = [v for v in values if v >= max_epochs]
    if len(beyond) == len(values):
        _fail(f"{flag} {','.join(map(str, values))}: the experiment's trials train {max_epochs} "
              f"epoch(s); rule: {what} below max_epochs ({max_epochs})")
    if beyond:
        print(f"tune_nas.replay: {flag} {','.join(map(str, beyond))} left out: at or above the "
              f"experiment's max_epochs ({max_epochs}), {there} stops nothing", file=sys.stderr)


def _out_file(out: Path, experiment: Path) -> Path:
    """Where ``--out`` writes: a file in an existing directory (or ``DIR/replay.json``), outside
    the experiment (whose files only the launcher writes: ``--out trials/x/curves.csv`` would
    have replaced the curves), checked before the replay runs rather than found unwritable
    after it."""
    target = out / REPLAY_FILE if out.is_dir() else out
    if target.is_dir():
        _fail(f"--out {out}: {target} is a directory; rule: a file, or a directory for {REPLAY_FILE}")
    if target.resolve().is_relative_to(experiment.resolve()):
        _fail(f"--out {out}: inside the experiment {experiment}; rule: a file outside the experiment directory, "
              "whose files the launcher writes")
    if not target.parent.is_dir():
        _fail(f"--out {out}: {target.parent} is not a directory; rule: a file in an existing "
              f"directory, or a directory for {REPLAY_FILE}")
    unwritable = unwritable_reason(target.parent)
    if unwritable:
        _fail(f"--out {out}: {unwritable}; rule: a file in a directory this user may write")
    return target


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tune_nas.replay", description=__doc__.split("\n\n")[0],
                formatter_class=DefaultsHelp)
    p.add_argument("experiment", type=Path, help="experiment directory (trials/<name>)")
    p.add_argument("--trials", choices=TRIAL_SETS, default="all",
                   help="replay every trial (censoring the early-stopped ones) or only those "
                   "with complete curves")
    p.add_argument("--workers", type=_number_list("--workers", int, 0, "one integer >= 1"),
                   default=[1], help="trials running at once in simulated time")
    p.add_argument("--grace", type=_number_list("--grace", int, 0, "integers >= 1, comma-separated"),
                   default=None, help="ASHA (or, with several objectives, MOASHA) grace periods, each "
                   "below the experiment's max_epochs (default: 1,2,3)")
    p.add_argument("--rf", type=_number_list("--rf", float, 2, "numbers >= 2, comma-separated (as a search's "
                                             "reduction_factor)", inclusive=True),
                   default=[2, 3, 4], help="ASHA (or MOASHA) reduction factors")
    p.add_argument("--thresholds", type=_number_list("--thresholds", float, 0,
                                                     "numbers in (0, 1), comma-separated"),
                   default=[0.01, 0.05, 0.2], help="curve-fit stopping probabilities (one objective only)")
    p.add_argument("--min-epochs", type=_number_list("--min-epochs", int, 0,
                                                     "integers >= 1, comma-separated"),
                   default=None, help="curve-fit: epochs before any stop (one objective only; default: 4)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--out", type=Path, default=None,
                   help=f"also write the JSON here (a file, or a directory for {REPLAY_FILE})")
    return p


def _fail(message: str) -> NoReturn:
    print(f"tune_nas.replay: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.workers) != 1:
        _fail(f"--workers {','.join(map(str, args.workers))}: rule: one integer >= 1")
    if any(t >= 1 for t in args.thresholds):
        _fail(f"--thresholds {args.thresholds}: rule: numbers in (0, 1)")
    if not args.experiment.is_dir():
        _fail(f"{args.experiment}: no such directory; rule: an experiment directory "
              "(trials/<name>) holding curves.csv")
    out = _out_file(args.out, args.experiment) if args.out is not None else None
    try:
        experiment = load_experiment(args.experiment)
        grace = args.grace or [1, 2, 3]
        if args.grace:  # asked for: one at or above max_epochs would stop nothing, and is said
            _below_max_epochs("--grace", args.grace, experiment.spec.max_epochs, "grace periods", "a rung")
        if args.min_epochs:  # asked for, as --grace
            _below_max_epochs("--min-epochs", args.min_epochs, experiment.spec.max_epochs, "minimums",
                              "a curve fit from there")
        report = replay_experiment(experiment, trial_set=args.trials,
                                   workers=args.workers[0], grace_periods=grace,
                                   reduction_factors=args.rf, thresholds=args.thresholds,
                                   **({"min_epochs": args.min_epochs} if args.min_epochs else {}))
    except ValueError as exc:  # ExperimentError among them: not an experiment, no curves yet
        _fail(str(exc))
    data = strict_json(report.as_dict())
    print(json.dumps(data, indent=2) if args.json else report.text(), end="\n" if args.json else "")
    if out is not None:
        try:
            out.write_text(json.dumps(data, indent=2) + "\n")
        except OSError as exc:  # checked writable before; a full disk shows only now
            _fail(f"--out {args.out}: cannot be written ({exc.strerror or exc}); the report is above; rule: a file "
                  "in a directory with room for it")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
