"""tune_nas.analysis.fidelity: fidelity analysis of recorded learning curves (made up in each test)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from tune_nas.analysis.experiment import ExperimentError, load_experiment
from tune_nas.analysis.fidelity import (
    MIN_FULL_TRIALS,
    aligned_rank_correlation,
    asha_rungs,
    fidelity_report,
    rank_correlation,
    top_k_overlap,
)
from tune_nas.objectives import Objective

COLUMNS = ["trial_id", "trial_number", "run", "state", "final_epoch", "epoch", "train/loss",
           "train/acc", "val/loss", "val/acc", "lr", "time/epoch_s", "model/params",
           "test/loss", "test/acc"]


def write_experiment(root: Path, curves: dict[int, list[float]], max_epochs: int,
                     metric: str = "val/acc", mode: str = "max", grace: int = 1, rf: int = 3,
                     scheduler: str = "asha", name: str = "synthetic") -> Path:
    """An experiment dir: curves.csv (one row per trial and epoch) + experiment.json."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "curves.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for number, values in curves.items():
            state = "COMPLETE" if len(values) >= max_epochs else "PRUNED"
            for epoch, value in enumerate(values, start=1):
                row = {"trial_id": f"id{number}", "trial_number": number, "run": f"{number:03d}_x",
                       "state": state, "final_epoch": len(values), "epoch": epoch,
                       metric: value, "time/epoch_s": 0.5}
                if state == "COMPLETE" and epoch == max_epochs:
                    row["test/acc"] = 0.9
                writer.writerow(row)
    spec = {"metric": metric, "mode": mode, "max_epochs": max_epochs, "grace_period": grace,
            "reduction_factor": rf, "scheduler": scheduler, "num_samples": len(curves)}
    (root / "experiment.json").write_text(json.dumps({"name": name, "spec": spec}))
    return root


def ranked_curves(finals: list[float], early_order: list[int], max_epochs: int = 6,
                  agree_from: int = 3) -> dict[int, list[float]]:
    """Curves whose epochs before ``agree_from`` rank trials by ``early_order`` and from
    ``agree_from`` on rank them like their final value."""
    curves = {}
    n = len(finals)
    for i, final in enumerate(finals):
        values = []
        for epoch in range(1, max_epochs + 1):
            if epoch < agree_from:
                values.append(0.1 + 0.05 * early_order[i] + 0.001 * epoch)
            else:
                values.append(final - 0.01 * (max_epochs - epoch) / n)
        curves[i] = values
    return curves


FINALS = [0.80, 0.95, 0.70, 0.90, 0.85, 0.60, 0.99, 0.75]
SHUFFLED = [3, 0, 7, 1, 6, 2, 4, 5]  # epoch 1-2 ranking, unrelated to the final one


def test_rank_correlation_matches_scipy_and_counts_pairs():
    a = [1.0, 2.0, 3.0, 4.0, 5.0, math.nan, 7.0]
    b = [2.0, 1.0, 4.0, 3.0, 6.0, 5.0, math.nan]
    result = rank_correlation(a, b, n_boot=200, seed=1)
    assert result.n == 5  # pairs with a NaN are dropped
    assert result.spearman == pytest.approx(spearmanr(a[:5], b[:5]).statistic)
    assert result.kendall == pytest.approx(kendalltau(a[:5], b[:5]).statistic)
    lo, hi = result.spearman_ci
    assert -1 <= lo <= result.spearman <= hi <= 1
    assert rank_correlation(a, b, n_boot=200, seed=1) == result  # seeded: reproducible


def test_rank_correlation_extremes_and_undefined_cases():
    up = rank_correlation([1, 2, 3, 4], [10, 20, 30, 40])
    down = rank_correlation([1, 2, 3, 4], [4, 3, 2, 1])
    assert (up.spearman, up.kendall, up.spearman_ci) == (1.0, 1.0, (1.0, 1.0))
    assert down.spearman == pytest.approx(-1.0) and down.kendall == pytest.approx(-1.0)
    assert math.isnan(rank_correlation([1, 2], [1, 2]).spearman)  # fewer than 3 pairs
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]).spearman)  # a constant side
    with pytest.raises(ValueError, match="one length"):
        rank_correlation([1, 2, 3], [1, 2])


def test_search_vs_full_fidelity_helpers_align_by_key():
    search = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "only_search": 0.1}
    full = {"a": 0.91, "b": 0.85, "c": 0.88, "d": 0.5, "only_full": 0.99}
    result = aligned_rank_correlation(search, full, n_boot=0)
    assert result.n == 4
    assert result.spearman == pytest.approx(0.8)  # ranks 1,2,3,4 vs 1,3,2,4
    assert top_k_overlap(search, full, 2, Objective("val/acc", "max")) == 0.5  # {a,b} vs {a,c}
    assert top_k_overlap(search, full, 1, Objective("val/acc", "max")) == 1.0  # a, a
    assert top_k_overlap(search, full, 2, Objective("val/loss", "min")) == 0.5  # {d,c} vs {d,b}
    assert top_k_overlap(search, full, 1, Objective("val/loss", "min")) == 1.0  # d, d
    assert top_k_overlap({"a": 0.9, "b": 0.1}, {"a": 0.1, "b": 0.9}, 1, Objective("val/loss", "min")) == 0.0


def test_asha_rungs_follow_grace_times_rf_powers():
    assert asha_rungs(1, 3, 9) == [1, 3, 9]
    assert asha_rungs(2, 2, 9) == [2, 4, 8]
    assert asha_rungs(1, 4, 9) == [1, 4]
    assert asha_rungs(None, 3, 9) == []


def test_fidelity_report_suggests_first_epoch_that_ranks_like_the_end(tmp_path):
    exp = write_experiment(tmp_path / "exp", ranked_curves(FINALS, SHUFFLED, agree_from=3), 6)
    report = fidelity_report(exp, n_boot=300)
    assert report.full_trials == 8 and report.trials == 8
    first = report.at(1).correlation
    assert first.n == 8
    assert first.spearman == pytest.approx(spearmanr(SHUFFLED, FINALS).statistic)
    assert report.at(3).correlation.spearman == pytest.approx(1.0)
    assert report.suggested_grace_period == 3
    assert report.rungs == [1, 3]
    # epoch 1 is an ASHA rung and ranks trials barely better than chance
    assert any("rung at epoch 1" in w for w in report.warnings)

    data = json.loads((exp / "fidelity.json").read_text())
    assert data == json.loads(json.dumps(report.as_dict()))
    assert data["suggested_grace_period"] == 3
    assert data["epochs"][0]["n"] == 8 and len(data["epochs"]) == 6
    text = (exp / "fidelity.txt").read_text()
    assert text == report.text() and "Suggested grace period: 3" in text
    for png in ("curves.png", "fidelity.png"):
        content = (exp / png).read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 10_000


def test_fidelity_report_without_write_writes_nothing(tmp_path):
    exp = write_experiment(tmp_path / "exp", ranked_curves(FINALS, SHUFFLED), 6)
    before = sorted(p.name for p in exp.iterdir())
    report = fidelity_report(exp, write=False, n_boot=50)
    assert sorted(p.name for p in exp.iterdir()) == before
    assert report.files == []


def test_too_few_full_budget_trials_warns_and_suggests_nothing(tmp_path):
    curves = ranked_curves(FINALS, SHUFFLED, agree_from=1)
    for number in range(3, 8):
        curves[number] = curves[number][:1]  # pruned at the first rung
    exp = write_experiment(tmp_path / "exp", curves, 6)
    report = fidelity_report(exp, write=False, n_boot=50)
    assert report.full_trials == 3 < MIN_FULL_TRIALS
    assert report.states == {"COMPLETE": 3, "PRUNED": 5}
    assert report.suggested_grace_period is None
    assert any("only 3 trial(s) reached max_epochs=6" in w for w in report.warnings)


def test_no_epoch_predicting_the_end_warns(tmp_path):
    curves = ranked_curves(FINALS, SHUFFLED, agree_from=6)  # only the last epoch agrees
    exp = write_experiment(tmp_path / "exp", curves, 6, scheduler="none")
    report = fidelity_report(exp, write=False, n_boot=50)
    assert report.rungs == []  # no ASHA in this experiment
    assert report.suggested_grace_period is None
    assert any("no epoch before 6" in w for w in report.warnings)


def test_min_mode_metric_and_loaded_curves(tmp_path):
    losses = {i: [2.0 - 0.1 * e * (i + 1) for e in range(1, 5)] for i in range(6)}
    exp = write_experiment(tmp_path / "exp", losses, 4, metric="val/loss", mode="min")
    frame = load_experiment(exp).curves
    assert list(frame["epoch"][:4]) == [1, 2, 3, 4] and frame["val/acc"].isna().all()
    report = fidelity_report(exp, write=False, n_boot=50)
    assert report.objective == Objective("val/loss", "min")
    assert report.at(2).correlation.spearman == pytest.approx(1.0)
    assert report.suggested_grace_period == 1
    assert report.as_dict()["mode"] == "min" and "val/loss (min)" in report.text()


def test_not_an_experiment_and_no_curves_yet_are_clear_errors(tmp_path):
    with pytest.raises(ExperimentError, match="has no experiment.json; rule: "):
        fidelity_report(tmp_path)
    exp = write_experiment(tmp_path / "exp", {}, 4)
    (exp / "curves.csv").unlink()  # started, no epoch reported yet
    with pytest.raises(ExperimentError, match="curves.csv: no trial has reported an epoch yet"):
        fidelity_report(exp)


def test_bootstrap_interval_narrows_with_more_trials():
    rng = np.random.default_rng(0)
    small_x = rng.normal(size=8)
    big_x = rng.normal(size=200)
    small = rank_correlation(small_x, small_x + rng.normal(size=8), n_boot=400)
    big = rank_correlation(big_x, big_x + rng.normal(size=200), n_boot=400)
    width = (lambda r: r.spearman_ci[1] - r.spearman_ci[0])
    assert width(big) < width(small) / 2
