"""Regularized (aging) evolution (Real et al., AAAI 2019), an Optuna sampler.

The rules, as implemented by :class:`RegularizedEvolutionSampler`:

* **Population**: the last ``population_size`` (P) *finished* trials in **trial-number order**
  (the order in which trials were asked, i.e. born; deterministic and independent of how
  parallel trials happen to finish). A newer trial pushes the oldest out: that is the aging.
  COMPLETE and PRUNED trials are members; FAIL trials are not; RUNNING and WAITING trials are
  never parents.
* **Warm-up**: trials numbered below P are drawn at random, and so is any trial asked before
  a single trial has finished.
* **Tournament**: ``sample_size`` (S) members are drawn without replacement; the best of them
  is the parent (ties: the younger). Members are compared by, in turn (:func:`tournament_keys`):

  1. *Feasibility*, with constraints (Optuna's ``trial.constraints``, set by
     ``trial.set_constraint``: a trial is feasible when every value is <= 0; a trial without
     constraint values counts as feasible, as in Optuna's samplers): every feasible member
     outranks every infeasible one; infeasible ones rank by their total violation (the sum of
     their positive values), smaller first.
  2. *State*: every COMPLETE trial outranks every PRUNED one.
  3. *COMPLETE trials*, one objective: by the value signed by ``study.direction``. Several
     objectives (``study.directions``): by their place in the non-dominated sorting of the
     population's COMPLETE members of the same feasibility (:func:`tune_nas.objectives.dominance_order`:
     non-domination rank, then crowding distance, larger first, then the younger). The order
     is taken among the whole population, not the sample, so a tournament favours the
     population's Pareto front and, within a front, its ends and sparse stretches (NSGA-II's
     crowded comparison, Deb et al. 2002).
  4. *PRUNED trials*: by the step they reached, then by their last intermediate value (signed
     by the first direction); a pruned trial that reported nothing ranks last. (A
     multi-objective Optuna study takes no intermediate values: there pruned trials tie and
     the younger wins.)

  With one objective and no constraints this is the key ``(is_complete, last step reached,
  signed value)`` of :func:`rank_key`.
* **Mutation**: exactly one parameter of the relative search space (chosen uniformly among
  those with more than one possible value) is changed: a categorical to another choice
  (uniformly); an int or float, with probability 1/2, to a uniform resample of its range
  (in log space for log parameters) that differs from the parent's value, otherwise to a
  neighbour: ±1 step for ints (the other direction at a bound), a Gaussian step of standard
  deviation 0.1 × the (log-)range for floats, clipped to the range. Every *other* parameter
  is kept with probability ``1 - mutation_rate`` and resampled uniformly otherwise (so
  ``mutation_rate`` = 0, the paper's setting, changes exactly one parameter).
* **Cells**: given a :class:`~tune_nas.search.cells.CellGenotype` (a NAS-Bench-101 cell space
  wraps this sampler in :class:`~tune_nas.search.cells.CellSampler`, which hands it over), the
  cell's parameters count as ONE parameter above, mutated by NAS-Bench-101's own mutation (one
  edge flipped or one op changed, valid by construction) and, at ``mutation_rate``, redrawn as a
  uniform valid cell.
* **Define-by-run spaces**: the relative space is the intersection of the finished trials'
  spaces (Optuna's ``IntersectionSearchSpace``, pruned trials included); a parameter outside
  it (a conditional one) is sampled uniformly at random.
* **Parallel trials**: each ask uses whatever has finished; nothing waits.

Options (``searcher_options``): ``population_size`` (int >= 2, default 20), ``sample_size``
(int, 1 <= S <= P, default 5), ``mutation_rate`` (float in [0, 1], default 0.0).
Any number of objectives, with or without constraints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tune_nas.objectives import Objective, dominance_order
from tune_nas.search.registry import SearcherSettings

#: Standard deviation of a float's Gaussian neighbour step, as a share of its (log-)range.
FLOAT_STEP_SHARE = 0.1
#: Attempts at a uniform resample that differs from the parent before taking a neighbour.
RESAMPLE_ATTEMPTS = 16


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def create_sampler(settings: SearcherSettings):
    settings.check_known("evolution", ("population_size", "sample_size", "mutation_rate"))
    population = settings.take("population_size", 20, lambda v: _is_int(v) and v >= 2, "an integer >= 2")
    sample = settings.take("sample_size", 5, lambda v: _is_int(v) and 1 <= v <= population,
                           f"an integer in [1, population_size={population}]")
    rate = settings.take("mutation_rate", 0.0, lambda v: _is_number(v) and 0.0 <= v <= 1.0,
                         "a number in [0, 1]")
    return RegularizedEvolutionSampler(population_size=population, sample_size=sample,
                                       mutation_rate=float(rate), seed=settings.seed)


def rank_key(trial: FrozenTrial, sign: float) -> tuple[int, int, float]:
    """How good a finished trial is, higher is better: ``(is_complete, last step reached,
    sign * value)``; a PRUNED trial's value is its last intermediate value."""
    if trial.state == TrialState.COMPLETE:
        return (1, 0, sign * float(trial.value))
    if not trial.intermediate_values:
        return (0, -1, -math.inf)
    step = max(trial.intermediate_values)
    return (0, step, sign * float(trial.intermediate_values[step]))


def total_violation(trial: FrozenTrial) -> float:
    """How far a trial is from feasible: the sum of its positive constraint values (Optuna's
    ``trial.constraints``, <= 0 when kept; Optuna refuses NaN), 0 when it keeps them all or has
    none."""
    return sum((max(0.0, float(value)) for value in trial.constraints.values()), 0.0)


def _objectives(directions: Sequence[StudyDirection]) -> tuple[Objective, ...]:
    return tuple(Objective(f"objective {i}", "max" if d == StudyDirection.MAXIMIZE else "min")
                 for i, d in enumerate(directions))


def tournament_keys(population: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[tuple]:
    """Each member's key in a tournament, higher is better (the rules of the module docstring):
    ``(feasible, -total violation, is_complete, ...)``, the rest :func:`rank_key`'s with one
    objective, and with several ``-place`` in the dominance order of the population's COMPLETE
    members of the same feasibility (youngest first, so a full tie goes to the younger)."""
    violations = [total_violation(t) for t in population]
    objectives = _objectives(directions)
    head = [(int(v == 0.0), -v) for v in violations]
    if len(objectives) == 1:
        return [(*h, *rank_key(t, objectives[0].sign)) for h, t in zip(head, population)]
    place: dict[int, int] = {}
    for feasible in (1, 0):
        members = sorted((i for i, t in enumerate(population) if t.state == TrialState.COMPLETE and head[i][0] == feasible),
                         key=lambda i: -population[i].number)
        order = dominance_order([population[i].values for i in members], objectives)
        place.update({members[k]: position for position, k in enumerate(order)})
    keys = []
    for i, trial in enumerate(population):
        if trial.state == TrialState.COMPLETE:
            keys.append((*head[i], 1, -place[i], 0.0))
        else:
            keys.append((*head[i], *rank_key(trial, objectives[0].sign)))
    return keys


class RegularizedEvolutionSampler(BaseSampler):
    """Aging evolution over an Optuna study's finished trials (see the module docstring)."""

    def __init__(self, population_size: int = 20, sample_size: int = 5, mutation_rate: float = 0.0,
                 seed: int | None = None) -> None:
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_rate = mutation_rate
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=None if seed is None else seed + 1)
        self._space = IntersectionSearchSpace(include_pruned=True)
        self.genotype = None

    def use_genotype(self, genotype) -> None:
        """Mutate the parameters of ``genotype`` (a :class:`~tune_nas.search.cells.CellGenotype`)
        as one cell."""
        self.genotype = genotype

    # ----- Optuna's sampler protocol -----
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {name: dist for name, dist in self._space.calculate(study).items() if not dist.single()}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space or trial.number < self.population_size:
            return {}
        population = [t for t in self.population(study) if all(name in t.params for name in search_space)]
        if not population:
            return {}
        parent = self.select_parent(population, study.directions)
        return self.mutate({name: parent.params[name] for name in search_space}, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        pass

    def after_trial(self, study: Study, trial: FrozenTrial, state: Any, values: Sequence[float] | None) -> None:
        pass

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    # ----- the algorithm -----
    def population(self, study: Study) -> list[FrozenTrial]:
        """The last ``population_size`` finished (COMPLETE or PRUNED) trials by trial number."""
        finished = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return sorted(finished, key=lambda t: t.number)[-self.population_size:]

    def select_parent(self, population: Sequence[FrozenTrial],
                      direction: StudyDirection | Sequence[StudyDirection]) -> FrozenTrial:
        """The best of ``sample_size`` members drawn without replacement (ties: the younger),
        by :func:`tournament_keys` for the study's direction (or directions, one per objective)."""
        directions = [direction] if isinstance(direction, StudyDirection) else list(direction)
        size = min(self.sample_size, len(population))
        picked = self._rng.choice(len(population), size=size, replace=False)
        keys = tournament_keys(population, directions)
        return population[max(picked, key=lambda i: (keys[i], population[i].number))]

    def mutate(self, parent: dict[str, Any], space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """The child: exactly one parameter (or the cell) changed, each other one resampled with
        probability ``mutation_rate``."""
        cell_names = set(self.genotype.names) if self.genotype is not None else set()
        if not cell_names or not cell_names <= set(space):
            cell_names = set()
        names = sorted(set(space) - cell_names) + (["<cell>"] if cell_names else [])
        changed = names[self._rng.randint(len(names))]
        child = {}
        for name in names:
            if name == "<cell>":
                parent_cell = {k: parent[k] for k in cell_names}
                if changed == name:
                    child.update(self.genotype.mutate(parent_cell, self._rng))
                elif self.mutation_rate > 0 and self._rng.uniform() < self.mutation_rate:
                    child.update(self.genotype.random(self._rng))
                else:
                    child.update(parent_cell)
            elif name == changed:
                child[name] = self._changed_value(parent[name], space[name])
            elif self.mutation_rate > 0 and self._rng.uniform() < self.mutation_rate:
                child[name] = self._uniform(space[name])
            else:
                child[name] = parent[name]
        return child

    def _uniform(self, dist: BaseDistribution) -> Any:
        transform = _SearchSpaceTransform({"x": dist})
        return transform.untransform(self._rng.uniform(transform.bounds[:, 0], transform.bounds[:, 1]))["x"]

    def _changed_value(self, value: Any, dist: BaseDistribution) -> Any:
        if isinstance(dist, CategoricalDistribution):
            current = dist.to_internal_repr(value)
            others = [i for i in range(len(dist.choices)) if i != current]
            return dist.choices[others[self._rng.randint(len(others))]]
        if self._rng.uniform() < 0.5:
            for _ in range(RESAMPLE_ATTEMPTS):
                candidate = self._uniform(dist)
                if candidate != value:
                    return candidate
        return self._neighbour(value, dist)

    def _neighbour(self, value: Any, dist: BaseDistribution) -> Any:
        if isinstance(dist, IntDistribution):
            step = dist.step
            direction = 1 if self._rng.uniform() < 0.5 else -1
            moved = value + direction * step
            return moved if dist.low <= moved <= dist.high else value - direction * step
        low, high, log = dist.low, dist.high, dist.log
        to_space = math.log if log else (lambda v: v)
        from_space = math.exp if log else (lambda v: v)
        lo, hi = to_space(low), to_space(high)
        for _ in range(RESAMPLE_ATTEMPTS):
            moved = min(hi, max(lo, to_space(value) + self._rng.normal(0.0, FLOAT_STEP_SHARE * (hi - lo))))
            candidate = min(high, max(low, from_space(moved)))
            if dist.step is not None:
                candidate = min(high, low + round((candidate - low) / dist.step) * dist.step)
            if candidate != value:
                return candidate
        return high if value != high else low

