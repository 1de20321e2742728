"""``python -m tune_nas.replay trials/<name>``: stopping policies re-run on recorded curves.

Nothing is trained: the learning curves an experiment recorded (``curves.csv``) are fed, in
simulated time, to each stopping policy, and each policy's decisions are replayed:

* ``none`` — every trial trains ``max_epochs`` (the reference);
* ``asha(g,rf)`` — :class:`tune_nas.schedulers.asha.AshaPolicy` (grace period ``g``,
  reduction factor ``rf``), which decides exactly as Ray Tune's ASHA does in a search;
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
from typing import Any, NoReturn

from tune_nas.analysis.experiment import Experiment, ExperimentError, load_experiment
from tune_nas.bad_input import EXIT_BAD_INPUT, OneLineParser
from tune_nas.layout import CURVES_FILE
from tune_nas.objectives import Objective
from tune_nas.record import formatting
from tune_nas.record.bookkeeper import strict_json
from tune_nas.schedulers.policy import CONTINUE, SchedulerPolicy, direction_of
from tune_nas.states import TrialState

REPLAY_FILE = "replay.json"
TRIAL_SETS = ("all", "complete")


@dataclass(frozen=True)
class RecordedTrial:
    """One trial's recorded curve: ``values[epoch]`` and, when known, ``seconds[epoch]``."""

    number: int
    state: str
    values: dict[int, float]
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
    """``none``, ASHA for every grace period × reduction factor, curve-fit for every
    minimum × threshold (settings that do not fit in ``max_epochs`` are left out)."""
    from tune_nas.schedulers.asha import AshaPolicy
    from tune_nas.schedulers.curve_fit import CurveFitPolicy, CurvePredictor, default_bounds
    from tune_nas.schedulers.none import NoStopping

    specs = [PolicySpec("none", lambda: NoStopping(max_epochs), {"kind": "none"})]
    for grace in grace_periods:
        for rf in reduction_factors:
            if grace < max_epochs:
                specs.append(PolicySpec(
                    f"asha(g={grace},rf={rf:g})",
                    lambda g=grace, r=rf: AshaPolicy(mode, max_epochs, g, r),
                    {"kind": "asha", "grace_period": grace, "reduction_factor": rf}))
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
class PolicyOutcome:
    """What one policy would have done with the recorded trials."""

    policy: str
    settings: dict[str, Any]
    epochs: int
    seconds: float | None
    full_trials: list[int]
    stopped: dict[int, int]
    censored: list[int]
    pick: int | None
    pick_value: float | None
    keeps_best: bool
    regret: float | None
    fraction_of_full: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        rounded = formatting.rounded
        return {"policy": self.policy, "settings": self.settings, "epochs": self.epochs,
                "fraction_of_full": rounded(self.fraction_of_full),
                "seconds": rounded(self.seconds), "full_trials": self.full_trials,
                "stopped": {str(k): v for k, v in self.stopped.items()},
                "censored": self.censored, "pick": self.pick,
                "pick_value": rounded(self.pick_value), "keeps_best": self.keeps_best,
                "regret": rounded(self.regret)}


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


def simulate(trials: Sequence[RecordedTrial], policy: SchedulerPolicy, max_epochs: int,
             objective: Objective | str, workers: int = 1, name: str = "",
             settings: dict[str, Any] | None = None) -> PolicyOutcome:
    """Replay ``policy`` over ``trials`` (see the module doc for time and censoring); its pick
    and regret are by ``objective`` (or a bare direction, ``"max"``/``"min"``)."""
    objective = _objective(objective)
    if workers < 1:
        raise ValueError(f"workers={workers}: rule: workers >= 1")
    queue = deque(sorted(trials, key=lambda t: t.number))
    events: list[tuple[float, int, int]] = []  # (time an epoch ends, trial number, epoch)
    by_number = {t.number: t for t in trials}
    reached: dict[int, int] = {}
    stopped: dict[int, int] = {}
    censored: list[int] = []

    def start(now: float) -> None:
        while queue:
            trial = queue.popleft()
            if 1 in trial.values:
                heapq.heappush(events, (now + 1, trial.number, 1))
                return
            reached[trial.number] = 0  # nothing recorded: it ended before its first epoch

    for _ in range(workers):
        start(0.0)
    while events:
        now, number, epoch = heapq.heappop(events)
        trial = by_number[number]
        value = trial.values[epoch]
        decision = policy.on_result(str(number), epoch, value)
        reached[number] = epoch
        if decision == CONTINUE and epoch < max_epochs and epoch + 1 in trial.values:
            heapq.heappush(events, (now + 1, number, epoch + 1))
            continue
        if decision == CONTINUE and epoch < max_epochs and trial.state != TrialState.FAIL:
            censored.append(number)  # the policy would go on; the recording does not
        elif decision != CONTINUE and epoch < max_epochs:
            stopped[number] = epoch
        policy.on_end(str(number), epoch, value)
        start(now)
    full = sorted(n for n, e in reached.items() if e >= max_epochs)
    finals = {n: by_number[n].values[max_epochs] for n in full
              if math.isfinite(by_number[n].values[max_epochs])}
    pick = objective.best_of(sorted(finals), finals.get)  # ties: the lowest trial number
    best, best_numbers = true_best(trials, max_epochs, objective)
    regret = None
    if pick is not None and best is not None:
        regret = objective.regret(best, finals[pick])
    seconds = [by_number[n].seconds.get(e) for n, last in reached.items()
               for e in range(1, last + 1)]
    total_seconds = (sum(s for s in seconds if s is not None)
                     if seconds and all(s is not None for s in seconds) else None)
    return PolicyOutcome(policy=name, settings=dict(settings or {}), epochs=sum(reached.values()),
                         seconds=total_seconds, full_trials=full, stopped=stopped,
                         censored=sorted(censored), pick=pick,
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
                 (f"  {'policy':<22} {'epochs':>6} {'of full':>7} {'seconds':>8} {'full':>4} "
                 f"{'cens':>4} {'best?':>5} {'pick':>5} {'value':>7} {'regret':>7}")]
        for o in self.outcomes:
            epochs = f"≥{o.epochs}" if o.censored else str(o.epochs)
            lines.append(f"  {o.policy:<22} {epochs:>6} {o.fraction_of_full:>7.0%} "
                         f"{number(o.seconds, 1):>8} {len(o.full_trials):>4} "
                         f"{len(o.censored):>4} {'yes' if o.keeps_best else 'no':>5} "
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


def recorded_trials(curves, metric: str, trial_set: str = "all",
                    max_epochs: int | None = None) -> list[RecordedTrial]:
    """The trials of a curves table (as :func:`tune_nas.analysis.experiment.load_experiment`
    reads it): each trial's values of ``metric`` by epoch."""
    if trial_set not in TRIAL_SETS:
        raise ValueError(f"trial_set={trial_set!r}: rule: one of {TRIAL_SETS}")
    if metric not in curves.columns:
        raise ExperimentError(f"metric {metric!r} is not in {CURVES_FILE}; rule: the metric a "
                              "search reported every epoch")
    trials = []
    for number, rows in curves.groupby("trial_number", sort=True):
        rows = rows[rows[metric].notna()]
        values = {int(e): float(v) for e, v in zip(rows["epoch"], rows[metric])}
        seconds = ({int(e): float(s) for e, s in zip(rows["epoch"], rows["time/epoch_s"])
                    if math.isfinite(s)} if "time/epoch_s" in rows.columns else {})
        state = str(rows["state"].iloc[-1]) if len(rows) else TrialState.FAIL
        trial = RecordedTrial(int(number), state, values, seconds)
        if trial_set == "complete" and (max_epochs is None or max_epochs not in values):
            continue
        trials.append(trial)
    return trials


def replay(trials: Sequence[RecordedTrial], policies: Sequence[PolicySpec], max_epochs: int,
           objective: Objective | str, *, metric: str = "", experiment: str = "",
           trial_set: str = "all", workers: int = 1) -> ReplayReport:
    """Every policy of ``policies`` replayed over ``trials``; finals ranked by ``objective``
    (or a bare direction for the values of ``metric``)."""
    objective = _objective(objective, metric)
    outcomes = [simulate(trials, spec.make(), max_epochs, objective, workers, spec.name,
                         spec.settings) for spec in policies]
    full_cost = sum(min(t.last_epoch, max_epochs) if t.state == TrialState.FAIL else max_epochs
                    for t in trials)
    for outcome in outcomes:
        outcome.fraction_of_full = outcome.epochs / full_cost if full_cost else math.nan
    best, best_numbers = true_best(trials, max_epochs, objective)
    return ReplayReport(experiment, objective, max_epochs, trial_set, workers, len(trials),
                        sum(1 for t in trials if max_epochs in t.values), best, best_numbers,
                        outcomes)


def replay_experiment(experiment: Experiment | str | Path, *, trial_set: str = "all",
                      workers: int = 1, policies: Sequence[PolicySpec] | None = None,
                      **grid: Sequence[Any]) -> ReplayReport:
    """Replay an experiment's curves (a directory, or one already loaded) with its
    objective and ``max_epochs``. Raises :class:`ExperimentError` when it is not an
    experiment or no trial has reported an epoch yet."""
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    if experiment.curves is None or experiment.curves.empty:
        raise ExperimentError(f"{experiment.layout.curves}: no trial has reported an epoch yet; "
                              "rule: a replay needs recorded learning curves")
    objective, max_epochs = experiment.objective, experiment.spec.max_epochs
    trials = recorded_trials(experiment.curves, objective.metric, trial_set, max_epochs)
    if policies is None:
        policies = default_policies(objective.direction, max_epochs, objective.metric, **grid)
    return replay(trials, policies, max_epochs, objective, experiment=experiment.name,
                  trial_set=trial_set, workers=workers)


# --------------------------------------------------------------------------- CLI


def _number_list(flag: str, kind: type, low: float, rule: str):
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: rule: {rule}") from None
        if not values or any(not (v > low and math.isfinite(v)) for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: rule: {rule}")
        return values
    return parse


def _out_file(out: Path) -> Path:
    """Where ``--out`` writes: a file in an existing directory (or ``DIR/replay.json``), checked
    before the replay runs rather than found unwritable after it."""
    target = out / REPLAY_FILE if out.is_dir() else out
    if target.is_dir():
        _fail(f"--out {out}: {target} is a directory; rule: a file, or a directory for {REPLAY_FILE}")
    if not target.parent.is_dir():
        _fail(f"--out {out}: {target.parent} is not a directory; rule: a file in an existing "
              f"directory, or a directory for {REPLAY_FILE}")
    return target


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tune_nas.replay", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("experiment", type=Path, help="experiment directory (trials/<name>)")
    p.add_argument("--trials", choices=TRIAL_SETS, default="all",
                   help="replay every trial (censoring the early-stopped ones) or only those "
                   "with complete curves")
    p.add_argument("--workers", type=_number_list("--workers", int, 0, "one integer >= 1"),
                   default=[1], help="trials running at once in simulated time")
    p.add_argument("--grace", type=_number_list("--grace", int, 0, "integers >= 1, comma-separated"),
                   default=[1, 2, 3], help="ASHA grace periods")
    p.add_argument("--rf", type=_number_list("--rf", float, 1, "numbers > 1, comma-separated"),
                   default=[2, 3, 4], help="ASHA reduction factors")
    p.add_argument("--thresholds", type=_number_list("--thresholds", float, 0,
                                                     "numbers in (0, 1), comma-separated"),
                   default=[0.01, 0.05, 0.2], help="curve-fit stopping probabilities")
    p.add_argument("--min-epochs", type=_number_list("--min-epochs", int, 0,
                                                     "integers >= 1, comma-separated"),
                   default=[4], help="curve-fit: epochs before any stop")
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
    out = _out_file(args.out) if args.out is not None else None
    try:
        report = replay_experiment(args.experiment, trial_set=args.trials,
                                   workers=args.workers[0], grace_periods=args.grace,
                                   reduction_factors=args.rf, thresholds=args.thresholds,
                                   min_epochs=args.min_epochs)
    except ValueError as exc:  # ExperimentError among them: not an experiment, no curves yet
        _fail(str(exc))
    data = strict_json(report.as_dict())
    print(json.dumps(data, indent=2) if args.json else report.text(), end="\n" if args.json else "")
    if out is not None:
        out.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
