"""Cell search: any searcher proposes only valid NAS-Bench-101 cells, never one trained already.

A cell space is sampled through its flat encoding (:func:`tune_nas.spaces.nasbench101.param_choices`:
``edge_0`` .. one 0/1 categorical per upper-triangular entry, ``op_node_0`` .. one categorical per
inner vertex), which every Optuna sampler handles. Two things make that encoding awkward for a
plain sampler, and :class:`CellSampler` (wrapped around the searcher's sampler) settles both:

* **Invalid proposals are resampled.** An encoding whose input does not reach its output, or whose
  pruned cell exceeds ``max_vertices`` / ``max_edges``, is not a network. The searcher's own
  proposal for the cell (its relative sample where it makes one: TPE's multivariate density, an
  evolution child; otherwise one draw per parameter from its ``sample_independent``: the random
  sampler, REINFORCE's policy, TPE's univariate densities) is drawn again until it is valid:
  rejection sampling from the searcher's distribution restricted to valid cells. Nothing is
  trained or told to the study for a rejected proposal, so no searcher learns from it (the
  alternative, a fake bad result as in NAS-Bench-101's hyperopt/SMAC runs, would put made-up
  numbers in the study). For the random sampler this is exactly NAS-Bench-101's ``random_spec``.
* **Isomorphic proposals are resampled** the same way. A proposal whose canonical key
  (:func:`~tune_nas.spaces.nasbench101.canonical_hash`, exact) equals that of a trial of the study
  that is RUNNING, WAITING, COMPLETE or PRUNED would train the same network again: it is drawn
  anew. (A FAIL trial produced no result, so its cell may be proposed again.) Resampling rather
  than copying the earlier result keeps the study honest (every trial in it was trained) and
  spends the budget on new networks.

After ``max_attempts`` rejected proposals in a row (a searcher that keeps proposing what it has
seen, e.g. a converged one) the cell is drawn uniformly from the valid encodings
(:func:`~tune_nas.spaces.nasbench101.random_cell`) instead, up to ``max_attempts`` times more;
when even that finds no new cell the space is taken as exhausted and :class:`SpaceExhausted` is
raised (the Ray layer ends the search there).

Every trial records, as user attributes, ``cell`` (the pruned cell ``{"matrix", "ops"}``),
``cell_hash`` (its key), ``proposals_invalid`` and ``proposals_duplicate`` (what was rejected
before it); :func:`proposal_counts` adds them up for the experiment's summary.

Searchers that understand cells take the :class:`CellGenotype` (``use_genotype``): the
``evolution`` searcher then mutates the cell with NAS-Bench-101's own mutation (one edge flipped
or one op changed, valid by construction) as one unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from tune_nas.spaces.nasbench101 import (
    MAX_EDGES,
    MAX_VERTICES,
    OPS,
    Cell,
    canonical_hash,
    cell_from_params,
    cell_params,
    encoded_vertices,
    mutate,
    param_names,
    random_cell,
)

#: Rejected proposals of the searcher in a row before uniform valid cells are drawn instead.
MAX_ATTEMPTS = 200
#: States of a trial whose cell counts as trained (or being trained).
TRAINED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
#: User attributes a cell trial carries.
CELL_ATTR, HASH_ATTR = "cell", "cell_hash"
INVALID_ATTR, DUPLICATE_ATTR = "proposals_invalid", "proposals_duplicate"
#: How the error of the trial that found the space used up begins.
EXHAUSTED = "cell space exhausted"


class SpaceExhausted(RuntimeError):
    """No valid cell isomorphic to none of the study's trials was found: the space is used up.
    ``trial_number`` is the Optuna trial being sampled (left RUNNING by Optuna)."""

    def __init__(self, message: str, trial_number: int) -> None:
        super().__init__(message)
        self.trial_number = trial_number


class CellSpaceError(ValueError):
    """A space's cell encoding breaks a rule; the message names the parameter and the rule."""


@dataclass(frozen=True)
class CellGenotype:
    """A cell space: the flat encoding of ``num_vertices`` vertices, the inner ops it may use,
    and the limits a valid cell keeps after pruning."""

    num_vertices: int = MAX_VERTICES
    ops: tuple[str, ...] = OPS
    max_vertices: int = MAX_VERTICES
    max_edges: int = MAX_EDGES

    @property
    def names(self) -> list[str]:
        edges, vertices = param_names(self.num_vertices)
        return [*edges, *vertices]

    @property
    def distributions(self) -> dict[str, CategoricalDistribution]:
        """The Optuna distribution of each parameter: what the space's ``tune.choice`` becomes."""
        edges, vertices = param_names(self.num_vertices)
        return {**{n: CategoricalDistribution([0, 1]) for n in edges},
                **{n: CategoricalDistribution(list(self.ops)) for n in vertices}}

    def cell(self, params: Mapping[str, Any]) -> Cell:
        return cell_from_params({name: params[name] for name in self.names})

    def is_valid(self, params: Mapping[str, Any]) -> bool:
        return self.cell(params).is_valid(self.max_vertices, self.max_edges)

    def key(self, params: Mapping[str, Any]) -> str:
        """The canonical key of a valid encoding."""
        return canonical_hash(self.cell(params))

    def mutate(self, params: Mapping[str, Any], rng: np.random.RandomState) -> dict[str, Any]:
        """NAS-Bench-101's mutation of a valid encoding: one edge flipped or one op changed,
        the result valid (see :func:`~tune_nas.spaces.nasbench101.mutate`)."""
        child = mutate(self.cell(params), _generator(rng), max_vertices=self.max_vertices,
                       max_edges=self.max_edges, ops=self.ops)
        return cell_params(child)

    def random(self, rng: np.random.RandomState) -> dict[str, Any]:
        """A uniformly drawn valid encoding."""
        return cell_params(random_cell(_generator(rng), self.num_vertices, self.max_edges, ops=self.ops))


def _generator(rng: np.random.RandomState) -> np.random.Generator:
    """A numpy Generator seeded from the sampler's RandomState (so the sampler's seed rules it)."""
    return np.random.default_rng(rng.randint(0, 2**31 - 1))


def genotype_of(choices: Mapping[str, Sequence[Any]], constants: Mapping[str, Any] | None = None
                ) -> CellGenotype | None:
    """The cell space among a space's parameters, or None: ``choices`` maps each sampled
    parameter to its possible values, ``constants`` holds the fixed ones (``max_vertices``,
    ``max_edges`` when the space sets them). CellSpaceError on an incomplete encoding, an edge
    whose choices are not exactly 0 and 1, an op outside NAS-Bench-101's."""
    constants = constants or {}
    try:
        n = encoded_vertices([*choices, *constants])
    except ValueError as error:
        raise CellSpaceError(str(error)) from None
    if n is None:
        return None
    edges, vertices = param_names(n)
    for name in edges:
        if name not in choices:
            raise CellSpaceError(f"cell parameter {name}={constants[name]!r} is fixed; rule: every edge_* is "
                                 f"searched, as a choice of [0, 1]")
        values = list(choices[name])
        if values != [0, 1]:
            raise CellSpaceError(f"cell parameter {name} choices {values!r}: rule: exactly [0, 1]")
    op_sets = []
    for name in vertices:
        if name not in choices:
            raise CellSpaceError(f"cell parameter {name}={constants[name]!r} is fixed; rule: every op_node_* "
                                 f"is searched, as a choice among {list(OPS)}")
        values = list(choices[name])
        bad = [v for v in values if v not in OPS]
        if bad or not values or len(set(values)) != len(values):
            raise CellSpaceError(f"cell parameter {name} choices {values!r}: rule: distinct ops among {list(OPS)}")
        op_sets.append(tuple(values))
    if len(set(op_sets)) > 1:
        raise CellSpaceError(f"cell parameters op_node_*: choices differ between vertices {sorted(set(op_sets))}; "
                             "rule: one list of ops for every vertex")
    limits = {}
    for name, default in (("max_vertices", MAX_VERTICES), ("max_edges", MAX_EDGES)):
        value = constants.get(name, default)
        if name in choices or isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise CellSpaceError(f"cell limit {name}={choices.get(name, value)!r}: rule: a constant integer >= 2")
        limits[name] = value
    return CellGenotype(num_vertices=n, ops=op_sets[0] if op_sets else OPS, **limits)


class CellSampler(BaseSampler):
    """``base`` (any Optuna sampler) proposing only valid cells not yet in the study (see the
    module docstring); every other parameter is ``base``'s alone."""

    def __init__(self, base: BaseSampler, genotype: CellGenotype, max_attempts: int = MAX_ATTEMPTS,
                 seed: int | None = None) -> None:
        self.base, self.genotype, self.max_attempts = base, genotype, max_attempts
        self._rng = np.random.RandomState(seed)
        self._distributions = genotype.distributions
        if hasattr(base, "use_genotype"):
            base.use_genotype(genotype)

    # ----- Optuna's sampler protocol -----
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = dict(self.base.infer_relative_search_space(study, trial))
        space.update(self._distributions)
        return space

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        base_space = {k: v for k, v in self.base.infer_relative_search_space(study, trial).items()
                      if k in search_space}
        seen = trained_keys(study._get_trials(deepcopy=False, states=TRAINED_STATES), exclude=trial.number)
        invalid = duplicate = 0
        relative: dict[str, Any] = {}
        for attempt in range(2 * self.max_attempts):
            if attempt < self.max_attempts:
                relative = dict(self.base.sample_relative(study, trial, base_space)) if base_space else {}
                cell = {name: relative[name] if name in relative else
                        self.base.sample_independent(study, trial, name, dist)
                        for name, dist in self._distributions.items()}
            else:  # the searcher keeps repeating itself: uniform valid cells
                relative = {k: v for k, v in relative.items() if k not in self._distributions}
                cell = self.genotype.random(self._rng)
            if not self.genotype.is_valid(cell):
                invalid += 1
                continue
            key = self.genotype.key(cell)
            if key in seen:
                duplicate += 1
                continue
            storage = study._storage
            pruned = self.genotype.cell(cell).pruned()
            for attr, value in ((CELL_ATTR, pruned.as_dict()), (HASH_ATTR, key), (INVALID_ATTR, invalid),
                                (DUPLICATE_ATTR, duplicate)):
                storage.set_trial_user_attr(trial._trial_id, attr, value)
            return {**relative, **cell}
        raise SpaceExhausted(
            f"{EXHAUSTED}: {2 * self.max_attempts} proposals for trial {trial.number} ({invalid} invalid, "
            f"{duplicate} isomorphic to one of the {len(seen)} cells trained) found no new valid cell "
            f"(num_vertices={self.genotype.num_vertices}, max_edges={self.genotype.max_edges})",
            trial.number)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self.base.reseed_rng()


def trained_keys(trials: Iterable[FrozenTrial], exclude: int | None = None) -> dict[str, int]:
    """Canonical key -> the first trial number that holds it, over ``trials`` (those with a key)."""
    keys: dict[str, int] = {}
    for t in sorted(trials, key=lambda t: t.number):
        key = t.user_attrs.get(HASH_ATTR)
        if key is not None and t.number != exclude:
            keys.setdefault(key, t.number)
    return keys


def proposal_counts(trials: Iterable[FrozenTrial]) -> dict[str, int] | None:
    """What a cell search cost in proposals: ``cells`` (trials given a cell), ``trained`` (those
    COMPLETE or PRUNED), ``unique_cells`` (distinct keys among the trained ones),
    ``duplicates_avoided`` and ``invalid_rejected`` (proposals resampled before them), and
    ``exhausted`` (why the search ended early, or None); None for a study with no cell trial."""
    trials = list(trials)
    exhausted = [t.user_attrs["error"] for t in trials if t.state == TrialState.FAIL
                 and str(t.user_attrs.get("error", "")).startswith(EXHAUSTED)]
    trials = [t for t in trials if HASH_ATTR in t.user_attrs]
    if not trials:
        return None
    trained = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return {"cells": len(trials), "trained": len(trained),
            "unique_cells": len({t.user_attrs[HASH_ATTR] for t in trained}),
            "duplicates_avoided": sum(int(t.user_attrs.get(DUPLICATE_ATTR, 0)) for t in trials),
            "invalid_rejected": sum(int(t.user_attrs.get(INVALID_ATTR, 0)) for t in trials),
            "exhausted": exhausted[0] if exhausted else None}
