"""The searchers (tpe, random, evolution, reinforce): each beats random search on a synthetic
objective with a known best; evolution's aging, tournament and mutation on hand-made result
streams; REINFORCE's policy moving towards rewarded choices; options validated by name."""

from __future__ import annotations

import importlib.util
import itertools
import math
import pickle
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from tune_nas.search import SearcherError, create_sampler, list_searchers, searcher_summary
from tune_nas.search.evolution import RegularizedEvolutionSampler, rank_key
from tune_nas.search.registry import SearcherSettings
from tune_nas.search.reinforce import ReinforceSampler

optuna.logging.set_verbosity(optuna.logging.ERROR)

CHOICES = ("a", "b", "c", "d", "e")
TARGET = ("c", "e", "a", "d", "b", "c")  # the hidden best cell: value 6 + 1 at x = 0.1
OPS = CategoricalDistribution(CHOICES)


def synthetic(trial: optuna.Trial) -> float:
    """Number of params equal to the hidden target, plus up to 1 for a log-float near 0.1."""
    matches = sum(trial.suggest_categorical(f"p{i}", CHOICES) == want for i, want in enumerate(TARGET))
    x = trial.suggest_float("x", 1e-4, 1.0, log=True)
    return matches + max(0.0, 1.0 - abs(math.log10(x) + 1.0) / 3.0)


def mean_best(searcher: str, trials: int = 60, seeds: int = 4) -> float:
    best = []
    for seed in range(seeds):
        study = optuna.create_study(direction="maximize",
                                    sampler=create_sampler(searcher, SearcherSettings(seed=seed)))
        study.optimize(synthetic, n_trials=trials)
        best.append(study.best_value)
    return float(np.mean(best))


@pytest.fixture(scope="module")
def random_mean_best() -> float:
    return mean_best("random")


def test_random_search_is_the_plain_baseline(random_mean_best):
    # 60 uniform draws of 6 five-way choices: the best matches 3 or 4 of 6 (measured: 4.17)
    assert 3.0 < random_mean_best < 4.8


@pytest.mark.parametrize("searcher", ["tpe", "evolution", "reinforce"])
def test_searcher_beats_random_search(searcher, random_mean_best):
    # measured (4 seeds x 60 trials): random 4.17, tpe 5.72, evolution 6.15, reinforce 6.64
    assert mean_best(searcher) > random_mean_best + 1.0


def test_every_searcher_is_registered_with_a_summary():
    assert {"tpe", "random", "evolution", "reinforce"} <= set(list_searchers())
    assert searcher_summary("evolution").startswith("Regularized (aging) evolution")
    assert searcher_summary("reinforce").startswith("REINFORCE controller")


# ----- evolution on a hand-made stream of results -----

def _cell(values: tuple[str, ...]) -> dict[str, str]:
    return {f"p{i}": v for i, v in enumerate(values)}


def _distributions() -> dict[str, CategoricalDistribution]:
    return {f"p{i}": OPS for i in range(len(TARGET))}


def _add(study: optuna.Study, params: dict, value: float | None = None, state: TrialState = TrialState.COMPLETE,
         intermediate: dict[int, float] | None = None) -> None:
    study.add_trial(create_trial(params=params, distributions=_distributions(), value=value, state=state,
                                 intermediate_values=intermediate))


def _evolution_study(sampler: RegularizedEvolutionSampler, direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction, sampler=sampler)
    _add(study, _cell(("a",) * 6), 100.0)  # the best ever, but the oldest: aged out
    _add(study, _cell(("b",) * 6), 1.0)
    _add(study, _cell(("c",) * 6), 3.0)
    _add(study, _cell(("d",) * 6), state=TrialState.FAIL)  # never a member
    _add(study, _cell(("e",) * 6), 2.0)
    return study


def test_evolution_population_is_the_last_p_finished_trials_and_the_oldest_leaves():
    sampler = RegularizedEvolutionSampler(population_size=3, sample_size=3, seed=0)
    study = _evolution_study(sampler)
    assert [t.number for t in sampler.population(study)] == [1, 2, 4]
    _add(study, _cell(("a", "b", "a", "b", "a", "b")), 0.5)
    assert [t.number for t in sampler.population(study)] == [2, 4, 5]


def test_evolution_parent_is_the_best_of_the_sample_and_the_child_changes_exactly_one_param():
    sampler = RegularizedEvolutionSampler(population_size=3, sample_size=3, seed=0)
    study = _evolution_study(sampler)
    parent = _cell(("c",) * 6)  # value 3: the best of the last three, not the aged-out 100
    changed = []
    for _ in range(30):  # each ask leaves a RUNNING trial behind: never a parent
        trial = study.ask(_distributions())
        diff = [name for name, value in trial.params.items() if value != parent[name]]
        assert len(diff) == 1, trial.params
        changed.append(diff[0])
    assert len(set(changed)) >= 4  # the changed parameter is drawn, not fixed


def test_evolution_mutation_rate_resamples_the_other_params():
    sampler = RegularizedEvolutionSampler(population_size=3, sample_size=3, mutation_rate=1.0, seed=0)
    study = _evolution_study(sampler)
    parent = _cell(("c",) * 6)
    diffs = [sum(v != parent[k] for k, v in study.ask(_distributions()).params.items()) for _ in range(40)]
    # one forced change + 5 resampled params, each different with probability 4/5: 5 on average
    assert 4.0 < np.mean(diffs) < 5.6


def test_evolution_pruned_trials_rank_below_complete_ones_by_step_then_value():
    study = optuna.create_study(direction="maximize")
    _add(study, _cell(("a",) * 6), 1.0)
    _add(study, _cell(("b",) * 6), state=TrialState.PRUNED, intermediate={0: 500.0, 3: 1000.0})
    _add(study, _cell(("c",) * 6), state=TrialState.PRUNED, intermediate={0: 2000.0})
    _add(study, _cell(("d",) * 6), state=TrialState.PRUNED)
    keys = [rank_key(t, 1.0) for t in study.trials]
    assert keys == [(1, 0, 1.0), (0, 3, 1000.0), (0, 0, 2000.0), (0, -1, -math.inf)]
    assert sorted(range(4), key=lambda i: keys[i], reverse=True) == [0, 1, 2, 3]
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=4, seed=0)
    assert sampler.select_parent(study.trials, study.direction).number == 0


def test_evolution_minimises_when_the_study_does():
    sampler = RegularizedEvolutionSampler(population_size=3, sample_size=3, seed=0)
    study = _evolution_study(sampler, direction="minimize")
    assert sampler.select_parent(sampler.population(study), study.direction).params["p0"] == "b"  # value 1


def test_evolution_numeric_mutation_stays_in_range_and_moves():
    sampler = RegularizedEvolutionSampler(seed=0)
    ints = optuna.distributions.IntDistribution(1, 5)
    floats = FloatDistribution(1e-3, 1.0, log=True)
    assert {sampler._changed_value(5, ints) for _ in range(50)} <= {1, 2, 3, 4}
    moved = [sampler._changed_value(0.5, floats) for _ in range(50)]
    assert all(1e-3 <= v <= 1.0 and v != 0.5 for v in moved)


def test_evolution_samples_conditional_params_independently():
    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["x", "y"])
        width = trial.suggest_int("width", 1, 8) if kind == "x" else 0
        return width + (kind == "x")

    sampler = create_sampler("evolution", SearcherSettings(seed=1, options={"population_size": 5, "sample_size": 2}))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=40)
    # only "kind" is in every trial: the relative space; "width" is drawn at random when asked
    assert set(sampler.infer_relative_search_space(study, study.trials[-1])) == {"kind"}
    evolved = study.trials[5:]
    assert all(("width" in t.params) == (t.params["kind"] == "x") for t in study.trials)
    assert len({t.params["width"] for t in evolved if "width" in t.params}) >= 5


# ----- REINFORCE -----

def _reinforce_study(direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    dist = {"op": CategoricalDistribution(("a", "b", "c")), "lr": FloatDistribution(1e-4, 1.0, log=True)}
    for op, lr in itertools.islice(itertools.cycle([("a", 1e-3), ("b", 0.5), ("c", 1e-2)]), 15):
        study.add_trial(create_trial(params={"op": op, "lr": lr}, distributions=dist, value=1.0 if op == "b" else 0.0))
    return study


def test_reinforce_policy_moves_towards_the_rewarded_choice():
    sampler = ReinforceSampler(seed=0)
    empty = optuna.create_study()
    op = CategoricalDistribution(("a", "b", "c"))
    assert np.allclose(sampler.probabilities(empty, "op", op), 1 / 3)
    probabilities = sampler.probabilities(_reinforce_study(), "op", op)
    assert probabilities[1] > 0.6 and probabilities[1] == probabilities.max()
    # the float: 10 bins over log10 in [-4, 0]; 0.5 is in the last bin, rewarded
    lr = sampler.probabilities(_reinforce_study(), "lr", FloatDistribution(1e-4, 1.0, log=True))
    assert len(lr) == 10 and lr.argmax() == 9 and lr[9] > 0.3


def test_reinforce_minimising_moves_away_from_the_high_value():
    probabilities = ReinforceSampler(seed=0).probabilities(_reinforce_study("minimize"), "op",
                                                           CategoricalDistribution(("a", "b", "c")))
    assert probabilities[1] < 0.15


def test_reinforce_policy_is_rebuilt_from_the_study_and_survives_pickling():
    study = _reinforce_study()
    op = CategoricalDistribution(("a", "b", "c"))
    trained = ReinforceSampler(seed=0)
    before = trained.probabilities(study, "op", op)
    assert np.allclose(pickle.loads(pickle.dumps(trained)).probabilities(study, "op", op), before)
    assert np.allclose(ReinforceSampler(seed=7).probabilities(study, "op", op), before)


def test_reinforce_samples_what_the_policy_prefers():
    study = _reinforce_study()
    sampler = ReinforceSampler(learning_rate=1.0, seed=0)
    study.sampler = sampler
    drawn = [study.ask({"op": CategoricalDistribution(("a", "b", "c"))}).params["op"] for _ in range(40)]
    assert drawn.count("b") > 30


# ----- options -----

@pytest.mark.parametrize("searcher, options, named", [
    ("evolution", {"population_size": 1}, "population_size"),
    ("evolution", {"population_size": 10, "sample_size": 11}, "sample_size"),
    ("evolution", {"sample_size": 0}, "sample_size"),
    ("evolution", {"mutation_rate": 1.5}, "mutation_rate"),
    ("evolution", {"mutation_rate": "high"}, "mutation_rate"),
    ("evolution", {"populaton_size": 10}, "populaton_size"),
    ("reinforce", {"learning_rate": 0}, "learning_rate"),
    ("reinforce", {"baseline_decay": 1.0}, "baseline_decay"),
    ("reinforce", {"entropy_weight": -0.1}, "entropy_weight"),
    ("reinforce", {"bins": 1}, "bins"),
    ("reinforce", {"bins": True}, "bins"),
    ("reinforce", {"lr": 0.1}, "lr"),
])
def test_bad_options_raise_naming_the_option(searcher, options, named):
    with pytest.raises(SearcherError, match=rf"searcher_options\['{named}'\]"):
        create_sampler(searcher, SearcherSettings(options=options))


def test_good_options_reach_the_sampler():
    evolution = create_sampler("evolution", SearcherSettings(options={"population_size": 8, "sample_size": 8,
                                                                     "mutation_rate": 0.25}))
    assert (evolution.population_size, evolution.sample_size, evolution.mutation_rate) == (8, 8, 0.25)
    reinforce = create_sampler("reinforce", SearcherSettings(options={"learning_rate": 0.05, "bins": 4}))
    assert (reinforce.learning_rate, reinforce.bins, reinforce.baseline_decay) == (0.05, 4, 0.9)


# ----- the strategies benchmark's exact expectation for random search -----

def _strategies_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "strategies.py"
    spec = importlib.util.spec_from_file_location("strategies_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_expected_best_of_random_draws_is_exact():
    expected = _strategies_module().expected_best_of_random
    # pairs of {1,2,3,4}: maxima 2,3,4,3,4,4 -> 20/6
    assert expected(np.array([4.0, 1.0, 3.0, 2.0]), 2) == pytest.approx(20 / 6)
    assert expected(np.array([4.0, 1.0, 3.0, 2.0]), 4) == pytest.approx(4.0)
    assert expected(np.array([4.0, 1.0, 3.0, 2.0]), 1) == pytest.approx(2.5)


NSGA_SMALL = {"nsga2": {"population_size": 4}}


@pytest.mark.parametrize("searcher", ["tpe", "random", "evolution", "reinforce", "nsga2"])
def test_a_searcher_survives_pickling_mid_study(searcher):
    # Ray saves the searcher, and with it the sampler, in the experiment (Optuna 5.1's NSGA-II
    # sampler holds a thread lock that pickle refuses); two copies of one saved state go on alike
    study = optuna.create_study(direction="maximize",
                                sampler=create_sampler(searcher, SearcherSettings(seed=3, n_startup_trials=4,
                                                                                  options=NSGA_SMALL.get(searcher, {}))))
    study.optimize(synthetic, n_trials=10)
    saved = pickle.dumps(study.sampler)
    nexts = []
    for _ in range(2):
        study.sampler = pickle.loads(saved)
        trial = study.ask()
        nexts.append(dict(trial.params) | {"x": trial.suggest_float("x", 1e-4, 1.0, log=True),
                                           "p0": trial.suggest_categorical("p0", CHOICES)})
        study.tell(trial, state=TrialState.FAIL)
    assert nexts[0] == nexts[1]
