"""The driver's records survive a driver killed mid-trial: every reported epoch is kept."""

import csv

from tune_nas.objectives import Objective
from tune_nas.record.bookkeeper import Bookkeeper


def _result(epoch: int, acc: float) -> dict:
    return {"epoch": epoch, "val/acc": acc, "train/loss": 1.0 / epoch, "time/epoch_s": 0.1}


def test_epochs_reported_before_a_kill_are_kept_for_the_resumed_run(tmp_path):
    keeper = Bookkeeper(tmp_path, Objective("val/acc", "max"), max_epochs=3)
    keeper.trial_started("done", 0, {"lr": 0.1, "trial_number": 0})
    keeper.trial_started("running", 1, {"lr": 0.2, "trial_number": 1})
    keeper.trial_result("done", _result(1, 0.5))
    keeper.trial_result("running", _result(1, 0.6))
    keeper.trial_ended("done", "PRUNED")  # writes curves.csv: both rows so far
    keeper.trial_result("running", _result(2, 0.7))  # only in the journal when the driver dies
    with keeper.journal_path.open("a") as f:
        f.write('{"trial_id": "running", "epo')  # the line being written at the kill
    keeper.close()

    resumed = Bookkeeper(tmp_path, Objective("val/acc", "max"), max_epochs=3)
    resumed.load_existing()
    assert sorted(resumed.curves) == [("done", 1), ("running", 1), ("running", 2)]
    # the trial starts again with what it had reported (Ray may stop it before it reports)
    record = resumed.trial_started("running", 1, {"lr": 0.2, "trial_number": 1})
    assert (record.epochs, record.last["val/acc"], record.best_value) == (2, 0.7, 0.7)
    # Ray resumes "running" from its epoch-1 checkpoint: epoch 2 again, then 3
    resumed.trial_result("running", _result(2, 0.71))
    resumed.trial_result("running", _result(3, 0.8))
    resumed.trial_ended("running", "COMPLETE")
    resumed.close()
    with resumed.curves_path.open() as f:
        rows = [(r["trial_id"], int(r["epoch"]), float(r["val/acc"]), r["state"]) for r in csv.DictReader(f)]
    assert rows == [("done", 1, 0.5, "PRUNED"), ("running", 1, 0.6, "COMPLETE"),
                    ("running", 2, 0.71, "COMPLETE"), ("running", 3, 0.8, "COMPLETE")]
    assert not resumed.journal_path.exists()  # everything is in curves.csv


def test_checkpoints_recorded_before_the_experiment_moved_point_where_it_is_now(tmp_path):
    import json

    from tune_nas.record.bookkeeper import Bookkeeper

    old = tmp_path / "old" / "trials" / "exp"
    exp = tmp_path / "new" / "trials" / "exp"
    (exp / "trial_000_a" / "checkpoint_000003").mkdir(parents=True)
    records = [{"trial_id": "a", "number": 0, "config": {}, "run": "000_a", "state": "COMPLETE",
                "epochs": 3, "checkpoint": str(old / "trial_000_a" / "checkpoint_000003")},
               {"trial_id": "b", "number": 1, "config": {}, "run": "001_b", "state": "PRUNED",
                "epochs": 1, "checkpoint": str(old / "trial_001_b" / "checkpoint_000001")},
               {"trial_id": "c", "number": 2, "config": {}, "run": "002_c", "state": "PRUNED",
                "epochs": 1, "checkpoint": "s3://bucket/trials/exp/trial_002_c/checkpoint_000001"}]
    (exp / "trials.json").write_text(json.dumps(records))
    keeper = Bookkeeper(exp, Objective("val/acc", "max"), 3)
    keeper.load_existing()
    assert keeper.trials["a"].checkpoint == str(exp / "trial_000_a" / "checkpoint_000003")
    assert keeper.trials["b"].checkpoint == records[1]["checkpoint"]  # not here either: as recorded
    assert keeper.trials["c"].checkpoint == records[2]["checkpoint"]  # object storage: as recorded


def test_summary_and_trials_files_are_strict_json(tmp_path):
    """NaN (a failed trial's metrics) is written as null: jq and browsers read the files."""
    import json

    from tune_nas.record.bookkeeper import write_json

    keeper = Bookkeeper(tmp_path, Objective("val/loss", "min"), max_epochs=3)
    keeper.trial_started("t", 0, {"lr": 0.1, "trial_number": 0})
    keeper.trial_result("t", {"epoch": 1, "val/loss": float("nan"), "val/acc": float("inf"), "error": "boom"})
    keeper.trial_ended("t", "FAIL", "boom")
    journal = (tmp_path / "trials.journal.jsonl").read_text()  # the record as the trial ended
    assert "NaN" not in journal and json.loads(journal)["last"]["val/loss"] is None
    keeper.close()  # trials.json whole
    write_json(tmp_path / "summary.json", {"best": None, "values": [float("nan"), 1.0]})
    for name in ("trials.json", "summary.json"):
        text = (tmp_path / name).read_text()
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert json.loads((tmp_path / "summary.json").read_text())["values"] == [None, 1.0]
    assert json.loads((tmp_path / "trials.json").read_text())[0]["last"]["val/loss"] is None


def test_what_a_trial_costs_the_bookkeeper_does_not_grow_with_the_trials_before_it(tmp_path, monkeypatch):
    """Bytes written per trial (its epochs, its end): the same for the 1,500th trial as for the
    100th, because curves.csv and the trial records are appended, not rewritten (a rewrite at
    every end made a search of thousands of trials quadratic); and no curve row of an ended
    trial stays in the driver's memory."""
    from tune_nas.record import bookkeeper as module

    written = [0]
    append, atomic = module._append, module._atomic_write
    monkeypatch.setattr(module, "_append", lambda path, text: (written.__setitem__(0, written[0] + len(text)),
                                                               append(path, text))[1])
    monkeypatch.setattr(module, "_atomic_write", lambda path, text: (written.__setitem__(0, written[0] + len(text)),
                                                                     atomic(path, text))[1])
    monkeypatch.setattr(module.TensorBoardRuns, "start", lambda *a, **k: None)  # TensorBoard's own files aside
    monkeypatch.setattr(module.TensorBoardRuns, "epoch", lambda *a, **k: None)
    monkeypatch.setattr(module.TensorBoardRuns, "end", lambda *a, **k: None)
    keeper = Bookkeeper(tmp_path, Objective("val/acc", "max"), max_epochs=3)
    per_trial = []
    for n in range(1500):
        before = written[0]
        trial_id = f"t{n:05d}"
        keeper.trial_started(trial_id, n, {"lr": 0.1, "trial_number": n, "trial_run": f"{n:05d}_run"})
        for epoch in (1, 2, 3):
            keeper.trial_result(trial_id, _result(epoch, 0.5 + epoch / 10))
        keeper.trial_ended(trial_id, "COMPLETE")
        per_trial.append(written[0] - before)
        assert not keeper.curves  # memory too: an ended trial's rows are in curves.csv, not held
    early, late = sum(per_trial[100:200]) / 100, sum(per_trial[1400:1500]) / 100
    assert late <= 1.05 * early, (early, late)
    keeper.close()  # the end: curves.csv and trials.json whole, the journals gone
    with keeper.curves_path.open() as f:
        rows = [(r["trial_id"], int(r["epoch"]), r["state"]) for r in csv.DictReader(f)]
    assert len(rows) == len(set(rows)) == 4500 and {s for *_, s in rows} == {"COMPLETE"}
    assert not keeper.journal_path.exists() and not (tmp_path / "trials.journal.jsonl").exists()


def test_mid_search_files_read_back_as_the_search_left_them(tmp_path):
    """Mid-search: curves.csv holds the ended trials' rows (appended at each end, the file
    rewritten when a row brings a new column), the journals hold the rest; a reader merges
    them, an ended trial's final rows never replaced by the journal's older ones."""
    keeper = Bookkeeper(tmp_path, Objective("val/acc", "max"), max_epochs=2)
    for n in range(3):
        keeper.trial_started(f"t{n}", n, {"lr": 0.1, "trial_number": n})
        keeper.trial_result(f"t{n}", _result(1, 0.5 + n / 10))
    keeper.trial_ended("t0", "PRUNED")
    keeper.trial_result("t1", {**_result(2, 0.9), "test/acc": 0.88, "custom/metric": 7})  # a new column
    keeper.trial_ended("t1", "COMPLETE")
    with keeper.curves_path.open() as f:
        on_disk = [(r["trial_id"], r["epoch"], r["state"], r["custom/metric"]) for r in csv.DictReader(f)]
    assert on_disk == [("t0", "1", "PRUNED", ""), ("t1", "1", "COMPLETE", ""), ("t1", "2", "COMPLETE", "7")]
    assert list(keeper.curves) == [("t2", 1)]  # the driver holds the running trial's rows only

    reader = Bookkeeper(tmp_path, Objective("val/acc", "max"), max_epochs=2)
    reader.load_existing()  # what a resumed run and the analysis see
    assert {k: r["state"] for k, r in reader.curves.items()} == {
        ("t0", 1): "PRUNED", ("t1", 1): "COMPLETE", ("t1", 2): "COMPLETE", ("t2", 1): "RUNNING"}
    assert {t: (r.state, r.epochs) for t, r in reader.trials.items()} == {"t0": ("PRUNED", 1), "t1": ("COMPLETE", 2)}


def test_curves_file_at_the_end_is_sorted_and_whole_though_ended_rows_were_let_go(tmp_path):
    """Trials end out of order and their rows leave memory at their end; close() writes
    curves.csv whole from the file and the rows still held: every row once, by trial and epoch."""
    keeper = Bookkeeper(tmp_path, Objective("val/acc", "max"), max_epochs=2)
    for n in range(4):
        keeper.trial_started(f"t{n}", n, {"lr": 0.1, "trial_number": n})
        keeper.trial_result(f"t{n}", _result(1, 0.5))
    for n in (3, 1):
        keeper.trial_result(f"t{n}", _result(2, 0.6))
        keeper.trial_ended(f"t{n}", "COMPLETE")
    keeper.trial_ended("t2", "PRUNED")
    keeper.close()  # t0 still running when the search stops
    with keeper.curves_path.open() as f:
        rows = [(r["trial_id"], r["epoch"], r["state"], r["final_epoch"]) for r in csv.DictReader(f)]
    assert rows == [("t0", "1", "RUNNING", ""), ("t1", "1", "COMPLETE", "2"), ("t1", "2", "COMPLETE", "2"),
                    ("t2", "1", "PRUNED", "1"), ("t3", "1", "COMPLETE", "2"), ("t3", "2", "COMPLETE", "2")]
