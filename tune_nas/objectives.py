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
    """A finite int or float (not a bool): something an objective can compare. An int beyond
    a float's range (``10**400``) is none: every float computation with it would overflow."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


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


#: The comparisons a constraint may use.
CONSTRAINT_OPS = ("<=", ">=")


@dataclass(frozen=True)
class Constraint:
    """A bound a feasible trial keeps on a reported metric: ``model/params <= 100_000``."""

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"constraint metric={self.metric!r}: rule: a reported metric name")
        if self.op not in CONSTRAINT_OPS:
            raise ValueError(f"constraint {self.metric}: op={self.op!r}: rule: one of {CONSTRAINT_OPS}")
        if not is_number(self.bound):
            raise ValueError(f"constraint {self.metric}: bound={self.bound!r}: rule: a finite number")

    def violation(self, value: Any) -> float:
        """How far ``value`` is past the bound: <= 0 when it is kept (Optuna's convention for
        ``trial.set_constraint``); infinity for a missing or non-finite value."""
        if not is_number(value):
            return math.inf
        return float(value) - self.bound if self.op == "<=" else self.bound - float(value)

    def kept_by(self, value: Any) -> bool:
        return self.violation(value) <= 0

    @property
    def key(self) -> str:
        """Its name in the study (``trial.set_constraint``) and in reports: ``model/params<=100000``."""
        return f"{self.metric}{self.op}{self.bound:g}"

    def describe(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "bound": self.bound}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Constraint:
        return cls(str(data["metric"]), str(data["op"]), float(data["bound"]))


def feasible(result: Mapping[str, Any], constraints: Sequence[Constraint]) -> bool:
    """Whether a trial's result keeps every constraint."""
    return all(c.kept_by(result.get(c.metric)) for c in constraints)


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


def _complete(points: Sequence[Sequence[Any]]) -> list[int]:
    return [i for i, p in enumerate(points) if all(is_number(v) for v in p)]


def nondominated_ranks(points: Sequence[Sequence[Any]], objectives: Sequence[Objective]) -> list[int | None]:
    """Each point's non-domination rank (the fronts of Deb et al. 2002's non-dominated sort): 0
    for the Pareto front, 1 for the front once it is removed, and so on; None for a point with a
    missing or non-finite value (it ranks after every other). The dominance matrix is computed
    at once with numpy (O(n² m) comparisons, milliseconds for a thousand points)."""
    import numpy as np

    complete = _complete(points)
    ranks: list[int | None] = [None] * len(points)
    if not complete:
        return ranks
    if any(len(points[i]) != len(objectives) for i in complete):
        raise ValueError(f"points for {len(objectives)} objectives; rule: one value per objective")
    signs = np.array([o.sign for o in objectives], dtype=float)
    scores = np.array([[float(v) for v in points[i]] for i in complete], dtype=float) * signs  # higher is better
    at_least = (scores[:, None, :] >= scores[None, :, :]).all(axis=2)
    better = (scores[:, None, :] > scores[None, :, :]).any(axis=2)
    dominated_by = (at_least & better).sum(axis=0)  # column j: how many points dominate j
    dominating = at_least & better
    remaining = np.ones(len(complete), dtype=bool)
    rank = 0
    while remaining.any():
        front = remaining & (dominated_by == 0)
        for k in np.flatnonzero(front):
            ranks[complete[k]] = rank
        dominated_by = dominated_by - dominating[front].sum(axis=0)
        remaining &= ~front
        rank += 1
    return ranks


def crowding_distances(points: Sequence[Sequence[Any]], indices: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each of ``indices`` among themselves (points of one front):
    per objective, the normalised gap between its two neighbours, summed; the extremes of any
    objective get infinity (they bound the front and are kept first)."""
    distance = {i: 0.0 for i in indices}
    if len(indices) <= 2:
        return {i: math.inf for i in indices}
    for k in range(len(points[indices[0]])):
        ordered = sorted(indices, key=lambda i: (float(points[i][k]), i))
        low, high = float(points[ordered[0]][k]), float(points[ordered[-1]][k])
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(ordered, ordered[1:], ordered[2:]):
            distance[here] += (float(points[after][k]) - float(points[before][k])) / (high - low)
    return distance


def dominance_keys(points: Sequence[Sequence[Any]], objectives: Sequence[Objective]) -> list[tuple[float, float]]:
    """Each point's place by dominance as a sort key, smaller first: (non-domination rank,
    minus its crowding distance within the rank); ``(inf, inf)`` for a point with a missing
    value."""
    ranks = nondominated_ranks(points, objectives)
    keys = [(math.inf, math.inf)] * len(points)
    for rank in sorted({r for r in ranks if r is not None}):
        members = [i for i, r in enumerate(ranks) if r == rank]
        distance = crowding_distances(points, members)
        for i in members:
            keys[i] = (float(rank), -distance[i])
    return keys


def dominance_order(points: Sequence[Sequence[Any]], objectives: Sequence[Objective]) -> list[int]:
    """Indices of ``points``, best first: by non-domination rank, ties broken by crowding
    distance within the rank (larger first: the spread of the front is kept), then by index;
    points with a missing value last, by index."""
    keys = dominance_keys(points, objectives)
    return sorted(range(len(points)), key=lambda i: (keys[i], i))


def selection_order(results: Sequence[Mapping[str, Any]], objectives: Sequence[Objective],
                    constraints: Sequence[Constraint] = ()) -> list[int]:
    """Indices of ``results`` (each a trial's last result) in the order tune_nas picks trials
    to keep or retrain, best first: only those that keep every constraint; with one objective
    by its value (results without a finite value left out, ties in order); with several by
    :func:`dominance_order` (the Pareto front first, its spread kept by crowding distance)."""
    kept = [i for i, r in enumerate(results) if feasible(r, constraints)]
    if len(objectives) == 1:
        return objectives[0].ranked(kept, lambda i: results[i].get(objectives[0].metric))
    points = [[results[i].get(o.metric) for o in objectives] for i in kept]
    complete = [all(is_number(v) for v in p) for p in points]
    return [kept[j] for j in dominance_order(points, objectives) if complete[j]]


#: How far outward a reference point lies, as a share of each objective's range (see :func:`reference_point`).
REFERENCE_MARGIN = 0.01


def reference_point(points: Sequence[Sequence[float]], objectives: Sequence[Objective],
                    margin: float = REFERENCE_MARGIN) -> tuple[float, ...] | None:
    """A hypervolume reference point for ``points`` (complete vectors): the worst of each
    objective, pushed outward by ``margin`` of the objective's range (of ``max(|worst|, 1)`` when
    it has none), so the extremes of a front still add volume; None without points."""
    if not points:
        return None
    point = []
    for k, objective in enumerate(objectives):
        values = [v[k] for v in points]
        worst, best = min(values, key=lambda v: objective.sign * v), max(values, key=lambda v: objective.sign * v)
        spread = abs(best - worst) or max(abs(worst), 1.0)
        point.append(worst - objective.sign * margin * spread)
    return tuple(point)


def hypervolume(points: Sequence[Sequence[Any]], objectives: Sequence[Objective], reference: Sequence[float]) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (in the objectives' own
    units: a reference worse than every point of interest in each objective). Points with a
    missing value, or not strictly better than the reference in every objective, add nothing.
    Computed by Optuna's exact algorithm (WFG) on the points turned into losses."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    if len(reference) != len(objectives):
        raise ValueError(f"reference {list(reference)!r} for {len(objectives)} objectives; rule: one value per objective")
    signs = np.array([o.sign for o in objectives], dtype=float)
    ref = -signs * np.asarray(reference, dtype=float)
    losses = np.array([[-s * float(v) for s, v in zip(signs, points[i])] for i in _complete(points)], dtype=float)
    losses = losses.reshape(-1, len(objectives))
    losses = losses[(losses < ref).all(axis=1)]
    if len(losses) == 0:
        return 0.0
    return float(compute_hypervolume(losses, ref))
