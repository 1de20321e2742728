"""What a search optimises: one typed notion, the one rule for "best".

An :class:`Objective` is a reported metric and a direction (``max`` or ``min``). Every module
that ranks trials — the bookkeeper, the summary, the console, the study report, the curves'
fidelity analysis, the replay of stopping policies, the research comparison — asks an
objective instead of spelling ``"val/acc"`` or ``mode == "max"`` itself. Several objectives
(accuracy against size, FLOPs or latency) are compared by Pareto dominance
(:func:`dominates`, :func:`pareto_front`).

No Ray, no torch: a policy may import this.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

DIRECTIONS = ("max", "min")


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): something an objective can compare."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Objective:
    """A metric a trial reports (``val/acc``, ``val/loss``, ``model/params``...) and whether
    larger (``max``) or smaller (``min``) is better."""

    metric: str = "val/acc"
    direction: str = "max"

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"objective metric={self.metric!r}: rule: a reported metric name")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"objective {self.metric}: direction={self.direction!r}: rule: one "
                             f"of {DIRECTIONS}")

    @property
    def maximize(self) -> bool:
        return self.direction == "max"

    @property
    def sign(self) -> float:
        """+1 for max, -1 for min: ``sign * value`` is "higher is better"."""
        return 1.0 if self.maximize else -1.0

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.maximize else "minimize"

    @property
    def label(self) -> str:
        """How people read it: ``val/acc`` → ``val acc``."""
        return self.metric.replace("/", " ").replace("_", " ")

    @property
    def column(self) -> str:
        """A column or JSON key for it: ``val/acc`` → ``val_acc``."""
        return self.metric.replace("/", "_")

    def describe(self) -> str:
        return f"{self.metric} ({self.direction})"

    def better(self, a: Any, b: Any) -> bool:
        """Whether value ``a`` is strictly better than ``b``; a value that is not a finite
        number is never better, and any number is better than one that is not."""
        if not is_number(a):
            return False
        if not is_number(b):
            return True
        return a > b if self.maximize else a < b

    def best(self, values: Iterable[Any]) -> float | None:
        """The best finite value, or None."""
        best = None
        for value in values:
            if self.better(value, best):
                best = value
        return best

    def ranked(self, items: Iterable[T], value: Callable[[T], Any]) -> list[T]:
        """``items`` whose ``value`` is a finite number, best first (stable for ties)."""
        scored = [(v, i) for i in items if is_number(v := value(i))]
        scored.sort(key=lambda pair: -self.sign * pair[0])
        return [i for _, i in scored]

    def best_of(self, items: Iterable[T], value: Callable[[T], Any]) -> T | None:
        ranked = self.ranked(items, value)
        return ranked[0] if ranked else None

    def regret(self, best: float, value: float) -> float:
        """How much worse ``value`` is than ``best`` (>= 0 when ``best`` is the best)."""
        return (best - value) if self.maximize else (value - best)

    def as_dict(self) -> dict[str, str]:
        return {"metric": self.metric, "direction": self.direction}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Objective:
        return cls(str(data["metric"]), str(data.get("direction", data.get("mode", "max"))))


def dominates(a: Sequence[Any], b: Sequence[Any], objectives: Sequence[Objective]) -> bool:
    """Pareto dominance: ``a`` is at least as good as ``b`` in every objective and strictly
    better in one. A point with a missing or non-finite value dominates nothing."""
    if len(a) != len(objectives) or len(b) != len(objectives):
        raise ValueError(f"points of {len(a)} and {len(b)} values for {len(objectives)} "
                         "objectives; rule: one value per objective")
    if not all(is_number(v) for v in a):
        return False
    if not all(is_number(v) for v in b):
        return True
    strictly = False
    for x, y, objective in zip(a, b, objectives):
        if objective.better(y, x):
            return False
        strictly = strictly or objective.better(x, y)
    return strictly


def pareto_front(points: Sequence[Sequence[Any]], objectives: Sequence[Objective]) -> list[int]:
    """Indices of the points no other point dominates (points with a missing value are never
    on the front), in their given order."""
    complete = [i for i, p in enumerate(points) if all(is_number(v) for v in p)]
    return [i for i in complete
            if not any(dominates(points[j], points[i], objectives) for j in complete if j != i)]
