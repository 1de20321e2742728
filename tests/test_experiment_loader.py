"""tune_nas.analysis.experiment.load_experiment: one typed view of an experiment directory,
finished or still running, and one clear error when a directory is not an experiment.

The directories are written here with the bookkeeper's own writers (``write_curves``,
``write_trials``) and the launcher's file formats; nothing trains, no Ray.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tune_nas.analysis.experiment import FIRST_FORMAT, ExperimentError, load_experiment
from tune_nas.config.experiment import ExperimentSpec
from tune_nas.layout import CURVE_KEY_COLUMNS, FORMAT_VERSION, ExperimentLayout
from tune_nas.objectives import Objective
from tune_nas.record.bookkeeper import Bookkeeper, TrialRecord
from tune_nas.states import TrialState


@dataclass
class MadeTrial:
    """A trial to write: its final state and the metrics it reported, one dict per epoch."""

    number: int
    state: str
    epochs: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def trial_id(self) -> str:
        return f"t{self.number:03d}"


def write_experiment_dir(root: Path, trials: Sequence[MadeTrial], spec: dict[str, Any], *,
                         name: str = "exp", summary: bool = True, storage: str | None = None) -> Path:
    """An experiment directory as the launcher and the bookkeeper leave it: experiment.json,
    curves.csv and trials.json (the bookkeeper's writers), and summary.json (the keys
    ``launch.build_summary`` writes) unless ``summary`` is False."""
    root.mkdir(parents=True, exist_ok=True)
    layout = ExperimentLayout(root)
    layout.experiment.write_text(json.dumps({"name": name, "format": FORMAT_VERSION, "spec": spec,
                                             "storage": storage}))
    full = ExperimentSpec(**{k: v for k, v in spec.items() if k in ExperimentSpec.keys()})
    objective = full.objective
    keeper = Bookkeeper(root, objective, full.max_epochs)
    for made in trials:
        last = {**made.epochs[-1], "epoch": len(made.epochs)} if made.epochs else {}
        record = TrialRecord(made.trial_id, made.number, dict(made.config), f"{made.number:03d}_run",
                             state=TrialState(made.state), epochs=len(made.epochs), last=last,
                             best_value=objective.best(e.get(objective.metric) for e in made.epochs))
        keeper.trials[made.trial_id] = record
        for epoch, metrics in enumerate(made.epochs, 1):
            keeper.curves[(made.trial_id, epoch)] = {
                "trial_id": made.trial_id, "trial_number": made.number, "run": record.run,
                "state": made.state, "final_epoch": len(made.epochs), "epoch": epoch, **metrics}
    keeper.write_curves()
    keeper.write_trials()
    if summary:
        best = keeper.best()
        layout.summary.write_text(json.dumps({
            "experiment": name, "format": FORMAT_VERSION, "objective": objective.as_dict(),
            "metric": objective.metric, "mode": objective.direction, "max_epochs": full.max_epochs,
            "counts": keeper.counts(), "wall_time_s": 12.5,
            "best": None if best is None else {
                "number": best.number, "trial_id": best.trial_id, "config": best.config,
                "epochs": best.epochs, "value": best.last.get(objective.metric),
                "val_acc": best.last.get("val/acc"), "val_loss": best.last.get("val/loss"),
                "test_acc": best.last.get("test/acc"), "params": best.last.get("model/params"),
                "arch": best.last.get("arch"), "checkpoint": best.checkpoint},
            "trials": [t.as_dict(objective) for t in sorted(keeper.trials.values(), key=lambda t: t.number)],
        }))
    return root


SPEC = {"metric": "val/acc", "mode": "max", "max_epochs": 3, "scheduler": "asha",
        "reduction_factor": 2, "a_key_of_a_later_version": 1}
TRIALS = [
    MadeTrial(0, "COMPLETE", [{"val/acc": 0.5, "val/loss": 1.2, "time/epoch_s": 0.5, "arch": "k3e3"},
                              {"val/acc": 0.7, "val/loss": 0.9, "time/epoch_s": 0.5, "arch": "k5e3"},
                              {"val/acc": 0.8, "val/loss": 0.7, "time/epoch_s": 0.5, "arch": "k5e6",
                               "test/acc": 0.79}], {"lr": 0.01}),
    MadeTrial(1, "PRUNED", [{"val/acc": 0.3, "val/loss": 1.9, "time/epoch_s": 0.4, "arch": "k3e6"}],
              {"lr": 0.3}),
    MadeTrial(2, "FAIL", [{"val/acc": 0.2, "val/loss": 2.5, "time/epoch_s": 0.6, "arch": "k7e3"}],
              {"lr": 0.9}),
]


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_finished_experiment_is_read_typed_and_nothing_is_written(tmp_path):
    root = write_experiment_dir(tmp_path / "exp", TRIALS, SPEC)
    before = _snapshot(root)
    experiment = load_experiment(root)
    assert _snapshot(root) == before
    assert experiment.layout == ExperimentLayout(root) and experiment.root == root
    assert (experiment.name, experiment.format, experiment.storage) == ("exp", FORMAT_VERSION, None)
    # the spec: what experiment.json says, the spec's own defaults for the rest, unknown keys ignored
    assert isinstance(experiment.spec, ExperimentSpec)
    assert (experiment.spec.max_epochs, experiment.spec.reduction_factor) == (3, 2)
    assert experiment.spec.grace_period == ExperimentSpec().grace_period
    assert experiment.objective == Objective("val/acc", "max")
    # the curves: one row per (trial, epoch), the bookkeeper's column order, typed
    curves = experiment.curves
    assert list(curves.columns[: len(CURVE_KEY_COLUMNS)]) == list(CURVE_KEY_COLUMNS)
    assert list(zip(curves["trial_number"], curves["epoch"])) == [(0, 1), (0, 2), (0, 3), (1, 1), (2, 1)]
    assert curves["epoch"].dtype == int and curves["trial_number"].dtype == int
    assert curves["val/acc"].dtype == float and curves["val/acc"].tolist() == [0.5, 0.7, 0.8, 0.3, 0.2]
    assert curves["test/acc"].isna().tolist() == [True, True, False, True, True]
    assert curves["arch"].tolist() == ["k3e3", "k5e3", "k5e6", "k3e6", "k7e3"]  # text stays text
    assert curves["state"].tolist() == ["COMPLETE"] * 3 + ["PRUNED", "FAIL"]
    assert curves["final_epoch"].tolist() == [3, 3, 3, 1, 1]
    # the records and the summary
    assert [(t.number, t.state) for t in experiment.trials] == [
        (0, TrialState.COMPLETE), (1, TrialState.PRUNED), (2, TrialState.FAIL)]
    assert experiment.trials[0].best_value == 0.8 and experiment.trials[0].config == {"lr": 0.01}
    assert experiment.finished and experiment.summary["best"]["number"] == 0


def test_a_running_experiment_merges_the_journal_of_curve_rows(tmp_path):
    """The bookkeeper appends each epoch to curves.journal.jsonl and rewrites curves.csv only
    when a trial ends: the loader shows both, a journal row replacing the csv row of the same
    (trial, epoch), a half-written last line ignored."""
    root = write_experiment_dir(tmp_path / "exp", TRIALS[:1], SPEC, summary=False)
    layout = ExperimentLayout(root)
    running = [{"trial_id": "t005", "trial_number": 5, "run": "005_run", "state": "RUNNING",
                "final_epoch": "", "epoch": e, "val/acc": v, "time/epoch_s": 0.5}
               for e, v in ((1, 0.4), (2, 0.6))]
    retried = {"trial_id": "t000", "trial_number": 0, "run": "000_run", "state": "COMPLETE",
               "final_epoch": 3, "epoch": 3, "val/acc": 0.85}
    lines = [json.dumps(r) for r in (*running, retried)]
    layout.curves_journal.write_text("\n".join(lines) + '\n{"trial_id": "t005", "epo')
    experiment = load_experiment(root)
    assert not experiment.finished and experiment.summary is None
    curves = experiment.curves
    assert list(zip(curves["trial_number"], curves["epoch"])) == [(0, 1), (0, 2), (0, 3), (5, 1), (5, 2)]
    assert curves["val/acc"].tolist() == [0.5, 0.7, 0.85, 0.4, 0.6]
    mine = curves[curves["trial_number"] == 5]
    assert mine["state"].tolist() == ["RUNNING", "RUNNING"] and mine["final_epoch"].isna().all()
    assert [t.number for t in experiment.trials] == [0]  # a running trial has no record yet


def test_a_just_started_experiment_has_empty_curves_and_no_trials(tmp_path):
    root = tmp_path / "exp"
    root.mkdir()
    (root / "experiment.json").write_text(json.dumps({"name": "exp", "spec": {"metric": "val/loss",
                                                                              "mode": "min"}}))
    experiment = load_experiment(root)
    assert experiment.curves.empty and "val/loss" in experiment.curves.columns
    assert experiment.trials == () and experiment.summary is None
    assert experiment.format == FIRST_FORMAT  # written before the format was recorded
    assert experiment.objective == Objective("val/loss", "min")
    assert experiment.spec.max_epochs == ExperimentSpec().max_epochs
    assert load_experiment(root, curves=False).curves is None


def test_a_study_in_another_database_is_named_masked(tmp_path):
    root = write_experiment_dir(tmp_path / "exp", [], SPEC, summary=False,
                                storage="postgresql://tune_nas@db.example.org/tune_nas")
    assert load_experiment(root).storage == "postgresql://tune_nas@db.example.org/tune_nas"


def _broken(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    root = write_experiment_dir(tmp_path / name, TRIALS, SPEC)
    for file, text in files.items():
        (root / file).write_text(text)
    return root


@pytest.mark.parametrize("case, needle", [
    ("missing", "no such directory; rule: an experiment directory that python -m tune_nas.launch"),
    ("a file", "not a directory; rule: "),
    ("no experiment.json", "has no experiment.json; rule: "),
    ("experiment.json truncated", "experiment.json: cannot be read as JSON ("),
    ("experiment.json a list", "experiment.json: holds a JSON list; rule: "),
    ("spec a list", "experiment.json: spec is a list; rule: "),
    ("bad direction", "experiment.json: spec: objective val/acc: direction='up': rule: "),
    ("bad max_epochs", "experiment.json: spec: max_epochs=0; rule: a positive integer"),
    ("curves without epoch", "rule: the files the bookkeeper writes, curves starting with trial_id"),
    ("unknown state", "curves.csv: state 'DONE' (rule: one of RUNNING, PAUSED, COMPLETE"),
    ("trials.json garbage", "trials.json) cannot be read (JSONDecodeError"),
    ("summary.json garbage", "summary.json: cannot be read as JSON ("),
    ("epoch below one", "curves.csv: trial 0 epoch -3; rule: curves as the bookkeeper writes them: trial numbers >= 0, "
                        "epochs 1..max_epochs"),
    ("epoch beyond max_epochs", "curves.csv: trial 0 epoch 1000000000; rule: "),
    ("negative trial number", "curves.csv: trial -1 epoch 1; rule: "),
])
def test_what_is_not_an_experiment_is_one_clear_error(tmp_path, case, needle):
    good = json.dumps({"name": "exp", "spec": SPEC})
    roots = {
        "missing": lambda: tmp_path / "nope",
        "a file": lambda: (tmp_path / "afile").write_text("x") and tmp_path / "afile",
        "no experiment.json": lambda: (tmp_path / "empty").mkdir() or tmp_path / "empty",
        "experiment.json truncated": lambda: _broken(tmp_path, "e", {"experiment.json": good[:20]}),
        "experiment.json a list": lambda: _broken(tmp_path, "e", {"experiment.json": "[1, 2]"}),
        "spec a list": lambda: _broken(tmp_path, "e", {"experiment.json": '{"spec": [1]}'}),
        "bad direction": lambda: _broken(tmp_path, "e", {"experiment.json": json.dumps(
            {"spec": {**SPEC, "mode": "up"}})}),
        "bad max_epochs": lambda: _broken(tmp_path, "e", {"experiment.json": json.dumps(
            {"spec": {**SPEC, "max_epochs": 0}})}),
        "curves without epoch": lambda: _broken(tmp_path, "e", {"curves.csv": "trial_id,state\nt0,COMPLETE\n"}),
        "unknown state": lambda: _broken(tmp_path, "e", {"curves.csv": (
            ",".join(CURVE_KEY_COLUMNS) + "\nt0,0,r,DONE,1,1\n")}),
        "trials.json garbage": lambda: _broken(tmp_path, "e", {"trials.json": "[{"}),
        "summary.json garbage": lambda: _broken(tmp_path, "e", {"summary.json": "{"}),
        "epoch below one": lambda: _broken(tmp_path, "e", {"curves.csv": (
            ",".join(CURVE_KEY_COLUMNS) + "\nt0,0,r,COMPLETE,1,-3\n")}),
        "epoch beyond max_epochs": lambda: _broken(tmp_path, "e", {"curves.csv": (
            ",".join(CURVE_KEY_COLUMNS) + "\nt0,0,r,COMPLETE,1,1000000000\n")}),
        "negative trial number": lambda: _broken(tmp_path, "e", {"curves.csv": (
            ",".join(CURVE_KEY_COLUMNS) + "\nt0,-1,r,COMPLETE,1,1\n")}),
    }
    root = roots[case]()
    with pytest.raises(ExperimentError) as info:
        load_experiment(root)
    message = str(info.value)
    assert needle in message and "\n" not in message
    assert message.startswith(str(root)), message  # it names the directory or its file
