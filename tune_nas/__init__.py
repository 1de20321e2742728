"""tune_nas: hyperparameter and neural-architecture search on Ray Tune, Optuna, PyTorch
Lightning and TensorBoard.

What a user may import is listed in ``__all__``; everything else is internal and may move.
Names are resolved on first use, so ``import tune_nas`` loads neither torch nor Ray nor Optuna
(the launcher's driver stays light, and a policy module can be imported on its own).

The package's folders, one concern each (data flows one way: config → ray_tune → trial →
record → analysis):

* ``config/``    what an experiment is: space files, experiment and training settings, plugins
* ``search/``    how the next configuration is proposed: one Optuna sampler per strategy
* ``schedulers/`` when a trial stops (or pauses) early: pure policies fed result streams
* ``ray_tune/``  the only package that imports Ray: Tuner, Optuna bridge, callbacks, adapter
* ``trial/``     what runs in a worker: the Lightning fit, the module, a model's cost
* ``tasks/``     what a trial learns: classification or regression (loss, metrics, objective)
* ``data/``      data sets (images, arrays, simulated), splits, fidelity reductions, batches
* ``simulators/`` slow numerical models an emulator may replace (Burgers' equation)
* ``models/``    the model registry: small_cnn, resnet50, the Single-Path NAS superkernel net,
  cell and global-space networks, the emulators mlp and conv1d
* ``record/``    the driver's bookkeeping: TensorBoard, curves.csv, trials.json, console
* ``storage/``   the study's database and remote trials directories
* ``analysis/``  read-only: the typed record of an experiment, fidelity analysis
* ``objectives.py``, ``states.py``, ``layout.py``, ``metric_keys.py``: the shared vocabulary
* ``launch.py``, ``study.py``, ``replay.py``, ``compare.py``: the commands (``python -m``)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # what is optimised, how trials end, where an experiment's files are
    "Objective": "tune_nas.objectives",
    "dominates": "tune_nas.objectives",
    "pareto_front": "tune_nas.objectives",
    "TrialState": "tune_nas.states",
    "ExperimentLayout": "tune_nas.layout",
    # what an experiment is
    "load_space": "tune_nas.config.space_file",
    "SearchSpace": "tune_nas.config.space_file",
    "SpaceError": "tune_nas.config.space_file",
    "ExperimentSpec": "tune_nas.config.experiment",
    "TrainingConfig": "tune_nas.config.training",
    # strategies, models, data
    "create_sampler": "tune_nas.search",
    "list_searchers": "tune_nas.search",
    "register_searcher": "tune_nas.search",
    "create_policy": "tune_nas.schedulers",
    "list_schedulers": "tune_nas.schedulers",
    "register_scheduler": "tune_nas.schedulers",
    "create_model": "tune_nas.models",
    "list_models": "tune_nas.models",
    "register_model": "tune_nas.models",
    "load_splits": "tune_nas.data.sources",
    "create_model_for": "tune_nas.models",
    "measure_emulator": "tune_nas.analysis.emulator",
    # one trial, without Ray
    "run_trial": "tune_nas.trial.run",
    "TrialSetup": "tune_nas.config.training",
    # reading an experiment
    "load_experiment": "tune_nas.analysis.experiment",
    "Experiment": "tune_nas.analysis.experiment",
    "fidelity_report": "tune_nas.analysis.fidelity",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tune_nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
