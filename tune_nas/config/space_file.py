"""Search-space files: load ``search_spaces/<name>.py`` and validate it before anything runs.

A space file is a small Python module holding

* ``EXPERIMENT`` — a dict of experiment settings (the fields of :class:`ExperimentSpec`:
  data set, model, metric and mode, epochs, ASHA settings, samples, resources, ...), and
* either ``PARAM_SPACE`` — a Ray Tune param space (``tune.loguniform(...)``, constants), or
  ``define_by_run(trial)`` — an Optuna define-by-run function that calls ``trial.suggest_*``
  and may return a dict of constants.

Every key of the space must be a training hyperparameter (:class:`TrainingConfig`) or an
architecture argument of the chosen model. Every problem raises :class:`SpaceError` with one
line naming the file, the key, the value and the rule.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tune_nas.config.plugins import PluginError, import_plugins
from tune_nas.config.training import TrainingConfig
from tune_nas.data.sources import DataError, check_dataset_name
from tune_nas.metric_keys import METRICS, RESERVED_KEYS
from tune_nas.models import architecture_args, list_models
from tune_nas.objectives import DIRECTIONS, Objective
from tune_nas.search import SearcherError, create_sampler, list_searchers
from tune_nas.search.registry import SearcherSettings

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
DEFAULT_SPACE = "default"
SCHEDULERS = ("asha", "curve_fit", "none")
MODES = DIRECTIONS


class SpaceError(ValueError):
    """A bad space file or flag; the message is the one line a user sees."""


@dataclass(frozen=True)
class ExperimentSpec:
    """The experiment settings a space file declares and flags may override."""

    dataset: str = "digits"
    data_dir: str = "data"
    model: str = "small_cnn"
    metric: str = "val/acc"
    mode: str = "max"
    max_epochs: int = 9
    grace_period: int = 1
    reduction_factor: int = 3
    scheduler: str = "asha"
    searcher: str = "tpe"
    searcher_options: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 16
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent_trials: int = 0
    checkpoint_every: int = 1
    max_failures: int = 2
    seed: int = 0
    n_startup_trials: int = 8
    curve_fit_min_epochs: int = 4
    curve_fit_threshold: float = 0.05
    plugins: tuple[str, ...] = ()
    train_fraction: float = 1.0
    image_size: int = 0
    final_top_k: int = 0
    final_max_epochs: int = 0
    time_budget_s: float = 0.0
    description: str = ""

    def check(self, where: str) -> ExperimentSpec:
        """Raise :class:`SpaceError` naming ``where`` (file or flag) on the first broken rule."""

        def positive_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v > 0

        def nonneg_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        def nonneg_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

        rules: list[tuple[str, bool, str]] = [
            ("plugins", isinstance(self.plugins, (list, tuple))
             and all(isinstance(p, str) for p in self.plugins), "a list of .py file paths"),
            ("model", self.model in list_models(), f"one of {', '.join(list_models())}"),
            ("metric", self.metric in METRICS, f"one of the reported metrics {', '.join(METRICS)}"),
            ("mode", self.mode in MODES, f"one of {MODES}"),
            ("max_epochs", positive_int(self.max_epochs), "a positive integer"),
            ("grace_period", positive_int(self.grace_period), "a positive integer"),
            ("reduction_factor", isinstance(self.reduction_factor, (int, float))
             and self.reduction_factor >= 2, "a number >= 2"),
            ("scheduler", self.scheduler in SCHEDULERS, f"one of {SCHEDULERS}"),
            ("searcher", isinstance(self.searcher, str) and self.searcher in list_searchers(),
             f"one of {', '.join(list_searchers())}"),
            ("searcher_options", isinstance(self.searcher_options, Mapping)
             and all(isinstance(k, str) for k in self.searcher_options),
             "a dict of the searcher's options (name -> value)"),
            ("num_samples", positive_int(self.num_samples), "a positive integer"),
            ("cpus_per_trial", nonneg_num(self.cpus_per_trial) and self.cpus_per_trial > 0,
             "a number > 0"),
            ("gpus_per_trial", nonneg_num(self.gpus_per_trial), "a number >= 0"),
            ("max_concurrent_trials", nonneg_int(self.max_concurrent_trials),
             "an integer >= 0 (0: as many as resources allow)"),
            ("checkpoint_every", positive_int(self.checkpoint_every), "a positive integer"),
            ("max_failures", nonneg_int(self.max_failures), "an integer >= 0"),
            ("seed", nonneg_int(self.seed), "an integer >= 0"),
            ("n_startup_trials", nonneg_int(self.n_startup_trials), "an integer >= 0"),
            ("train_fraction", nonneg_num(self.train_fraction) and 0 < self.train_fraction <= 1,
             "0 < train_fraction <= 1 (the share of training images a search trial sees)"),
            ("image_size", nonneg_int(self.image_size),
             "0 (native resolution) or the search-time image size in px"),
            ("final_top_k", nonneg_int(self.final_top_k),
             "an integer >= 0: the best k configurations retrained at full fidelity"),
            ("final_max_epochs", nonneg_int(self.final_max_epochs),
             "an integer >= 0 (0: the search's max_epochs)"),
            ("time_budget_s", nonneg_num(self.time_budget_s),
             "seconds >= 0 for the whole search (0: no limit; trials running then are stopped)"),
            ("curve_fit_min_epochs", positive_int(self.curve_fit_min_epochs), "a positive integer"),
            ("curve_fit_threshold", nonneg_num(self.curve_fit_threshold)
             and self.curve_fit_threshold < 1, "0 <= threshold < 1"),
        ]
        for key, ok, rule in rules:
            if not ok:
                raise SpaceError(f"{where}: {key}={getattr(self, key)!r}: rule: {rule}")
        if self.scheduler == "asha" and self.grace_period > self.max_epochs:
            raise SpaceError(f"{where}: grace_period={self.grace_period} > max_epochs="
                             f"{self.max_epochs}: rule: grace_period <= max_epochs")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise SpaceError(f"{where}: gpus_per_trial={self.gpus_per_trial}: rule: a fraction "
                             "<= 1 or a whole number")
        try:
            check_dataset_name(self.dataset)
        except DataError as exc:
            raise SpaceError(f"{where}: {exc}") from None
        try:
            create_sampler(self.searcher, self.searcher_settings())  # its options, checked
        except SearcherError as exc:
            raise SpaceError(f"{where}: {exc}") from None
        return self

    def searcher_settings(self) -> SearcherSettings:
        return SearcherSettings(seed=self.seed, objectives=(self.objective,),
                                n_startup_trials=self.n_startup_trials,
                                options=dict(self.searcher_options))

    @property
    def objective(self) -> Objective:
        """What the search optimises (``metric`` in direction ``mode``)."""
        return Objective(self.metric, self.mode)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class SearchSpace:
    """A loaded, validated space file."""

    path: Path
    spec: ExperimentSpec
    param_space: dict[str, Any] = field(default_factory=dict)
    define_by_run: Callable[..., Any] | None = None

    @property
    def kind(self) -> str:
        return "define-by-run" if self.define_by_run else "param space"

    def with_overrides(self, **overrides: Any) -> SearchSpace:
        """A copy whose spec has the non-None ``overrides`` (flags) applied and checked."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        spec = replace(self.spec, **given)
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        spec.check(f"{self.path.name} with {flags}")
        checked = replace(self, spec=spec)
        checked.check_keys()
        return checked

    def check_keys(self) -> None:
        """Every searched/constant key must be a hyperparameter or an architecture argument."""
        allowed = set(TrainingConfig.keys()) | set(architecture_args(self.spec.model))
        keys = list(self.param_space) if self.define_by_run is None else list(self.sample())
        for key in keys:
            if key in RESERVED_KEYS:
                raise SpaceError(f"{self.path}: {key!r} is reserved for bookkeeping; rule: "
                                 "choose another name")
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SpaceError(
                    f"{self.path}: unknown hyperparameter {key!r}{hint}; rule: a training "
                    f"setting ({', '.join(sorted(TrainingConfig.keys()))}) or an architecture "
                    f"argument of {self.spec.model!r} ({', '.join(sorted(architecture_args(self.spec.model))) or 'none'})")

    def sample(self, seed: int = 0) -> dict[str, Any]:
        """One concrete configuration of the space (used to validate it end to end)."""
        if self.define_by_run is not None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            trial = study.ask()
            try:
                constants = self.define_by_run(trial)
            except Exception as exc:
                raise SpaceError(f"{self.path}: define_by_run raised {type(exc).__name__}: "
                                 f"{exc}; rule: it must only call trial.suggest_* and return "
                                 "None or a dict") from None
            if constants is not None and not isinstance(constants, Mapping):
                raise SpaceError(f"{self.path}: define_by_run returned "
                                 f"{type(constants).__name__}; rule: None or a dict of constants")
            return {**trial.params, **(constants or {})}
        import numpy as np
        from ray.tune.search.sample import Domain

        rng = np.random.default_rng(seed)
        return {k: (v.sample(random_state=rng) if isinstance(v, Domain) else v)
                for k, v in self.param_space.items()}


def _check_domain(path: Path, key: str, value: Any) -> None:
    from ray.tune.search.sample import Categorical, Domain, Float, Integer

    if not isinstance(value, Domain):
        scalar = (int, float, str, bool)
        if not (isinstance(value, scalar) or (isinstance(value, (list, tuple))
                                               and all(isinstance(v, scalar) for v in value))):
            raise SpaceError(f"{path}: PARAM_SPACE[{key!r}]={value!r}: rule: a tune search "
                             "domain (tune.uniform, tune.choice, ...) or a constant (number, "
                             "string, bool, or a list of them)")
        return
    if isinstance(value, (Float, Integer)):
        lo, hi = value.lower, value.upper
        if lo is None or hi is None or not lo < hi:
            raise SpaceError(f"{path}: PARAM_SPACE[{key!r}] has low={lo} and high={hi}; rule: "
                             "low < high")
        sampler = type(value.get_sampler()).__name__
        if "LogUniform" in sampler and lo <= 0:
            raise SpaceError(f"{path}: PARAM_SPACE[{key!r}] is log-uniform from {lo}; rule: "
                             "low > 0 for a log scale")
    elif isinstance(value, Categorical):
        if not value.categories:
            raise SpaceError(f"{path}: PARAM_SPACE[{key!r}] is an empty choice; rule: "
                             "tune.choice needs at least one value")
    else:
        raise SpaceError(f"{path}: PARAM_SPACE[{key!r}] is a {type(value).__name__}; rule: "
                         "tune.uniform/loguniform/randint/qrandint/choice (what Optuna can "
                         "sample)")


def resolve_space_path(space: str | None) -> Path:
    """``None`` → the default preset; a bare name → ``search_spaces/<name>.py``; else a path."""
    if space is None:
        return SPACES_DIR / f"{DEFAULT_SPACE}.py"
    path = Path(space).expanduser()
    if path.suffix != ".py" and not path.exists():
        path = SPACES_DIR / f"{space}.py"
    return path


def load_space(space: str | None = None, base_dir: str | Path | None = None) -> SearchSpace:
    """Load and validate a space file (see the module doc). Raises :class:`SpaceError`.

    ``base_dir`` resolves relative plugin paths (default: the space file's directory; a
    resumed experiment passes the original file's directory when loading its saved copy).
    """
    path = resolve_space_path(space)
    if not path.is_file():
        presets = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.py") if p.stem != "__init__"))
        raise SpaceError(f"--space {space}: no such file {path}; rule: a path to a .py space "
                         f"file or a preset name ({presets})")
    module_name = f"tune_nas_space_{path.stem}"
    spec_obj = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec_obj)
    try:
        sys.modules[module_name] = module  # lets pickled define-by-run functions resolve
        spec_obj.loader.exec_module(module)
    except SyntaxError as exc:
        raise SpaceError(f"{path}:{exc.lineno}: syntax error: {exc.msg}; rule: a space file "
                         "must be valid Python") from None
    except Exception as exc:
        raise SpaceError(f"{path}: importing it raised {type(exc).__name__}: {exc}; rule: a "
                         "space file must import cleanly") from None

    experiment = getattr(module, "EXPERIMENT", None)
    if not isinstance(experiment, Mapping):
        raise SpaceError(f"{path}: EXPERIMENT is {type(experiment).__name__}; rule: a space "
                         "file defines EXPERIMENT = {...} (a dict of experiment settings)")
    known = ExperimentSpec.keys()
    for key in experiment:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpaceError(f"{path}: unknown EXPERIMENT key {key!r}{hint}; rule: one of "
                             f"{', '.join(known)}")
    plugins = experiment.get("plugins", ())
    if isinstance(plugins, (list, tuple)) and all(isinstance(p, str) for p in plugins):
        plugins = tuple(str((Path(base_dir or path.parent) / p).resolve()) for p in plugins)
        try:
            import_plugins(plugins)
        except PluginError as exc:
            raise SpaceError(f"{path}: {exc}") from None
        experiment = {**experiment, "plugins": plugins}
    spec = ExperimentSpec(**experiment).check(str(path))

    param_space = getattr(module, "PARAM_SPACE", None)
    define_by_run = getattr(module, "define_by_run", None)
    if (param_space is None) == (define_by_run is None):
        raise SpaceError(f"{path}: defines {'both' if param_space is not None else 'neither'} "
                         "PARAM_SPACE and define_by_run; rule: exactly one of them")
    if define_by_run is not None:
        if not callable(define_by_run) or len(inspect.signature(define_by_run).parameters) != 1:
            raise SpaceError(f"{path}: define_by_run must be a function of one argument (the "
                             "Optuna trial)")
        space = SearchSpace(path, spec, {}, define_by_run)
    else:
        if not isinstance(param_space, Mapping) or not param_space:
            raise SpaceError(f"{path}: PARAM_SPACE is {param_space!r}; rule: a non-empty dict")
        for key, value in param_space.items():
            _check_domain(path, key, value)
        space = SearchSpace(path, spec, dict(param_space), None)
    space.check_keys()
    try:
        TrainingConfig.split(space.sample())
    except ValueError as exc:
        raise SpaceError(f"{path}: {exc}") from None
    return space
