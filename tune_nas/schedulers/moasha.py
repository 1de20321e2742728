"""MOASHA, multi-objective asynchronous successive halving (Schmucker et al. 2021): rank each rung by dominance.

*Multi-objective multi-fidelity hyperparameter optimization with application to fairness*
(Schmucker, Donini, Perrone, Archambeau; NeurIPS 2020 workshop, 2021) and Salinas et al.'s
*A multi-objective perspective on jointly tuning hardware and hyperparameters* (ICLR 2021 NAS
workshop) run ASHA with one change: at a rung, trials are ranked by non-dominated sorting
instead of by one value. Here, as a pure policy:

* rungs, recording and the stop at ``max_t`` are ASHA's own
  (:class:`tune_nas.schedulers.rungs.RungPolicy`, shared with :mod:`.asha`): rungs at
  ``grace_period · η^k`` epochs, a trial recorded once per rung, its final result recorded
  when it ends;
* a trial reaching a rung is recorded there with its vector of values (``spec.objective_list``
  order, in the objectives' own units); it continues iff fewer than ``⌈n/η⌉`` of the ``n``
  vectors recorded at that rung (itself included) rank strictly before it by
  :func:`tune_nas.objectives.dominance_keys`: non-domination rank, then crowding distance
  (larger first, so the spread of the front survives);
* a tie at the cutoff continues, as in ASHA (where a value at the cutoff continues): arrival
  order never decides. It matters at the ends of the front, whose crowding distance is
  infinite: with an earlier tie-break by arrival, a trial that extends the rung's front at
  its other end (the smallest model so far, when the first trial was a large one) stopped
  whenever ``n < 2η``, and a search could end with its front cut off at one end
  (``benchmarks/multiobjective_digits.py``, README "Multi-objective search");
* identical vectors share a decision: a trial takes the best place among the vectors equal
  to its own (crowding distance alone would set twins apart);
* a vector with a missing or NaN value is recorded (the trial is not judged again at that rung)
  but never stops the trial and is not counted in ``n`` of later trials: as ASHA ignores NaN in
  its cutoff and never stops on one;
* cost objectives known before training (``model/params``, ``model/flops``) are in every
  epoch's result, so they count from the first rung: a large model must be accurate early to
  go on, a small one only as accurate as the others of its size.

With one objective the order is the values' order, and the rule reads: a trial continues iff
fewer than ``⌈n/η⌉`` of the values at the rung are strictly better than its own. That keeps
the same share as ASHA's ``1 - 1/η`` quantile in the limit, but counted rather than
interpolated, so single decisions can differ (with values {1, 3} recorded and η = 2, ASHA's
cutoff is 2 and stops a 1.5, MOASHA keeps the top 2 of 3 and lets it on). The first trial at
a rung always continues. (Syne Tune's MOASHA keeps the trial at 0-based position ``p`` when
``p/n <= 1/η``, one trial more than ``⌈n/η⌉`` when ``n/η`` is a whole number.)

Settings (``EXPERIMENT``): ``objectives`` (or the single ``metric``/``mode``), ``max_epochs``,
``grace_period`` (<= ``max_epochs``), ``reduction_factor``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tune_nas.objectives import Objective, dominance_keys, dominates, is_number
from tune_nas.schedulers.policy import Value
from tune_nas.schedulers.rungs import RungPolicy, rung_settings

if TYPE_CHECKING:
    from tune_nas.config.experiment import ExperimentSpec

Vector = tuple[float, ...]


def _complete(vector: Vector) -> bool:
    return all(is_number(v) for v in vector)


def ranked_ahead(vectors: Sequence[Vector], objectives: Sequence[Objective], index: int,
                 keys: Sequence[tuple[float, float]] | None = None) -> int:
    """How many of ``vectors`` rank strictly before ``vectors[index]`` by
    :func:`~tune_nas.objectives.dominance_keys` (given as ``keys`` when known), the vector
    taking the best place among its twins."""
    keys = dominance_keys(vectors, objectives) if keys is None else keys
    own = min(key for key, vector in zip(keys, vectors) if tuple(vector) == tuple(vectors[index]))
    return sum(key < own for key in keys)


def kept_at_rung(vectors: Sequence[Vector], objectives: Sequence[Objective], reduction_factor: float) -> list[int]:
    """Indices of ``vectors`` (the complete ones recorded at a rung) that fewer than ``⌈n/η⌉``
    of them rank strictly before (:func:`ranked_ahead`): the top ``⌈n/η⌉``, every tie at the
    cutoff and every copy of a kept vector."""
    keys = dominance_keys(vectors, objectives)
    keep = math.ceil(len(vectors) / reduction_factor)
    return [i for i in range(len(vectors)) if ranked_ahead(vectors, objectives, i, keys) < keep]


class MoashaPolicy(RungPolicy):
    """Asynchronous successive halving on several objectives, one bracket (grace 1, η = 4 by
    default, as ASHA). A result's value is a tuple of the objectives' values in ``objectives``
    order; with one objective a bare number is taken too."""

    def __init__(self, objectives: Sequence[Objective], max_t: int, grace_period: int = 1,
                 reduction_factor: float = 4) -> None:
        objectives = tuple(objectives) if not isinstance(objectives, Objective) else (objectives,)
        if not objectives or not all(isinstance(o, Objective) for o in objectives):
            raise ValueError(f"objectives={objectives!r}: rule: one or more tune_nas.objectives.Objective")
        metrics = [o.metric for o in objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"objectives {metrics}: rule: each metric once")
        self.objectives = objectives
        super().__init__(max_t, grace_period, reduction_factor)

    def _score(self, value: Value) -> Vector:
        """The value as a vector of floats, one per objective (a bare number for one objective)."""
        vector = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if len(vector) != len(self.objectives):
            raise ValueError(f"MOASHA on {', '.join(o.metric for o in self.objectives)}: value {value!r}; "
                             f"rule: a tuple of {len(self.objectives)} values in that order")
        return tuple(float(v) for v in vector)

    def _continues(self, earlier: list[Vector], score: Vector) -> bool:
        if not _complete(score):
            return True  # nothing to rank it by: a missing value never stops a trial
        vectors = [v for v in earlier if _complete(v)]
        keep = math.ceil((len(vectors) + 1) / self.reduction_factor)
        # Exact shortcuts for the ranking of kept_at_rung(vectors + [score]), which costs O(n²):
        # every vector dominating the score ranks before it (and before its twins, which share
        # its dominators), so with ``keep`` of them it is out; every vector the score dominates
        # ranks after it and changes neither the ranks nor the crowding of those before it, so
        # it is left out of the ranking.
        if sum(dominates(v, score, self.objectives) for v in vectors) >= keep:
            return False
        contenders = [v for v in vectors if not dominates(score, v, self.objectives)] + [score]
        return len(contenders) <= keep or ranked_ahead(contenders, self.objectives, len(contenders) - 1) < keep

    def __repr__(self) -> str:
        objectives = ", ".join(o.describe() for o in self.objectives)
        return (f"MoashaPolicy({objectives}; max_t={self.max_t}, grace_period={self.grace_period}, "
                f"reduction_factor={self.reduction_factor:g}; trials per rung {self._rung_counts()}, "
                f"{len(self.stopped)} stopped early)")


def create_policy(spec: ExperimentSpec) -> MoashaPolicy:
    max_t, grace_period, reduction_factor = rung_settings(spec)
    return MoashaPolicy(spec.objective_list, max_t, grace_period, reduction_factor)
