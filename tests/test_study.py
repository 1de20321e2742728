"""tune_nas.study: the table, JSON, importances, plots, bad input, and read-only safety.

Every test builds a real SQLite study the way the tuner fills one (ask, per-epoch report,
user attributes, tell as COMPLETE / PRUNED / FAIL) in a tmp dir; nothing here trains.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import types
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tune_nas import study as study_cli
from tune_nas.objectives import Objective

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DISTRIBUTIONS = {"lr": FloatDistribution(1e-4, 1e-1, log=True),
                 "width": CategoricalDistribution([8, 16, 32]),
                 "depth": IntDistribution(1, 3)}
MAX_EPOCHS = 4

# number: (state, params, per-epoch val/acc, test_acc, model params)
TRIALS = {
    0: ("COMPLETE", {"lr": 0.01, "width": 32, "depth": 3}, [0.60, 0.80, 0.90, 0.88], 0.87, 12345),
    1: ("PRUNED", {"lr": 0.0005, "width": 8, "depth": 1}, [0.30], None, 800),
    2: ("COMPLETE", {"lr": 0.003, "width": 16, "depth": 2}, [0.50, 0.70, 0.85, 0.91], 0.90, 5000),
    3: ("FAIL", {"lr": 0.09, "width": 32, "depth": 3}, [0.10], None, None),
    4: ("PRUNED", {"lr": 0.002, "width": 16, "depth": 2}, [0.55, 0.72], None, 5000),
    5: ("COMPLETE", {"lr": 0.0002, "width": 8, "depth": 1}, [0.20, 0.30, 0.40, 0.45], 0.44, 800),
    6: ("PRUNED", {"lr": 0.02, "width": 32, "depth": 1}, [0.58, 0.70], None, 3000),
}


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def add_trial(study: optuna.Study, state: str, params: dict, curve: list[float],
              test_acc: float | None, n_params: int | None, error: str | None = None) -> None:
    """What RecordingOptunaSearch does for one trial."""
    study.enqueue_trial(params)
    trial = study.ask(DISTRIBUTIONS)
    trial.set_user_attr("ray_trial_id", f"ray{trial.number:03d}")
    trial.set_user_attr("tensorboard_run", f"{trial.number:03d}_run")
    epochs = len(curve) if state != "FAIL" else len(curve) - 1
    for epoch, value in enumerate(curve[:epochs], 1):
        trial.report(value, epoch)
    attrs = {"epochs": epochs, "checkpoint": f"/ckpt/{trial.number}", "test_acc": test_acc,
             "params": n_params, "retries": 0, "error": error}
    for key, value in attrs.items():
        if value is not None:
            trial.set_user_attr(key, value)
    states = {"COMPLETE": optuna.trial.TrialState.COMPLETE,
              "PRUNED": optuna.trial.TrialState.PRUNED, "FAIL": optuna.trial.TrialState.FAIL}
    study.tell(trial, curve[-1] if state == "COMPLETE" else None, state=states[state])


def make_experiment(root: Path, name: str = "exp", trials: dict | None = None) -> Path:
    """trials/<name>/ with optuna.db (study <name>, maximize) and experiment.json."""
    _quiet()
    experiment = root / "trials" / name
    experiment.mkdir(parents=True)
    (experiment / "experiment.json").write_text(json.dumps(
        {"name": name, "spec": {"metric": "val/acc", "mode": "max", "max_epochs": MAX_EPOCHS}}))
    study = optuna.create_study(storage=f"sqlite:///{experiment / 'optuna.db'}", study_name=name,
                                direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for number, (state, params, curve, test_acc, n_params) in (trials or TRIALS).items():
        add_trial(study, state, params, curve, test_acc, n_params,
                  error="loss is NaN at epoch 1" if state == "FAIL" else None)
        assert study.trials[-1].number == number
    study._storage.remove_session()  # the file is closed before a test looks at it
    return experiment


@pytest.fixture(scope="module")
def experiment_template(tmp_path_factory) -> Path:
    return make_experiment(tmp_path_factory.mktemp("template"))


@pytest.fixture()
def experiment(experiment_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the 7-trial experiment (building it once saves ~100 SQLite commits)."""
    copy = tmp_path / "trials" / experiment_template.name
    shutil.copytree(experiment_template, copy)
    return copy


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = study_cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rank")) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


# --------------------------------------------------------------------------- table, JSON


def test_table_ranks_complete_then_pruned_by_epoch_then_fail(experiment, capsys):
    code, out, err = run_cli(capsys, str(experiment))
    assert code == 0, err
    assert "Study exp: 7 trials (3 COMPLETE, 3 PRUNED, 1 FAIL); objective val/acc (max)" in out
    assert "at most 4 epochs per trial" in out
    rows = table_rows(out)
    # COMPLETE by final value (2: 0.91, 0: 0.88, 5: 0.45); PRUNED by epochs reached, then
    # last value (4 and 6 at epoch 2: 0.72 > 0.70; 1 at epoch 1); FAIL last.
    assert [int(r[1]) for r in rows] == [2, 0, 5, 4, 6, 1, 3]
    assert [r[2] for r in rows] == ["COMPLETE"] * 3 + ["PRUNED"] * 3 + ["FAIL"]
    best = rows[0]
    assert best[:9] == ["1", "2", "COMPLETE", "4", "0.9100", "0.9100", "0.9000", "5.0k",
                        "depth=2"]
    # trial 0: final 0.88 but best epoch 0.90; 12345 parameters shown as 12.3k
    assert rows[1][3:8] == ["4", "0.8800", "0.9000", "0.8700", "12.3k"]
    assert "lr=0.01" in " ".join(rows[1]) and "width=32" in " ".join(rows[1])
    assert rows[3][3:7] == ["2", "0.7200", "0.7200", "-"]  # pruned: value = last report
    assert "Failed trials (1):\n      3  loss is NaN at epoch 1" in out
    assert "missing" not in out and "Note:" not in out


def test_top_limits_the_table(experiment, capsys):
    code, out, _ = run_cli(capsys, str(experiment), "--top", "2")
    assert code == 0
    assert [int(r[1]) for r in table_rows(out)] == [2, 0]
    assert "Top 2 of 7 trials" in out


def test_json_output(experiment, capsys):
    code, out, _ = run_cli(capsys, str(experiment), "--json", "--top", "3")
    assert code == 0
    data = json.loads(out)
    assert data["study"] == "exp" and data["directions"] == ["maximize"]
    assert data["metric_names"] == ["val/acc"] and data["max_epochs"] == MAX_EPOCHS
    assert data["counts"] == {"COMPLETE": 3, "PRUNED": 3, "FAIL": 1} and data["n_trials"] == 7
    assert data["storage"] == f"sqlite:///{experiment.resolve() / 'optuna.db'}"
    assert [t["number"] for t in data["top"]] == [2, 0, 5]
    best = data["best"]
    assert best["number"] == 2 and best["value"] == pytest.approx(0.91)
    assert best["config"] == {"lr": 0.003, "width": 16, "depth": 2}
    assert best["epochs"] == 4 and best["test_acc"] == pytest.approx(0.90)
    assert best["model_params"] == 5000 and best["ray_trial_id"] == "ray002"
    assert best["intermediate_values"] == {"1": 0.5, "2": 0.7, "3": 0.85, "4": 0.91}
    assert data["top"][1]["best_value"] == pytest.approx(0.90)  # trial 0's epoch 3
    assert data["failed"] == [{"number": 3, "error": "loss is NaN at epoch 1"}]
    imp = data["importances"]
    assert imp["evaluator"] == "fANOVA, seed 0" and imp["n_complete"] == 3 and imp["note"] is None
    shares = imp["values"]["val/acc"]
    assert set(shares) == {"lr", "width", "depth"}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert list(shares.values()) == sorted(shares.values(), reverse=True)
    # seeded: the same study gives the same importances
    code, out2, _ = run_cli(capsys, str(experiment), "--json")
    assert json.loads(out2)["importances"] == imp


def test_running_trial_is_counted_and_ranked_by_its_epochs(experiment, capsys):
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{experiment / 'optuna.db'}")
    study.enqueue_trial({"lr": 0.004, "width": 16, "depth": 2})
    trial = study.ask(DISTRIBUTIONS)
    for epoch, value in enumerate([0.5, 0.6, 0.65], 1):
        trial.report(value, epoch)
    study._storage.remove_session()
    code, out, _ = run_cli(capsys, str(experiment), "--json", "--top", "10")
    assert code == 0
    data = json.loads(out)
    assert data["counts"] == {"COMPLETE": 3, "PRUNED": 3, "RUNNING": 1, "FAIL": 1}
    numbers = [t["number"] for t in data["top"]]
    assert numbers == [2, 0, 5, 4, 6, 1, 7, 3]
    running = data["top"][6]
    assert running["state"] == "RUNNING" and running["epochs"] == 3
    assert running["best_value"] == pytest.approx(0.65) and running["value"] is None


@pytest.mark.parametrize("n_complete", [0, 1])
def test_too_few_complete_trials_for_importances(tmp_path, capsys, n_complete):
    trials = {0: TRIALS[1], 1: TRIALS[4]}
    if n_complete:
        trials[2] = TRIALS[0]
    experiment = make_experiment(tmp_path, trials=trials)
    code, out, _ = run_cli(capsys, str(experiment))
    assert code == 0
    assert (f"Hyperparameter importances: not computed: {n_complete} COMPLETE trial(s); rule: "
            "importances need at least 2") in out
    code, out, _ = run_cli(capsys, str(experiment), "--json")
    imp = json.loads(out)["importances"]
    assert imp["values"] is None and imp["n_complete"] == n_complete
    assert imp["note"].startswith("not computed")


def test_importances_say_when_the_evaluator_raises(tmp_path, capsys):
    same = ("COMPLETE", None, [0.5, 0.5, 0.5, 0.5], 0.5, 100)
    trials = {0: (same[0], {"lr": 0.01, "width": 8, "depth": 1}, *same[2:]),
              1: (same[0], {"lr": 0.001, "width": 16, "depth": 2}, *same[2:])}
    experiment = make_experiment(tmp_path, trials=trials)
    code, out, _ = run_cli(capsys, str(experiment), "--json")
    note = json.loads(out)["importances"]["note"]
    assert code == 0 and note.startswith("not computed")
    assert "RuntimeError" in note or "every importance is 0" in note


def test_trials_missing_their_last_report_are_pointed_out(tmp_path, capsys):
    experiment = make_experiment(tmp_path, trials={0: TRIALS[0], 1: TRIALS[4]})
    db = experiment / "optuna.db"
    # as a search that never reported the epoch that stopped a trial leaves it
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM trial_intermediate_values WHERE trial_id = "
                     "(SELECT trial_id FROM trials WHERE number = 1) AND step = 2")
    code, out, _ = run_cli(capsys, str(experiment))
    assert code == 0
    assert "Note: 1 of 2 finished trials have fewer per-epoch values" in out
    assert "trials 1." in out
    code, out, _ = run_cli(capsys, str(experiment), "--json")
    assert json.loads(out)["missing_last_report"] == [1]


def test_storage_url_picks_the_only_study(experiment, capsys):
    code, out, err = run_cli(capsys, "--storage", f"sqlite:///{experiment / 'optuna.db'}", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["study"] == "exp" and data["experiment_dir"] is None
    assert data["metric_names"] == ["value"] and data["max_epochs"] is None  # no experiment.json
    assert data["counts"]["COMPLETE"] == 3


def test_a_study_in_another_database_is_found_through_experiment_json(experiment, tmp_path, capsys):
    """Launched with --storage: experiment.json names the database; the directory has no optuna.db."""
    elsewhere = tmp_path / "shared.db"
    shutil.move(experiment / "optuna.db", elsewhere)
    saved = json.loads((experiment / "experiment.json").read_text())
    (experiment / "experiment.json").write_text(json.dumps({**saved, "storage": f"sqlite:///{elsewhere}"}))
    code, out, err = run_cli(capsys, str(experiment), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["storage"] == f"sqlite:///{elsewhere}" and data["study"] == "exp"
    assert data["max_epochs"] == MAX_EPOCHS and data["metric_names"] == ["val/acc"]


def test_an_unreadable_experiment_json_is_one_line_naming_it(experiment, capsys):
    (experiment / "experiment.json").write_text('{"name": "exp", "spec": {"mode": "up"}}')
    code, out, err = run_cli(capsys, str(experiment))
    assert code == study_cli.EXIT_BAD_INPUT and out == ""
    assert err.count("\n") == 1 and "experiment.json: spec: objective val/acc: direction='up'" in err


def test_experiment_dir_with_odd_characters(experiment, capsys):
    odd = experiment.parent / "exp %41 #x ?y"
    experiment.rename(odd)  # SQLite's URI must quote these; SQLAlchemy's URL would unquote %41
    code, out, err = run_cli(capsys, str(odd), "--json", "--top", "1")
    assert code == 0, err
    data = json.loads(out)
    assert data["study"] == "exp" and data["top"][0]["number"] == 2


# --------------------------------------------------------------------------- plots


def test_plots_html_and_png(experiment, tmp_path, capsys):
    out_dir = tmp_path / "plots"
    before = _snapshot(experiment)
    code, out, err = run_cli(capsys, str(experiment), "--plots", str(out_dir))
    assert code == 0, err
    assert _snapshot(experiment) == before  # plots go only to --plots DIR
    names = ["optimization_history", "param_importances", "parallel_coordinate",
             "intermediate_values"]
    for name in names:
        png = (out_dir / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000, name
        html = (out_dir / f"{name}.html").read_text()
        assert 'src="plotly.min.js"' in html and "Plotly.newPlot" in html
        assert f"  {name}: {name}.html, {name}.png" in out
    assert (out_dir / "plotly.min.js").stat().st_size > 1_000_000  # once, offline
    assert "  pareto_front: skipped (a single objective has no Pareto front)" in out
    assert not (out_dir / "pareto_front.png").exists()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [f"{n}.{ext}" for n in names for ext in ("html", "png")] + ["plotly.min.js"])


def test_plots_a_study_optuna_cannot_draw_much_of(tmp_path, capsys):
    experiment = make_experiment(tmp_path, trials={0: TRIALS[1], 1: TRIALS[3]})
    out_dir = tmp_path / "plots"
    code, out, _ = run_cli(capsys, str(experiment), "--plots", str(out_dir), "--json")
    assert code == 0
    plots = json.loads(out)["plots"]
    assert plots["skipped"] == {
        "optimization_history": "no COMPLETE trial yet",
        "param_importances": "no COMPLETE trial yet",
        "parallel_coordinate": "no COMPLETE trial yet",
        "pareto_front": "a single objective has no Pareto front",
        "hypervolume_history": "a single objective has no hypervolume"}
    assert list(plots["written"]) == ["intermediate_values"]
    assert (out_dir / "intermediate_values.png").is_file()


def test_multi_objective_study_gets_a_pareto_front(tmp_path, capsys):
    _quiet()
    db = tmp_path / "mo.db"
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="mo",
                                directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.set_metric_names(["val/acc", "latency_ms"])
    for acc, ms, width in [(0.9, 5.0, 32), (0.8, 2.0, 16), (0.7, 3.0, 8), (0.95, 9.0, 32)]:
        study.enqueue_trial({"lr": 0.01 * acc, "width": width, "depth": 2})
        trial = study.ask(DISTRIBUTIONS)
        study.tell(trial, [acc, ms])
    study._storage.remove_session()
    out_dir = tmp_path / "plots"
    code, out, err = run_cli(capsys, "--storage", f"sqlite:///{db}", "--plots", str(out_dir),
                             "--json", "--plotlyjs", "cdn")
    assert code == 0, err
    data = json.loads(out)
    # the front: (0.95, 9), (0.9, 5), (0.8, 2); (0.7, 3) is dominated by (0.8, 2)
    assert [t["pareto_optimal"] for t in data["top"]] == [True, True, True, False]
    assert data["top"][-1]["values"] == [0.7, 3.0]
    assert set(data["importances"]["values"]) == {"val/acc", "latency_ms"}
    written = data["plots"]["written"]
    for name in ("pareto_front", "optimization_history_val_acc",
                 "optimization_history_latency_ms", "parallel_coordinate_val_acc",
                 "param_importances"):
        assert name in written and (out_dir / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "cdn.plot.ly" in (out_dir / "pareto_front.html").read_text()
    assert data["plots"]["skipped"] == {
        "intermediate_values": "no trial reported intermediate values"}


# --------------------------------------------------------------------------- fidelity


def test_fidelity_calls_curves_with_the_experiment(experiment, capsys, monkeypatch):
    calls = []

    class Report:
        def text(self) -> str:
            return "FIDELITY TEXT"

        def as_dict(self) -> dict:
            return {"suggested_grace_period": 2}

    def fidelity_report(experiment_dir, write=True):
        calls.append((Path(experiment_dir), write))
        return Report()

    fake = types.ModuleType("tune_nas.analysis.fidelity")
    fake.fidelity_report = fidelity_report
    monkeypatch.setitem(sys.modules, "tune_nas.analysis.fidelity", fake)
    code, out, _ = run_cli(capsys, str(experiment), "--fidelity")
    assert code == 0 and out.rstrip().endswith("FIDELITY TEXT")
    assert calls == [(experiment.resolve(), True)]
    code, out, _ = run_cli(capsys, str(experiment), "--fidelity", "--json")
    assert json.loads(out)["fidelity"] == {"text": "FIDELITY TEXT", "error": None,
                                           "report": {"suggested_grace_period": 2}}


# --------------------------------------------------------------------------- bad input


def _bad_input_cases(tmp: Path, experiment: Path) -> list[tuple[list[str], list[str]]]:
    (tmp / "afile").write_text("x")
    (tmp / "empty_dir").mkdir()
    (tmp / "notadb.db").write_text("this is not sqlite")
    two = tmp / "two.db"
    for name in ("a", "b"):
        optuna.create_study(storage=f"sqlite:///{two}", study_name=name)._storage.remove_session()
    return [
        ([str(tmp / "missing")], ["missing: no such directory", "rule:"]),
        ([str(tmp / "afile")], ["afile: not a directory", "rule:"]),
        ([str(tmp / "empty_dir")], ["empty_dir: has no optuna.db", "rule:"]),
        ([str(experiment), "--study", "nope"], ["--study 'nope': not in", "rule: one of 'exp'"]),
        (["--storage", "notaurl"], ["--storage 'notaurl': not a database URL", "rule:"]),
        (["--storage", "nosuchdialect://x/y"], ["--storage", "nosuchdialect", "rule:"]),
        (["--storage", f"sqlite:///{tmp / 'missing.db'}"], ["no file", "missing.db", "rule:"]),
        (["--storage", f"sqlite:///{tmp / 'notadb.db'}"], ["notadb.db", "rule:"]),
        (["--storage", f"sqlite:///{two}"], ["holds 2 studies (a, b)", "rule: name one"]),
        ([str(experiment), "--storage", "sqlite:///x.db"], ["both given", "rule:"]),
        ([], ["no study given", "rule:"]),
        ([str(experiment), "--top", "0"], ["--top", "0 is not allowed", "rule:"]),
        ([str(experiment), "--plots", str(experiment / "plots")],
         ["--plots", "inside the experiment", "rule:"]),
        ([str(experiment), "--plots", str(tmp / "afile")], ["--plots", "is a file", "rule:"]),
        (["--storage", f"sqlite:///{experiment / 'optuna.db'}", "--fidelity"],
         ["--fidelity with --storage", "rule:"]),
    ]


def test_bad_input_is_one_line_and_exit_2(experiment, tmp_path, capsys):
    for argv, parts in _bad_input_cases(tmp_path, experiment):
        code, out, err = run_cli(capsys, *argv)
        assert code == study_cli.EXIT_BAD_INPUT, (argv, err)
        assert out == "" and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        for part in parts:
            assert part in err, (argv, err)
    assert not (experiment / "plots").exists()


def test_bad_input_from_the_real_command_line(tmp_path):
    proc = subprocess.run([PYTHON, "-m", "tune_nas.study", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"tune_nas.study: error: {tmp_path / 'nope'}: no such directory; "
                           "rule: an experiment directory (trials/NAME) holding optuna.db\n")


# --------------------------------------------------------------------------- read-only


def _snapshot(directory: Path) -> dict[str, tuple[int, int, bytes]]:
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.stat().st_size,
                                            p.read_bytes() if p.is_file() else b"")
            for p in sorted(directory.rglob("*"))}


def test_inspection_writes_nothing_into_the_experiment(experiment, capsys):
    """(test_plots_html_and_png checks the same with --plots.)"""
    os.utime(experiment / "optuna.db", ns=(1_000_000_000, 1_000_000_000))  # an old mtime
    before = _snapshot(experiment)
    for argv in ([str(experiment)], [str(experiment), "--json", "--top", "1"],
                 ["--storage", f"sqlite:///{experiment / 'optuna.db'}"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 0, err
    assert _snapshot(experiment) == before  # same files, bytes and mtimes; no journal left


def test_the_storage_refuses_writes(experiment):
    storage = study_cli.readonly_sqlite_storage(experiment / "optuna.db")
    study = optuna.load_study(study_name="exp", storage=storage)
    with pytest.raises(Exception, match="(?i)readonly|read-only|commit"):
        study.set_user_attr("written", True)
    storage.remove_session()


WRITER_HOLDS = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN " + sys.argv[2])
    conn.execute("UPDATE trial_values SET value = 0.123 WHERE trial_id = "
                 "(SELECT trial_id FROM trials WHERE number = 2)")
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
    conn.execute("COMMIT" if sys.argv[4] == "commit" else "ROLLBACK")
    print("done", flush=True)
""")


def _start_writer(db: Path, mode: str, hold_s: float, end: str) -> subprocess.Popen:
    proc = subprocess.Popen([PYTHON, "-c", WRITER_HOLDS, str(db), mode, str(hold_s), end],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_inspection_during_an_open_write_transaction(experiment, capsys):
    """A writer mid-transaction (RESERVED lock, change not committed): the reader reads the
    committed state at once."""
    writer = _start_writer(experiment / "optuna.db", "IMMEDIATE", 30, "rollback")
    try:
        started = time.monotonic()
        code, out, err = run_cli(capsys, str(experiment), "--json")
        assert code == 0, err
        assert time.monotonic() - started < 20
        best = json.loads(out)["best"]
        assert best["number"] == 2 and best["value"] == pytest.approx(0.91)  # not 0.123
        assert writer.poll() is None  # the writer still holds its transaction
    finally:
        writer.kill()
        writer.wait()


def test_inspection_waits_for_an_exclusive_lock_instead_of_failing(experiment, capsys):
    """A writer holding the EXCLUSIVE lock (a commit in progress) for 1 s: the reader waits for
    it (no 'database is locked') and sees the committed change."""
    writer = _start_writer(experiment / "optuna.db", "EXCLUSIVE", 1.0, "commit")
    try:
        code, out, err = run_cli(capsys, str(experiment), "--json")
        assert code == 0, err
        top = {t["number"]: t for t in json.loads(out)["top"]}
        assert top[2]["value"] == pytest.approx(0.123)
        assert writer.wait(timeout=20) == 0
    finally:
        writer.kill()
        writer.wait()


WRITER_ADDS_TRIALS = textwrap.dedent("""
    import sys, time, warnings
    import optuna
    from optuna.distributions import FloatDistribution
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=sys.argv[2], storage="sqlite:///" + sys.argv[1])
    print("ready", flush=True)
    for i in range(int(sys.argv[3])):
        trial = study.ask({"lr": FloatDistribution(1e-4, 1e-1, log=True)})
        for epoch in (1, 2):
            trial.report(0.1 * epoch, epoch)
        trial.set_user_attr("epochs", 2)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    print("done", flush=True)
""")


def test_inspection_while_another_process_writes(experiment):
    """Optuna adding trials in another process while we read repeatedly: no lock errors on
    either side, and every read is a consistent, growing snapshot."""
    n_new = 10
    writer = subprocess.Popen([PYTHON, "-c", WRITER_ADDS_TRIALS, str(experiment / "optuna.db"),
                               "exp", str(n_new)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        seen = []
        source = study_cli.resolve_source(str(experiment), None, None)
        while writer.poll() is None or not seen:
            study = study_cli.load_study(source)
            rows = [study_cli.trial_row(t, Objective()) for t in study.get_trials(deepcopy=False)]
            seen.append(len(rows))
            for row in rows[len(TRIALS):]:
                assert row.state in ("RUNNING", "PRUNED")
                if row.state == "PRUNED":
                    assert row.intermediate == {1: 0.1, 2: 0.2}  # a told trial is whole
            study._storage._backend.remove_session()
        assert writer.wait(timeout=30) == 0 and writer.stdout.read().strip() == "done"
    finally:
        writer.kill()
        writer.wait()
    assert seen == sorted(seen) and len(seen) >= 2
    final = study_cli.load_study(source)
    assert len(final.trials) == len(TRIALS) + n_new
