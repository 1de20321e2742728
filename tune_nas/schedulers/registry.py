"""The scheduler registry: a name → a factory ``create_policy(spec) -> SchedulerPolicy``.

Built-in policies are listed in :data:`BUILTIN` (name → module; the module is imported only
when chosen) and each lives in its own module with a ``create_policy`` function that reads its
settings from the :class:`~tune_nas.config.space_file.ExperimentSpec` (``max_epochs``,
``objective``, and its own fields such as ``grace_period``) and raises :class:`SchedulerError`
on a bad one (a ``ValueError`` from the policy's constructor becomes one in
:func:`create_policy`). A user's plugin file (``EXPERIMENT["plugins"]``) may add one with
:func:`register_scheduler`. Adding a scheduler is one module and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from tune_nas.schedulers.policy import SchedulerPolicy

if TYPE_CHECKING:
    from tune_nas.config.experiment import ExperimentSpec

#: Built-in schedulers: name → the module that defines ``create_policy``.
BUILTIN: dict[str, str] = {
    "asha": "tune_nas.schedulers.asha",
    "asha_promotion": "tune_nas.schedulers.asha_promotion",
    "curve_fit": "tune_nas.schedulers.curve_fit",
    "moasha": "tune_nas.schedulers.moasha",
    "none": "tune_nas.schedulers.none",
}

#: The built-in schedulers that take several objectives (a tuple of values per result).
MULTI_OBJECTIVE = ("moasha", "none")

PolicyFactory = Callable[["ExperimentSpec"], SchedulerPolicy]

_REGISTERED: dict[str, PolicyFactory] = {}


class SchedulerError(ValueError):
    """An unknown scheduler or a bad scheduler setting; the message names it and the rule."""


def refuse_several_objectives(name: str, spec: ExperimentSpec) -> None:
    """Raise :class:`SchedulerError` when ``spec`` has several objectives: scheduler ``name``
    ranks trials by one value (its ``create_policy`` calls this first)."""
    if spec.multi_objective:
        metrics = ", ".join(o.metric for o in spec.objective_list)
        raise SchedulerError(f"scheduler {name!r} ranks trials by one objective, the experiment has "
                             f"{len(spec.objective_list)} ({metrics}); rule: with several objectives, "
                             f"scheduler {' or '.join(repr(n) for n in MULTI_OBJECTIVE)}")


def register_scheduler(name: str) -> Callable[[PolicyFactory], PolicyFactory]:
    """Decorator for a plugin's ``create_policy(spec) -> SchedulerPolicy``."""

    def wrap(factory: PolicyFactory) -> PolicyFactory:
        _REGISTERED[name] = factory
        return factory

    return wrap


def list_schedulers() -> list[str]:
    return sorted({*BUILTIN, *_REGISTERED})


def _factory(name: str) -> PolicyFactory:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise SchedulerError(f"scheduler {name!r} is unknown; rule: one of {', '.join(list_schedulers())}")
    return importlib.import_module(BUILTIN[name]).create_policy


def create_policy(name: str, spec: ExperimentSpec) -> SchedulerPolicy:
    """A fresh policy of scheduler ``name`` for ``spec``; raises :class:`SchedulerError` on an
    unknown name or a bad setting (a policy's own ``ValueError`` too, as
    ``scheduler '<name>': <its message>``)."""
    factory = _factory(name)
    try:
        return factory(spec)
    except SchedulerError:
        raise
    except ValueError as exc:
        raise SchedulerError(f"scheduler {name!r}: {exc}") from None


def scheduler_summary(name: str) -> str:
    """The first line of the scheduler module's (or factory's) docstring."""
    factory = _factory(name)
    doc = importlib.import_module(factory.__module__).__doc__ if name in BUILTIN else factory.__doc__
    return (doc or name).strip().splitlines()[0]
