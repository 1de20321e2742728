"""A search that MINIMISES ``val/loss``, end to end through Ray: launch, summary.json, the
terminal report, the Optuna study, the replay of stopping policies and compare's pick of the
search's best trial all take the lowest loss as best and label it as a loss.

One of its trials runs out of memory: it fails alone, with its reason (a failure report
without ``val/loss`` used to make Ray's metric check end the whole search).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import run_launch

FAULT_MODELS = Path(__file__).resolve().parent / "fault_plugins" / "fault_models.py"
OOM_TRIAL = 2
NUM_SAMPLES = 6

SPACE = '''"""Min-mode test space (written by tests/test_min_mode_search.py)."""

EXPERIMENT = {{
    "dataset": "digits", "model": "fault_linear", "metric": "val/loss", "mode": "min",
    "max_epochs": 3, "scheduler": "asha", "grace_period": 1, "reduction_factor": 2,
    "num_samples": {num_samples}, "cpus_per_trial": 1, "seed": 5, "searcher": "random",
    "max_failures": 2, "plugins": [{plugin!r}],
}}


def define_by_run(trial):
    trial.suggest_float("lr", 1e-4, 0.3, log=True)
    fault = "oom" if trial.number == {oom} else "none"
    return {{"batch_size": 64, "fault": fault, "fault_step": 5, "tag": trial.number}}
'''


@pytest.fixture(scope="module")
def min_search(tmp_path_factory):
    root = tmp_path_factory.mktemp("minmode")
    space = root / "min_space.py"
    space.write_text(SPACE.format(num_samples=NUM_SAMPLES, plugin=str(FAULT_MODELS), oom=OOM_TRIAL))
    proc = run_launch("--space", str(space), "--name", "minloss", "--trials-dir", str(root / "trials"),
                      cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = root / "trials" / "minloss"
    return {"exp": exp, "stdout": proc.stdout, "summary": json.loads((exp / "summary.json").read_text())}


def _complete_losses(summary: dict) -> dict[int, float]:
    return {t["number"]: t["value"] for t in summary["trials"] if t["state"] == "COMPLETE"}


def test_the_out_of_memory_trial_fails_alone_and_the_search_ends(min_search):
    summary = min_search["summary"]
    assert sum(summary["counts"].values()) == NUM_SAMPLES
    by_number = {t["number"]: t for t in summary["trials"]}
    assert by_number[OOM_TRIAL]["state"] == "FAIL"
    assert by_number[OOM_TRIAL]["reason"].startswith("out of memory: CUDA out of memory")
    assert [n for n, t in by_number.items() if t["state"] == "FAIL"] == [OOM_TRIAL]


def test_summary_best_is_the_lowest_loss_labelled_as_loss(min_search):
    summary = min_search["summary"]
    assert summary["objective"] == {"metric": "val/loss", "direction": "min"}
    losses = _complete_losses(summary)
    assert losses, summary["counts"]
    best = summary["best"]
    assert best["value"] == min(losses.values()) == best["val_loss"]
    assert best["number"] == min(losses, key=losses.get)
    for trial in summary["trials"]:
        assert "best_val_acc" not in trial
        if trial["state"] == "COMPLETE":
            assert trial["best_value"] <= trial["value"] + 1e-12  # the lowest over its epochs
    stdout = min_search["stdout"]
    assert "val_loss" in stdout.splitlines()[1]  # the trial table's header
    assert f"Best trial {best['number']} " in stdout
    assert f"val loss {best['value']:.4f}" in stdout


def test_study_ranks_the_lowest_loss_first(min_search):
    exp = min_search["exp"]
    study = optuna.load_study(study_name="minloss", storage=f"sqlite:///{exp / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.best_trial.number == min_search["summary"]["best"]["number"]
    out = subprocess.run([sys.executable, "-m", "tune_nas.study", str(exp), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["directions"] == ["minimize"]
    assert report["best"]["number"] == min_search["summary"]["best"]["number"]
    assert report["best"]["value"] == pytest.approx(min_search["summary"]["best"]["value"])


def test_replay_measures_regret_towards_the_lowest_loss(min_search):
    out = subprocess.run([sys.executable, "-m", "tune_nas.replay", str(min_search["exp"]), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    replay = json.loads(out.stdout)
    assert replay["mode"] == "min" and replay["metric"] == "val/loss"
    assert replay["best_value"] == pytest.approx(min(_complete_losses(min_search["summary"]).values()))
    for policy in replay["policies"]:
        if policy.get("regret") is not None:
            assert policy["regret"] >= -1e-12, policy  # nothing beats the true best


def test_compare_retrains_the_lowest_loss(min_search):
    from tune_nas.compare import best_search_trial

    summary = min_search["summary"]
    assert best_search_trial(summary)["number"] == summary["best"]["number"]
    # with no COMPLETE trial (a time budget stopped them all), the furthest, lowest loss
    cut = {**summary, "best": None,
           "trials": [{**t, "state": "PRUNED" if t["state"] == "COMPLETE" else t["state"]}
                      for t in summary["trials"]]}
    alive = [t for t in cut["trials"] if t["state"] != "FAIL" and t["value"] is not None
             and math.isfinite(t["value"])]
    furthest = max(t["epochs"] for t in alive)
    expected = min((t for t in alive if t["epochs"] == furthest), key=lambda t: t["value"])
    assert best_search_trial(cut)["number"] == expected["number"]
