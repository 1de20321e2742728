"""Every branch of an Optuna define-by-run space, reached before anything runs.

A define-by-run function may suggest other parameters (or return other constants) depending on
earlier choices: momentum only for SGD, dropout only when depth > 1. Checking one random draw
checks one branch; a typo in another would surface only when a trial takes it, minutes or hours
into the search. :func:`explore` runs the function many times with a sampler that first tries
every categorical choice and both ends of every range, then samples at random, until no new
set of keys has appeared for a while: the keys and constants of every branch it can reach.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial

#: What Optuna warns when a range is no multiple of its step (it then lowers ``high``).
STEP_WARNING = ".*the range is not divisible by `step`"
EXPLORE_RUNS = 64  # at most this many calls of the function
PATIENCE = 16  # stop after this many calls without a new set of keys (once every choice was tried)

DefineByRun = Callable[[optuna.trial.Trial], Any]


class DefineByRunError(ValueError):
    """The function raised or returned something else than None or a dict; ``branch`` names
    the choices it had made by then (the caller prefixes the file)."""

    def __init__(self, message: str, branch: str = "") -> None:
        super().__init__(message)
        self.branch = branch


@dataclass(frozen=True)
class Branch:
    """One call of a define-by-run function: what it suggested, in order, and what it returned."""

    params: tuple[tuple[str, Any, bool], ...]  # (name, value, whether a discrete choice)
    constants: Mapping[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """The configuration a trial of this branch gets (constants win over suggestions)."""
        return {**{name: value for name, value, _ in self.params}, **self.constants}

    def choices_before(self, key: str | None = None) -> str:
        """The discrete choices (categorical or integer) made before ``key`` was suggested, as
        ``optimizer='sgd', depth=2``; every choice of the call for a constant or ``None``."""
        made = []
        for name, value, discrete in self.params:
            if name == key:
                break
            if discrete:
                made.append(f"{name}={value!r}")
        return ", ".join(made)


def call(define_by_run: DefineByRun, trial: optuna.trial.Trial) -> Branch:
    """Call ``define_by_run(trial)`` once; raise :class:`DefineByRunError` if it misbehaves."""
    try:
        with warnings.catch_warnings():  # Optuna would shrink the range and only warn
            warnings.filterwarnings("error", message=STEP_WARNING, category=UserWarning)
            constants = define_by_run(trial)
    except UserWarning as exc:
        raise DefineByRunError(f"define_by_run{_failed_suggestion(exc)}: {' '.join(str(exc).split())}; rule: "
                               "high - low must be a multiple of step", _made_so_far(trial)) from None
    except Exception as exc:
        raise DefineByRunError(f"define_by_run{_failed_suggestion(exc)} raised {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())}; rule: it must only call trial.suggest_* (with "
                               "finite bounds, low <= high) and return None or a dict",
                               _made_so_far(trial)) from None
    if constants is not None and not isinstance(constants, Mapping):
        raise DefineByRunError(f"define_by_run returned {type(constants).__name__}; rule: None or a dict of "
                               "constants", _made_so_far(trial))
    distributions = trial.distributions
    params = tuple((name, value, _is_discrete(distributions[name])) for name, value in trial.params.items())
    return Branch(params, dict(constants or {}))


def _failed_suggestion(exc: BaseException) -> str:
    """`` at trial.suggest_float('lr', low=0.001, high=inf)`` when ``exc`` came out of Optuna's
    ``Trial.suggest_*`` (its frame still holds the name and the bounds it was given); else ""."""
    tb, found = exc.__traceback__, ""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name.startswith("suggest_") and isinstance(frame.f_locals.get("name"), str):
            shown = [repr(frame.f_locals["name"])] + [f"{key}={frame.f_locals[key]!r}" for key in
                                                       ("low", "high", "step", "choices") if key in frame.f_locals]
            found = f" at trial.{frame.f_code.co_name}({', '.join(shown)})"
            break  # the outermost suggest_* call: what the user wrote
        tb = tb.tb_next
    return found


def sample(define_by_run: DefineByRun, seed: int = 0) -> Branch:
    """One call with Optuna's random sampler: what a first random trial would get."""
    return call(define_by_run, _study(RandomSampler(seed=seed)).ask())


def explore(define_by_run: DefineByRun, runs: int = EXPLORE_RUNS, patience: int = PATIENCE,
            seed: int = 0) -> list[Branch]:
    """Call ``define_by_run`` until every branch it can reach was seen (see the module doc):
    at most ``runs`` times, stopping early once ``patience`` calls in a row brought no new set
    of keys and every categorical choice and range end met so far was tried."""
    sampler = _BranchSampler(seed)
    study = _study(sampler)
    branches: list[Branch] = []
    shapes: set[frozenset[str]] = set()
    quiet = 0
    for _ in range(runs):
        branch = call(define_by_run, study.ask())
        branches.append(branch)
        shape = frozenset(branch.config)
        quiet = quiet + 1 if shape in shapes else 0
        shapes.add(shape)
        if quiet >= patience and not sampler.has_untried():
            break
    return branches


class _BranchSampler(BaseSampler):
    """Every categorical choice first, then both ends of every int/float range, then uniform at
    random: early calls take each branch a choice or a range end opens."""

    def __init__(self, seed: int) -> None:
        self._random = RandomSampler(seed=seed)
        self._untried: dict[tuple[str, str], list[Any]] = {}

    def has_untried(self) -> bool:
        return any(self._untried.values())

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        untried = self._untried.setdefault((param_name, repr(param_distribution)), _firsts(param_distribution))
        if untried:
            return untried.pop(0)
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def _firsts(distribution: BaseDistribution) -> list[Any]:
    """The values to try before random ones: every choice, or both ends of a range."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        return [distribution.low, distribution.high]
    return []


def _is_discrete(distribution: BaseDistribution) -> bool:
    return isinstance(distribution, (CategoricalDistribution, IntDistribution))


def _made_so_far(trial: optuna.trial.Trial) -> str:
    distributions = trial.distributions
    return ", ".join(f"{name}={value!r}" for name, value in trial.params.items()
                     if _is_discrete(distributions[name]))


def _study(sampler: BaseSampler) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(sampler=sampler)
