"""What a person watching a search sees: the status line's content and timing, the trial lines,
the time-left estimate, and a printer that survives Ray's pickling. Driven by a real
Bookkeeper, made-up results and a fake clock; no Ray."""

from __future__ import annotations

import json
import pickle
import re
import sys
import time
from io import StringIO

import pytest

from tune_nas.objectives import Objective
from tune_nas.record.bookkeeper import Bookkeeper, TrialRecord
from tune_nas.record.console import ProgressPrinter
from tune_nas.record.time_left import epoch_survival, time_left

VAL_ACC = Objective("val/acc", "max")
STATUS = re.compile(r"^  \[(\d+):(\d\d)\] \d+(/\d+)? done, ")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _result(epoch: int, value: float, seconds: float = 2.0, metric: str = "val/acc") -> dict:
    return {"epoch": epoch, metric: value, "train/loss": 1.0 / epoch, "time/epoch_s": seconds}


def _report(keeper: Bookkeeper, printer: ProgressPrinter, trial: int, result: dict) -> None:
    """What TrialEvents.on_trial_result does: the bookkeeper first, then the printer."""
    keeper.trial_started(f"t{trial}", trial, {"lr": 0.01, "trial_number": trial})
    keeper.trial_result(f"t{trial}", result)
    printer.tick(keeper, result)


def _end(keeper: Bookkeeper, printer: ProgressPrinter, trial: int, state: str) -> None:
    printer.trial_ended(keeper.trial_ended(f"t{trial}", state), keeper)


def _status_lines(stream: StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if STATUS.match(line)]


def _seconds_at(line: str) -> int:
    minutes, seconds = STATUS.match(line).group(1, 2)
    return int(minutes) * 60 + int(seconds)


def _minutes(text: str) -> int:
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + int(seconds)


def test_status_line_shows_running_trials_best_and_time_left(tmp_path):
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, VAL_ACC, max_epochs=9)
    printer = ProgressPrinter(VAL_ACC, stream=out, every_s=10, clock=clock)
    printer.start(16)
    # trials 0 and 1: stopped after epoch 1; trial 2: its full 9 epochs; 3 and 4 still run
    for trial, value in ((0, 0.70), (1, 0.72)):
        _report(keeper, printer, trial, _result(1, value))
        _end(keeper, printer, trial, "PRUNED")
    for epoch in range(1, 10):
        _report(keeper, printer, 2, _result(epoch, 0.90 + epoch / 200))
    _end(keeper, printer, 2, "COMPLETE")
    for epoch, value in enumerate((0.85, 0.88, 0.90, 0.9123), start=1):
        _report(keeper, printer, 3, _result(epoch, value))
    _report(keeper, printer, 4, _result(1, 0.80))
    assert _status_lines(out) == []  # all this at the start: no status line yet
    clock.now = 100.0
    _report(keeper, printer, 4, _result(2, 0.8810))

    [line] = _status_lines(out)
    head, left = line.split("; ~")
    assert head == ("  [1:40] 3/16 done, 2 running: #3 4/9 val_acc 0.9123, #4 2/9 val_acc 0.8810; "
                    "best val_acc 0.9450 (#2)")
    expected, at_most = re.fullmatch(r"(\d+:\d\d) left \(≤ (\d+:\d\d)\)", left).groups()
    # every epoch took 2 s, two trials ran at once; 11 trials have not started
    epochs_left_at_most = (9 - 4) + (9 - 2) + 11 * 9
    assert _minutes(at_most) == round(2.0 * epochs_left_at_most / 2)  # 1:51
    # the scheduler stopped 2 of the 5 trials that trained epoch 1 and none later: a fresh
    # trial is expected to run 1 + 8 * 0.6 epochs; the running ones (past epoch 1) all of theirs
    epochs_expected = (9 - 4) + (9 - 2) + 11 * (1 + 8 * 0.6)
    assert _minutes(expected) == round(2.0 * epochs_expected / 2)  # 1:16
    # whatever the rule's details: more than if every trial stopped now and each unstarted one
    # after one epoch, less than the bound
    assert 2.0 * 11 / 2 < _minutes(expected) < _minutes(at_most)


def test_time_left_rule_on_made_up_epochs():
    survival = epoch_survival(ended_epochs=[1, 1, 9], running_epochs=[4, 2], max_epochs=9)
    assert survival == pytest.approx([1.0, 1.0] + [0.6] * 8)
    left = time_left(running_epochs=[4, 2], ended_epochs=[1, 1, 9], unstarted=11, max_epochs=9,
                     epoch_s=2.0, slots=2)
    assert left.expected_s == pytest.approx(2.0 * (5 + 7 + 11 * 5.8) / 2)
    assert left.at_most_s == pytest.approx(2.0 * (5 + 7 + 11 * 9) / 2)
    assert left.observed_stops
    # a scheduler that stopped none: the estimate is the bound
    none_stopped = time_left([3], [9, 9], unstarted=2, max_epochs=9, epoch_s=1.0, slots=1)
    assert none_stopped.expected_s == none_stopped.at_most_s == pytest.approx(6 + 18)
    # one slot left for one long trial: its own epochs, not a share of them
    tail = time_left([1], [1, 1, 1], unstarted=0, max_epochs=9, epoch_s=1.0, slots=4)
    assert tail.at_most_s == pytest.approx(8)
    # the running trial went on after epoch 1 where the 3 others stopped: 1 in 4 went on
    # (it is the one), and nothing stopped one later: it runs to the end
    assert epoch_survival([1, 1, 1], [1], 9) == pytest.approx([1.0, 1.0] + [0.25] * 8)
    assert tail.expected_s == pytest.approx(8)
    # running trials count as survivors of the epochs they passed, not as stopped
    assert epoch_survival([], [3, 3], 5) == pytest.approx([1.0] * 6)
    with pytest.raises(ValueError, match="max_epochs=0"):
        epoch_survival([], [], 0)


def test_no_status_line_more_often_than_every_s(tmp_path):
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, VAL_ACC, max_epochs=50)
    printer = ProgressPrinter(VAL_ACC, stream=out, every_s=10, clock=clock)
    printer.start(4)
    for step in range(1, 41):  # a result every 3 s for 2 minutes; a trial ends at 40 s
        clock.now = 3.0 * step
        _report(keeper, printer, step % 2, _result(step // 2 + 1, 0.5 + step / 100))
        if clock.now == 42.0:
            printer.trial_ended(TrialRecord("x", 7, {"lr": 0.1}, "run", state="PRUNED", epochs=3), keeper)
    times = [_seconds_at(line) for line in _status_lines(out)]
    assert times[0] == 12  # the first result 10 s after the start
    assert all(b - a >= 10 for a, b in zip(times, times[1:])), times
    assert 42 + 10 <= min(t for t in times if t > 42)  # the trial's line counts as output
    assert len(times) >= 8  # and the lines keep coming while nothing ends


def test_busy_search_still_prints_its_status_now_and_then(tmp_path):
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, VAL_ACC, max_epochs=500)
    printer = ProgressPrinter(VAL_ACC, stream=out, every_s=10, clock=clock)
    printer.start(100)
    for second in range(1, 131):  # a result every second, a trial's line every 5 s
        clock.now = float(second)
        _report(keeper, printer, 0, _result(second, 0.5))
        if second % 5 == 0:
            printer.trial_ended(TrialRecord("x", second, {"lr": 0.1}, "run", state="PRUNED",
                                            epochs=1), keeper)
    assert [_seconds_at(line) for line in _status_lines(out)] == [60, 120]


def test_a_finished_trial_prints_its_line_at_once(tmp_path):
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, VAL_ACC, max_epochs=9)
    printer = ProgressPrinter(VAL_ACC, stream=out, every_s=10, clock=clock)
    printer.start(2)
    clock.now = 30.0
    keeper.trial_started("t0", 0, {"lr": 0.01, "depth": 2, "trial_number": 0})
    keeper.trial_result("t0", _result(1, 0.7063))
    printer.tick(keeper, _result(1, 0.7063))  # prints a status line at 30 s
    clock.now = 31.0
    _end(keeper, printer, 0, "PRUNED")  # one second later: printed all the same
    lines = out.getvalue().splitlines()
    assert lines[0] == "trial  state    epochs  val_acc  test_acc  config"
    assert lines[1].startswith("  [0:30] 0/2 done, 1 running: #0 1/9 val_acc 0.7063; ≤ ")
    assert lines[2] == "    0  PRUNED        1   0.7063         -  depth=2 lr=0.01"


def test_many_running_trials_fit_one_line_and_only_the_bound_before_any_ends(tmp_path):
    val_loss = Objective("val/loss", "min")
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, val_loss, max_epochs=9)
    printer = ProgressPrinter(val_loss, stream=out, every_s=10, clock=clock)
    printer.start(8)
    for trial in range(6):
        keeper.trial_started(f"t{trial}", trial, {"lr": 0.01, "trial_number": trial})
    for trial in (4, 0, 2, 1):
        _report(keeper, printer, trial, _result(1, 0.5 + trial / 10, seconds=4.0, metric="val/loss"))
    clock.now = 20.0
    _report(keeper, printer, 0, _result(2, 0.4, seconds=4.0, metric="val/loss"))
    [line] = _status_lines(out)
    # by trial number; trials 3 and 5 have started but not reported; 2 not started
    assert line.startswith("  [0:20] 0/8 done, 6 running: #0 2/9 val_loss 0.4000, #1 1/9 val_loss "
                           "0.6000, #2 1/9 val_loss 0.7000, +3 more; ≤ ")
    # no trial ended: no evidence of stopping, only the bound: the running trials' epochs left
    # (7 + 3 * 8 + 2 * 9) and two unstarted trials' (2 * 9), of 4 s, shared by 6 running trials
    assert 4.0 * (7 + 3 * 8 + 2 * 9 + 2 * 9) / 6 == pytest.approx(44.67, abs=0.01)
    assert line.endswith("; ≤ 0:45 left")
    assert "~" not in line


def test_a_time_budget_that_ends_the_search_sooner_is_the_time_left(tmp_path):
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, VAL_ACC, max_epochs=10)
    printer = ProgressPrinter(VAL_ACC, stream=out, every_s=10, clock=clock, time_budget_s=600)
    printer.start(400)  # 400 trials x 10 epochs x 30 s would take days
    clock.now = 100.0
    _report(keeper, printer, 0, _result(1, 0.6, seconds=30.0))
    [line] = _status_lines(out)
    assert line.endswith("; ≤ 8:20 left (time budget)")
    clock.now = 700.0  # past the budget: the running trials are being ended
    _report(keeper, printer, 0, _result(2, 0.7, seconds=30.0))
    assert _status_lines(out)[-1].endswith("; ≤ 0:00 left (time budget)")
    # a budget the search will not reach changes nothing
    relaxed = ProgressPrinter(VAL_ACC, stream=StringIO(), every_s=0, clock=clock, time_budget_s=10**6)
    relaxed.start(2)
    _report(keeper, relaxed, 0, _result(3, 0.8, seconds=30.0))
    assert "time budget" not in relaxed.stream.getvalue()
    assert pickle.loads(pickle.dumps(printer)).time_budget_s == 600


def test_printer_survives_pickling_with_a_fresh_stream_and_clock(tmp_path):
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, VAL_ACC, max_epochs=3)
    printer = ProgressPrinter(VAL_ACC, stream=out, every_s=7, show_running=2, clock=clock)
    printer.start(5)
    _report(keeper, printer, 0, _result(1, 0.6, seconds=4.0))
    _report(keeper, printer, 0, _result(2, 0.7, seconds=6.0))
    keeper.write_curves()  # what a resumed experiment finds on disk

    restored = pickle.loads(pickle.dumps(printer))  # the fake clock and StringIO stay behind
    assert restored.stream is sys.stdout and restored.clock is time.monotonic
    assert (restored.objective, restored.every_s, restored.show_running, restored.total) == (VAL_ACC, 7, 2, 5)
    assert time.monotonic() - restored.t0 < 5 and restored.epoch_seconds == []

    # resumed: the bookkeeper reads curves.csv back; the first result brings its epoch times
    resumed = Bookkeeper(tmp_path, VAL_ACC, max_epochs=3)
    resumed.load_existing()
    restored.stream, restored.clock = StringIO(), FakeClock()
    restored.t0 = restored.last_line_at = restored.last_status_at = 0.0
    restored.clock.now = 8.0
    _report(resumed, restored, 0, _result(3, 0.8, seconds=5.0))
    assert restored.epoch_seconds == [4.0, 5.0, 6.0]
    assert "[0:08] 0/5 done, 1 running: #0 3/3 val_acc 0.8000; ≤ " in restored.stream.getvalue()

    # an experiment saved before this printer's settings existed still restores
    old = ProgressPrinter.__new__(ProgressPrinter)
    old.__setstate__({"objective": VAL_ACC, "metric": "val/acc", "width": 7, "every_s": 15.0,
                      "stream": None, "t0": 0.0, "last_tick": 0.0, "total": 8})
    assert (old.every_s, old.total, old.show_running) == (15.0, 8, 3)


def test_a_morphism_child_shows_its_epochs_against_its_own_budget(tmp_path):
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, VAL_ACC, max_epochs=6)
    printer = ProgressPrinter(VAL_ACC, stream=out, every_s=10, clock=clock)
    printer.start(8)
    _report(keeper, printer, 0, _result(3, 0.90))  # trained from scratch: 3 of the search's 6
    clock.now = 100.0
    _report(keeper, printer, 1, {**_result(1, 0.93), "budget": 2})  # a child: 1 of its 2 epochs
    [line] = _status_lines(out)
    assert "#0 3/6 val_acc 0.9000, #1 1/2 val_acc 0.9300" in line


def test_paused_trials_are_counted_by_the_epoch_they_paused_after_and_run_again_on_a_result(tmp_path):
    clock, out = FakeClock(), StringIO()
    keeper = Bookkeeper(tmp_path, VAL_ACC, max_epochs=9)
    printer = ProgressPrinter(VAL_ACC, stream=out, every_s=10, clock=clock)
    printer.start(8)
    for trial in (0, 1, 2):
        _report(keeper, printer, trial, _result(1, 0.5 + trial / 10))
        keeper.trial_paused(f"t{trial}")  # asha_promotion: each waits at the rung of epoch 1
    keeper.trial_resumed("t2")
    for epoch in (2, 3):
        _report(keeper, printer, 2, _result(epoch, 0.8))
    keeper.trial_paused("t2")
    _report(keeper, printer, 3, _result(1, 0.6))
    clock.now = 30.0
    _report(keeper, printer, 3, _result(2, 0.65))
    [line] = _status_lines(out)
    assert line.startswith("  [0:30] 0/8 done, 1 running: #3 2/9 val_acc 0.6500; "
                           "3 paused (2 after epoch 1, 1 after epoch 3); ≤ ")
    assert [keeper.trials[f"t{n}"].state for n in range(4)] == ["PAUSED", "PAUSED", "PAUSED", "RUNNING"]
    _report(keeper, printer, 1, _result(2, 0.7))  # promoted: its next epoch's result
    assert keeper.trials["t1"].state == "RUNNING"
    printer.trial_ended(keeper.trial_ended("t0", "PRUNED", "paused after epoch 1, not promoted"), keeper)
    assert "    0  PRUNED        1   0.5000" in out.getvalue()
    keeper.close()
    assert not (tmp_path / "trials.journal.jsonl").exists()
    records = {r["number"]: r["state"] for r in json.loads((tmp_path / "trials.json").read_text())}
    assert records == {0: "PRUNED", 1: "RUNNING", 2: "PAUSED", 3: "RUNNING"}
