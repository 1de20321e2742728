"""``python -m tune_nas.compare``: the research's model comparison, searched and retrained.

The research this project grows from compared ResNet50 with a Single-Path-NAS superkernel
net on MNIST and CIFAR-10 (one V100): test accuracy, training time, prediction time on the
test set and trainable parameters. This command repeats that comparison with tune_nas's own
machinery, for every (model, data set) pair:

1. **search** — ``python -m tune_nas.launch`` with the pair's preset
   ``search_spaces/<model>_<dataset><suffix>.py`` in a subprocess (the same code path as a
   user's), under the budget of ``--num-samples`` / ``--time-budget-s``; an experiment whose
   ``summary.json`` already exists under the comparison directory is reused;
2. **final** — the best configuration (by the search's objective: the lowest loss for a
   loss) retrained at full budget (all training images, native resolution,
   ``--final-epochs``) as an experiment of its own (one trial, no scheduler): its settings and
   the configuration, as constants, are JSON in ``spaces/<pair>-final.json``, read by a fixed
   space file beside it (:data:`FINAL_SPACE_SOURCE`; no Python is generated). For
   the superkernel supernet the retrained model is the plain child its thresholds chose
   (``mbconv_net`` with the best trial's final ``arch`` string), trained from scratch with the
   search's training hyperparameters minus the supernet-only ones;
3. **report** — ``comparison.md`` (with the research's figures beside ours and the machine
   named), ``comparison.csv`` and bar charts (``comparison_<metric>.png``).

Emulators compare the same way: ``--models mlp,conv1d --datasets burgers=sim:burgers`` finds
the presets ``emulator_burgers.py`` and ``emulator_burgers_conv1d.py`` (a regression data
set's presets are ``<model>_<label>``, ``emulator_<label>`` or ``emulator_<label>_<model>``),
and the table adds each final emulator's test R² and its speed-up over the simulator (what
the final experiment measured: ``summary.json``'s ``emulator``).

Bad input (unknown model, data set, preset, flag value) is one line on stderr and exit 2,
before any search starts and before anything is written.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tune_nas.analysis.experiment import Experiment, ExperimentError, load_experiment
from tune_nas.bad_input import EXIT_BAD_INPUT, SEED_MAX, DefaultsHelp, OneLineParser, number, plain_name, unwritable_reason
from tune_nas.config.experiment import MAX_EPOCHS, MAX_IMAGE_SIZE
from tune_nas.config.space_file import SPACES_DIR, SearchSpace, SpaceError, load_space
from tune_nas.data.sources import DataError, check_dataset_name, check_reduced_fidelity, load_splits
from tune_nas.layout import CURVES_FILE, SPACE_COPY, SUMMARY_FILE, ExperimentLayout
from tune_nas.objectives import Objective, is_number
from tune_nas.paths import UnknownHome, expand_user
from tune_nas.record import formatting
from tune_nas.record.bookkeeper import strict_json
from tune_nas.states import TrialState
from tune_nas.storage.trials_dir import is_uri

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MODELS = "resnet50,superkernel"
DEFAULT_DATASETS = "mnist,cifar10"
#: A searchable model retrains as the plain child it chose: (child model, supernet-only keys).
CHILD_MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "superkernel": ("mbconv_net", ("arch_lr", "arch_warmup_epochs", "cost_weight")),
}
#: Data set names a preset may be keyed by (``<model>_<name>.py``); an image folder without an
#: alias takes the one its file name starts with (``cifar10-jpeg.tar.gz`` → ``cifar10``).
KNOWN_DATA_NAMES = ("fashion_mnist", "cifar10", "mnist", "digits")
FINAL_SUFFIX = "-final"
#: Where a comparison keeps the finals' space files and their settings (``<pair>-final.py``,
#: ``<pair>-final.json``).
FINAL_SPACES_DIR = "spaces"
#: The space file of every final retraining: fixed code; what it retrains is the JSON beside it.
FINAL_SPACE_SOURCE = '''"""A final retraining written by python -m tune_nas.compare.

The settings and the configuration it retrains are the JSON file of the same name beside it
(see tune_nas.compare.final_space_settings): one trial, no early stopping.
"""

from tune_nas.compare import final_space_settings

EXPERIMENT, PARAM_SPACE = final_space_settings(__file__)
'''
CSV_FILE, MD_FILE, JSON_FILE = "comparison.csv", "comparison.md", "comparison.json"

#: What the research reported (one V100). Only the CIFAR-10 accuracies are recorded here.
RESEARCH = {
    ("superkernel", "cifar10"): {"test_acc": 0.8879},
    ("resnet50", "cifar10"): {"test_acc": 0.7633},
}
RESEARCH_DEVICE = "one NVIDIA V100"
RESEARCH_DATASETS, RESEARCH_MODELS = ("mnist", "cifar10"), ("resnet50", "superkernel")
#: The project's GPU goals (one H100, search + final within the time).
GPU_GOALS = {
    ("superkernel", "cifar10"): "child ≥ 95 % test accuracy within 10 min on one H100",
    ("resnet50", "cifar10"): "≥ 94 % test accuracy within 10 min on one H100",
}

#: comparison.csv columns, in order.
COLUMNS = ("model", "dataset", "data", "search_data", "final_data", "final_model", "device",
           "test_acc", "search_wall_s",
           "final_wall_s", "final_train_s", "train_total_s", "predict_s", "images_per_s",
           "test_images", "params", "flops", "final_epochs", "search_trials", "search_complete",
           "search_pruned", "search_failed", "best_search_trial", "best_search_val_acc",
           "search_metric", "best_search_value", "search_preset", "arch", "config",
           "test_r2", "speedup", "emulator_us_per_sample", "simulator_ms_per_sample")


class CompareError(ValueError):
    """Bad input to the comparison; the message is the one line a user sees."""


class LaunchFailed(RuntimeError):
    """A search or final experiment exited non-zero (its log names why)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class DataChoice:
    """One data set of the comparison: ``label`` keys presets and table rows, ``dataset`` is
    what ``--dataset`` of the launcher gets (``cifar10`` or ``imagefolder:PATH``)."""

    label: str
    dataset: str


_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _label_of_folder(path: str) -> str:
    """A preset key for an image folder without an alias: the known data set name its file
    name starts with, else its file name with non-word characters replaced."""
    stem = Path(path.rstrip("/")).name.split(".")[0].lower()
    for name in sorted(KNOWN_DATA_NAMES, key=len, reverse=True):
        if stem == name or (stem.startswith(name) and not stem[len(name)].isalnum()):
            return name
    label = re.sub(r"\W+", "_", stem).strip("_")
    return label if _LABEL.fullmatch(label or "") else f"data_{label}"


def parse_datasets(text: str) -> list[DataChoice]:
    """``--datasets``: comma-separated ``NAME``, ``imagefolder:PATH`` or ``LABEL=DATASET``
    (``cifar10=imagefolder:PATH``: CIFAR-10's presets with that data)."""
    choices: list[DataChoice] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            raise CompareError(f"--datasets {text!r}: an empty entry; rule: comma-separated "
                               "NAME, imagefolder:PATH or LABEL=imagefolder:PATH")
        label, sep, dataset = item.partition("=")
        if not sep:
            label, dataset = "", item
        try:
            check_dataset_name(dataset)
        except DataError as exc:
            raise CompareError(f"--datasets {item!r}: {exc}") from None
        if dataset.startswith("imagefolder:"):
            try:
                path = expand_user(dataset.split(":", 1)[1])
            except UnknownHome as exc:
                raise CompareError(f"--datasets {item!r}: {exc}") from None
            if not path.exists():
                raise CompareError(f"--datasets {item!r}: {path} does not exist; rule: "
                                   "imagefolder:PATH names a directory, .tar.gz or .zip")
            dataset = f"imagefolder:{path.resolve()}"
        label = label.strip() or (_label_of_folder(dataset.split(":", 1)[1])
                                  if dataset.startswith("imagefolder:") else dataset)
        if not _LABEL.fullmatch(label):
            raise CompareError(f"--datasets {item!r}: label {label!r}; rule: a name of letters, "
                               "digits and _ before '=' (e.g. cifar10=imagefolder:PATH)")
        if label in {c.label for c in choices}:
            raise CompareError(f"--datasets {text!r}: {label!r} appears twice; rule: each data "
                               "set once")
        choices.append(DataChoice(label, dataset))
    return choices


def parse_models(text: str) -> list[str]:
    from tune_nas.models import list_models

    models = [m.strip() for m in text.split(",")]
    for m in models:
        if m not in list_models():
            raise CompareError(f"--models {text!r}: unknown model {m!r}; rule: comma-separated "
                               f"names from {', '.join(list_models())}")
    if len(set(models)) != len(models):
        raise CompareError(f"--models {text!r}: a model appears twice; rule: each model once")
    return models


def preset_path(model: str, label: str, suffix: str, regression: bool = False) -> Path:
    """``search_spaces/<model>_<label><suffix>.py``; for a regression data set the first that
    exists of that, ``emulator_<label><suffix>.py`` and ``emulator_<label>_<model><suffix>.py``."""
    first = SPACES_DIR / f"{model}_{label}{suffix}.py"
    if not regression or first.is_file():
        return first
    for path in (SPACES_DIR / f"emulator_{label}_{model}{suffix}.py", SPACES_DIR / f"emulator_{label}{suffix}.py"):
        if path.is_file():
            return path
    return first


@dataclass(frozen=True)
class Pair:
    """One (model, data set) cell of the comparison and the preset that searches it."""

    model: str
    data: DataChoice
    preset: Path
    space: SearchSpace = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.model}-{self.data.label}"


def resolve_pairs(models: Sequence[str], datasets: Sequence[DataChoice], suffix: str,
                  overrides: dict[str, Any]) -> list[Pair]:
    """Every (model, data set) pair with its preset loaded and checked with the flags applied."""
    pairs = []
    for data in datasets:
        for model in models:
            from tune_nas.tasks import task_of_dataset

            path = preset_path(model, data.label, suffix, task_of_dataset(data.dataset) == "regression")
            if not path.is_file():
                have = sorted(p.stem for p in SPACES_DIR.glob(f"{model}_*.py"))
                raise CompareError(
                    f"no preset for {model} on {data.label}: {path} does not exist; rule: "
                    f"search_spaces/<model>_<dataset><suffix>.py (presets of {model}: "
                    f"{', '.join(have) or 'none'}; --preset-suffix {suffix!r})")
            try:
                space = load_space(str(path)).with_overrides(dataset=data.dataset, **overrides)
            except SpaceError as exc:
                raise CompareError(str(exc)) from None
            if space.spec.model != model:
                raise CompareError(f"{path}: model {space.spec.model!r}; rule: the preset of "
                                   f"{model} on {data.label} must search {model!r}")
            pairs.append(Pair(model, data, path, space))
    return pairs


# --------------------------------------------------------------------------- experiments


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_launch(args: list[str], log_path: Path) -> None:
    """``python -m tune_nas.launch ARGS`` in a subprocess; its output goes to the terminal and
    to ``log_path``. Raises :class:`LaunchFailed` (with the launcher's last word) on failure."""
    command = [sys.executable, "-m", "tune_nas.launch", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last, error = "", ""
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)}\n")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"  {line}")
            log.write(line)
            if line.strip():
                last = line.strip()
                error = last if "tune_nas.launch: error" in last else error
        code = proc.wait()
    if code != 0:
        raise LaunchFailed(f"python -m tune_nas.launch exited {code}: {(error or last)[:400]} "
                           f"(log: {_display(log_path)})", code)


def experiment(root: Path, name: str, launch_args: list[str]) -> Experiment:
    """Experiment ``root/name``, finished: reused when its ``summary.json`` exists, resumed when
    it was interrupted, else run (``launch_args`` and the name). Raises :class:`LaunchFailed`
    when the launcher fails or leaves no summary."""
    layout = ExperimentLayout(root / name)
    log = root / "logs" / f"{name}.log"
    if layout.summary.is_file():
        print(f"tune_nas.compare: reusing {_display(layout.root)} ({SUMMARY_FILE} exists)", flush=True)
    elif layout.experiment.is_file():
        print(f"tune_nas.compare: resuming {_display(layout.root)}", flush=True)
        run_launch(["--name", name, "--trials-dir", str(root), "--resume"], log)
    else:
        print(f"tune_nas.compare: running {name}", flush=True)
        run_launch([*launch_args, "--name", name, "--trials-dir", str(root)], log)
    try:
        loaded = load_experiment(layout.root)
    except ExperimentError as exc:
        raise LaunchFailed(f"{name}: {exc}", 1) from None
    if not loaded.finished:
        raise LaunchFailed(f"{name}: the launcher ended without writing {SUMMARY_FILE} (log: "
                           f"{_display(log)})", 1)
    return loaded


def last_epoch(curves: pd.DataFrame, trial_number: int) -> dict[str, Any]:
    """The last epoch's curve row of trial ``trial_number`` (empty when it has none)."""
    mine = curves[curves["trial_number"] == trial_number]
    return {} if mine.empty else mine.loc[mine["epoch"].idxmax()].to_dict()


def best_search_trial(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The search's best trial by its objective (``summary["objective"]``, the units of every
    trial's ``value``): the best COMPLETE one (``summary["best"]``), else — when the time
    budget stopped every trial early — of the trials that went furthest, the one with the
    best value there (the lowest loss when the objective is a loss)."""
    objective = Objective.from_dict(summary.get("objective") or summary)
    best = summary.get("best")
    if best:
        return {**best, "complete": True}
    alive = [t for t in summary.get("trials", []) if t.get("state") != TrialState.FAIL
             and is_number(t.get("value"))]
    if not alive:
        raise LaunchFailed(f"{summary.get('experiment')}: no trial finished an epoch; nothing "
                           "to retrain", 1)
    furthest = max(t["epochs"] for t in alive)
    top = objective.best_of([t for t in alive if t["epochs"] == furthest], lambda t: t["value"])
    return {**top, "complete": False}


def final_config(model: str, config: dict[str, Any], arch: str | None
                 ) -> tuple[str, dict[str, Any]]:
    """(model, configuration) retrained at full budget for the search's best ``config``: the
    same model and config, or for a searchable supernet the plain child it chose (``arch``)
    with the training hyperparameters minus the supernet-only ones."""
    if model not in CHILD_MODELS:
        return model, dict(config)
    from tune_nas.config.training import TrainingConfig
    from tune_nas.models import architecture_args

    child, supernet_only = CHILD_MODELS[model]
    if not arch:
        raise CompareError(f"{model}: the best trial recorded no 'arch' string in {CURVES_FILE}; "
                           "rule: a searchable model reports its architecture every epoch")
    training_keys = set(TrainingConfig.keys()) - set(supernet_only)
    child_args = set(architecture_args(child)) - {"arch"}
    keep = {k: v for k, v in config.items() if k in training_keys or k in child_args}
    return child, {**keep, "arch": arch}


def final_space(pair: Pair, model: str, config: dict[str, Any], epochs: int, source: str,
                cpus: float, train_fraction: float = 1.0, image_size: int = 0) -> dict[str, Any]:
    """The settings of a space retraining ``config`` once, at full fidelity (unless
    ``train_fraction`` / ``image_size`` say otherwise), with no scheduler: ``{"EXPERIMENT":
    ..., "PARAM_SPACE": ...}`` (every parameter a constant), as JSON values."""
    spec = pair.space.spec
    experiment_ = {
        "description": f"final retraining of {source}",
        "dataset": pair.data.dataset, "data_dir": spec.data_dir, "model": model,
        "metric": spec.metric, "mode": spec.mode, "max_epochs": epochs, "grace_period": 1,
        "scheduler": "none", "num_samples": 1, "cpus_per_trial": cpus,
        "gpus_per_trial": spec.gpus_per_trial, "checkpoint_every": epochs,
        "max_failures": spec.max_failures, "seed": spec.seed, "n_startup_trials": 1,
        "train_fraction": train_fraction, "image_size": image_size,
    }
    return json.loads(json.dumps({"EXPERIMENT": experiment_, "PARAM_SPACE": dict(sorted(config.items()))}))


def final_space_settings(space_file: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(EXPERIMENT, PARAM_SPACE) of a final retraining's space file (:data:`FINAL_SPACE_SOURCE`
    calls this with its own path): read from ``<comparison>/spaces/<final>.json``, found from
    the space file itself (``<comparison>/spaces/<final>.py``) or from the experiment's copy
    of it (``<comparison>/<final>/space.py``, what the launcher loads on ``--resume``)."""
    here = Path(space_file).resolve()
    name = here.parent.name if here.name == SPACE_COPY else here.stem
    settings = json.loads((here.parent.parent / FINAL_SPACES_DIR / f"{name}.json").read_text())
    return settings["EXPERIMENT"], settings["PARAM_SPACE"]


def write_final_space(root: Path, name: str, settings: dict[str, Any]) -> Path:
    """``spaces/<name>.py`` (:data:`FINAL_SPACE_SOURCE`) and ``spaces/<name>.json``
    (``settings``) in the comparison ``root``; the space file's path. Once experiment ``name``
    has started it retrains what its JSON says: other settings are refused, never written
    over it (a stale final would be reported for a new search)."""
    space_file = root / FINAL_SPACES_DIR / f"{name}.py"
    settings_file = space_file.with_suffix(".json")
    if ExperimentLayout(root / name).experiment.is_file():
        saved = json.loads(settings_file.read_text()) if settings_file.is_file() else None
        if saved != settings:
            raise CompareError(f"{root / name}: retrains another configuration than the search's "
                               "best now; rule: remove that directory to retrain")
        return space_file
    space_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps(settings, indent=2) + "\n")
    space_file.write_text(FINAL_SPACE_SOURCE)
    return space_file


def _finite(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _device(gpus_per_trial: float) -> str:
    import torch

    if gpus_per_trial > 0 and torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {os.cpu_count()} cores"


def compare_pair(pair: Pair, root: Path, launch_flags: list[str], final_epochs: int | None,
                 final_cpus: float | None, final_train_fraction: float = 1.0,
                 final_image_size: int = 0) -> dict[str, Any]:
    """Search, retrain and measure one (model, data set) pair; the row of the comparison."""
    search = experiment(root, pair.name, ["--space", str(pair.preset), "--dataset",
                                          pair.data.dataset, *launch_flags])
    best = best_search_trial(search.summary)
    arch = _text(best.get("arch")) or _text(last_epoch(search.curves, int(best["number"])).get("arch"))
    model, config = final_config(pair.model, best["config"], arch)
    spec = pair.space.spec
    epochs = final_epochs or spec.final_max_epochs or spec.max_epochs
    cpus = final_cpus or (spec.cpus_per_trial if spec.gpus_per_trial > 0
                          else max(spec.cpus_per_trial, float(os.cpu_count() or 1)))
    source = (f"{pair.name} trial {best['number']} (search_spaces/{pair.preset.name}"
              f"{'' if best['complete'] else ', stopped early by the time budget'})")
    final_name = pair.name + FINAL_SUFFIX
    settings = final_space(pair, model, config, epochs, source, cpus, final_train_fraction,
                           final_image_size)
    space_file = write_final_space(root, final_name, settings)
    final = experiment(root, final_name, ["--space", str(space_file)])
    fbest = final.summary.get("best")
    if not fbest:
        raise LaunchFailed(f"{final_name}: the final trial did not complete "
                           f"({final.summary.get('counts')}); see {_display(final.root)}", 1)
    curves = final.curves
    row = last_epoch(curves, int(fbest["number"]))
    epoch_times = curves.loc[curves["trial_number"] == int(fbest["number"]), "time/epoch_s"]
    counts = search.summary.get("counts", {})
    images_per_s = _finite(row.get("test/images_per_s", row.get("test/samples_per_s")))
    predict_s = _finite(row.get("test/seconds"))
    emulator = final.summary.get("emulator") or {}
    simulator = emulator.get("simulator") or {}
    search_wall_s, final_wall_s = search.summary["wall_time_s"], final.summary["wall_time_s"]
    return {
        "model": pair.model, "dataset": pair.data.label, "data": pair.data.dataset,
        "search_data": search.summary.get("dataset"), "final_data": final.summary.get("dataset"),
        "final_model": model, "device": _device(spec.gpus_per_trial),
        "test_acc": fbest["test_acc"], "search_wall_s": search_wall_s,
        "final_wall_s": final_wall_s,
        "final_train_s": round(float(epoch_times[epoch_times.notna()].sum()), 2),
        "train_total_s": round(search_wall_s + final_wall_s, 2),
        "predict_s": predict_s, "images_per_s": images_per_s,
        "test_images": round(images_per_s * predict_s) if images_per_s and predict_s else None,
        "params": fbest["params"], "flops": _finite(row.get("model/flops")),
        "final_epochs": fbest["epochs"], "search_trials": sum(counts.values()),
        "search_complete": counts.get(TrialState.COMPLETE, 0),
        "search_pruned": counts.get(TrialState.PRUNED, 0),
        "search_failed": counts.get(TrialState.FAIL, 0), "best_search_trial": best["number"],
        "best_search_val_acc": best.get("val_acc"), "search_metric": search.objective.metric,
        "best_search_value": best.get("value"), "search_preset": pair.preset.name,
        "arch": arch or "", "config": json.dumps(fbest["config"], sort_keys=True),
        "test_r2": fbest.get("test_r2"), "speedup": _finite(emulator.get("speedup")),
        "emulator_us_per_sample": _finite(emulator["emulator_seconds_per_sample"] * 1e6)
        if is_number(emulator.get("emulator_seconds_per_sample")) else None,
        "simulator_ms_per_sample": _finite(simulator["seconds_per_sample"] * 1e3)
        if is_number(simulator.get("seconds_per_sample")) else None,
    }


# --------------------------------------------------------------------------- report


def machine() -> str:
    """The machine, GPU named: what a reader needs to weigh the timings."""
    import torch

    cpu = f"CPU: {os.cpu_count()} cores" + (f" ({platform.processor()})"
                                            if platform.processor() else "")
    gpu = (f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
           else "no GPU")
    return f"{cpu}; {gpu}; {platform.system()} {platform.release()}; torch {torch.__version__}"


#: What the report shows for a value that was not measured.
NA = "–"


def _pct(value: Any) -> str:
    return formatting.percent(value, NA)


def _seconds(value: Any, digits: int = 1) -> str:
    return formatting.number(value, digits, NA)


def _count(value: Any) -> str:
    return formatting.count(value, NA)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def markdown(rows: list[dict[str, Any]], settings: dict[str, Any],
             missing: list[tuple[str, str, str]]) -> str:
    """comparison.md: our table, the research's figures beside ours, unmeasured goals."""
    out = ["# Model comparison", "",
           f"Run by `python -m tune_nas.compare` on {settings['date']}.", "",
           f"* Machine: {settings['machine']}",
           (f"* Data sets: {', '.join(settings['datasets'])}; models: "
           f"{', '.join(settings['models'])}; presets `<model>_<dataset>"
           f"{settings['preset_suffix']}.py`"),
           (f"* Search budget: {settings['budget']}; final retraining: "
           f"{settings['final_epochs'] or 'the preset'}'s epochs, "
           f"{settings['final_fidelity']}, the superkernel's chosen child (`mbconv_net`) "
           "trained from scratch"), "",
           "## Our measurements", "",
           ("| data set | model | final net | device | test acc | search wall s | final wall s "
           "| final train s | test-set prediction s | img/s | params | FLOPs/img |"),
           "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['dataset']} | {r['model']} | {r['final_model']} | {r['device']} | "
                   f"{_pct(r['test_acc'])} | {_seconds(r['search_wall_s'])} | "
                   f"{_seconds(r['final_wall_s'])} | {_seconds(r['final_train_s'])} | "
                   f"{_seconds(r['predict_s'], 2)} | {_count(r['images_per_s'])} | "
                   f"{_count(r['params'])} | {_count(r['flops'])} |")
    for model, label, why in missing:
        out.append(f"| {label} | {model} | – | – | unmeasured: {why} | – | – | – | – | – | – "
                   "| – |")
    out += ["", ("*search wall*: the whole search experiment (Ray start, data, every trial); "
            "*final wall*: the final experiment; *final train*: the sum of its epochs' training "
            "time; *prediction*: the whole test set, once, after training (batches of the "
            "final's batch size, on the training device)."), "",
            "## Beside the research", "",
            (f"The research trained both nets on {RESEARCH_DEVICE}; only its CIFAR-10 test "
            "accuracies are recorded here."), "",
            "| data set | model | research test acc | ours | our device |",
            "| --- | --- | ---: | ---: | --- |"]
    ours = {(r["model"], r["dataset"]): r for r in rows}
    keys = list(dict.fromkeys([*(k for k in RESEARCH if k[0] in settings["models"]),
                               *((m, d) for m, d, _ in missing), *ours]))
    for model, label in keys:
        ref = RESEARCH.get((model, label), {}).get("test_acc")
        mine = ours.get((model, label))
        out.append(f"| {label} | {model} | {_pct(ref) if ref else 'not recorded'} | "
                   f"{_pct(mine['test_acc']) if mine else 'unmeasured'} | "
                   f"{mine['device'] if mine else '–'} |")
    out += ["", "## GPU goals", "", "| data set | model | goal | status |",
            "| --- | --- | --- | --- |"]
    for (model, label), goal in GPU_GOALS.items():
        if model not in settings["models"]:
            continue
        mine = ours.get((model, label))
        if mine and mine["device"].startswith("GPU"):
            status = (f"{_pct(mine['test_acc'])} in {_seconds(mine['train_total_s'])} s on "
                      f"{mine['device'][5:]}")
        else:
            status = "unmeasured (no GPU in this run)"
        out.append(f"| {label} | {model} | {goal} | {status} |")
    out += ["", "## Details", ""]
    for r in rows:
        out.append(f"* **{r['model']} on {r['dataset']}** ({r['data']}): preset "
                   f"`{r['search_preset']}`, {r['search_trials']} search trials "
                   f"({r['search_complete']} complete, {r['search_pruned']} pruned, "
                   f"{r['search_failed']} failed), best trial {r['best_search_trial']} "
                   f"(search {r['search_metric']} {formatting.number(r['best_search_value'], missing=NA)}) on "
                   f"{r.get('search_data')}; final on {r.get('final_data')}: "
                   f"{r['final_epochs']} epochs of `{r['final_model']}` with `{r['config']}`")
    emulators = [r for r in rows if r.get("test_r2") is not None]
    if emulators:
        out += ["", "## Emulators", "",
                "| data set | model | test R² | emulator µs/sample | simulator ms/sample | speed-up |",
                "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in emulators:
            speedup = f"{r['speedup']:,.0f}×" if r.get("speedup") else NA
            out.append(f"| {r['dataset']} | {r['model']} | {formatting.number(r['test_r2'], 4, NA)} | "
                       f"{formatting.number(r.get('emulator_us_per_sample'), 2, NA)} | "
                       f"{formatting.number(r.get('simulator_ms_per_sample'), 2, NA)} | {speedup} |")
        out += ["", ("*emulator*: the final emulator predicting the whole test split in batches, one CPU "
                     "thread, inputs and outputs in the data's units; *simulator*: the simulator run again "
                     "on held-out inputs, one thread (tune_nas.analysis.emulator).")]
    out += ["", "Charts: " + ", ".join(f"`comparison_{k}.png`" for k, *_ in charts_for(rows)), ""]
    return "\n".join(out)


#: (column, title, log scale when the values span more than 100×) of the bar charts.
CHARTS = (("test_acc", "Test accuracy", False),
          ("test_r2", "Test R² (emulators)", False),
          ("speedup", "Speed-up over the simulator per sample (one thread each)", True),
          ("train_time", "Training time: search + final wall [s]", False),
          ("images_per_s", "Prediction throughput on the test set [samples/s]", True),
          ("params", "Trainable parameters", True),
          ("flops", "FLOPs per sample", True))


def charts_for(rows: list[dict[str, Any]]) -> tuple[tuple[str, str, bool], ...]:
    """The charts with something to show: a metric no row measured (test accuracy of
    emulators, the speed-up of classifiers) gets none."""
    return tuple(c for c in CHARTS if c[0] == "train_time" or any(r.get(c[0]) is not None for r in rows))


def write_charts(rows: list[dict[str, Any]], out_dir: Path, machine_: str) -> list[Path]:
    """One PNG per metric: data sets on the x axis, the models' bars side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    by = {(r["model"], r["dataset"]): r for r in rows}
    width = 0.8 / max(1, len(models))
    paths = []
    for key, title, log in charts_for(rows):
        fig, ax = plt.subplots(figsize=(1.6 + 2.2 * len(datasets) + 0.6 * len(models), 4.2))
        for i, model in enumerate(models):
            xs = [d + (i - (len(models) - 1) / 2) * width for d in range(len(datasets))]
            cells = [by.get((model, d)) for d in datasets]
            if key == "train_time":
                search = [c["search_wall_s"] if c else 0 for c in cells]
                final = [c["final_wall_s"] if c else 0 for c in cells]
                bars = ax.bar(xs, search, width, label=f"{model}: search", color=f"C{i}",
                              alpha=0.45)
                ax.bar(xs, final, width, bottom=search, label=f"{model}: final", color=f"C{i}")
                values = [s + f for s, f in zip(search, final)]
            else:
                values = [float(c[key]) if c and c.get(key) is not None else 0 for c in cells]
                bars = ax.bar(xs, values, width, label=model, color=f"C{i}")
            for bar, v, c in zip(bars, values, cells):
                text = ("n/a" if not c else _pct(v) if key == "test_acc"
                        else formatting.number(v, 4, NA) if key == "test_r2"
                        else _count(v) if key in ("params", "flops", "images_per_s", "speedup") else _seconds(v))
                ax.annotate(text, (bar.get_x() + bar.get_width() / 2, max(0, v)),
                            ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                            textcoords="offset points")
        if key == "test_acc":
            drawn = False
            for (model, label), ref in RESEARCH.items():
                if label in datasets and model in models:
                    i, d = models.index(model), datasets.index(label)
                    x = d + (i - (len(models) - 1) / 2) * width
                    ax.plot([x - width / 2, x + width / 2], [ref["test_acc"]] * 2, "k--", lw=1.2,
                            label=None if drawn else "research (one V100)")
                    drawn = True
            ax.set_ylim(0, 1.12)
        positive = [float(r[key]) for r in rows if r.get(key) and float(r[key]) > 0]
        if log and positive and max(positive) / min(positive) > 100:
            # bars on a log axis need a stated base: a decade below the smallest value
            ax.set_yscale("log")
            ax.set_ylim(bottom=10 ** math.floor(math.log10(min(positive)) - 1))
        elif key != "test_acc":
            ax.set_ylim(0, 1.2 * max(positive or [1.0]))  # room for the labels and legend
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="best")
        fig.text(0.01, 0.01, machine_, fontsize=6, color="grey")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = out_dir / f"comparison_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tune_nas.compare", description=__doc__.split("\n\n")[0],
                formatter_class=DefaultsHelp)
    p.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated registered models")
    p.add_argument("--datasets", default=DEFAULT_DATASETS,
                   help="comma-separated NAME (digits, mnist, fashion_mnist, cifar10), "
                   "imagefolder:PATH, or LABEL=imagefolder:PATH (e.g. "
                   "cifar10=imagefolder:data.tar.gz: CIFAR-10's presets with that data)")
    p.add_argument("--preset-suffix", default="",
                   help="presets are search_spaces/<model>_<dataset><suffix>.py (e.g. _cpu)")
    p.add_argument("--num-samples", type=number("--num-samples", int, 0, exclusive=True), default=None,
                   help="trials per search (default: the preset's)")
    p.add_argument("--time-budget-s", type=number("--time-budget-s", float, 0), default=None,
                   help="seconds per search (default: the preset's; 0: no limit)")
    p.add_argument("--max-epochs", type=number("--max-epochs", int, 0, exclusive=True), default=None,
                   help="epochs of a full search trial (default: the preset's)")
    p.add_argument("--final-epochs", type=number("--final-epochs", int, 0, exclusive=True, maximum=MAX_EPOCHS),
                   default=None,
                   help="epochs of the final retraining (default: the preset's "
                   "final_max_epochs, else its max_epochs)")
    p.add_argument("--final-cpus", type=number("--final-cpus", float, 0, exclusive=True),
                   default=None, help="CPUs of the final trial (default: all cores on CPU, the "
                   "preset's cpus_per_trial with a GPU)")
    p.add_argument("--final-train-fraction", type=_fraction, default=1.0,
                   help="share of the training images of the final retraining (1: all; less "
                   "only where the full budget cannot run, e.g. on a CPU: it is reported)")
    p.add_argument("--final-image-size", type=number("--final-image-size", int, 0, maximum=MAX_IMAGE_SIZE), default=0,
                   help="image size of the final retraining in px (0: native; it is reported)")
    p.add_argument("--data-dir", default=None, help="where torchvision data sets live")
    p.add_argument("--seed", type=number("--seed", int, 0, maximum=SEED_MAX), default=None,
                   help="seed of every search")
    p.add_argument("--name", type=plain_name("--name"), default=None,
                   help="comparison name (default: compare-<timestamp>); rerunning a name "
                   "reuses its finished experiments")
    p.add_argument("--trials-dir", default="trials", help="where comparisons are written")
    return p


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed; rule: "
                                         "0 < --final-train-fraction <= 1")
    return value


def _fail(message: str) -> NoReturn:
    print(f"tune_nas.compare: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def _check_data(datasets: Sequence[DataChoice], data_dir: str | None, pairs: Sequence[Pair],
                final_train_fraction: float = 1.0, final_image_size: int = 0) -> None:
    """Every data set must load (offline: already there), and take the final retraining's
    fraction and image size, before any search starts."""
    for data in datasets:
        where = next(p.space.spec.data_dir for p in pairs if p.data == data)
        try:
            splits = load_splits(data.dataset, data_dir or where)
        except DataError as exc:
            raise CompareError(f"--datasets {data.label}: {exc}") from None
        try:
            check_reduced_fidelity(splits, final_train_fraction, final_image_size)
        except DataError as exc:  # worded for a space file's keys: named as this command's flags
            text = str(exc).replace("image_size=", "--final-image-size ").replace(
                "train_fraction=", "--final-train-fraction ")
            raise CompareError(f"--datasets {data.label}: {text}") from None


def _absence(label: str, data_dir: str) -> str:
    """Why a research data set was not run, when it is simply not here (no download)."""
    from tune_nas.data.sources import _TORCHVISION

    if label not in _TORCHVISION:
        return ""
    import torchvision

    try:
        getattr(torchvision.datasets, _TORCHVISION[label])(data_dir, train=False, download=False)
    except RuntimeError:
        return f"; {label} is not under {data_dir}/ (offline it cannot be downloaded)"
    return ""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in {"num_samples": args.num_samples,
                                   "time_budget_s": args.time_budget_s,
                                   "max_epochs": args.max_epochs, "data_dir": args.data_dir,
                                   "seed": args.seed}.items() if v is not None}
    try:
        models = parse_models(args.models)
        datasets = parse_datasets(args.datasets)
        if args.preset_suffix and not re.fullmatch(r"\w*", args.preset_suffix):
            raise CompareError(f"--preset-suffix {args.preset_suffix!r}: rule: letters, digits "
                               "and _ only")
        name = args.name or f"compare-{datetime.now():%Y%m%d-%H%M%S}"
        if "/" in name or name in (".", ".."):
            raise CompareError(f"--name {name!r}: rule: a plain directory name")
        cpus = os.cpu_count() or 1
        if args.final_cpus and args.final_cpus > cpus and not os.environ.get("RAY_ADDRESS"):
            raise CompareError(f"--final-cpus {args.final_cpus:g}: this machine has {cpus} CPU(s) and the final "
                               "trial runs on it; rule: at most its CPUs (or RAY_ADDRESS of a cluster that has them)")
        pairs = resolve_pairs(models, datasets, args.preset_suffix, overrides)
        _check_data(datasets, args.data_dir, pairs, args.final_train_fraction, args.final_image_size)
        if is_uri(args.trials_dir):
            raise CompareError(f"--trials-dir {args.trials_dir}: rule: a comparison is written "
                               "to a local (or mounted) directory; object storage is for "
                               "python -m tune_nas.launch")
        unwritable = unwritable_reason(expand_user(args.trials_dir, "--trials-dir").resolve() / name)
        if unwritable:
            raise CompareError(f"--trials-dir {args.trials_dir}: {unwritable}; rule: a directory this "
                               "user may write (created if missing)")
    except (CompareError, UnknownHome) as exc:
        _fail(str(exc))
    root = expand_user(args.trials_dir).resolve() / name
    launch_flags: list[str] = []
    for flag, value in (("--num-samples", args.num_samples),
                        ("--time-budget-s", args.time_budget_s),
                        ("--max-epochs", args.max_epochs), ("--data-dir", args.data_dir),
                        ("--seed", args.seed)):
        if value is not None:
            launch_flags += [flag, str(value)]
    root.mkdir(parents=True, exist_ok=True)
    print(f"tune_nas.compare: {len(pairs)} pairs ({', '.join(p.name for p in pairs)}) into "
          f"{_display(root)}/", flush=True)
    started = time.monotonic()
    rows, failures = [], []
    for pair in pairs:
        try:
            rows.append(compare_pair(pair, root, launch_flags, args.final_epochs,
                                     args.final_cpus, args.final_train_fraction,
                                     args.final_image_size))
        except CompareError as exc:
            _fail(str(exc))
        except LaunchFailed as exc:
            print(f"tune_nas.compare: {pair.name} failed: {exc}", file=sys.stderr, flush=True)
            failures.append((pair, exc))
    settings = {
        "date": datetime.now().isoformat(timespec="seconds"), "machine": machine(),
        "models": models, "datasets": [f"{d.label} ({d.dataset})" for d in datasets],
        "preset_suffix": args.preset_suffix, "final_epochs": args.final_epochs,
        "final_fidelity": ("all training images at native resolution"
                           if args.final_train_fraction == 1 and not args.final_image_size else
                           f"{args.final_train_fraction:g} of the training images at "
                           f"{args.final_image_size or 'native'} px"),
        "budget": ", ".join(f"{k}={v}" for k, v in overrides.items()
                            if k in ("num_samples", "time_budget_s", "max_epochs"))
        or "the presets'",
        "wall_s": round(time.monotonic() - started, 1),
    }
    missing = [(p.model, p.data.label, f"failed: {exc}") for p, exc in failures]
    labels = {d.label for d in datasets}
    for label in RESEARCH_DATASETS:
        if label in labels:
            continue
        why = "not in this run" + _absence(label, args.data_dir or "data")
        missing += [(m, label, why) for m in models if m in RESEARCH_MODELS]
    write_csv(rows, root / CSV_FILE)
    (root / JSON_FILE).write_text(json.dumps(strict_json({"settings": settings, "rows": rows}), indent=2,
                                             default=str) + "\n")
    (root / MD_FILE).write_text(markdown(rows, settings, missing))
    charts = write_charts(rows, root, settings["machine"]) if rows else []
    print()
    print(markdown_table_console(rows))
    print(f"Comparison {name}: {len(rows)} of {len(pairs)} pairs in {settings['wall_s']:.0f} s; "
          f"{_display(root / MD_FILE)}, {_display(root / CSV_FILE)}, "
          f"{len(charts)} charts (comparison_*.png)")
    return 0 if not failures else 1


def markdown_table_console(rows: list[dict[str, Any]]) -> str:
    """The comparison's rows for the terminal: test accuracy, or an emulator's test R² and its
    speed-up over the simulator."""
    emulators = any(r.get("test_r2") is not None for r in rows)
    head = (f"{'dataset':<10} {'model':<12} {'test_acc':>8} " + (f"{'test_r2':>8} {'speedup':>9} " if emulators else "")
            + f"{'search_s':>9} {'final_s':>8} {'img/s':>8} {'params':>9} {'FLOPs':>9}")
    lines = [head]
    for r in rows:
        speedup = f"{r['speedup']:,.0f}x" if r.get("speedup") else NA
        extra = f"{formatting.number(r.get('test_r2'), 4, NA):>8} {speedup:>9} " if emulators else ""
        lines.append(f"{r['dataset']:<10} {r['model']:<12} {formatting.number(r['test_acc'], 4, NA):>8} {extra}"
                     f"{r['search_wall_s']:>9.1f} {r['final_wall_s']:>8.1f} "
                     f"{_count(r['images_per_s']):>8} {_count(r['params']):>9} "
                     f"{_count(r['flops']):>9}")
    return "\n".join(lines)


__all__ = [
    "DataChoice",
    "best_search_trial",
    "final_config",
    "final_space",
    "final_space_settings",
    "last_epoch",
    "main",
    "markdown",
    "parse_datasets",
    "parse_models",
    "write_charts",
    "write_final_space",
]

if __name__ == "__main__":
    sys.exit(main())
