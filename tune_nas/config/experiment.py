"""The experiment settings (``EXPERIMENT`` in a space file, overridden by flags) and their
rules: :class:`ExperimentSpec`. Torch-free and Ray-free: the registries of models, searchers
and schedulers are asked only when a spec is checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tune_nas.metric_keys import TASKS, metric_range, metrics_of, natural_direction
from tune_nas.objectives import CONSTRAINT_OPS, DIRECTIONS, Constraint, Objective, is_number
from tune_nas.schedulers import SchedulerError, create_policy, list_schedulers
from tune_nas.search import SearcherError, create_sampler, list_searchers
from tune_nas.search.registry import SearcherSettings

SCHEDULERS = tuple(list_schedulers())  # the built-in ones; a plugin may register more (the rule asks the registry)
MODES = DIRECTIONS
EVALUATIONS = ("train", "tabular")
#: Models the ``morphism`` searcher can grow (their children start from the parent's weights).
MORPHABLE_MODELS = ("morph_net",)


#: What an objective or a constraint may name besides a task's per-epoch metrics: the tabular
#: lookups' training time.
TABULAR_METRICS = ("table/train_s",)
#: The data files whose columns ``inputs``/``outputs`` name.
COLUMN_FILES = (".csv", ".parquet", ".pq")
#: The smallest fraction of a CPU or GPU Ray reserves (``ray._raylet.RESOURCE_UNIT_SCALING``: 10⁴).
RESOURCE_UNIT = 1e-4
#: The most epochs a trial may be given: the status line's time-left estimate keeps per-epoch
#: survival arrays (10**7 epochs took 785 MiB and 3.8 s a line), and no search trains longer.
MAX_EPOCHS = 100_000
#: The largest ``image_size`` (px): far beyond any image a trial can hold, and small enough that
#: the memory estimate of a resize stays a number.
MAX_IMAGE_SIZE = 65_536
#: The model an experiment trains when its space file names none.
DEFAULT_MODELS = {"classification": "small_cnn", "regression": "mlp"}


def objective_metrics(task: str, evaluation: str = "train") -> tuple[str, ...]:
    """What an objective or a constraint of a ``task`` experiment may name (the tabular
    lookups' own metrics only with ``evaluation`` "tabular": nothing else reports them)."""
    return metrics_of(task) + (TABULAR_METRICS if evaluation == "tabular" else ())


class SpaceError(ValueError):
    """A bad space file or flag; the message is the one line a user sees."""


@dataclass(frozen=True)
class ExperimentSpec:
    """The experiment settings a space file declares and flags may override."""

    dataset: str = "digits"
    data_dir: str = "data"
    #: "" follows the data set: "classification" for images, "regression" for ``arrays:`` and
    #: ``sim:`` data (see :mod:`tune_nas.tasks`)
    task: str = ""
    model: str = ""  # "": the task's default (small_cnn, mlp)
    metric: str = ""  # "": the task's default objective (val/acc, val/mse)
    mode: str = ""  # "": the direction in which the metric improves
    #: A table's input and output columns (``arrays:PATH.csv``, ``.parquet``, ``.pq``; inputs default
    #: to the rest).
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    max_epochs: int = 9
    grace_period: int = 1
    reduction_factor: int = 3
    scheduler: str = ""  # "": asha, or moasha with several objectives
    searcher: str = "tpe"
    searcher_options: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 16
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    #: Data-parallel workers (processes) per trial, each with ``cpus_per_trial`` CPUs and
    #: ``gpus_per_trial`` GPUs; the trial reserves N times those on one node.
    workers_per_trial: int = 1
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
    #: "train": every trial trains its model; "tabular": every trial looks its cell up in a
    #: recorded benchmark (NAS-Bench-201: model nb201, dataset one of its tables, one report).
    evaluation: str = "train"
    #: Several objectives, metric -> "max"/"min" in order (the first is the primary one, and
    #: ``metric``/``mode`` follow it); empty: the one objective ``metric``/``mode``.
    objectives: dict[str, str] = field(default_factory=dict)
    #: Bounds a feasible trial keeps: metric -> (op, bound), op "<=" or ">=".
    constraints: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the primary objective is the first of ``objectives``: metric/mode say the same
        from tune_nas.tasks import task_of_dataset

        several = isinstance(self.objectives, Mapping) and len(self.objectives) > 1
        if isinstance(self.objectives, Mapping) and self.objectives:
            metric, mode = next(iter(self.objectives.items()))
            object.__setattr__(self, "metric", metric)
            object.__setattr__(self, "mode", mode)
        if self.task == "":
            object.__setattr__(self, "task", task_of_dataset(self.dataset))
        if self.model == "" and isinstance(self.task, str) and self.task in DEFAULT_MODELS:
            object.__setattr__(self, "model", DEFAULT_MODELS[self.task])
        if self.metric == "":
            from tune_nas.tasks import task_named

            default = task_named(self.task) if self.task in TASKS else task_named("classification")
            object.__setattr__(self, "metric", default.default_metric)
        if self.mode == "":
            object.__setattr__(self, "mode", natural_direction(self.metric) if isinstance(self.metric, str)
                               and natural_direction(self.metric) else "max")
        for key in ("inputs", "outputs"):
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        if self.scheduler == "":  # not chosen: ASHA, or its multi-objective form
            object.__setattr__(self, "scheduler", "moasha" if several else "asha")

    def check(self, where: str, data_files: bool = True) -> ExperimentSpec:
        """Raise :class:`SpaceError` naming ``where`` (file or flag) on the first broken rule.
        With ``data_files`` an ``arrays:``/``imagefolder:`` path that does not exist is the
        first one; a space file's own spec is checked without (flags may replace its data set,
        and a resumed experiment's copy may name data the flags replaced)."""

        def positive_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v > 0

        def nonneg_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        def nonneg_num(v: Any) -> bool:
            return is_number(v) and v >= 0

        from tune_nas.data.sources import DataError, check_dataset_exists, check_dataset_name
        from tune_nas.models import list_models, model_task  # imports torch: only when a spec is checked
        from tune_nas.tasks import task_of_dataset

        task_ok = self.task in TASKS
        metrics = metrics_of(self.task if task_ok else "classification")
        rules: list[tuple[str, bool, str]] = [
            ("task", task_ok, f"one of {', '.join(TASKS)} (or leave it out: it follows from the data set)"),
            ("plugins", isinstance(self.plugins, (list, tuple))
             and all(isinstance(p, str) for p in self.plugins), "a list of .py file paths"),
            ("dataset", isinstance(self.dataset, str), "a data set name (digits, mnist, ..., imagefolder:PATH)"),
            ("data_dir", isinstance(self.data_dir, str), "a directory path (a string)"),
            ("description", isinstance(self.description, str), "a string"),
            ("model", self.model in list_models(), f"one of {', '.join(list_models())}"),
            ("model", self.model not in list_models() or not task_ok or model_task(self.model) == self.task,
             f"a {self.task} model for {self.dataset}: one of "
             f"{', '.join(list_models(self.task)) if task_ok else ''}"),
            ("metric", self.metric in metrics, f"one of the reported metrics of a {self.task} "
             f"experiment {', '.join(metrics)}"),
            ("inputs", isinstance(self.inputs, tuple) and all(isinstance(c, str) for c in self.inputs),
             "a list of a CSV data set's column names"),
            ("outputs", isinstance(self.outputs, tuple) and all(isinstance(c, str) for c in self.outputs),
             "a list of a CSV data set's column names"),
            ("mode", self.mode in MODES, f"one of {MODES}"),
            ("max_epochs", positive_int(self.max_epochs) and self.max_epochs <= MAX_EPOCHS,
             f"an integer 1..{MAX_EPOCHS:,}"),
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
            ("cpus_per_trial", nonneg_num(self.cpus_per_trial) and self.cpus_per_trial >= RESOURCE_UNIT,
             f"a number >= {RESOURCE_UNIT:g} (the smallest share of a CPU Ray gives)"),
            ("gpus_per_trial", nonneg_num(self.gpus_per_trial) and (self.gpus_per_trial == 0
                                                                    or self.gpus_per_trial >= RESOURCE_UNIT),
             f"0 or a number >= {RESOURCE_UNIT:g} (the smallest share of a GPU Ray gives)"),
            ("workers_per_trial", positive_int(self.workers_per_trial),
             "a positive integer (data-parallel processes per trial)"),
            ("max_concurrent_trials", nonneg_int(self.max_concurrent_trials),
             "an integer >= 0 (0: as many as resources allow)"),
            ("checkpoint_every", positive_int(self.checkpoint_every), "a positive integer"),
            ("max_failures", nonneg_int(self.max_failures), "an integer >= 0"),
            ("seed", nonneg_int(self.seed) and self.seed < 2**32, "an integer in [0, 2**32) (NumPy's seed range)"),
            ("n_startup_trials", nonneg_int(self.n_startup_trials), "an integer >= 0"),
            ("train_fraction", nonneg_num(self.train_fraction) and 0 < self.train_fraction <= 1,
             "0 < train_fraction <= 1 (the share of training images a search trial sees)"),
            ("image_size", nonneg_int(self.image_size) and self.image_size <= MAX_IMAGE_SIZE,
             f"0 (native resolution) or the search-time image size in px, at most {MAX_IMAGE_SIZE:,}"),
            ("final_top_k", nonneg_int(self.final_top_k),
             "an integer >= 0: the best k configurations retrained at full fidelity"),
            ("final_max_epochs", nonneg_int(self.final_max_epochs) and self.final_max_epochs <= MAX_EPOCHS,
             f"an integer 0..{MAX_EPOCHS:,} (0: the search's max_epochs)"),
            ("time_budget_s", nonneg_num(self.time_budget_s),
             "seconds >= 0 for the whole search (0: no limit; trials running then are stopped)"),
            ("curve_fit_min_epochs", positive_int(self.curve_fit_min_epochs), "a positive integer"),
            ("curve_fit_threshold", nonneg_num(self.curve_fit_threshold)
             and self.curve_fit_threshold < 1, "0 <= threshold < 1"),
        ]
        rules.append(("evaluation", self.evaluation in EVALUATIONS, f"one of {', '.join(EVALUATIONS)}"))
        if task_ok and self.evaluation == "train":
            rules.append(("task", self.task == task_of_dataset(self.dataset),
                          f"the task of dataset {self.dataset!r}: {task_of_dataset(self.dataset)} "
                          "(arrays: and sim: data are regression data, every other data set images)"))
        if (self.inputs or self.outputs) and not (isinstance(self.dataset, str) and self.dataset.startswith("arrays:")
                                                 and self.dataset.lower().endswith(COLUMN_FILES)):
            rules.append(("outputs" if self.outputs else "inputs", False,
                          "inputs/outputs name the columns of a table (dataset arrays:PATH.csv, .parquet or .pq)"))
        rules = self._objective_rules() + rules  # before metric/mode, which follow the first objective
        if self.searcher == "morphism":
            rules.append(("model", self.model in MORPHABLE_MODELS, f"searcher 'morphism' grows trained networks "
                          f"by function-preserving transforms: one of {', '.join(MORPHABLE_MODELS)}"))
        if self.evaluation == "tabular":
            from tune_nas.tabular import DATASETS as TABLES

            rules += [
                ("model", self.model == "nb201", "evaluation 'tabular' looks cells up in NAS-Bench-201: model nb201"),
                ("dataset", self.dataset in TABLES, f"evaluation 'tabular': one of NAS-Bench-201's tables "
                 f"{', '.join(TABLES)}"),
                ("max_epochs", self.max_epochs == 1, "evaluation 'tabular': 1 (one lookup, one report per trial)"),
                ("final_top_k", self.final_top_k == 0, "evaluation 'tabular': 0 (nothing to retrain)"),
                ("workers_per_trial", self.workers_per_trial == 1, "evaluation 'tabular': 1 (nothing is trained)"),
            ]
        if isinstance(self.dataset, str) and self.evaluation == "train":  # a tabular run reads a table
            try:
                check_dataset_name(self.dataset)  # first: an unknown data set explains the rest
                if data_files:
                    check_dataset_exists(self.dataset)  # ... and so does a missing file
            except DataError as exc:
                raise SpaceError(f"{where}: {exc}") from None
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
        if self.workers_per_trial > 1 and self.gpus_per_trial not in (0, 1):
            raise SpaceError(f"{where}: gpus_per_trial={self.gpus_per_trial:g} with workers_per_trial="
                             f"{self.workers_per_trial}: rule: 0 (CPU workers) or 1 (one whole GPU per "
                             "data-parallel worker)")
        try:
            create_sampler(self.searcher, self.searcher_settings())  # its options, checked
        except SearcherError as exc:
            raise SpaceError(f"{where}: {exc}") from None
        child_epochs = self.searcher_options.get("child_epochs") if self.searcher == "morphism" else None
        if child_epochs is not None and child_epochs > self.max_epochs:
            raise SpaceError(f"{where}: searcher_options['child_epochs']={child_epochs} > max_epochs={self.max_epochs}: "
                             "rule: a child trains at most the budget of a trial (child_epochs <= max_epochs)")
        return self

    def _objective_rules(self) -> list[tuple[str, bool, str]]:
        """The rules of ``objectives`` and ``constraints``: reported metrics, known directions,
        each named once; a constraint a pair (op, finite bound)."""
        objectives, constraints = self.objectives, self.constraints
        rules: list[tuple[str, bool, str]] = [
            ("objectives", isinstance(objectives, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in objectives.items()),
             'a dict metric -> "max" or "min", e.g. {"val/acc": "max", "model/params": "min"}'),
            ("constraints", isinstance(constraints, Mapping) and all(isinstance(k, str) for k in constraints),
             'a dict metric -> (op, bound), e.g. {"model/params": ("<=", 100_000)}'),
        ]
        if not all(ok for _, ok, _ in rules):
            return rules
        allowed = objective_metrics(self.task if self.task in TASKS else "classification", self.evaluation)
        known = ", ".join(allowed)
        for metric, direction in objectives.items():
            rules += [("objectives", metric in allowed, f"{metric!r} is no reported metric; one of {known}"),
                      ("objectives", direction in MODES, f"{metric!r}: direction {direction!r}; one of {MODES}")]
        for metric, pair in constraints.items():
            rules += [("constraints", metric in allowed, f"{metric!r} is no reported metric; one of {known}"),
                      ("constraints", isinstance(pair, (tuple, list)) and len(pair) == 2 and pair[0] in CONSTRAINT_OPS
                       and is_number(pair[1]), f"each value a pair (op, bound), op one of {CONSTRAINT_OPS}, bound a "
                       f"finite number; {metric!r} has {pair!r}")]
            if rules[-1][1] and metric in allowed:
                low, high = metric_range(metric)
                op, bound = pair[0], float(pair[1])
                rules.append(("constraints", bound >= low if op == "<=" else bound <= high,
                              f"{metric!r} {op} {pair[1]!r} can never hold: {metric} lies in [{low:g}, {high:g}]"
                              f"{' (a fraction, not a percentage)' if high == 1.0 and bound > 1 else ''}"))
        return rules

    @property
    def objective_list(self) -> tuple[Objective, ...]:
        """Every objective, the primary (:attr:`objective`) first."""
        if self.objectives:
            return tuple(Objective(m, d) for m, d in self.objectives.items())
        return (self.objective,)

    @property
    def constraint_list(self) -> tuple[Constraint, ...]:
        return tuple(Constraint(m, pair[0], float(pair[1])) for m, pair in self.constraints.items())

    @property
    def multi_objective(self) -> bool:
        return len(self.objective_list) > 1

    def searcher_settings(self) -> SearcherSettings:
        return SearcherSettings(seed=self.seed, objectives=self.objective_list,
                                n_startup_trials=self.n_startup_trials,
                                options=dict(self.searcher_options))

    @property
    def objective(self) -> Objective:
        """What the search optimises (``metric`` in direction ``mode``)."""
        return Objective(self.metric, self.mode)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]
