"""A real emulator search through the launcher: sim:burgers data made on the fly, a regression
objective, and the emulator measured against the simulator at the end."""

from __future__ import annotations

import csv
import json
import sqlite3
import textwrap

from conftest import run_launch

SPACE = """
from ray import tune

EXPERIMENT = {
    "dataset": "sim:burgers:60",
    "model": "mlp",
    "max_epochs": 3,
    "grace_period": 1,
    "num_samples": 3,
    "searcher": "random",
    "cpus_per_trial": 1,
}
PARAM_SPACE = {"lr": 3e-3, "batch_size": 16, "width": tune.choice([16, 32]), "depth": 2}
"""


def test_an_emulator_search_reports_regression_metrics_and_the_speedup(tmp_path):
    (tmp_path / "emu.py").write_text(textwrap.dedent(SPACE))
    proc = run_launch("--space", str(tmp_path / "emu.py"), "--name", "emu", "--trials-dir", str(tmp_path / "trials"),
                      "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "trials" / "emu"
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["objective"] == {"metric": "val/mse", "direction": "min"}
    assert summary["counts"]["COMPLETE"] >= 1
    best = summary["best"]
    assert 0 <= best["value"] == min(t["value"] for t in summary["trials"] if t["state"] == "COMPLETE")
    assert -10 < best["test_r2"] <= 1 and best["val_r2"] <= 1
    emulator = summary["emulator"]
    assert emulator["simulator"]["name"] == "burgers" and emulator["simulator"]["runs"] > 0
    assert emulator["speedup"] > 1 and emulator["emulator_seconds_per_sample"] > 0
    assert emulator["test_samples"] == 12 and len(emulator["r2_per_output"]) == 128
    assert "emulator: test R²" in proc.stdout and "× faster" in proc.stdout
    with open(exp / "curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"val/mse", "val/mae", "val/r2", "test/r2", "test/samples_per_s"} <= set(rows[0])
    assert "val/acc" not in rows[0] and "train/acc" not in rows[0]
    assert {int(r["epoch"]) for r in rows} <= {1, 2, 3}
    with sqlite3.connect(exp / "optuna.db") as db:
        keys = {k for (k,) in db.execute("select key from trial_user_attributes")}
    assert "test_r2" in keys
