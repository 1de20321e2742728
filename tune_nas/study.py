"""``python -m tune_nas.study``: read-only inspection of an experiment's Optuna study.

    python -m tune_nas.study trials/<name> [--top N] [--json] [--plots DIR] [--fidelity]
    python -m tune_nas.study --storage URL [--study NAME] ...

Prints the top trials (number, state, config, epochs run, best value of the metric, test
accuracy, model parameters), the counts by state and the hyperparameter importances (fANOVA
with a fixed seed, from the COMPLETE trials). ``--plots DIR`` writes Optuna's optimization
history, parameter importances, parallel coordinates, intermediate values (learning curves)
and, for a study with several objectives, the Pareto front, each as interactive HTML (plotly)
and PNG (matplotlib, Agg). ``--json`` prints the same content for scripts.

Inspection never writes to the experiment: a SQLite study is opened read-only (SQLite's
``mode=ro``, without Optuna's table creation and schema check), waits for a writer's lock
instead of failing, and plots go only to ``--plots DIR`` (which must lie outside the
experiment directory). Bad input is one line naming the thing, the value and the rule, and
exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

from tune_nas.analysis.experiment import Experiment, ExperimentError, load_experiment
from tune_nas.bad_input import EXIT_BAD_INPUT, DefaultsHelp, OneLineParser, number, unwritable_reason
from tune_nas.layout import EXPERIMENT_FILE, STUDY_FILE, ExperimentLayout
from tune_nas.objectives import Objective, hypervolume, is_number
from tune_nas.objectives import reference_point as objectives_reference_point
from tune_nas.paths import UnknownHome, expand_user
from tune_nas.record import formatting
from tune_nas.states import FINISHED, TrialState
from tune_nas.storage.masking import mask_url

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

#: Seconds a reader waits for a writer's lock before giving up (a commit takes milliseconds).
LOCK_TIMEOUT_S = 30.0
IMPORTANCE_SEED = 0
#: Below this many COMPLETE trials the importances are printed with a caution.
FEW_TRIALS = 10
#: States in the order the ranking (and the counts line) puts them (WAITING: Optuna's state of
#: a trial asked for but not started).
#: PAUSED: a RUNNING Optuna trial that a pausing scheduler (asha_promotion) set aside, its
#: ``paused_after_epoch`` user attribute an epoch.
STATE_ORDER = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.PAUSED, "WAITING",
               TrialState.FAIL)
PLOTLYJS_CHOICES = ("directory", "inline", "cdn")


class StudyInputError(ValueError):
    """Bad input: the message is one line naming the thing, its value and the rule."""


# --------------------------------------------------------------------------- opening


def readonly_sqlite_connection(db_path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to the SQLite file ``db_path`` that cannot write to it (SQLite's
    ``file:...?mode=ro`` URI, the path quoted)."""
    uri = f"file:{quote(str(Path(db_path).resolve()))}?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)


def readonly_sqlite_storage(db_path: Path, timeout_s: float = LOCK_TIMEOUT_S):
    """An ``RDBStorage`` on ``db_path`` that cannot write to it.

    The connection is SQLite's ``file:...?mode=ro`` URI (made by our own ``creator``, since
    SQLAlchemy would unquote a path with ``%``, ``#`` or ``?`` inside its URL), so any write
    raises instead of touching the file. ``skip_table_creation`` and
    ``skip_compatibility_check`` keep Optuna from creating tables or checking (and possibly
    stamping) the schema version; what remains of its version bookkeeping only reads a
    database Optuna made. ``timeout`` makes a reader wait while a writer holds the lock for
    a commit, instead of raising ``database is locked``.
    """
    import optuna

    path = Path(db_path).resolve()

    def connect() -> sqlite3.Connection:
        return readonly_sqlite_connection(path, timeout_s)

    return optuna.storages.RDBStorage(
        f"sqlite:///{path}", engine_kwargs={"creator": connect},
        skip_table_creation=True, skip_compatibility_check=True)


def _sqlite_file(url: str) -> Path | None:
    """The database file of a plain ``sqlite:///PATH`` URL; None for other URLs."""
    import sqlalchemy

    parsed = sqlalchemy.make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or parsed.query:
        return None  # memory or a URI the user spelled out: passed on as given
    return expand_user(database)


def open_storage(url: str, flag: str = "--storage"):
    """A read-only storage for ``url``: SQLite files via :func:`readonly_sqlite_storage`,
    other databases with Optuna's table creation and schema check turned off."""
    import optuna

    shown = mask_url(url)
    try:
        db_file = _sqlite_file(url)
    except UnknownHome as exc:
        raise StudyInputError(f"{flag} {shown!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy.exc.ArgumentError and friends
        raise StudyInputError(f"{flag} {shown!r}: not a database URL ({formatting.first_line(exc)}); "
                              "rule: a SQLAlchemy URL such as sqlite:///trials/NAME/optuna.db"
                              ) from None
    if db_file is not None and not db_file.is_file():
        raise StudyInputError(f"{flag} {shown}: no file {db_file}; rule: the SQLite file of an "
                              "existing study (inspection never creates one)")
    try:
        if db_file is not None:
            return readonly_sqlite_storage(db_file)
        return optuna.storages.RDBStorage(url, skip_table_creation=True,
                                          skip_compatibility_check=True)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one line
        raise StudyInputError(f"{flag} {shown}: cannot be opened as an Optuna storage "
                              f"({formatting.first_line(exc)}); rule: a database an Optuna study wrote"
                              ) from None


@dataclass
class Source:
    """Where a study was read from; ``experiment`` is None for ``--storage``."""

    storage_url: str
    study_name: str
    experiment: Experiment | None = None
    db_file: Path | None = None  # the experiment's optuna.db, opened without URL parsing

    @property
    def experiment_dir(self) -> Path | None:
        return self.experiment.root if self.experiment is not None else None


def resolve_source(experiment: str | None, storage: str | None, study: str | None) -> Source:
    """Check the command line's choice of study; raises :class:`StudyInputError`."""
    if experiment and storage:
        raise StudyInputError(f"{experiment} and --storage {mask_url(storage)}: both given; "
                              "rule: an experiment directory or --storage URL, not both")
    if storage:
        return Source(storage, study or "")
    if not experiment:
        raise StudyInputError("no study given; rule: pass an experiment directory "
                              "(trials/NAME) or --storage URL [--study NAME]")
    try:
        layout = ExperimentLayout(expand_user(experiment).resolve())
    except UnknownHome as exc:
        raise StudyInputError(str(exc)) from None
    if not layout.root.exists():
        raise StudyInputError(f"{experiment}: no such directory; rule: an experiment directory "
                              f"(trials/NAME) holding {STUDY_FILE}")
    if not layout.root.is_dir():
        raise StudyInputError(f"{experiment}: not a directory; rule: an experiment directory "
                              f"(trials/NAME) holding {STUDY_FILE}")
    if not layout.study.is_file() and not layout.experiment.is_file():
        raise StudyInputError(f"{experiment}: has no {STUDY_FILE}; rule: an experiment directory "
                              "that python -m tune_nas.launch has started")
    try:
        saved = load_experiment(layout.root, curves=False)
    except ExperimentError as exc:
        raise StudyInputError(str(exc)) from None
    if not layout.study.is_file() and saved.storage:
        # launched with --storage: the study lives in that database (URLs there hold no
        # password; tune_nas refuses them, so the environment supplies it, e.g. PGPASSWORD)
        return Source(saved.storage, study or saved.name, saved)
    if not layout.study.is_file():
        raise StudyInputError(f"{experiment}: has no {STUDY_FILE}; rule: an experiment directory "
                              f"that python -m tune_nas.launch has started (its {EXPERIMENT_FILE} "
                              "names no other study storage)")
    return Source(layout.study_url(), study or saved.name, saved, layout.study)


def load_study(source: Source, explicit_name: bool = False) -> optuna.Study:
    """Load ``source``'s study read-only; an unknown name lists the names the storage holds."""
    import optuna

    shown = mask_url(source.storage_url)
    if source.db_file is not None:
        try:
            storage = readonly_sqlite_storage(source.db_file)
        except Exception as exc:  # noqa: BLE001 - any failure becomes one line
            raise StudyInputError(f"{source.db_file}: cannot be opened as an Optuna study "
                                  f"({formatting.first_line(exc)}); rule: the {STUDY_FILE} an "
                                  "experiment wrote") from None
    else:
        storage = open_storage(source.storage_url)
    try:
        names = optuna.get_all_study_names(storage)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one line
        raise StudyInputError(f"{shown}: holds no Optuna study ({formatting.first_line(exc)}); rule: a "
                              "database an Optuna study wrote") from None
    name = source.study_name
    if not name:
        if len(names) != 1:
            raise StudyInputError(f"--storage {shown}: holds {len(names)} studies "
                                  f"({', '.join(names) or 'none'}); rule: name one with --study")
        name = names[0]
    elif name not in names:
        what = "--study" if explicit_name or source.experiment_dir is None else "study"
        raise StudyInputError(f"{what} {name!r}: not in {shown}; rule: one of "
                              f"{', '.join(repr(n) for n in names) or '(no studies)'}")
    source.study_name = name
    with _quiet():
        return optuna.load_study(study_name=name, storage=storage)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Optuna's experimental-feature warnings and info logs for a block."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


# --------------------------------------------------------------------------- summary


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass
class TrialRow:
    """What the table and the JSON say about one trial."""

    number: int
    state: str
    values: list[float | None] | None
    best: float | None
    epochs: int
    config: dict[str, Any]
    test_acc: float | None
    model_params: int | None
    intermediate: dict[int, float]
    user_attrs: dict[str, Any]
    pareto: bool = False
    test_r2: float | None = None  # a regressor's (an emulator's) test R²

    def as_dict(self) -> dict[str, Any]:
        attrs = self.user_attrs
        return {"number": self.number, "state": self.state, "values": self.values,
                "value": self.values[0] if self.values else None, "best_value": self.best,
                "epochs": self.epochs, "config": self.config, "test_acc": self.test_acc,
                **({"test_r2": self.test_r2} if "test_r2" in self.user_attrs else {}),
                "model_params": self.model_params, "pareto_optimal": self.pareto,
                "ray_trial_id": attrs.get("ray_trial_id"),
                "tensorboard_run": attrs.get("tensorboard_run"),
                "checkpoint": attrs.get("checkpoint"), "retries": attrs.get("retries"),
                "error": attrs.get("error"),
                "intermediate_values": {str(k): v for k, v in sorted(self.intermediate.items())}}


def trial_row(trial: FrozenTrial, objective: Objective) -> TrialRow:
    """One trial as a row: epochs from its ``epochs`` attribute, else its last reported step;
    best = the best (by ``objective``, the study's first) of its per-epoch values and its
    final value."""
    intermediate = {int(k): v for k, v in trial.intermediate_values.items()
                    if _finite(v) is not None}
    values = [_finite(v) for v in trial.values] if trial.values is not None else None
    attrs = dict(trial.user_attrs)
    epochs = attrs.get("epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool):
        epochs = max(intermediate) if intermediate else 0
    candidates = list(intermediate.values())
    if values and len(values) == 1 and values[0] is not None:
        candidates.append(values[0])
    best = objective.best(candidates)
    model_params = attrs.get("params")
    state = trial.state.name
    paused_after = attrs.get("paused_after_epoch")
    if state == TrialState.RUNNING and isinstance(paused_after, int) and not isinstance(paused_after, bool):
        state = TrialState.PAUSED  # Optuna has no such state: the study's attribute says it
    return TrialRow(number=trial.number, state=state, values=values, best=best,
                    epochs=epochs, config=dict(trial.params),
                    test_acc=_finite(attrs.get("test_acc")), test_r2=_finite(attrs.get("test_r2")),
                    model_params=model_params if isinstance(model_params, int) else None,
                    intermediate=intermediate, user_attrs=attrs)


def rank_key(row: TrialRow, objective: Objective) -> tuple:
    """COMPLETE trials first, best value of ``objective`` (the study's first) first
    (Pareto-optimal ones first when there are several objectives); then PRUNED, RUNNING and
    PAUSED ones by the epoch they reached and their value there (the order the tuner's docstring
    gives pruned trials); then WAITING, then FAIL."""

    def worse_first(value: float | None) -> float:  # ascending sort: best first, missing last
        return -objective.sign * value if value is not None else math.inf

    first = row.values[0] if row.values and row.values[0] is not None else None
    state_rank = STATE_ORDER.index(row.state) if row.state in STATE_ORDER else len(STATE_ORDER)
    if row.state == TrialState.COMPLETE:
        return (state_rank, 0 if row.pareto else 1, 0, worse_first(first), row.number)
    if row.state in (TrialState.PRUNED, TrialState.RUNNING, TrialState.PAUSED):
        last = row.intermediate[max(row.intermediate)] if row.intermediate else first
        return (state_rank, 0, -row.epochs, worse_first(last), row.number)
    return (state_rank, 0, 0, 0.0, row.number)


@dataclass
class Importances:
    """Hyperparameter importances per objective (normalised to sum 1), or why there are none."""

    evaluator: str
    n_complete: int
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"evaluator": self.evaluator, "n_complete": self.n_complete,
                "values": self.values or None, "note": self.note}


def importance_evaluator(seed: int = IMPORTANCE_SEED):
    """fANOVA (Hutter et al., ICML 2014) with a fixed seed: the same study, the same numbers."""
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(seed=seed)


def param_importances(study: optuna.Study, metric_names: Sequence[str],
                      seed: int = IMPORTANCE_SEED) -> Importances:
    """Optuna's importances from the COMPLETE trials (pruned ones are not used by Optuna).

    Needs at least 2 COMPLETE trials; when the evaluator raises, or every importance is 0
    (the trials' values do not vary), ``note`` says so instead of reporting made-up shares.
    """
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    result = Importances(f"fANOVA, seed {seed}", len(complete))
    if len(complete) < 2:
        result.note = (f"not computed: {len(complete)} COMPLETE trial(s); rule: importances "
                       "need at least 2 (pruned and failed trials are not used)")
        return result
    targets = _targets(study, metric_names)
    try:
        with _quiet():
            for name, target in targets:
                raw = importance_evaluator(seed).evaluate(study, target=target)
                total = sum(raw.values())
                if not raw or total <= 0 or not math.isfinite(total):
                    result.note = (f"not computed for {name}: every importance is 0 (the COMPLETE "
                                   "trials' values or parameters do not vary)")
                    result.values = {}
                    return result
                result.values[name] = {k: v / total for k, v in
                                       sorted(raw.items(), key=lambda kv: -kv[1])}
    except Exception as exc:  # noqa: BLE001 - any failure becomes one line
        result.values = {}
        result.note = (f"not computed: Optuna's evaluator raised {type(exc).__name__}: "
                       f"{formatting.first_line(exc)}")
    return result


def _targets(study: optuna.Study, metric_names: Sequence[str]
             ) -> list[tuple[str, Callable[[FrozenTrial], float] | None]]:
    """(name, target) per objective; target None for a single-objective study."""
    if len(study.directions) == 1:
        return [(metric_names[0], None)]
    return [(name, (lambda t, i=i: t.values[i])) for i, name in enumerate(metric_names)]


@dataclass
class StudyReport:
    """Everything the table and ``--json`` say about a study."""

    study_name: str
    storage: str
    directions: list[str]
    metric_names: list[str]
    counts: dict[str, int]
    rows: list[TrialRow]  # ranked, best first
    importances: Importances
    max_epochs: int | None = None
    experiment_dir: str | None = None
    #: what each value column optimises (its metric name and direction)
    objectives: list[Objective] = field(default_factory=list)

    @property
    def lagging(self) -> list[int]:
        """Finished trials whose per-epoch values in the study stop before the epochs they ran
        (the study missed their last report; what it ranks them by is an earlier epoch's)."""
        if len(self.directions) > 1:
            return []  # a multi-objective study takes no per-epoch values (Optuna refuses them)
        return [r.number for r in self.rows if r.state in ("COMPLETE", "PRUNED")
                and isinstance(r.user_attrs.get("epochs"), int)
                and r.epochs > (max(r.intermediate) if r.intermediate else 0)]

    @property
    def best(self) -> TrialRow | None:
        return self.rows[0] if self.rows and self.rows[0].state == "COMPLETE" else None

    def as_dict(self, top: int) -> dict[str, Any]:
        return {"study": self.study_name, "storage": self.storage,
                "experiment_dir": self.experiment_dir, "directions": self.directions,
                "metric_names": self.metric_names, "max_epochs": self.max_epochs,
                "n_trials": sum(self.counts.values()), "counts": self.counts,
                "best": self.best.as_dict() if self.best else None,
                "top": [r.as_dict() for r in self.rows[:top]],
                "failed": [{"number": r.number, "error": r.user_attrs.get("error")}
                           for r in self.rows if r.state == "FAIL"],
                "importances": self.importances.as_dict(),
                "missing_last_report": self.lagging}


def metric_names_of(study: optuna.Study, experiment: Experiment | None) -> list[str]:
    """The objectives' names: the study's own, else the experiment's metric, else value."""
    n = len(study.directions)
    names = study.metric_names
    if names and len(names) == n:
        return list(names)
    if n == 1 and experiment is not None:
        return [experiment.objective.metric]
    return ["value"] if n == 1 else [f"value {i}" for i in range(n)]


def objectives_of(study: optuna.Study, names: Sequence[str]) -> list[Objective]:
    """The study's objectives: each name with the direction Optuna optimised it in."""
    import optuna

    maximize = optuna.study.StudyDirection.MAXIMIZE
    return [Objective(name, "max" if direction == maximize else "min")
            for name, direction in zip(names, study.directions)]


def summarize(study: optuna.Study, source: Source, importance_seed: int = IMPORTANCE_SEED
              ) -> StudyReport:
    """Read the study once and rank its trials; see :func:`rank_key`."""
    with _quiet():
        trials = study.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in study.directions]
    names = metric_names_of(study, source.experiment)
    objectives = objectives_of(study, names)
    first = objectives[0]
    rows = [trial_row(t, first) for t in trials]
    if len(directions) > 1:
        front = {t.number for t in study.best_trials}
        for row in rows:
            row.pareto = row.number in front
            row.best = None  # "best of the epochs" has no meaning for several objectives
    rows.sort(key=lambda r: rank_key(r, first))
    counts: dict[str, int] = {str(s): 0 for s in FINISHED}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    counts = {str(s): counts[s] for s in (*STATE_ORDER, *sorted(set(counts) - set(STATE_ORDER)))
              if s in counts}
    return StudyReport(
        study_name=study.study_name, storage=mask_url(source.storage_url),
        directions=directions, metric_names=names, counts=counts, rows=rows,
        importances=param_importances(study, names, importance_seed),
        max_epochs=source.experiment.spec.max_epochs if source.experiment is not None else None,
        experiment_dir=str(source.experiment_dir) if source.experiment_dir else None,
        objectives=objectives)


# --------------------------------------------------------------------------- text


def _numbers(numbers: Sequence[int], limit: int = 12) -> str:
    text = ", ".join(str(n) for n in sorted(numbers)[:limit])
    return text + (f", ... ({len(numbers)} in all)" if len(numbers) > limit else "")


def render_text(report: StudyReport, top: int) -> str:
    """The human-readable report: counts, the best trial, the top table, failures, importances."""
    lines: list[str] = []
    n = sum(report.counts.values())
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    objective = ", ".join(o.describe() for o in report.objectives)
    budget = f", at most {report.max_epochs} epochs per trial" if report.max_epochs else ""
    lines.append(f"Study {report.study_name}: {n} trials ({counts}); objective {objective}{budget}")
    lines.append(f"  storage: {report.storage} (opened read-only)")
    if n == 0:
        lines.append("No trials yet.")
        return "\n".join(lines)
    single = len(report.directions) == 1
    metric = report.metric_names[0]
    regression = any("test_r2" in row.user_attrs for row in report.rows)  # an emulator search: test R²
    test_column = "test_r2" if regression else "test_acc"
    value_cols = [f"{m:>9}" for m in report.metric_names] if not single else [f"{metric:>9}"]
    header = (f"{'rank':>4}  {'trial':>5}  {'state':<8} {'epochs':>6}  " + "  ".join(value_cols)
              + (f"  {'best ' + metric:>12}" if single else "  pareto")
              + f"  {test_column:>8}  {'params':>7}  config")
    shown = report.rows[:top]
    lines.append("")
    lines.append(f"Top {len(shown)} of {n} trials (COMPLETE by value; then PRUNED/RUNNING by the "
                 "epoch reached and their value there; FAIL last):")
    lines.append(header)
    for rank, row in enumerate(shown, 1):
        values = row.values if row.values is not None else [None] * len(report.directions)
        cells = "  ".join(f"{formatting.number(v):>9}" for v in values)
        extra = f"  {formatting.number(row.best):>12}" if single else f"  {'*' if row.pareto else ' ':>6}"
        lines.append(f"{rank:>4}  {row.number:>5}  {row.state:<8} {row.epochs:>6}  {cells}{extra}"
                     f"  {formatting.number(row.test_r2 if regression else row.test_acc):>8}  "
                     f"{formatting.count(row.model_params):>7}  "
                     f"{formatting.short_config(row.config)}")
    if not single:
        lines += _front_lines(report)
    lagging = report.lagging
    if lagging:
        finished = report.counts.get("COMPLETE", 0) + report.counts.get("PRUNED", 0)
        lines.append(f"Note: {len(lagging)} of {finished} finished trials have fewer per-epoch "
                     "values in the study than the epochs they ran (their last epoch was not "
                     f"reported to Optuna): trials {_numbers(lagging)}.")
    failed = [r for r in report.rows if r.state == "FAIL"]
    if failed:
        lines.append("")
        lines.append(f"Failed trials ({len(failed)}):")
        for row in failed[:5]:
            error = row.user_attrs.get("error") or "(no error recorded)"
            lines.append(f"  {row.number:>5}  {error}")
        if len(failed) > 5:
            lines.append(f"  ... and {len(failed) - 5} more (see --json)")
    imp = report.importances
    lines.append("")
    if not imp.values:
        lines.append(f"Hyperparameter importances: {imp.note}")
    else:
        caution = (f"; only {imp.n_complete} trials: a rough guide" if imp.n_complete < FEW_TRIALS
                   else "")
        lines.append(f"Hyperparameter importances ({imp.evaluator}, from {imp.n_complete} "
                     f"COMPLETE trials{caution}):")
        for name, values in imp.values.items():
            if len(imp.values) > 1:
                lines.append(f"  {name}:")
            width = max(len(k) for k in values)
            for param, share in values.items():
                lines.append(f"  {param:<{width}}  {share:6.3f}  {'#' * round(share * 40)}")
    return "\n".join(lines)


def pareto_rows(report: StudyReport) -> list[TrialRow]:
    """The trials on the Pareto front (feasible COMPLETE trials no other dominates), best first
    by the first objective."""
    return [r for r in report.rows if r.pareto]


def reference_point(report: StudyReport) -> tuple[float, ...] | None:
    """Where the hypervolume is measured from: each objective's worst value over the COMPLETE
    trials, moved outward by a tenth of its range (so the extremes of the front count), or None
    without a COMPLETE trial."""
    values = [r.values for r in report.rows if r.state == "COMPLETE" and r.values is not None
              and all(is_number(v) for v in r.values)]
    return objectives_reference_point(values, report.objectives, margin=0.1)


def _front_lines(report: StudyReport) -> list[str]:
    front = pareto_rows(report)
    reference = reference_point(report)
    if not front or reference is None:
        return ["", "Pareto front: no feasible COMPLETE trial yet."]
    volume = hypervolume([r.values for r in front], report.objectives, reference)
    ref_text = ", ".join(f"{o.metric} {formatting.number(v)}" for o, v in zip(report.objectives, reference))
    lines = ["", f"Pareto front ({len(front)} trials; hypervolume {volume:.6g} from the reference point {ref_text}):"]
    lines.append(f"  {'trial':>5}  " + "  ".join(f"{m:>14}" for m in report.metric_names) + "  config")
    for row in front:
        lines.append(f"  {row.number:>5}  " + "  ".join(f"{formatting.number(v):>14}" for v in row.values)
                     + f"  {formatting.short_config(row.config)}")
    return lines


# --------------------------------------------------------------------------- plots


@dataclass
class PlotResult:
    """One plot: the files written, or the one-line reason it was skipped."""

    name: str
    files: list[str] = field(default_factory=list)
    skipped: str | None = None

    def line(self) -> str:
        if self.skipped:
            return f"  {self.name}: skipped ({self.skipped})"
        return f"  {self.name}: {', '.join(Path(f).name for f in self.files)}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_plots(study: optuna.Study, report: StudyReport, out_dir: Path,
                plotlyjs: str = "directory", seed: int = IMPORTANCE_SEED) -> list[PlotResult]:
    """Write each plot as ``<name>.html`` (plotly) and ``<name>.png`` (matplotlib, Agg).

    ``plotlyjs="directory"`` writes plotly.js once as ``plotly.min.js`` beside the HTML files
    (offline, and one 4 MB copy instead of one per plot); ``"inline"`` puts it into every
    file; ``"cdn"`` links it from the internet. A plot Optuna cannot make for this study
    (no COMPLETE trial, no intermediate values, a single objective for the Pareto front) is
    skipped with its reason.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    out_dir.mkdir(parents=True, exist_ok=True)
    n_complete = report.counts.get("COMPLETE", 0)
    targets = _targets(study, report.metric_names)
    single = len(targets) == 1
    no_complete = None if n_complete else "no COMPLETE trial yet"
    has_curves = any(r.intermediate for r in report.rows)
    n_obj = len(report.directions)

    def target_kw(name: str, target: Callable | None) -> dict[str, Any]:
        return {"target_name": name} if target is None else {"target": target, "target_name": name}

    def suffix(name: str) -> str:
        return "" if single else f"_{_safe(name)}"

    jobs: list[tuple[str, str | None, Callable[[Any], Any]]] = []
    for name, target in targets:
        kw = target_kw(name, target)
        jobs.append((f"optimization_history{suffix(name)}", no_complete,
                     lambda m, kw=kw: m.plot_optimization_history(study, **kw)))
    imp_skip = no_complete or (None if report.importances.values else report.importances.note)
    imp_kw = {"target_name": targets[0][0]} if single else {}  # several: one bar set each
    jobs.append(("param_importances", imp_skip, lambda m: m.plot_param_importances(
        study, evaluator=importance_evaluator(seed), **imp_kw)))
    for name, target in targets:
        kw = target_kw(name, target)
        jobs.append((f"parallel_coordinate{suffix(name)}", no_complete,
                     lambda m, kw=kw: m.plot_parallel_coordinate(study, **kw)))
    jobs.append(("intermediate_values",
                 None if has_curves else "no trial reported intermediate values",
                 lambda m: m.plot_intermediate_values(study)))
    if n_obj == 1:
        pareto_skip = "a single objective has no Pareto front"
    elif n_obj > 3:
        pareto_skip = f"{n_obj} objectives; Optuna draws the front of 2 or 3"
    else:
        pareto_skip = no_complete
    jobs.append(("pareto_front", pareto_skip,
                 lambda m: m.plot_pareto_front(study, target_names=report.metric_names)))
    reference = reference_point(report) if n_obj > 1 else None
    hv_skip = "a single objective has no hypervolume" if n_obj == 1 else (no_complete if reference is None else None)
    jobs.append(("hypervolume_history", hv_skip,
                 lambda m: m.plot_hypervolume_history(study, reference_point=reference)))

    results: list[PlotResult] = []
    for name, skip, draw in jobs:
        result = PlotResult(name)
        results.append(result)
        if skip:
            result.skipped = skip
            continue
        html, png = out_dir / f"{name}.html", out_dir / f"{name}.png"
        try:
            with _quiet():
                fig = draw(vis)
                fig.write_html(str(html), include_plotlyjs=_plotlyjs_arg(plotlyjs))
                result.files.append(str(html))
                axes = draw(vis_mpl)
                figure = _figure_of(axes)
                if name.startswith("parallel_coordinate"):  # one axis per parameter: widen
                    n_axes = 1 + len({k for r in report.rows if r.state == "COMPLETE"
                                      for k in r.config})
                    figure.set_size_inches(max(6.4, 1.2 * n_axes), 4.8)
                try:
                    figure.savefig(png, dpi=100, bbox_inches="tight")
                finally:
                    plt.close(figure)
                result.files.append(str(png))
        except Exception as exc:  # noqa: BLE001 - Optuna cannot make it: say why
            result.skipped = f"Optuna raised {type(exc).__name__}: {formatting.first_line(exc)}"
    return results


def _plotlyjs_arg(choice: str) -> bool | str:
    return True if choice == "inline" else choice


def _figure_of(axes: Any):
    if hasattr(axes, "figure"):
        return axes.figure
    return axes.flat[0].figure  # an array of Axes


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tune_nas.study", description=__doc__.split("\n\n")[0],
                formatter_class=DefaultsHelp)
    p.add_argument("experiment", nargs="?", default=None,
                   help=f"experiment directory (trials/NAME) holding {STUDY_FILE}")
    p.add_argument("--storage", default=None,
                   help="an Optuna storage URL instead of an experiment directory "
                   "(e.g. sqlite:///path/optuna.db)")
    p.add_argument("--study", default=None,
                   help="study name (default: the experiment's name, or the storage's only study)")
    p.add_argument("--top", type=number("--top", int, 0, exclusive=True), default=10,
                   help="how many trials the table shows")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write HTML (plotly) and PNG (matplotlib) plots into DIR")
    p.add_argument("--plotlyjs", choices=PLOTLYJS_CHOICES, default="directory",
                   help="where the HTML plots get plotly.js: one plotly.min.js beside them "
                   "(offline), inline in every file (offline, ~4 MB each), or the CDN")
    p.add_argument("--fidelity", action="store_true",
                   help="also analyse the fidelity of the experiment's curves (tune_nas.analysis.fidelity: "
                        "how well early epochs rank the final ones)")
    return p


def _fail(message: str) -> NoReturn:
    print(f"tune_nas.study: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def _check_plots_dir(plots: str, source: Source) -> Path:
    out = expand_user(plots, "--plots").resolve()
    if out.exists() and not out.is_dir():
        _fail(f"--plots {plots}: is a file; rule: a directory (created if missing)")
    inside = source.experiment_dir is not None and (
        out == source.experiment_dir or source.experiment_dir in out.parents)
    if inside:
        _fail(f"--plots {plots}: inside the experiment {source.experiment_dir}; rule: "
                  "inspection never writes into an experiment, choose a directory outside it")
    unwritable = unwritable_reason(out)
    if unwritable:
        _fail(f"--plots {plots}: {unwritable}; rule: a directory this user may create and write")
    return out


def _fidelity(source: Source) -> tuple[Any, str | None]:
    """(report, problem) of the fidelity analysis of the experiment's curves
    (:func:`tune_nas.analysis.fidelity.fidelity_report`, imported here: pandas, scipy and
    matplotlib load only when asked for). With ``write=True`` it writes its own files
    (fidelity.json/.txt, curves.png, fidelity.png) into the experiment: the one exception to
    "inspection writes nothing there", asked for explicitly by ``--fidelity``."""
    from tune_nas.analysis.fidelity import fidelity_report

    try:
        return fidelity_report(source.experiment_dir, write=True), None
    except (ValueError, OSError) as exc:
        return None, f"--fidelity {source.experiment_dir}: {formatting.first_line(exc)}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        source = resolve_source(args.experiment, args.storage, args.study)
        if args.fidelity and source.experiment_dir is None:
            raise StudyInputError("--fidelity with --storage: no experiment directory; rule: "
                                  "--fidelity reads trials/NAME/curves.csv, pass the directory")
        plots_dir = _check_plots_dir(args.plots, source) if args.plots else None
        study = load_study(source, explicit_name=args.study is not None)
        report = summarize(study, source)
    except (StudyInputError, UnknownHome) as exc:
        _fail(str(exc))

    out: dict[str, Any] = report.as_dict(args.top) if args.json else {}
    if not args.json:
        print(render_text(report, args.top), flush=True)
    if plots_dir is not None:
        plots = write_plots(study, report, plots_dir, plotlyjs=args.plotlyjs)
        if args.json:
            out["plots"] = {"dir": str(plots_dir),
                            "written": {p.name: p.files for p in plots if not p.skipped},
                            "skipped": {p.name: p.skipped for p in plots if p.skipped}}
        else:
            print(f"\nPlots in {plots_dir}:")
            for plot in plots:
                print(plot.line())
    code = 0
    if args.fidelity:
        fidelity, problem = _fidelity(source)
        if args.json:
            out["fidelity"] = {"text": fidelity.text() if fidelity is not None else None,
                               "report": fidelity.as_dict() if fidelity is not None else None,
                               "error": problem}
        elif fidelity is not None:
            print("\n" + fidelity.text())
        if problem:
            code = EXIT_BAD_INPUT
            print(f"tune_nas.study: error: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(_jsonable(out), indent=2, allow_nan=False))
    return code


def _jsonable(value: Any) -> Any:
    """Plain JSON: non-finite floats become null, unknown objects their str()."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
