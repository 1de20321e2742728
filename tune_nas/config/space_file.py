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
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tune_nas.config.experiment import SCHEDULERS, ExperimentSpec, SpaceError  # noqa: F401  (re-exported)
from tune_nas.config.plugins import PluginError, import_plugins
from tune_nas.config.training import TrainingConfig
from tune_nas.metric_keys import RESERVED_KEYS
from tune_nas.models import architecture_args
from tune_nas.paths import expand_user

#: Training settings that only mean something for image classification (augmentation, label
#: smoothing, the memory layout of image batches).
IMAGE_TRAINING_KEYS = ("crop_pad", "flip", "label_smoothing", "channels_last")



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
        """A copy whose spec has the non-None ``overrides`` (flags) applied and checked. A
        ``searcher`` other than the file's drops the file's ``searcher_options`` (they were
        written for its searcher; the new one runs with its defaults)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        if "dataset" in given and "task" not in given:
            given["task"] = ""  # the task follows the new data set (ExperimentSpec derives it)
        if "metric" in given and "mode" not in given and "objectives" not in given:
            from tune_nas.metric_keys import natural_direction

            given["mode"] = natural_direction(given["metric"]) or self.spec.mode  # --metric val/loss: min
        spec = replace(self.spec, **given)
        if "searcher" in given and given["searcher"] != self.spec.searcher and "searcher_options" not in given:
            spec = replace(spec, searcher_options={})
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
        self.cell_genotype(where)
        if self.define_by_run is None:
            for key in self.param_space:
                self._check_key(key, where)
            sample = self.sample()
            self._check_training_values(sample, where)
            for config in self._param_edges(sample):  # every choice, both range ends
                self._check_training_values(config, where)
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

    def cell_genotype(self, where: str | None = None):
        """The NAS-Bench-101 cell this space searches through its flat encoding (``edge_*``,
        ``op_node_*``; see :mod:`tune_nas.search.cells`), or None; SpaceError on a broken
        encoding. A define-by-run space's choices are those its branches were seen to take
        (:func:`~tune_nas.config.define_by_run.explore` tries every categorical choice)."""
        from tune_nas.search.cells import CellSpaceError, genotype_of

        choices: dict[str, list[Any]] = {}
        constants: dict[str, Any] = {}
        if self.define_by_run is None:
            for key, value in self.param_space.items():
                if _is_constant(value):
                    constants[key] = value
                else:
                    from tune_nas.ray_tune.domains import edge_values

                    choices[key] = edge_values(value)
        else:
            from tune_nas.config.define_by_run import DefineByRunError, explore

            try:
                branches = explore(self.define_by_run)
            except DefineByRunError as exc:
                raise SpaceError(f"{_in_branch(where or str(self.path), exc.branch)}: {exc}") from None
            for branch in branches:
                for name, value, _ in branch.params:
                    seen = choices.setdefault(name, [])
                    if value not in seen:
                        seen.append(value)
                constants.update(branch.constants)
            for name in choices:  # explore tries 0 before 1; keep the encoding's order
                if name.startswith("edge_") and sorted(choices[name]) == [0, 1]:
                    choices[name] = [0, 1]
        try:
            return genotype_of(choices, constants)
        except CellSpaceError as exc:
            raise SpaceError(f"{where or self.path}: {exc}") from None

    def _check_key(self, key: str, where: str) -> None:
        if not isinstance(key, str) or not key:
            raise SpaceError(f"{where}: hyperparameter name {key!r}; rule: a non-empty string")
        allowed = set(TrainingConfig.keys()) | set(architecture_args(self.spec.model))
        if key in RESERVED_KEYS:
            raise SpaceError(f"{where}: {key!r} is reserved for bookkeeping; rule: choose another name")
        if key in IMAGE_TRAINING_KEYS and self.spec.task != "classification":
            raise SpaceError(f"{where}: {key!r} is an image classifier's training setting and the task is "
                             f"{self.spec.task}; rule: leave it out (one of {', '.join(IMAGE_TRAINING_KEYS)})")
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
        except (ValueError, TypeError) as exc:
            raise SpaceError(f"{where}: {exc}") from None

    def sample(self, seed: int = 0) -> dict[str, Any]:
        """One concrete configuration of the space (a random draw, as a first trial gets: a
        valid cell for a cell space).

        Ray is imported only to sample Tune domains, never for a define-by-run space or a
        param space of constants."""
        config = self._sample(seed)
        genotype = self.cell_genotype()
        if genotype is not None:
            import numpy as np

            config.update(genotype.random(np.random.RandomState(seed)))
        return config

    def edge_configs(self) -> list[dict[str, Any]]:
        """Configurations worth building before a search, beyond :meth:`sample`: the sample with
        one ``PARAM_SPACE`` domain at each of its edges (every choice, both ends of a range), or
        every explored branch of a define-by-run space. None for a cell space, whose edges one
        at a time are no valid cells (the sample is one)."""
        if self.cell_genotype() is not None:
            return []
        if self.define_by_run is not None:
            from tune_nas.config.define_by_run import DefineByRunError, explore

            try:
                return [branch.config for branch in explore(self.define_by_run)]
            except DefineByRunError as exc:
                raise SpaceError(f"{_in_branch(str(self.path), exc.branch)}: {exc}") from None
        return self._param_edges(self.sample())

    def _param_edges(self, sample: dict[str, Any]) -> list[dict[str, Any]]:
        """``sample`` with one ``PARAM_SPACE`` domain at each of its edges (every choice, both
        ends of a range), one at a time; none for a space of constants."""
        if all(_is_constant(value) for value in self.param_space.values()):
            return []
        from tune_nas.ray_tune.domains import edge_values

        return [{**sample, key: value} for key, domain in self.param_space.items() for value in edge_values(domain)]

    def _sample(self, seed: int) -> dict[str, Any]:
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


def _check_primary_objective(path: Path, experiment: Mapping[str, Any]) -> None:
    """``metric``/``mode`` written beside ``objectives`` must say what its first entry says (the
    primary objective): a different one would be replaced without a word."""
    objectives = experiment.get("objectives")
    if not (isinstance(objectives, Mapping) and objectives):
        return
    metric, mode = next(iter(objectives.items()))
    for key, primary in (("metric", metric), ("mode", mode)):
        if key in experiment and experiment[key] not in ("", primary):
            raise SpaceError(f"{path}: {key}={experiment[key]!r} but the first of objectives is "
                             f"{metric!r}: {mode!r}; rule: leave {key} out with objectives (the first "
                             "objective is the primary one), or make them agree")


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
    path = expand_user(space)
    if path.suffix != ".py" and not path.exists():
        path = SPACES_DIR / f"{space}.py"
    return path


@contextmanager
def _no_bytecode_files() -> Iterator[None]:
    """Import a space file (and its plugins) without writing ``__pycache__/`` beside them:
    validating input writes nothing."""
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = saved


def _signature_of(function: Any) -> inspect.Signature | None:
    """``function``'s signature; None when Python cannot tell (a builtin type)."""
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def _signature(function: Any) -> str:
    signature = _signature_of(function)
    return f" is a {type(function).__name__}" if signature is None else str(signature)


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
        with _no_bytecode_files():
            spec_obj.loader.exec_module(module)
    except SyntaxError as exc:
        raise SpaceError(f"{path}:{exc.lineno}: syntax error: {exc.msg}; rule: a space file "
                         "must be valid Python") from None
    except (Exception, SystemExit) as exc:
        raise SpaceError(f"{path}: importing it raised {type(exc).__name__}: {exc}; rule: a "
                         "space file must import cleanly (and not exit)") from None

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
            with _no_bytecode_files():
                import_plugins(plugins)
        except PluginError as exc:
            raise SpaceError(f"{path}: {exc}") from None
        experiment = {**experiment, "plugins": plugins}
    _check_primary_objective(path, experiment)
    spec = ExperimentSpec(**experiment).check(str(path), data_files=False)  # flags may replace the data set

    param_space = getattr(module, "PARAM_SPACE", None)
    define_by_run = getattr(module, "define_by_run", None)
    if (param_space is None) == (define_by_run is None):
        found = "both PARAM_SPACE and" if param_space is not None else "neither PARAM_SPACE nor"
        raise SpaceError(f"{path}: defines {found} define_by_run; rule: exactly one of them")
    if define_by_run is not None:
        signature = _signature_of(define_by_run) if callable(define_by_run) else None
        if signature is None or len(signature.parameters) != 1:
            raise SpaceError(f"{path}: define_by_run{_signature(define_by_run)}: rule: a function "
                             "of one argument (the Optuna trial)")
        space = SearchSpace(path, spec, {}, define_by_run)
    else:
        if not isinstance(param_space, Mapping) or not param_space:
            raise SpaceError(f"{path}: PARAM_SPACE is {param_space!r}; rule: a non-empty dict")
        for key, value in param_space.items():
            _check_value(path, key, value)
        space = SearchSpace(path, spec, dict(param_space), None)
    space.check_configs()
    return space
