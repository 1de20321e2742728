"""A resumed trial whose recorded checkpoint was deleted after Ray's last experiment snapshot
continues from the newest checkpoint it has (Ray would fail it three times over)."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow.fs
from ray.train._internal.checkpoint_manager import _CheckpointManager, _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune import Checkpoint, CheckpointConfig

from tune_nas.ray_tune.checkpoints import repair_missing_checkpoints

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
