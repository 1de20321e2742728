"""What the terminal shows: a compact line per finished trial, a status line now and then,
and the final report with the commands to inspect the experiment."""

from __future__ import annotations

import bisect
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from tune_nas.metric_keys import BUDGET
from tune_nas.objectives import Objective, is_number
from tune_nas.record import formatting
from tune_nas.record.bookkeeper import PAUSED, RUNNING, Bookkeeper, TrialRecord
from tune_nas.record.time_left import time_left
from tune_nas.states import FINISHED

_fmt = formatting.number  # values as the study, replay and compare reports write them
short_config = formatting.short_config  # the one short form of a config (launch's report imports it here)


class ProgressPrinter:
    """What a person watching a search sees: a line per trial as it ends, and a status line
    whenever the terminal has been quiet for a while.

    The status line shows the finished trials, each running trial's epoch ``k/N`` (``N`` =
    the bookkeeper's ``max_epochs``) and its latest value of the objective's metric (the first
    ``show_running`` by trial number, then ``+M more``), the best COMPLETE trial and the time
    the search has left, in one line (here wrapped)::

        [2:31] 3/16 done, 2 running: #3 4/9 val_acc 0.9123, #4 2/9 val_acc 0.8810;
        best val_acc 0.9930 (#0); ~1:40 left (≤ 3:10)

    With a scheduler that pauses trials (``asha_promotion``) the paused ones are counted after
    the running ones, by the epoch they paused after (``...; 5 paused (4 after epoch 1, 1 after
    epoch 3)``); for the time left they count as running.

    The time left (:func:`tune_nas.record.time_left.time_left`) is the median ``time/epoch_s``
    of every epoch reported so far times the epochs still to run, shared among as many trials
    as were seen running at once. ``~`` is the estimate from the share of epochs the scheduler
    let trials run so far (a survival curve over epochs, running trials counted as survivors);
    ``≤`` is the bound if it stops no trial early. Before any trial has ended there is no
    evidence of stopping and only the bound is shown (``≤ 3:10 left``); when trials ended and
    the two agree, ``~3:10 left``. Trial start-up (building the model) is not counted. With a
    time budget (``time_budget_s``, counted from the printer's start) that ends the search
    sooner, its rest is shown instead: ``≤ 41:20 left (time budget)``.

    When: on a trial's result (:meth:`tick`), once ``every_s`` seconds passed without any line
    (the header, a trial's line, a note, a status line) — so the first comes with the first
    result ``every_s`` after the start — or ``BUSY_FACTOR * every_s`` after the last status
    line while trials end often (their lines show progress; the status line adds the time
    left).

    Cost: :meth:`tick` runs on every result in the driver: it inserts the result's epoch time
    into a sorted list (whose middle is the median) and reads the clock; only a status line
    walks the trials (at most once every ``every_s``).

    Pickled with Ray's experiment state: the settings and the total travel, a restored
    printer writes to stdout with a fresh clock and reads the epoch times of the resumed
    experiment's curves on its first result.
    """

    BUSY_FACTOR = 6

    def __init__(self, objective: Objective, stream: TextIO | None = None, every_s: float = 10.0,
                 show_running: int = 3, clock: Callable[[], float] = time.monotonic,
                 time_budget_s: float = 0.0, test_metric: str = "test/acc") -> None:
        if every_s < 0 or show_running < 0 or time_budget_s < 0:
            raise ValueError(f"every_s={every_s}, show_running={show_running}, time_budget_s={time_budget_s}: "
                             "rule: not negative")
        self.objective, self.every_s, self.show_running = objective, every_s, show_running
        self.time_budget_s = time_budget_s
        self.metric, self.test_metric = objective.metric, test_metric
        self.test_column = test_metric.replace("/", "_")
        self.width = max(7, len(objective.column))
        self.stream = stream or sys.stdout
        self.clock = clock
        self.t0 = self.last_line_at = self.last_status_at = clock()
        self.total: int | None = None
        self.epoch_seconds: list[float] = []  # every reported epoch's time/epoch_s, sorted
        self.epoch_seconds_read = False  # whether the bookkeeper's curves were read into it
        self.most_running = 0  # the most trials seen running at once: how many run in parallel

    def __getstate__(self) -> dict[str, Any]:
        return {"objective": self.objective, "every_s": self.every_s,
                "show_running": self.show_running, "total": self.total,
                "time_budget_s": self.time_budget_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # also reads the state of printers pickled before show_running existed
        self.__init__(state["objective"], every_s=state.get("every_s", 10.0),
                      show_running=state.get("show_running", 3),
                      time_budget_s=state.get("time_budget_s", 0.0))
        self.total = state.get("total")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.last_line_at = self.clock()

    def start(self, total: int | None) -> None:
        self.total = total
        self._print(self.header)

    @property
    def header(self) -> str:
        """The trial table's header: the objective's column over its values."""
        return (f"{'trial':>5}  {'state':<8} {'epochs':>6}  {self.objective.column:>{self.width}}  "
                f"{self.test_column:>8}  config")

    @staticmethod
    def duration(seconds: float) -> str:
        """``m:ss``, or ``h:mm:ss`` from an hour on."""
        s = max(int(round(seconds)), 0)
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"

    def elapsed(self) -> str:
        return self.duration(self.clock() - self.t0)

    def trial_ended(self, record: TrialRecord, bookkeeper: Bookkeeper) -> None:
        state = record.state + (f" ({record.reason})" if record.reason else "")
        self._print(f"{record.number:>5}  {record.state:<8} {record.epochs:>6}  "
                    f"{_fmt(record.last.get(self.metric)):>{self.width}}  {_fmt(record.last.get(self.test_metric)):>8}  "
                    f"{short_config(record.config)}" + ("" if not record.reason else f"  [{state}]"))

    def tick(self, bookkeeper: Bookkeeper, result: Mapping[str, Any]) -> None:
        """A trial reported ``result`` (already given to ``bookkeeper``): note its epoch time,
        and print the status line when it is due."""
        if not self.epoch_seconds_read:  # the first result: read every epoch recorded so far
            self.epoch_seconds_read = True
            self.epoch_seconds = sorted(s for row in bookkeeper.curves.values()
                                        if (s := self._seconds(row.get("time/epoch_s"))) is not None)
        elif "epoch" in result and not result.get("error"):
            seconds = self._seconds(result.get("time/epoch_s"))
            if seconds is not None:
                bisect.insort(self.epoch_seconds, seconds)
        now = self.clock()
        if (now - self.last_line_at < self.every_s
                and now - self.last_status_at < self.BUSY_FACTOR * self.every_s):
            return
        self._print(self.status(bookkeeper))
        self.last_status_at = now

    @staticmethod
    def _seconds(value: Any) -> float | None:
        """An epoch time as reported (a number) or read back from curves.csv (a string)."""
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            return None
        return seconds if is_number(seconds) and seconds >= 0 else None

    def status(self, bookkeeper: Bookkeeper) -> str:
        """The status line (see the class docstring)."""
        n = bookkeeper.max_epochs
        running = sorted((t for t in bookkeeper.trials.values() if t.state == RUNNING),
                         key=lambda t: t.number)
        paused = [t.epochs for t in bookkeeper.trials.values() if t.state == PAUSED]
        ended = [t.epochs for t in bookkeeper.trials.values() if t.state in FINISHED]
        self.most_running = max(self.most_running, len(running))
        done = f"{len(ended)}/{self.total}" if self.total else f"{len(ended)}"
        line = f"  [{self.elapsed()}] {done} done, {len(running)} running"
        shown = [self._running_text(t, n) for t in running[: self.show_running]]
        if len(running) > self.show_running:
            shown.append(f"+{len(running) - self.show_running} more")
        if shown:
            line += ": " + ", ".join(shown)
        if paused:  # a pausing scheduler: how many wait, and after which epoch
            at = ", ".join(f"{n} after epoch {e}" for e, n in sorted(Counter(paused).items()))
            line += f"; {len(paused)} paused ({at})"
        best = bookkeeper.best()
        if best is not None:
            line += f"; best {self.objective.column} {_fmt(best.last.get(self.metric))} (#{best.number})"
        unstarted = max(self.total - len(bookkeeper.trials), 0) if self.total else 0
        # a paused trial may go on: it counts as running for the time left
        return line + self._time_left_text([t.epochs for t in running] + paused, ended, unstarted, n)

    def _running_text(self, record: TrialRecord, max_epochs: int) -> str:
        """``#7 2/9 val_acc 0.91``: the epochs against the trial's own budget (a morphism
        child's ``budget``, its few fine-tuning epochs), else the search's ``max_epochs``."""
        value = record.last.get(self.metric)
        shown = f" {self.objective.column} {_fmt(value)}" if is_number(value) else ""
        budget = record.last.get(BUDGET)
        budget = int(budget) if is_number(budget) and budget >= 1 else max_epochs
        return f"#{record.number} {record.epochs}/{budget}{shown}"

    def _time_left_text(self, running: list[int], ended: list[int], unstarted: int,
                        max_epochs: int) -> str:
        if not self.epoch_seconds or not (running or unstarted):
            return ""
        middle = len(self.epoch_seconds) // 2
        epoch_s = (self.epoch_seconds[middle] if len(self.epoch_seconds) % 2
                   else (self.epoch_seconds[middle - 1] + self.epoch_seconds[middle]) / 2)
        left = time_left(running, ended, unstarted, max_epochs, epoch_s, self.most_running)
        if self.time_budget_s:
            budget_left = max(0.0, self.time_budget_s - (self.clock() - self.t0))
            if budget_left < (left.expected_s if left.observed_stops else left.at_most_s):
                return f"; ≤ {self.duration(budget_left)} left (time budget)"
        expected, at_most = self.duration(left.expected_s), self.duration(left.at_most_s)
        if not left.observed_stops:
            return f"; ≤ {at_most} left"
        return f"; ~{expected} left" + ("" if expected == at_most else f" (≤ {at_most})")

    def note(self, text: str) -> None:
        self._print(f"  [{self.elapsed()}] {text}")
