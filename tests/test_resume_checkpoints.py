"""A resumed trial whose recorded checkpoint was deleted after Ray's last experiment snapshot
continues from the newest checkpoint it has (Ray would fail it three times over)."""

from __future__ import annotations

import csv
import pickle
from types import SimpleNamespace

import numpy as np
import pyarrow.fs
import pytest
from conftest import lr_searcher
from ray.train._internal.checkpoint_manager import _CheckpointManager, _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune import Checkpoint, CheckpointConfig

from tune_nas.ray_tune.checkpoints import checkpoint_reports, repair_missing_checkpoints
from tune_nas.trial.reporting import REPORTS_FILE, reports_json

FS = pyarrow.fs.LocalFileSystem()


def _trial(tmp_path, trial_id: str, recorded: str, kept: list[str], status: str = "PENDING", index: int = 0):
    trial_dir = tmp_path / f"trial_{trial_id}"
    trial_dir.mkdir()
    for name in kept:
        (trial_dir / name).mkdir()
    (trial_dir / "result.json").write_text("{}")
    manager = _CheckpointManager(CheckpointConfig(num_to_keep=1))
    manager.register_checkpoint(_TrainingResult(Checkpoint(str(trial_dir / recorded), FS), {"epoch": 1}))
    storage = StorageContext(str(tmp_path), ".", trial_dir_name=trial_dir.name, current_checkpoint_index=index)
    return SimpleNamespace(trial_id=trial_id, status=status, storage=storage,
                           run_metadata=SimpleNamespace(checkpoint_manager=manager))


def test_a_deleted_checkpoint_is_replaced_by_the_newest_one_that_exists(tmp_path):
    moved = _trial(tmp_path, "a", "checkpoint_000000", ["checkpoint_000002", "checkpoint_000010"])
    intact = _trial(tmp_path, "b", "checkpoint_000001", ["checkpoint_000001"])
    none_left = _trial(tmp_path, "c", "checkpoint_000000", [])
    finished = _trial(tmp_path, "d", "checkpoint_000000", ["checkpoint_000004"], status="TERMINATED")

    repaired = repair_missing_checkpoints([moved, intact, none_left, finished])

    assert repaired == {"a": str(tmp_path / "trial_a" / "checkpoint_000010"), "c": None}
    a = moved.run_metadata.checkpoint_manager.latest_checkpoint_result
    assert a.checkpoint.path == str(tmp_path / "trial_a" / "checkpoint_000010")
    assert intact.run_metadata.checkpoint_manager.latest_checkpoint_result.checkpoint.path.endswith(
        "checkpoint_000001")
    assert none_left.run_metadata.checkpoint_manager.latest_checkpoint_result is None  # starts again
    # a finished trial is never restored: left as it was
    assert finished.run_metadata.checkpoint_manager.latest_checkpoint_result.checkpoint.path.endswith(
        "checkpoint_000000")


def test_a_trial_moved_to_a_newer_checkpoint_saves_its_next_one_under_a_new_name(tmp_path):
    # Ray's snapshot: checkpoint 0, index 0; the trial went on to checkpoint 1 (deleting 0)
    # before the driver was killed. Resumed from checkpoint 1 with the snapshot's index, its
    # next checkpoint would be named checkpoint_000001 again, and Ray, deleting the one before
    # by path, would delete the new checkpoint.
    trial = _trial(tmp_path, "a", "checkpoint_000000", ["checkpoint_000001"], index=0)
    repair_missing_checkpoints([trial])

    trial.storage._update_checkpoint_index({})  # what Ray does when the trial saves again
    new = trial.storage.checkpoint_fs_path
    assert new.endswith("checkpoint_000002")
    pyarrow.fs.LocalFileSystem().create_dir(new)
    trial.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(Checkpoint(new, FS), {"epoch": 3}))
    assert (tmp_path / "trial_a" / "checkpoint_000002").is_dir()
    assert not (tmp_path / "trial_a" / "checkpoint_000001").exists()  # the one before, deleted


def test_a_snapshot_index_beyond_the_newest_checkpoint_is_kept(tmp_path):
    trial = _trial(tmp_path, "a", "checkpoint_000005", ["checkpoint_000003"], index=5)
    repair_missing_checkpoints([trial])
    assert trial.storage.current_checkpoint_index == 5


def test_checkpoint_reports_reads_what_the_trial_kept_and_refuses_a_broken_file(tmp_path):
    directory = tmp_path / "checkpoint_000001"
    directory.mkdir()
    assert checkpoint_reports(Checkpoint(str(directory), FS)) == []  # written without reports
    (directory / REPORTS_FILE).write_text(reports_json(
        [{"epoch": 2, "val/acc": 0.5, "arch": "k3", "model/latency_ms": float("nan")},
         {"epoch": 1, "val/acc": np.float32(0.25)}]))
    assert checkpoint_reports(Checkpoint(str(directory), FS)) == [
        {"epoch": 1, "val/acc": 0.25}, {"epoch": 2, "val/acc": 0.5, "arch": "k3"}]  # NaN left out
    (directory / REPORTS_FILE).write_text('[{"val/acc": 0.5}]')
    with pytest.raises(ValueError, match=r"checkpoint_000001/reports.json: not a list of reports with an epoch"):
        checkpoint_reports(Checkpoint(str(directory), FS))


def test_epochs_the_killed_driver_never_received_are_recorded_from_the_checkpoint_resumed_from(tmp_path, capsys):
    """The driver recorded epochs 1-2 (its snapshot names checkpoint 0, deleted since); the
    trial wrote checkpoint 2 after epoch 3 and the driver was killed before epoch 3's report
    reached it. Resumed from checkpoint 2, epoch 3 is recorded from its reports: the curves
    and the study hold every epoch, none twice."""
    import optuna

    from tune_nas.objectives import Objective
    from tune_nas.ray_tune.callbacks import TrialEvents
    from tune_nas.record.bookkeeper import Bookkeeper
    from tune_nas.record.console import ProgressPrinter

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = lr_searcher(url)
    config = searcher.suggest("a")
    experiment = tmp_path / "experiment"
    keeper = Bookkeeper(experiment, Objective(), max_epochs=4)
    keeper.trial_started("a", config["trial_number"], config)
    reports = [{"epoch": e, "val/acc": 0.1 * e, "train/loss": 1.0 / e} for e in (1, 2, 3)]
    for report in reports[:2]:  # ... what the driver received before it was killed
        keeper.trial_result("a", report)
        searcher.on_trial_result("a", report)
    saved = pickle.dumps(searcher)

    trial = _trial(tmp_path, "a", "checkpoint_000000", ["checkpoint_000002"], status="RUNNING")
    (tmp_path / "trial_a" / "checkpoint_000002" / REPORTS_FILE).write_text(reports_json(reports))
    trial.config, trial.last_result, trial.checkpoint = config, {}, None
    restored = pickle.loads(saved)
    restored.attach(url)
    keeper = Bookkeeper(experiment, Objective(), max_epochs=4)
    events = TrialEvents(keeper, restored, ProgressPrinter(Objective()))
    events.setup(total_num_samples=1)
    events.on_step_begin(0, [trial])

    assert "continuing from checkpoint_000002 (epoch 3 recorded from it" in capsys.readouterr().out
    assert keeper.trials["a"].epochs == 3 and keeper.trials["a"].last["val/acc"] == pytest.approx(0.3)
    trial.last_result = {"epoch": 4, "val/acc": 0.4, "train/loss": 0.25}
    events.on_trial_result(0, [trial], trial, trial.last_result)
    events.on_trial_complete(0, [trial], trial)
    keeper.close()
    with (experiment / "curves.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["val/acc"], r["state"]) for r in rows] == [
        ("1", "0.1", "COMPLETE"), ("2", "0.2", "COMPLETE"), ("3", "0.30000000000000004", "COMPLETE"),
        ("4", "0.4", "COMPLETE")]
    (study_trial,) = optuna.load_study(study_name="s", storage=url).trials
    assert study_trial.state.name == "COMPLETE"
    assert study_trial.intermediate_values == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4})
