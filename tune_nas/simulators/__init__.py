"""Simulators shipped with tune_nas: slow numerical models that an emulator may replace.

A simulator is a module with

* ``INPUT_NAMES`` (its parameters), ``OUTPUT_SHAPE`` (channels × points of the field it
  returns, or ``(outputs,)``), ``OUTPUT_NAMES``, ``DEFAULT_SAMPLES``, ``VERSION`` (bumped
  whenever its outputs change, so cached data sets are made again);
* ``sample_inputs(n, rng) -> ndarray`` (n × inputs), the distribution of the data set;
* ``simulate(inputs) -> ndarray`` (one input row → ``OUTPUT_SHAPE``), deterministic.

``sim:<name>[:<samples>]`` names its data set (:mod:`tune_nas.data.simulated`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Built-in simulators: name → module.
SIMULATORS: dict[str, str] = {
    "burgers": "tune_nas.simulators.burgers",
}


class SimulatorError(ValueError):
    """An unknown simulator; the message names it and the rule."""


def simulator_named(name: str) -> ModuleType:
    if name not in SIMULATORS:
        raise SimulatorError(f"simulator {name!r} is unknown; rule: one of {', '.join(SIMULATORS)}")
    return importlib.import_module(SIMULATORS[name])
