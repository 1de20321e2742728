"""The searcher registry: a name → a factory ``create_sampler(settings) -> BaseSampler``.

Built-in strategies are listed in :data:`BUILTIN` (name → module; the module is imported only
when chosen) and each lives in its own module with a ``create_sampler`` function. A user's
plugin file (``EXPERIMENT["plugins"]``) may add one with :func:`register_searcher`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tune_nas.objectives import Objective

#: Built-in searchers: name → the module that defines ``create_sampler``.
BUILTIN: dict[str, str] = {
    "tpe": "tune_nas.search.tpe",
    "random": "tune_nas.search.random",
    "evolution": "tune_nas.search.evolution",
    "reinforce": "tune_nas.search.reinforce",
    "morphism": "tune_nas.search.morphism",
    "nsga2": "tune_nas.search.nsga2",
}
#: Built-in searchers that handle several objectives (and constraints); the others refuse them.
MULTI_OBJECTIVE: tuple[str, ...] = ("evolution", "nsga2", "random", "tpe")

_REGISTERED: dict[str, Callable[[SearcherSettings], Any]] = {}

#: The Optuna system attribute through which a searcher hands a trial more than its parameters:
#: a dict merged into the trial's config by the Ray layer (its keys must be reserved config
#: keys, :data:`tune_nas.metric_keys.RESERVED_KEYS`, or architecture arguments; the
#: ``morphism`` searcher sets ``arch`` and ``warm_start``).
CONFIG_ATTR = "tune_nas:config"


class SearcherError(ValueError):
    """An unknown searcher or a bad searcher option; the message names it and the rule."""


@dataclass(frozen=True)
class SearcherSettings:
    """What a searcher is built from: the experiment's seed, its objectives, the number of
    random trials before a model-based searcher starts modelling, and its own options
    (``EXPERIMENT["searcher_options"]``)."""

    seed: int = 0
    objectives: tuple[Objective, ...] = (Objective(),)
    n_startup_trials: int = 8
    options: Mapping[str, Any] = field(default_factory=dict)

    def take(self, name: str, default: Any, ok: Callable[[Any], bool], rule: str) -> Any:
        """Option ``name`` (or ``default``), checked: a bad value raises :class:`SearcherError`
        naming the option, the value and ``rule``."""
        value = self.options.get(name, default)
        if not ok(value):
            raise SearcherError(f"searcher_options[{name!r}]={value!r}: rule: {rule}")
        return value

    def check_known(self, searcher: str, known: tuple[str, ...]) -> None:
        """Refuse options the searcher does not take (a typo must not pass silently)."""
        for key in self.options:
            if key not in known:
                accepted = ", ".join(known) if known else "none"
                raise SearcherError(f"searcher_options[{key!r}]: searcher {searcher!r} takes no such "
                                    f"option; rule: one of: {accepted}")

    def check_single_objective(self, searcher: str) -> None:
        """Refuse several objectives for a searcher that ranks trials by one value; the one-line
        message names the searcher, the objectives and the searchers that take several."""
        if len(self.objectives) != 1:
            named = ", ".join(o.describe() for o in self.objectives)
            raise SearcherError(f"searcher {searcher!r} with {len(self.objectives)} objectives ({named}): rule: "
                                f"exactly one objective; several need one of: {', '.join(MULTI_OBJECTIVE)}")


def register_searcher(name: str) -> Callable:
    """Decorator for a plugin's ``create_sampler(settings) -> optuna.samplers.BaseSampler``."""

    def wrap(factory: Callable[[SearcherSettings], Any]) -> Callable[[SearcherSettings], Any]:
        _REGISTERED[name] = factory
        return factory

    return wrap


def list_searchers() -> list[str]:
    return sorted({*BUILTIN, *_REGISTERED})


def _factory(name: str) -> Callable[[SearcherSettings], Any]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise SearcherError(f"searcher {name!r} is unknown; rule: one of {', '.join(list_searchers())}")
    return importlib.import_module(BUILTIN[name]).create_sampler


def create_sampler(name: str, settings: SearcherSettings):
    """The Optuna sampler of searcher ``name``; raises :class:`SearcherError` on an unknown
    name or a bad option."""
    return _factory(name)(settings)


def searcher_summary(name: str) -> str:
    """The first line of the searcher module's (or factory's) docstring."""
    factory = _factory(name)
    doc = importlib.import_module(factory.__module__).__doc__ if name in BUILTIN else factory.__doc__
    return (doc or name).strip().splitlines()[0]
