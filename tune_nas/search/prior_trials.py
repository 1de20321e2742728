"""Warm start: which finished trials of an earlier study a new search begins with.

A new study is given the earlier study's COMPLETE and PRUNED trials that fit its space, as
finished trials (``study.add_trials``), before its first trial is asked: every sampler then
learns from them at once (TPE's startup is spent, evolution's population is filled, a cell
space counts their cells as trained) and none of them is trained again. Enqueuing them
(``enqueue_trial``) was the alternative; it re-trains each point, which costs what the earlier
search already paid, and only then informs the sampler.

A trial **fits** when the new space, asked with the trial's parameters, asks for exactly those
parameters (a define-by-run space: along the branch the trial's values take) and each value
lies inside the new distribution (a choice among its choices, a number within its range, on
its step). What does not fit is skipped with the first reason (``width=64 is not one of
(8, 16)``, ``depth is not searched``, ``no value for dropout``). FAIL, RUNNING and WAITING
trials carry nothing to learn and are not offered.

Each added trial keeps its values (per objective), intermediate values (a pruned trial's
curve), a few records (``epochs``, ``test_acc``, ``params``, ``flops``, ``arch``,
``arch_hash``, ``values_at_stop``) and ``warm_start_from`` = ``<source>#<number>``. No Ray here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

#: The earlier trials' records a warm-started trial keeps (user attributes).
KEPT_ATTRS = ("epochs", "test_acc", "params", "flops", "latency_ms", "arch", "arch_hash", "values_at_stop")
FROM_ATTR = "warm_start_from"


@dataclass
class PriorTrials:
    """The earlier trials a new study begins with, and those skipped (number -> reason)."""

    source: str
    trials: list[FrozenTrial] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)

    def describe(self, limit: int = 3) -> str:
        """One line for the terminal."""
        line = (f"warm start: {len(self.trials)} finished trial(s) of {self.source} given to the sampler "
                f"(not trained again)")
        if self.skipped:
            reasons = "; ".join(f"#{n}: {r}" for n, r in list(self.skipped.items())[:limit])
            more = f"; +{len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
            line += f"; {len(self.skipped)} skipped ({reasons}{more})"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "added": [int(t.user_attrs[FROM_ATTR].rsplit("#", 1)[1]) for t in self.trials],
                "skipped": {str(n): r for n, r in self.skipped.items()}}


def contains(distribution: BaseDistribution, value: Any) -> str | None:
    """None when ``value`` lies in ``distribution``; else why not, in words."""
    if isinstance(distribution, CategoricalDistribution):
        return None if any(_same(value, c) for c in distribution.choices) else \
            f"{value!r} is not one of {tuple(distribution.choices)}"
    try:
        internal = distribution.to_internal_repr(value)
    except (TypeError, ValueError) as exc:
        return f"{value!r} is no value of {distribution.__class__.__name__} ({exc})"
    if not distribution._contains(internal):
        low, high = getattr(distribution, "low", None), getattr(distribution, "high", None)
        step = getattr(distribution, "step", None)
        return f"{value!r} is outside [{low}, {high}]" + (f" on step {step}" if step not in (None, 1) else "")
    return None


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


class _Replay(BaseSampler):
    """A sampler that answers every question with the earlier trial's value, noting the first
    one that does not fit and every distribution asked."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self.asked: dict[str, BaseDistribution] = {}
        self.misfit: str | None = None

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        self.asked[param_name] = param_distribution
        if param_name not in self.params:
            self.misfit = self.misfit or f"no value for {param_name} (searched in the new space)"
        else:
            why = contains(param_distribution, self.params[param_name])
            if why is None:
                return self.params[param_name]
            self.misfit = self.misfit or f"{param_name}={why}"
        # any value the distribution holds: the define-by-run function goes on, its answer unused
        if isinstance(param_distribution, CategoricalDistribution):
            return param_distribution.choices[0]
        return param_distribution.to_external_repr(param_distribution.low)


def _replay(trial: FrozenTrial, ask: Callable[[optuna.Study], Any]) -> tuple[dict[str, BaseDistribution], str | None]:
    """Ask the new space with ``trial``'s values: (the distributions asked, why it does not fit)."""
    sampler = _Replay(trial.params)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "a new study created" per trial
    try:
        study = optuna.create_study(sampler=sampler)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ask(study)
    finally:
        optuna.logging.set_verbosity(verbosity)
    extra = sorted(set(trial.params) - set(sampler.asked))
    if sampler.misfit is None and extra:
        sampler.misfit = f"{extra[0]} is not searched in the new space"
    return sampler.asked, sampler.misfit


def fit_prior_trials(earlier: Sequence[FrozenTrial], source: str, *,
                     distributions: Mapping[str, BaseDistribution] | None = None,
                     define_by_run: Callable[[optuna.Trial], Any] | None = None) -> PriorTrials:
    """The finished trials of ``earlier`` that fit the new space (a param space's
    ``distributions``, or a ``define_by_run`` function), as trials to add to the new study."""
    if (distributions is None) == (define_by_run is None):
        raise ValueError("fit_prior_trials: give the new space's distributions OR its define-by-run function")

    def ask(study: optuna.Study) -> None:
        if define_by_run is not None:
            define_by_run(study.ask())
        else:
            study.ask(fixed_distributions=dict(distributions))

    prior = PriorTrials(source)
    for trial in earlier:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        if trial.state == TrialState.COMPLETE and not _finite(trial.values):
            prior.skipped[trial.number] = "no finite value"
            continue
        asked, misfit = _replay(trial, ask)
        if misfit is not None:
            prior.skipped[trial.number] = misfit
            continue
        attrs = {k: v for k, v in trial.user_attrs.items() if k in KEPT_ATTRS}
        attrs[FROM_ATTR] = f"{source}#{trial.number}"
        prior.trials.append(optuna.trial.create_trial(
            state=trial.state, values=trial.values if trial.state == TrialState.COMPLETE else None,
            params={k: trial.params[k] for k in asked}, distributions=dict(asked),
            intermediate_values=dict(trial.intermediate_values), user_attrs=attrs))
    return prior


def _finite(values: Sequence[float] | None) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
