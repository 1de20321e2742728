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
    write_json(tmp_path / "summary.json", {"best": None, "values": [float("nan"), 1.0]})
    for name in ("trials.json", "summary.json"):
        text = (tmp_path / name).read_text()
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert json.loads((tmp_path / "summary.json").read_text())["values"] == [None, 1.0]
    assert json.loads((tmp_path / "trials.json").read_text())[0]["last"]["val/loss"] is None
