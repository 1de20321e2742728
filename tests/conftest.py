"""Shared fixtures: a real small search through Ray, run once per test session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# One torch thread in the test process: the suite runs beside Ray workers on 2 cores, and
# oversubscribed threads make small kernels many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


def run_launch(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m tune_nas.launch ARGS`` in a fresh process (Ray state never leaks)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "tune_nas.launch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_python(code: str, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter (what it imports is its own); its stdout, stripped,
    once it exited 0."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def lr_searcher(storage=None):
    """A ``RecordingOptunaSearch`` of one learning rate (study ``s``, maximising ``val/acc``,
    random sampler of seed 0) in ``storage``: an Optuna storage, or the URL of a study (its
    ``storage_url`` then set, as the launcher sets it)."""
    import optuna
    from ray import tune

    from tune_nas.ray_tune.optuna_bridge import RecordingOptunaSearch
    from tune_nas.storage.study_db import open_storage

    url = storage if isinstance(storage, str) else None
    searcher = RecordingOptunaSearch(space={"lr": tune.loguniform(1e-3, 1e-1)}, metric="val/acc",
                                     mode="max", study_name="s", storage=open_storage(url) if url else storage,
                                     sampler=optuna.samplers.RandomSampler(seed=0))
    if url:
        searcher.storage_url = url
    return searcher


@pytest.fixture(scope="session")
def small_search(tmp_path_factory) -> Path:
    """A real 4-trial × 3-epoch ASHA + Optuna search on digits; returns its experiment dir."""
    root = tmp_path_factory.mktemp("search")
    proc = run_launch("--num-samples", "4", "--max-epochs", "3", "--name", "e2e",
                      "--trials-dir", str(root / "trials"), "--seed", "3", cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = root / "trials" / "e2e"
    (exp / "launch_stdout.txt").write_text(proc.stdout)
    return exp


@pytest.fixture(scope="session")
def small_summary(small_search: Path) -> dict:
    return json.loads((small_search / "summary.json").read_text())


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped, saying why, where no CUDA GPU is present."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
