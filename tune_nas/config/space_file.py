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
import importlib.resources
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
from tune_nas.schedulers import SchedulerError, create_policy, list_schedulers
from tune_nas.search import SearcherError, create_sampler, list_searchers
from tune_nas.search.registry import SearcherSettings


def _presets_dir() -> Path:
    """Where the presets are: the package ``tune_nas.search_spaces``, which pyproject.toml maps to
    the repository's ``search_spaces/`` (an editable install reads that folder, a wheel its copy)."""
    try:
        presets = importlib.resources.files("tune_nas.search_spaces")
    except ModuleNotFoundError:
        raise ImportError("tune_nas.search_spaces (the presets) is not installed: an editable install made "
                          "before presets were packaged; rule: reinstall with pip install -e .") from None
    if not isinstance(presets, Path):
        raise ImportError(f"tune_nas.search_spaces is at {presets}; rule: tune_nas installed as files, "
                          "not inside a zip archive")
    return presets


SPACES_DIR = _presets_dir()
DEFAULT_SPACE = "default"
SCHEDULERS = tuple(list_schedulers())  # the built-in ones; a plugin may register more (the rule asks the registry)
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
            ("dataset", isinstance(self.dataset, str), "a data set name (digits, mnist, ..., imagefolder:PATH)"),
            ("data_dir", isinstance(self.data_dir, str), "a directory path (a string)"),
            ("description", isinstance(self.description, str), "a string"),
            ("model", self.model in list_models(), f"one of {', '.join(list_models())}"),
            ("metric", self.metric in METRICS, f"one of the reported metrics {', '.join(METRICS)}"),
            ("mode", self.mode in MODES, f"one of {MODES}"),
            ("max_epochs", positive_int(self.max_epochs), "a positive integer"),
            ("grace_period", positive_int(self.grace_period), "a positive integer"),
            ("reduction_factor", nonneg_num(self.reduction_factor) and self.reduction_factor >= 2,
             "a finite number >= 2"),
            ("scheduler", isinstance(self.scheduler, str) and self.scheduler in list_schedulers(),
             f"one of {', '.join(list_schedulers())}"),
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
            ("seed", nonneg_int(self.seed) and self.seed < 2**32, "an integer in [0, 2**32) (NumPy's seed range)"),
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
        try:
            create_policy(self.scheduler, self)  # its settings (grace_period <= max_epochs, ...), checked
        except SchedulerError as exc:
            raise SpaceError(f"{where}: {exc}") from None
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
        checked.check_configs(f"{self.path} with {flags}")
        return checked

    def check_configs(self, where: str | None = None) -> None:
        """Every configuration the space can produce, checked: each key a training setting or an
        architecture argument of the model (and no reserved name), each configuration a valid
        :class:`TrainingConfig`. A define-by-run space is explored branch by branch
        (:func:`tune_nas.config.define_by_run.explore`), so a typo in a branch that one random
        draw misses stops the launcher too, naming the choices that reach it. Errors begin with
        ``where`` (default: the file)."""
        where = where or str(self.path)
        if self.define_by_run is None:
            for key in self.param_space:
                self._check_key(key, where)
            self._check_training_values(self.sample(), where)
            return
        from tune_nas.config.define_by_run import DefineByRunError, explore

        try:
            branches = explore(self.define_by_run)
        except DefineByRunError as exc:
            raise SpaceError(f"{_in_branch(where, exc.branch)}: {exc}") from None
        first_reached = {}
        for branch in branches:
            for key in branch.config:
                first_reached.setdefault(key, branch)
        for key, branch in first_reached.items():
            self._check_key(key, _in_branch(where, branch.choices_before(key)))
        checked: set[str] = set()
        for branch in branches:
            config = branch.config
            if (signature := repr(sorted(config.items(), key=lambda item: str(item[0])))) not in checked:
                checked.add(signature)
                self._check_training_values(config, _in_branch(where, branch.choices_before()))

    def _check_key(self, key: str, where: str) -> None:
        allowed = set(TrainingConfig.keys()) | set(architecture_args(self.spec.model))
        if key in RESERVED_KEYS:
            raise SpaceError(f"{where}: {key!r} is reserved for bookkeeping; rule: choose another name")
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpaceError(
                f"{where}: unknown hyperparameter {key!r}{hint}; rule: a training "
                f"setting ({', '.join(sorted(TrainingConfig.keys()))}) or an architecture "
                f"argument of {self.spec.model!r} ({', '.join(sorted(architecture_args(self.spec.model))) or 'none'})")

    @staticmethod
    def _check_training_values(config: dict[str, Any], where: str) -> None:
        try:
            TrainingConfig.split(config)
        except ValueError as exc:
            raise SpaceError(f"{where}: {exc}") from None

    def sample(self, seed: int = 0) -> dict[str, Any]:
        """One concrete configuration of the space (a random draw, as a first trial gets).

        Ray is imported only to sample Tune domains, never for a define-by-run space or a
        param space of constants."""
        if self.define_by_run is not None:
            from tune_nas.config.define_by_run import DefineByRunError
            from tune_nas.config.define_by_run import sample as sample_define_by_run

            try:
                return sample_define_by_run(self.define_by_run, seed).config
            except DefineByRunError as exc:
                raise SpaceError(f"{_in_branch(str(self.path), exc.branch)}: {exc}") from None
        if all(_is_constant(value) for value in self.param_space.values()):
            return dict(self.param_space)
        from tune_nas.ray_tune.domains import sample_param_space

        return sample_param_space(self.param_space, seed)


def _in_branch(where: str, choices: str) -> str:
    """``where`` and the branch a define-by-run problem sits in: ``space.py (branch optimizer='sgd')``."""
    return f"{where} (branch {choices})" if choices else where


def _is_constant(value: Any) -> bool:
    """A number, string or bool, or a list of them: a PARAM_SPACE value Ray need not sample."""
    scalar = (int, float, str, bool)
    return isinstance(value, scalar) or (isinstance(value, (list, tuple)) and all(isinstance(v, scalar) for v in value))


def _check_value(path: Path, key: str, value: Any) -> None:
    """A PARAM_SPACE value: a constant, or a Tune domain (checked by the Ray layer, which only
    a value that is no constant brings in: its file imported Ray already)."""
    if _is_constant(value):
        return
    from tune_nas.ray_tune.domains import DomainError, check_domain

    try:
        check_domain(key, value)
    except DomainError as exc:
        raise SpaceError(f"{path}: {exc}") from None


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
            _check_value(path, key, value)
        space = SearchSpace(path, spec, dict(param_space), None)
    space.check_configs()
    return space
