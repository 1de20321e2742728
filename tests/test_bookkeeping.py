"""The driver's records survive a driver killed mid-trial: every reported epoch is kept."""

import csv

from tune_nas.bookkeeping import Bookkeeper


def _result(epoch: int, acc: float) -> dict:
    return {"epoch": epoch, "val/acc": acc, "train/loss": 1.0 / epoch, "time/epoch_s": 0.1}


def test_epochs_reported_before_a_kill_are_kept_for_the_resumed_run(tmp_path):
    keeper = Bookkeeper(tmp_path, "val/acc", "max", max_epochs=3)
    keeper.trial_started("done", 0, {"lr": 0.1, "trial_number": 0})
    keeper.trial_started("running", 1, {"lr": 0.2, "trial_number": 1})
    keeper.trial_result("done", _result(1, 0.5))
    keeper.trial_result("running", _result(1, 0.6))
    keeper.trial_ended("done", "PRUNED")  # writes curves.csv: both rows so far
    keeper.trial_result("running", _result(2, 0.7))  # only in the journal when the driver dies
    with keeper.journal_path.open("a") as f:
        f.write('{"trial_id": "running", "epo')  # the line being written at the kill
    keeper.close()

    resumed = Bookkeeper(tmp_path, "val/acc", "max", max_epochs=3)
    resumed.load_existing()
    assert sorted(resumed.curves) == [("done", 1), ("running", 1), ("running", 2)]
    # the trial starts again with what it had reported (Ray may stop it before it reports)
    record = resumed.trial_started("running", 1, {"lr": 0.2, "trial_number": 1})
    assert (record.epochs, record.last["val/acc"], record.best_val) == (2, 0.7, 0.7)
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
