"""What the terminal shows: a compact line per finished trial, a status line now and then,
and the final report with the commands to inspect the experiment."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tune_nas.objectives import Objective
from tune_nas.record.bookkeeper import Bookkeeper, TrialRecord, hyperparameters


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return "-" if value is None else str(value)


def short_config(config: dict[str, Any]) -> str:
    return " ".join(f"{k}={_fmt(v, 3) if isinstance(v, float) else v}"
                    for k, v in sorted(hyperparameters(config).items()))


class ProgressPrinter:
    """Prints trial results as they end, and a status line at most every ``every_s`` seconds."""

    def __init__(self, objective: Objective, stream: TextIO | None = None,
                 every_s: float = 15.0) -> None:
        self.objective, self.every_s = objective, every_s
        self.metric = objective.metric
        self.width = max(7, len(objective.column))
        self.stream = stream or sys.stdout
        self.t0 = time.monotonic()
        self.last_tick = self.t0
        self.total: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"objective": self.objective, "metric": self.metric, "width": self.width,
                "every_s": self.every_s, "stream": None,
                "t0": 0.0, "last_tick": 0.0, "total": self.total}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stream = sys.stdout
        self.t0 = self.last_tick = time.monotonic()

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, total: int | None) -> None:
        self.total = total
        self._print(self.header)

    @property
    def header(self) -> str:
        """The trial table's header: the objective's column over its values."""
        return (f"{'trial':>5}  {'state':<8} {'epochs':>6}  {self.objective.column:>{self.width}}  "
                f"{'test_acc':>8}  config")

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 60}:{s % 60:02d}"

    def trial_ended(self, record: TrialRecord, bookkeeper: Bookkeeper) -> None:
        state = record.state + (f" ({record.reason})" if record.reason else "")
        self._print(f"{record.number:>5}  {record.state:<8} {record.epochs:>6}  "
                    f"{_fmt(record.last.get(self.metric)):>{self.width}}  {_fmt(record.last.get('test/acc')):>8}  "
                    f"{short_config(record.config)}" + ("" if not record.reason else f"  [{state}]"))

    def tick(self, bookkeeper: Bookkeeper) -> None:
        now = time.monotonic()
        if now - self.last_tick < self.every_s:
            return
        self.last_tick = now
        running = sum(1 for t in bookkeeper.trials.values() if t.state == "RUNNING")
        done = len(bookkeeper.trials) - running
        best = bookkeeper.best()
        best_text = (f", best {self.metric} {_fmt(best.last.get(self.metric))} (trial {best.number})"
                     if best else "")
        total = f"/{self.total}" if self.total else ""
        self._print(f"  [{self.elapsed()}] {done}{total} trials done, {running} running{best_text}")

    def note(self, text: str) -> None:
        self._print(f"  [{self.elapsed()}] {text}")
