"""Searchers with several objectives and constraints: nsga2 registered and its options checked;
tpe, nsga2, evolution and random run a two-objective study to its Pareto front; evolution's
tournament by non-dominated sorting and crowding distance, feasible trials first; Optuna's
constraints (``trial.set_constraint``) steer every model-based searcher; reinforce refuses
several objectives in one line."""

from __future__ import annotations

import copy
import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from tune_nas.objectives import Objective, pareto_front
from tune_nas.search import SearcherError, create_sampler, list_searchers, searcher_summary
from tune_nas.search.evolution import RegularizedEvolutionSampler, total_violation, tournament_keys
from tune_nas.search.registry import MULTI_OBJECTIVE, SearcherSettings

optuna.logging.set_verbosity(optuna.logging.ERROR)

CHOICES = ("a", "b", "c", "d", "e")
PARAMS = tuple(f"p{i}" for i in range(6))
SPACE = {name: CategoricalDistribution(CHOICES) for name in PARAMS}
TWO = (Objective("score", "max"), Objective("cost", "min"))


def _settings(seed: int = 0, objectives: tuple[Objective, ...] = TWO, **options) -> SearcherSettings:
    return SearcherSettings(seed=seed, objectives=objectives, options=options)


def score_and_cost(choices: list[str]) -> tuple[int, int]:
    """Score: the sum of the choices' positions (max); cost: how many are not "a" (min). The
    Pareto front: k parameters at "e", the rest "a", for k = 0..6 (score 4k, cost k)."""
    positions = [CHOICES.index(c) for c in choices]
    return sum(positions), sum(p > 0 for p in positions)


def two_objective_study(searcher: str, seed: int, trials: int, cost_cap: int | None = None,
                        **options) -> optuna.Study:
    """An ask/tell study of :func:`score_and_cost`; with ``cost_cap``, the constraint cost <= cap
    is set on every trial with ``trial.set_constraint`` before ``study.tell``, as the tuner's
    bridge does."""
    study = optuna.create_study(directions=[o.optuna_direction for o in TWO],
                                sampler=create_sampler(searcher, _settings(seed, **options)))
    for _ in range(trials):
        trial = study.ask()
        score, cost = score_and_cost([trial.suggest_categorical(name, CHOICES) for name in PARAMS])
        if cost_cap is not None:
            trial.set_constraint(f"cost<={cost_cap}", cost - cost_cap)
        study.tell(trial, [score, cost])
    return study


# ----- nsga2 in the registry -----

def test_nsga2_is_registered_and_its_options_reach_optunas_sampler():
    assert "nsga2" in list_searchers() and "nsga2" in MULTI_OBJECTIVE
    assert searcher_summary("nsga2").startswith("NSGA-II")
    sampler = create_sampler("nsga2", _settings(population_size=12, mutation_prob=0.2, crossover_prob=0.5,
                                                swapping_prob=0.3))
    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    children = sampler._child_generation_strategy
    assert (sampler.population_size, children._mutation_prob, children._crossover_prob,
            children._swapping_prob) == (12, 0.2, 0.5, 0.3)
    default = create_sampler("nsga2", _settings())
    assert (default.population_size, default._child_generation_strategy._mutation_prob) == (10, 0.3)
    assert create_sampler("nsga2", _settings(mutation_prob=None))._child_generation_strategy._mutation_prob is None


@pytest.mark.parametrize("options, named", [
    ({"population_size": 1}, "population_size"),
    ({"population_size": 10.0}, "population_size"),
    ({"mutation_prob": 1.5}, "mutation_prob"),
    ({"mutation_prob": "often"}, "mutation_prob"),
    ({"crossover_prob": -0.1}, "crossover_prob"),
    ({"swapping_prob": True}, "swapping_prob"),
    ({"pop_size": 10}, "pop_size"),
])
def test_nsga2_bad_options_raise_naming_the_option(options, named):
    with pytest.raises(SearcherError, match=rf"searcher_options\['{named}'\]") as error:
        create_sampler("nsga2", _settings(**options))
    assert "\n" not in str(error.value) and "rule" in str(error.value)


def test_nsga2_is_seeded():
    params = [[t.params for t in two_objective_study("nsga2", seed, 30).trials] for seed in (5, 5, 6)]
    assert params[0] == params[1] != params[2]


# ----- every multi-objective searcher on a synthetic two-objective function -----

@pytest.mark.parametrize("searcher", MULTI_OBJECTIVE)
def test_searcher_runs_a_two_objective_study_to_its_pareto_front(searcher):
    options = {"population_size": 10} if searcher in ("evolution", "nsga2") else {}
    study = two_objective_study(searcher, seed=1, trials=40, **options)
    values = [t.values for t in study.trials]
    front = {study.trials[i].number for i in pareto_front(values, TWO)}
    assert front and front == {t.number for t in study.best_trials}
    cheapest = min(study.trials, key=lambda t: (t.values[1], -t.values[0]))
    highest = max(study.trials, key=lambda t: (t.values[0], -t.values[1]))
    assert {cheapest.number, highest.number} <= front  # the front's two ends


@pytest.mark.parametrize("searcher, options", [
    ("tpe", {}), ("nsga2", {"mutation_prob": None}), ("evolution", {"population_size": 10, "sample_size": 3})])
def test_constraints_set_with_set_constraint_steer_the_searcher(searcher, options):
    # measured (4 seeds, trials 30..59 with cost <= 2): tpe 0.40 against 0.16 without the
    # constraint, nsga2 0.37 against 0.03 (0.12 against 0.04 with its default mutation_prob 0.3,
    # which explores more), evolution 0.48 against 0.13; random search about 0.02
    def share_keeping_the_cap(constrained: bool) -> float:
        shares = []
        for seed in range(4):
            study = two_objective_study(searcher, seed, 60, cost_cap=2 if constrained else None, **options)
            shares.append(np.mean([t.values[1] <= 2 for t in study.trials[30:]]))
        return float(np.mean(shares))

    assert share_keeping_the_cap(True) > share_keeping_the_cap(False) + 0.15


# ----- evolution's tournament with several objectives -----

def _population(entries: list[tuple[tuple[float, float], dict[str, float] | None]]) -> optuna.Study:
    """A (max, min) study with one COMPLETE trial per (values, constraints) entry, each told with
    ``study.tell`` after ``trial.set_constraint``."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for values, constraints in entries:
        trial = study.ask(SPACE)
        for key, value in (constraints or {}).items():
            trial.set_constraint(key, value)
        study.tell(trial, list(values))
    return study


#: (score max, cost min): 0, 1, 2 are the front, 3 is dominated by 1 (and the youngest).
FRONT_AND_ONE_BEHIND = [((90, 5), None), ((85, 3), None), ((80, 1), None), ((84, 4), None)]


def test_evolution_parent_is_a_front_member_an_end_of_the_front_and_the_younger_end():
    study = _population(FRONT_AND_ONE_BEHIND)
    population = study.trials
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=4, seed=0)
    # the ends 0 and 2 have infinite crowding distance; of them 2 is the younger
    assert sampler.select_parent(population, study.directions).number == 2
    # without 2 the front is 0 and 1 (both ends); 1 is the younger, the dominated 3 never wins
    assert sampler.select_parent([population[n] for n in (0, 1, 3)], study.directions).number == 1


def test_evolution_tournament_order_is_rank_then_crowding_then_youth():
    # both maximised: the front 0 (0, 10), 1 (1, 9), 2 (5, 5), 3 (10, 0); 4 (4, 4) is behind 2.
    # Crowding: 1 -> (5 - 0)/10 + (10 - 5)/10 = 1.0, 2 -> (10 - 1)/10 + (9 - 0)/10 = 1.8; ends infinite
    study = optuna.create_study(directions=["maximize", "maximize"])
    for values in [(0, 10), (1, 9), (5, 5), (10, 0), (4, 4)]:
        study.add_trial(create_trial(values=list(values), params={}, distributions={}))
    keys = tournament_keys(study.trials, study.directions)
    assert sorted(range(5), key=lambda i: (keys[i], i), reverse=True) == [3, 0, 2, 1, 4]


def test_evolution_two_objective_asks_mutate_the_front_member():
    study = _population(FRONT_AND_ONE_BEHIND)
    study.sampler = RegularizedEvolutionSampler(population_size=4, sample_size=4, seed=0)
    parent = study.trials[2].params
    for _ in range(10):  # asked trials stay RUNNING: never members
        child = study.ask(SPACE).params
        assert sum(child[name] != parent[name] for name in PARAMS) == 1


def test_evolution_single_objective_keys_without_constraints_are_rank_key():
    study = optuna.create_study(direction="maximize")
    for value in (3.0, 1.0, 2.0):
        study.add_trial(create_trial(value=value, params={}, distributions={}))
    study.add_trial(create_trial(state=TrialState.PRUNED, params={}, distributions={}, intermediate_values={2: 9.0}))
    keys = tournament_keys(study.trials, study.directions)
    assert keys == [(1, 0.0, 1, 0, 3.0), (1, 0.0, 1, 0, 1.0), (1, 0.0, 1, 0, 2.0), (1, 0.0, 0, 2, 9.0)]


# ----- feasibility first -----

def test_total_violation_sums_the_positive_constraint_values():
    study = _population([((1, 1), {"a": -2.0, "b": 0.0}), ((1, 1), {"a": 1.5, "b": 2.0}), ((1, 1), None),
                         ((1, 1), {"a": math.inf})])
    assert [total_violation(t) for t in study.trials] == [0.0, 3.5, 0.0, math.inf]


def test_infeasible_trials_are_never_parents_when_a_feasible_one_is_in_the_tournament():
    # every infeasible trial dominates every feasible one
    study = _population([((99, 1), {"size<=1": 5.0}), ((60, 9), {"size<=1": -1.0}), ((98, 1), {"size<=1": 7.0}),
                         ((50, 8), {"size<=1": 0.0}), ((97, 2), {"size<=1": 0.5}), ((96, 1), {"size<=1": 0.5}),
                         ((40, 7), {"size<=1": -3.0})])
    population = study.trials
    feasible = {1, 3, 6}
    # feasible: 1, 3, 6 form a front (ends 1 and 6, 6 younger; then 3); infeasible: by violation
    # (4 and 5: 0.5; 0: 5; 2: 7); 4 and 5 tie, both behind 0 and 2 in dominance, 5 the younger
    preference = [6, 1, 3, 5, 4, 0, 2]
    keys = tournament_keys(population, study.directions)
    assert sorted(range(7), key=lambda i: (keys[i], i), reverse=True) == preference
    sampler = RegularizedEvolutionSampler(population_size=7, sample_size=3, seed=0)
    without_feasible = 0
    for _ in range(200):
        drawn = {int(i) for i in copy.deepcopy(sampler._rng).choice(len(population), size=3, replace=False)}
        parent = sampler.select_parent(population, study.directions).number
        assert parent == next(n for n in preference if n in drawn)
        assert parent in feasible or not drawn & feasible
        without_feasible += not drawn & feasible
    assert without_feasible > 0  # draws of infeasible trials only happened (1 in 7 expected)


def test_single_objective_evolution_also_puts_feasible_trials_first():
    study = optuna.create_study(direction="maximize")
    for value, violation in [(100.0, 2.0), (1.0, 0.0), (90.0, 0.5)]:
        trial = study.ask()
        trial.set_constraint("c", violation)
        study.tell(trial, value)
    sampler = RegularizedEvolutionSampler(population_size=3, sample_size=3, seed=0)
    assert sampler.select_parent(study.trials, study.direction).number == 1  # the only feasible one
    keys = tournament_keys(study.trials, [StudyDirection.MAXIMIZE])
    assert sorted(range(3), key=lambda i: keys[i], reverse=True) == [1, 2, 0]


# ----- refusals -----

def test_reinforce_refuses_two_objectives_in_one_line_naming_the_ones_that_take_them():
    with pytest.raises(SearcherError) as error:
        create_sampler("reinforce", _settings())
    message = str(error.value)
    assert "\n" not in message
    assert message == ("searcher 'reinforce' with 2 objectives (score (max), cost (min)): rule: exactly one "
                       "objective; several need one of: evolution, nsga2, random, tpe")


@pytest.mark.parametrize("searcher", MULTI_OBJECTIVE)
def test_multi_objective_searchers_accept_two_objectives(searcher):
    sampler = create_sampler(searcher, _settings())
    assert isinstance(sampler, optuna.samplers.BaseSampler)
