"""One typed, read-only view of an experiment directory: :func:`load_experiment`.

Every inspection command (``python -m tune_nas.study``, ``replay``, ``compare``, the fidelity
analysis) reads an experiment through this loader instead of opening its files itself:

* the settings come from ``experiment.json`` as an :class:`~tune_nas.config.space_file.ExperimentSpec`
  (a key it lacks takes the spec's default, a key the spec does not know is ignored), so the
  defaults are stated once, in the spec;
* the objective is the spec's :class:`~tune_nas.objectives.Objective`;
* the curves are read by the bookkeeper's own reader (:meth:`Bookkeeper.load_existing`, the
  one a resumed search uses): ``curves.csv`` with the rows of ``curves.journal.jsonl`` merged
  in, so a running experiment shows every epoch reported so far; they come back as a
  DataFrame with typed columns;
* the trial records (``trials.json``) and the summary (``summary.json``) when they exist.

It works on a finished experiment and on a running one (no curves yet, no trials.json, no
summary.json: empty or None). Anything else raises :class:`ExperimentError` with one line
naming the file and the rule. Nothing is ever written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tune_nas.config.experiment import ExperimentSpec
from tune_nas.layout import CURVE_KEY_COLUMNS, EXPERIMENT_FILE, ExperimentLayout
from tune_nas.metric_keys import task_of_keys
from tune_nas.objectives import Objective
from tune_nas.paths import expand_user
from tune_nas.record.bookkeeper import Bookkeeper, TrialRecord, curve_metric_columns
from tune_nas.record.formatting import first_line as _first_line
from tune_nas.states import TrialState

if TYPE_CHECKING:
    import pandas as pd

#: The format an experiment.json without a ``format`` key was written in (tune_nas 0.1.x).
FIRST_FORMAT = 1
_TEXT_KEYS = ("trial_id", "run", "state")
_WHAT_LAUNCH_WRITES = "an experiment directory that python -m tune_nas.launch has started"


class ExperimentError(ValueError):
    """Not an experiment, or one whose files cannot be read: one line naming the file and
    the rule."""


@dataclass(frozen=True, eq=False)
class Experiment:
    """What an experiment directory holds, read once (see the module doc)."""

    layout: ExperimentLayout
    name: str
    spec: ExperimentSpec
    #: the layout version that wrote it (:data:`tune_nas.layout.FORMAT_VERSION` today)
    format: int
    #: the study's storage URL (password masked) when it lives outside the directory
    #: (``--storage``); None for the directory's own ``optuna.db``
    storage: str | None
    #: one row per (trial, epoch), sorted by trial number and epoch: ``trial_id``, ``run``,
    #: ``state`` (a :class:`TrialState` value) as text, ``trial_number``, ``epoch`` and
    #: ``final_epoch`` as integers (``final_epoch`` missing while the trial runs), every
    #: metric as a float (NaN where not reported) except text columns such as ``arch``.
    #: None when the loader was asked not to read them.
    curves: pd.DataFrame | None
    #: the records of the trials that had ended when trials.json was last written, by number
    #: (a trial still running is in ``curves``, state RUNNING, and in the study)
    trials: tuple[TrialRecord, ...]
    #: summary.json, written when the search ended; None while it runs (or if it was stopped)
    summary: Mapping[str, Any] | None

    @property
    def objective(self) -> Objective:
        """What the search optimised: the best trial has the best value of this."""
        return self.spec.objective

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def finished(self) -> bool:
        """Whether the launcher finished the search (and wrote summary.json)."""
        return self.summary is not None


def load_experiment(path: str | Path, *, curves: bool = True) -> Experiment:
    """Read the experiment directory ``path`` (``trials/<name>``); see the module doc.

    ``curves=False`` skips reading the learning curves (``Experiment.curves`` is then None)
    for a reader that needs only the settings. Raises :class:`ExperimentError`.
    """
    layout = ExperimentLayout(expand_user(path))
    if not layout.root.is_dir():
        what = "not a directory" if layout.root.exists() else "no such directory"
        raise ExperimentError(f"{layout.root}: {what}; rule: {_WHAT_LAUNCH_WRITES}")
    if not layout.experiment.is_file():
        raise ExperimentError(f"{layout.root}: has no {EXPERIMENT_FILE}; rule: {_WHAT_LAUNCH_WRITES} "
                              f"(it writes {EXPERIMENT_FILE} before the first trial)")
    saved = _read_json(layout.experiment, dict, f"{EXPERIMENT_FILE} as the launcher writes it")
    spec = _spec(layout.experiment, saved.get("spec", {}))
    written_format = saved.get("format", FIRST_FORMAT)
    if not isinstance(written_format, int) or isinstance(written_format, bool):
        raise ExperimentError(f"{layout.experiment}: format={written_format!r}; rule: the integer "
                              "version of the layout that wrote it")
    storage = saved.get("storage")
    keeper = _bookkeeper(layout, spec)
    return Experiment(
        layout=layout, name=str(saved.get("name") or layout.name), spec=spec,
        format=written_format, storage=storage if isinstance(storage, str) and storage else None,
        curves=_curves_frame(layout, keeper.curves.values(), spec.max_epochs) if curves else None,
        trials=tuple(sorted(keeper.trials.values(), key=lambda t: t.number)),
        summary=_read_json(layout.summary, dict, "the summary the launcher writes at the end")
        if layout.summary.is_file() else None)


def _read_json(path: Path, kind: type, rule: str) -> Any:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExperimentError(f"{path}: cannot be read as JSON ({_first_line(exc)}); rule: "
                              f"{rule}") from None
    if not isinstance(data, kind):
        raise ExperimentError(f"{path}: holds a JSON {type(data).__name__}; rule: {rule} "
                              f"(a JSON {'object' if kind is dict else 'list'})")
    return data


def _spec(path: Path, saved: Any) -> ExperimentSpec:
    """The saved settings as a spec: the keys it knows, its defaults for the others. Only
    what the analysis relies on is checked here (the launcher checked the rest)."""
    if not isinstance(saved, Mapping):
        raise ExperimentError(f"{path}: spec is a {type(saved).__name__}; rule: an object of "
                              "the experiment's settings (ExperimentSpec fields)")
    defaults = {f.name: f for f in fields(ExperimentSpec)}
    known = {k: tuple(v) if isinstance(v, list) and isinstance(defaults[k].default, tuple) else v
             for k, v in saved.items() if k in defaults}
    spec = ExperimentSpec(**known)
    try:
        spec.objective  # noqa: B018 - the metric and direction are checked by making it
    except ValueError as exc:
        raise ExperimentError(f"{path}: spec: {exc}") from None
    if not isinstance(spec.max_epochs, int) or isinstance(spec.max_epochs, bool) or spec.max_epochs < 1:
        raise ExperimentError(f"{path}: spec: max_epochs={spec.max_epochs!r}; rule: a positive "
                              "integer")
    return spec


def _bookkeeper(layout: ExperimentLayout, spec: ExperimentSpec) -> Bookkeeper:
    """The bookkeeper's view of the directory, as a resumed search would start from it
    (nothing is written: loading only reads)."""
    keeper = Bookkeeper(layout.root, spec.objective, spec.max_epochs, task=spec.task)
    try:
        keeper.load_existing()
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ExperimentError(
            f"{layout.root}: its curves ({layout.curves.name}, {layout.curves_journal.name}) or "
            f"trial records ({layout.trials.name}) cannot be read ({type(exc).__name__}: "
            f"{_first_line(exc)}); rule: the files the bookkeeper writes, curves starting with "
            f"{', '.join(CURVE_KEY_COLUMNS)}") from None
    return keeper


def _curves_frame(layout: ExperimentLayout, rows: Any, max_epochs: int) -> pd.DataFrame:
    """The curve rows (text from curves.csv, JSON values from the journal) as typed columns,
    in the order curves.csv has them."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    metric_columns = curve_metric_columns(task_of_keys(set(frame.columns)))
    extra = sorted(set(frame.columns) - set(CURVE_KEY_COLUMNS) - set(metric_columns))
    frame = frame.reindex(columns=[*CURVE_KEY_COLUMNS, *metric_columns, *extra])
    for column in frame.columns:
        if column in _TEXT_KEYS:
            frame[column] = frame[column].map(lambda v: None if v is None or v != v else str(v))
        elif column in CURVE_KEY_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
        else:
            frame[column] = _typed(frame[column])
    unknown = sorted(set(frame["state"].dropna()) - set(TrialState))
    if unknown or frame[["trial_number", "epoch"]].isna().any().any():
        problem = (f"state {unknown[0]!r} (rule: one of {', '.join(TrialState)})" if unknown
                   else "a row without trial_number or epoch")
        raise ExperimentError(f"{layout.curves}: {problem}; rule: curves as the bookkeeper writes them")
    frame["epoch"] = frame["epoch"].astype(int)
    frame["trial_number"] = frame["trial_number"].astype(int)
    bad = frame[(frame["epoch"] < 1) | (frame["epoch"] > max_epochs) | (frame["trial_number"] < 0)]
    if len(bad):
        row = bad.iloc[0]
        raise ExperimentError(f"{layout.curves}: trial {row['trial_number']} epoch {row['epoch']}; rule: curves as the "
                              f"bookkeeper writes them: trial numbers >= 0, epochs 1..max_epochs ({max_epochs})")
    return frame.sort_values(["trial_number", "epoch"], kind="stable").reset_index(drop=True)


def _typed(column: pd.Series) -> pd.Series:
    """A metric column as floats (blank → NaN); a column holding text (``arch``) as text."""
    import pandas as pd

    blank = column.isna() | (column.astype(str) == "")
    numbers = pd.to_numeric(column.where(~blank), errors="coerce")
    if numbers.notna().sum() == (~blank).sum():
        return numbers.astype(float)
    return column.where(~blank, None).astype(object)

