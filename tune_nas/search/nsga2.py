"""NSGA-II: the non-dominated sorting genetic algorithm (Deb et al., IEEE TEC 2002), Optuna's sampler.

Generations of ``population_size`` trials: the first is drawn at random (NSGA-II has no separate
random start, ``n_startup_trials`` does not apply); each later one is bred from the elite of the
previous generation and its parents, ranked by non-domination rank and then by crowding distance
(the spread along the front is kept). A child takes each parameter from one of two parents
(uniform crossover, with probability ``crossover_prob``; otherwise it copies one parent) and then
redraws each parameter with probability ``mutation_prob``. Only COMPLETE trials count. With
constraints (Optuna's ``trial.set_constraint``, violation <= 0 when kept) it uses constrained
domination: a feasible trial dominates an infeasible one, and of two infeasible ones the smaller
total violation wins. One objective works too (the rank is then the value's order).

Options (``searcher_options``): ``population_size`` (int >= 2, default 10), ``mutation_prob``
(a number in [0, 1], or null for 1 / the number of parameters; default 0.3), ``crossover_prob``
(a number in [0, 1], default 0.9), ``swapping_prob`` (a number in [0, 1], default 0.5: the share
of parameters a crossover child takes from its second parent).

The defaults were measured on NAS-Bench-201 CIFAR-10, accuracy against size, 100 evaluations
(``benchmarks/multiobjective.py --seed 1`` .. ``3``, 100 repetitions each), as the found front's
hypervolume share, tight / plain reference: population 10 and ``mutation_prob`` 0.3: 0.911 /
0.913 / 0.911 and 0.9922 / 0.9930 / 0.9927; population 10 and 1/n: 0.912 / 0.903 / 0.906 and
0.9905 / 0.9910 / 0.9917; population 20 and 1/n: 0.901 and 0.9915 (seed 1); random search:
0.892 / 0.889 / 0.890 and 0.9914 / 0.9911 / 0.9907.
Optuna's default population of 50 leaves one bred generation in 100 trials. 0.3 redraws about 2
of 6 parameters per child: in a space of many parameters, null (1/n) may suit better.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

from tune_nas.objectives import is_number
from tune_nas.search.registry import SearcherSettings


class NSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler, picklable: Ray saves the searcher (and so its sampler) with the
    experiment, and Optuna 5.1's genetic samplers hold a ``threading.Lock`` they do not drop when
    pickled. The class keeps Optuna's name on purpose: Optuna keys a study's generation cache by
    the sampler class's name, so a study run with Optuna's own class resumes with this one."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()  # unused by Optuna before 5.1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_probability(value: Any) -> bool:
    return is_number(value) and 0.0 <= value <= 1.0


def create_sampler(settings: SearcherSettings):
    settings.check_known("nsga2", ("population_size", "mutation_prob", "crossover_prob", "swapping_prob"))
    population = settings.take("population_size", 10, lambda v: _is_int(v) and v >= 2, "an integer >= 2")
    mutation = settings.take("mutation_prob", 0.3, lambda v: v is None or _is_probability(v),
                             "a number in [0, 1], or null for 1 / the number of parameters")
    crossover = settings.take("crossover_prob", 0.9, _is_probability, "a number in [0, 1]")
    swapping = settings.take("swapping_prob", 0.5, _is_probability, "a number in [0, 1]")
    return NSGAIISampler(population_size=population, seed=settings.seed,
                         mutation_prob=None if mutation is None else float(mutation),
                         crossover_prob=float(crossover), swapping_prob=float(swapping))
