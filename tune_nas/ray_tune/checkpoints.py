"""Resumed trials whose recorded checkpoint is gone: continue from the newest one that exists.

Ray Tune keeps one checkpoint per trial (``num_to_keep=1``) and saves its experiment state
now and then (on object storage, uploaded file by file, minutes apart). A driver killed
between a trial's new checkpoint (which deletes the previous one) and the next snapshot
leaves a snapshot that names a deleted checkpoint: Ray's resume then fails that trial three
times over ("Could not recover from checkpoint as it does not exist on storage anymore") and
the user loses it. Before any trial starts, each unfinished trial whose checkpoint is gone is
pointed at the newest ``checkpoint_NNNNNN`` in its own directory (which holds every epoch
up to it: the trial continues from there), or, when there is none, starts afresh.

Ray names a trial's next checkpoint from the index its snapshot saved (``checkpoint_{index+1}``),
not from the directory it restores: a trial moved to a newer checkpoint also gets that
checkpoint's index, or its next checkpoint would take the very name it was restored from and
Ray, deleting the checkpoint before it by path, would delete the new one (the trial then ends
with its recorded checkpoint gone).

A checkpoint newer than the snapshot may also hold epochs whose reports the killed driver never
received (the trial writes a checkpoint before its report reaches the driver): each checkpoint
keeps the trial's reports up to it (:data:`~tune_nas.trial.reporting.REPORTS_FILE`), and
:func:`checkpoint_reports` reads them back so that the driver records them.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow.fs
from ray.tune import Checkpoint

from tune_nas.trial.reporting import REPORTS_FILE, parse_reports

_CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")
_FINISHED = ("TERMINATED", "ERROR")


def _exists(filesystem: pyarrow.fs.FileSystem, path: str) -> bool:
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def newest_checkpoint(filesystem: pyarrow.fs.FileSystem, trial_dir: str) -> tuple[int, str] | None:
    """The index and path of the highest-numbered ``checkpoint_NNNNNN`` directory in ``trial_dir``."""
    selector = pyarrow.fs.FileSelector(trial_dir, allow_not_found=True)
    numbered = [(int(match.group(1)), info.path) for info in filesystem.get_file_info(selector)
                if info.type == pyarrow.fs.FileType.Directory
                and (match := _CHECKPOINT_DIR.match(info.base_name))]
    return max(numbered) if numbered else None


def repair_missing_checkpoints(trials: list[Any]) -> dict[str, str | None]:
    """For every unfinished trial whose latest checkpoint no longer exists: the newest
    existing checkpoint of the trial (or none: it starts again). Returns ``{trial id: the
    checkpoint it continues from, or None}`` for the trials it changed."""
    repaired: dict[str, str | None] = {}
    for trial in trials:
        manager = trial.run_metadata.checkpoint_manager
        latest = manager.latest_checkpoint_result
        if trial.status in _FINISHED or latest is None:
            continue
        filesystem = latest.checkpoint.filesystem
        if _exists(filesystem, latest.checkpoint.path):
            continue
        found = newest_checkpoint(filesystem, trial.storage.trial_fs_path)
        if found is None:
            manager._latest_checkpoint_result = None
            manager._checkpoint_results = []
            repaired[trial.trial_id] = None
        else:
            index, path = found
            latest.checkpoint = Checkpoint(path=path, filesystem=filesystem)
            manager._checkpoint_results = [latest]
            trial.storage.current_checkpoint_index = max(trial.storage.current_checkpoint_index, index)
            repaired[trial.trial_id] = path
    return repaired


def checkpoint_reports(checkpoint: Checkpoint) -> list[dict[str, Any]]:
    """The trial's report of each epoch up to ``checkpoint``, ascending (none when it was written
    without them). Raises ValueError naming the file when it is not such a list."""
    path = f"{checkpoint.path.rstrip('/')}/{REPORTS_FILE}"
    try:
        with checkpoint.filesystem.open_input_stream(path) as stream:
            text = stream.read()
    except FileNotFoundError:
        return []
    return parse_reports(text, path)
