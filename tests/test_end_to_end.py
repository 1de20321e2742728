"""A real 4-trial × 3-epoch search through Ray, asserted on the files it writes."""

import csv
import json

import optuna
import pytest


def test_summary_counts_best_and_versions(small_search, small_summary):
    s = small_summary
    assert s["experiment"] == "e2e" and s["max_epochs"] == 3
    assert sum(s["counts"].values()) == 4
    assert set(s["versions"]) >= {"ray", "optuna", "torch", "lightning"}
    for f in ("experiment.json", "space.py", "curves.csv", "trials.json", "optuna.db"):
        assert (small_search / f).is_file(), f
    assert (small_search / "tensorboard").is_dir()


def test_study_states_values_and_identity(small_search, small_summary):
    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{small_search / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4
    states = {t.number: t.state.name for t in trials}
    by_number = {t["number"]: t for t in small_summary["trials"]}
    assert {n: by_number[n]["state"] for n in states} == states
    assert "RUNNING" not in states.values()
    for t in trials:
        assert t.user_attrs["ray_trial_id"] == by_number[t.number]["trial_id"]
        assert t.user_attrs["tensorboard_run"].startswith(f"{t.number:03d}_")
        assert t.user_attrs["epochs"] == by_number[t.number]["epochs"]
        # the cost of every trial's model: params, FLOPs per image, prediction latency
        assert t.user_attrs["params"] == by_number[t.number]["params"] > 0
        assert t.user_attrs["flops"] == by_number[t.number]["flops"] > 0
        assert t.user_attrs["latency_ms"] > 0
        # one intermediate value per epoch run
        assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs"] + 1))
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.user_attrs["epochs"] == 3
            assert t.value == pytest.approx(t.intermediate_values[3])
            assert 0 <= t.user_attrs["test_acc"] <= 1
        if t.state == optuna.trial.TrialState.PRUNED:
            assert t.user_attrs["epochs"] < 3
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete, "ASHA always lets at least one trial finish"
    best = small_summary["best"]
    assert best["number"] == study.best_trial.number
    assert best["val_acc"] == pytest.approx(study.best_value)
    assert best["test_acc"] == pytest.approx(study.best_trial.user_attrs["test_acc"])


def test_curves_have_one_row_per_trial_epoch_with_final_state(small_search, small_summary):
    with (small_search / "curves.csv").open() as f:
        rows = list(csv.DictReader(f))
    by_trial = {}
    for r in rows:
        by_trial.setdefault(int(r["trial_number"]), []).append(int(r["epoch"]))
    for t in small_summary["trials"]:
        assert by_trial[t["number"]] == list(range(1, t["epochs"] + 1))
    for r in rows:
        trial = next(t for t in small_summary["trials"] if t["number"] == int(r["trial_number"]))
        assert r["state"] == trial["state"] and int(r["final_epoch"]) == trial["epochs"]
        assert 0 <= float(r["val/acc"]) <= 1


def test_tensorboard_runs_hold_scalars_and_hparams(small_search, small_summary):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    runs = {p.name: p for p in (small_search / "tensorboard").iterdir()}
    assert len(runs) == 4
    for t in small_summary["trials"]:
        acc = EventAccumulator(str(runs[t["run"]]))
        acc.Reload()
        tags = acc.Tags()["scalars"]
        for tag in ("train/loss", "val/loss", "val/acc", "lr", "time/epoch_s"):
            assert tag in tags
            assert [e.step for e in acc.Scalars(tag)] == list(range(1, t["epochs"] + 1))
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hp = start.session_start_info.hparams
        assert hp["trial_number"].number_value == t["number"]
        for key, value in t["config"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert hp[key].number_value == pytest.approx(value)
        end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
        assert end.session_end_info.status == (2 if t["state"] == "FAIL" else 1)  # FAILURE / SUCCESS
        if t["state"] == "COMPLETE":
            assert [e.value for e in acc.Scalars("test/acc")] == [pytest.approx(t["test_acc"])]


def test_terminal_report_names_the_best_trial_and_the_commands(small_search, small_summary):
    out = (small_search / "launch_stdout.txt").read_text()
    assert f"Best trial {small_summary['best']['number']} " in out
    assert "tensorboard --logdir" in out and "--host 127.0.0.1" in out
    assert "optuna-dashboard sqlite:///" in out


def test_same_seed_samples_the_same_first_configs(tmp_path, small_summary):
    from conftest import run_launch

    proc = run_launch("--num-samples", "2", "--max-epochs", "1", "--name", "again",
                      "--trials-dir", str(tmp_path), "--seed", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    first = {t["number"]: t["config"] for t in small_summary["trials"]}
    for t in again["trials"]:
        assert t["config"] == first[t["number"]]
