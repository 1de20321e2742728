"""``python -m tune_nas.launch``: run (or resume) a search, then say where everything is.

With no arguments it runs the embedded default: 16 trials of a small CNN on scikit-learn's
digits, offline, sampled by Optuna's TPE and stopped early by ASHA. Every problem with the
input (space file, flags, data) is reported in one line with exit code 2 before Ray starts
and before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from tune_nas.bad_input import (
    NAME_RULE,
    SEED_MAX,
    DefaultsHelp,
    OneLineParser,
    fail,
    number,
    plain_name,
    unwritable_reason,
)
from tune_nas.config.space_file import SCHEDULERS, SpaceError, load_space
from tune_nas.data.sources import DataError, load_splits, reduce_fidelity
from tune_nas.layout import EXPERIMENT_FILE, FORMAT_VERSION, SPACE_COPY, SUMMARY_FILE, ExperimentLayout
from tune_nas.metric_keys import TEST_HEADLINE
from tune_nas.objectives import Objective, feasible, pareto_front
from tune_nas.paths import UnknownHome, expand_user
from tune_nas.record import formatting
from tune_nas.search import list_searchers
from tune_nas.storage.trials_dir import LOCAL_MIRROR, RemoteTrialsDir, TrialsDirError, is_uri


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tune_nas.launch", description=__doc__.split("\n\n")[0],
                formatter_class=DefaultsHelp)
    p.add_argument("--space", type=_space_argument, default=None,
                   help="space file (path) or preset name in search_spaces/ (default: default)")
    p.add_argument("--dataset", type=_not_empty("--dataset", "a data set"), default=None,
                   help="digits, mnist, fashion_mnist, cifar10 or "
                   "imagefolder:PATH (a directory, .tar.gz or .zip with train/ and test/); regression "
                   "data: arrays:PATH (.npz with x, y, .csv or .parquet) or sim:NAME[:SAMPLES] (sim:burgers); with "
                   "evaluation 'tabular' the NAS-Bench-201 table: cifar10, cifar100, imagenet16; "
                   "overrides the space file")
    p.add_argument("--data-dir", type=_not_empty("--data-dir", "a directory"), default=None,
                   help="where torchvision data sets live / are downloaded to")
    p.add_argument("--model", type=_not_empty("--model", "a model of the registry"), default=None,
                   help="model name in the registry (small_cnn, resnet50, ...)")
    p.add_argument("--searcher", type=_not_empty("--searcher", "a search strategy"), default=None,
                   help=f"search strategy: {', '.join(list_searchers())} (default: the space file's, else tpe)")
    p.add_argument("--scheduler", type=_not_empty("--scheduler", "a scheduler"), default=None,
                   help=f"when to stop (or pause) trials early: {', '.join(SCHEDULERS)} (default: the "
                   "space file's, else asha)")
    p.add_argument("--num-samples", type=number("--num-samples", int, 0, exclusive=True), default=None,
                   help="number of trials")
    p.add_argument("--max-epochs", type=number("--max-epochs", int, 0, exclusive=True), default=None,
                   help="epochs of a trial that is never stopped (ASHA's max_t)")
    p.add_argument("--grace-period", type=number("--grace-period", int, 0, exclusive=True), default=None,
                   help="ASHA: epochs before the first stopping decision")
    p.add_argument("--gpus-per-trial", type=number("--gpus-per-trial", float, 0), default=None,
                   help="GPUs per trial; a fraction packs several trials on one GPU")
    p.add_argument("--cpus-per-trial", type=number("--cpus-per-trial", float, 0, exclusive=True),
                   default=None, help="CPUs per trial (also its torch threads)")
    p.add_argument("--workers-per-trial", type=number("--workers-per-trial", int, 0, exclusive=True), default=None,
                   help="data-parallel workers per trial (DDP within the trial, on one node): each "
                   "has --cpus-per-trial CPUs and --gpus-per-trial (0 or 1) GPUs; the batch size "
                   "stays the global one")
    p.add_argument("--max-concurrent-trials", type=number("--max-concurrent-trials", int, 0), default=None,
                   help="at most this many trials at once (0: as many as resources allow)")
    p.add_argument("--time-budget-s", type=number("--time-budget-s", float, 0), default=None,
                   help="stop the search after this many seconds (0: no limit)")
    p.add_argument("--seed", type=number("--seed", int, 0, maximum=SEED_MAX), default=None,
                   help="seed of the sampler and of every trial's initialisation")
    p.add_argument("--address", type=_not_empty("--address", "a Ray cluster's address"), default=None,
                   help="Ray cluster address ('auto' for the cluster this node belongs to); "
                   "default: start Ray locally")
    p.add_argument("--name", type=plain_name("--name"), default=None,
                   help="experiment name (default: <space>-<timestamp>)")
    p.add_argument("--trials-dir", type=_not_empty("--trials-dir", "a directory or a URI"), default="trials",
                   help="where experiments are written: a directory (on a multi-node cluster one "
                   "every node mounts) or object storage, s3://bucket/prefix, gs://... (the "
                   "driver's own files are then mirrored in ./trials/<name>/)")
    p.add_argument("--storage", type=_not_empty("--storage", "a database URL"), default=None,
                   help="Optuna storage URL for the study, e.g. postgresql://user@host/db "
                   "(password from the environment: PGPASSWORD); default: sqlite optuna.db in "
                   "the experiment directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the experiment --name where it stopped (same study, same "
                   "settings; finished trials are kept)")
    p.add_argument("--warm-start", type=_not_empty("--warm-start", "an experiment directory or a storage URL"),
                   default=None, metavar="SOURCE",
                   help="begin the new study with the finished trials of an earlier one that fit "
                   "this space (given to the sampler, not trained again): an experiment directory "
                   "(trials/NAME) or an Optuna storage URL (with --warm-start-study)")
    p.add_argument("--warm-start-study", type=_not_empty("--warm-start-study", "a study name"), default=None,
                   metavar="NAME", help="the earlier study's name (default: the experiment's, or the "
                   "storage's only study)")
    return p


def _space_argument(text: str) -> str:
    """``--space``: a path to a .py file or a preset name; an existing path of another kind
    (a directory, a text file) is refused here, since it would be imported as Python."""
    try:
        path = expand_user(text)
    except UnknownHome as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    rule = "rule: --space is a path to a .py space file or the name of a preset"
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is empty; {rule}")
    if path.exists() and not (path.is_file() and path.suffix == ".py"):
        kind = "a directory" if path.is_dir() else "not a .py file"
        raise argparse.ArgumentTypeError(f"{text!r} is {kind}; {rule}")
    return text


def _not_empty(flag: str, what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{text!r} is empty; rule: {flag} is {what}")
        return text

    return parse


def _fail(message: str) -> NoReturn:
    fail("tune_nas.launch", message)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"dataset": args.dataset, "data_dir": args.data_dir, "model": args.model,
            "num_samples": args.num_samples, "max_epochs": args.max_epochs,
            "grace_period": args.grace_period, "gpus_per_trial": args.gpus_per_trial,
            "cpus_per_trial": args.cpus_per_trial, "workers_per_trial": args.workers_per_trial,
            "max_concurrent_trials": args.max_concurrent_trials, "seed": args.seed,
            "time_budget_s": args.time_budget_s, "searcher": args.searcher,
            "scheduler": args.scheduler}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("ray", "optuna", "torch", "lightning", "torchvision"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def prepare(args: argparse.Namespace):
    """Validate everything a run needs; raises SystemExit(2) with one line on bad input."""
    remote = _remote_trials_dir(args.trials_dir)
    trials_dir = (LOCAL_MIRROR if remote else expand_user(args.trials_dir, "--trials-dir")).resolve()
    _check_trials_dir(str(LOCAL_MIRROR) if remote else args.trials_dir, trials_dir)
    if args.resume:
        if not args.name:
            _fail("--resume needs --name NAME: rule: name the experiment to continue")
        given = [f"--{k.replace('_', '-')}" for k, v in _overrides(args).items() if v is not None]
        if args.space is not None:
            given.insert(0, "--space")
        if given:
            _fail(f"--resume with {', '.join(given)}: rule: a resumed experiment keeps the space and settings "
                  f"it began with ({EXPERIMENT_FILE}); leave {'that flag' if len(given) == 1 else 'those flags'} "
                  "out, or start a new experiment")
        experiment_dir = trials_dir / args.name
        saved = experiment_dir / EXPERIMENT_FILE
        if remote and not saved.is_file() and remote.exists(args.name):
            remote.download(args.name, experiment_dir)  # resuming on another machine
        if not saved.is_file():
            _fail(f"--resume --name {args.name}: no experiment at {experiment_dir}; rule: "
                  f"resume an experiment that {EXPERIMENT_FILE} marks as started")
        try:
            resolved = json.loads(saved.read_text())
            if not isinstance(resolved, dict):
                raise ValueError(f"it holds a JSON {type(resolved).__name__}, not an object")
            _check_format(saved, resolved)
            space = load_space(str(experiment_dir / SPACE_COPY),
                               base_dir=Path(resolved["space_file"]).parent).with_overrides(
                **resolved["overrides"])
            storage = args.storage or resolved.get("storage")
            _alias_space_module(space, Path(resolved["space_file"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _fail(f"{saved}: cannot be read back ({type(exc).__name__}: {exc}); rule: resume "
                  "needs the files the first run wrote")
        name = args.name
        if not storage:  # the study keeps the name the experiment began with (its directory may be renamed since)
            _check_saved_study(experiment_dir, str(resolved.get("name") or name))
    else:
        try:
            space = load_space(args.space).with_overrides(**_overrides(args))
        except SpaceError as exc:
            _fail(str(exc))
        if args.grace_period is not None and space.spec.scheduler == "none":
            _fail(f"--grace-period {args.grace_period} with scheduler 'none': it sets the first rung of a "
                  "scheduler that stops trials, and 'none' stops none; rule: leave it out, or choose "
                  "--scheduler asha, moasha, ...")
        name = args.name or _default_name(space.path.stem)
        if "/" in name or name in (".", ".."):
            _fail(f"--name {name!r}: rule: {NAME_RULE}")
        storage = args.storage
        experiment_dir = trials_dir / name
        if experiment_dir.exists():
            _fail(f"--name {name}: {experiment_dir} already exists; rule: use --resume to "
                  "continue it, or a new name")
        if experiment_dir.is_symlink():  # a link to nothing: exists() is False, yet mkdir would fail
            _fail(f"--name {name}: {experiment_dir} is a link to {os.readlink(experiment_dir)}, which does "
                  "not exist; rule: a new name, or remove the link")
        if remote and remote.exists(name):
            _fail(f"--name {name}: {remote.display(name)} already exists; rule: use --resume "
                  "to continue it, or a new name")
    address = args.address if args.address is not None else os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        _check_address(address, "--address" if args.address is not None else "RAY_ADDRESS")
    else:
        _check_this_machine_fits(space, args)
    if storage:
        _check_storage(storage)
    if args.warm_start_study and not args.warm_start:
        _fail(f"--warm-start-study {args.warm_start_study}: given alone; rule: it names the study of --warm-start")
    if args.warm_start and args.resume:
        _fail(f"--warm-start {args.warm_start} with --resume: rule: a resumed experiment's study already "
              "holds what it began with")
    args.prior = _prior_trials(args.warm_start, args.warm_start_study, space) if args.warm_start else None
    if space.spec.evaluation == "tabular":  # no data, no model: each trial reads a table
        table = _check_table_lookup(space)
        return space, (table, table), name, experiment_dir, storage, remote
    try:
        splits = load_splits(space.spec.dataset, space.spec.data_dir, space.spec.inputs, space.spec.outputs)
        search_splits = reduce_fidelity(splits, space.spec.train_fraction, space.spec.image_size)
    except DataError as exc:
        _fail(str(exc))
    _check_model_builds(space, search_splits)
    if space.spec.final_top_k:
        _check_model_builds(space, splits)
    _check_packing(space, search_splits)
    splits = (search_splits, splits)
    return space, splits, name, experiment_dir, storage, remote


def _default_name(stem: str) -> str:
    """``<space>-<timestamp>``, the space file's name cut so that the whole is a directory name
    of at most 255 bytes (NAME_RULE)."""
    stamp = f"-{datetime.now():%Y%m%d-%H%M%S}"
    room = 255 - len(stamp.encode())
    return stem.encode()[:room].decode(errors="ignore") + stamp


def _prior_trials(source_text: str, study_name: str | None, space):
    """The finished trials of the earlier study ``source_text`` names that fit ``space``
    (:mod:`tune_nas.search.prior_trials`); one line and exit 2 when the source cannot be read
    or optimised other objectives."""
    from tune_nas.ray_tune.optuna_bridge import optuna_distributions
    from tune_nas.search.prior_trials import fit_prior_trials
    from tune_nas.study import StudyInputError, load_study, resolve_source

    url = "://" in source_text
    try:
        source = resolve_source(None if url else source_text, source_text if url else None, study_name)
        study = load_study(source, explicit_name=bool(study_name))
    except StudyInputError as exc:  # worded for the study command, whose flag is --study
        _fail(f"--warm-start: {str(exc).replace('--study', '--warm-start-study')}")
    objectives = space.spec.objective_list
    earlier = (source.experiment.spec.objective_list if source.experiment is not None
               else [Objective(m or "", d) for m, d in zip(study.metric_names or [None] * len(study.directions),
                                                            ["max" if d.name == "MAXIMIZE" else "min"
                                                             for d in study.directions])])
    wanted = [(o.metric, o.direction) for o in objectives]
    had = [(o.metric, o.direction) for o in earlier]
    if had != wanted and not (source.experiment is None and study.metric_names is None
                              and [d for _, d in had] == [d for _, d in wanted]):
        _fail(f"--warm-start {source_text}: its study optimised {', '.join(f'{m} ({d})' for m, d in had)}; "
              f"rule: the same objectives as this search: {', '.join(f'{m} ({d})' for m, d in wanted)}")
    shown = source_text if not url else f"{source.study_name}@{source_text.split('://', 1)[0]}"
    trials = study.get_trials(deepcopy=False)
    if space.define_by_run is not None:
        return fit_prior_trials(trials, shown, define_by_run=space.define_by_run)
    return fit_prior_trials(trials, shown, distributions=optuna_distributions(space.param_space))


def _check_trials_dir(given: str, trials_dir: Path) -> None:
    """The trials directory is a directory, or can be made one: its nearest existing ancestor
    is a directory this user may write (found here, not by ``mkdir`` once Ray runs)."""
    reason = unwritable_reason(trials_dir)
    if reason:
        _fail(f"--trials-dir {given}: {reason}; rule: a directory this user may write (created if missing)")


def _check_address(address: str, source: str) -> None:
    """A Ray cluster must answer at ``address`` (from ``--address`` or the environment's
    ``RAY_ADDRESS``) within seconds: ``ray.init`` would retry for minutes."""
    from tune_nas.ray_tune.cluster import AddressError, check_address

    try:
        check_address(address, what=None if source == "--address" else f"RAY_ADDRESS={address}")
    except AddressError as exc:
        _fail(str(exc))


def _check_this_machine_fits(space, args: argparse.Namespace) -> None:
    """Without a cluster Ray starts on this machine: a trial asking for more CPUs or GPUs than
    it has would never start (Ray would wait for them forever)."""
    spec = space.spec
    cpus = os.cpu_count() or 1
    if spec.cpus_per_trial > cpus:
        where = "--cpus-per-trial" if args.cpus_per_trial is not None else str(space.path)
        _fail(f"cpus_per_trial={spec.cpus_per_trial:g} ({where}): this machine has {cpus} CPU(s) and "
              "Ray starts on it; rule: at most its CPUs, or --address of a cluster that has them")
    workers = spec.workers_per_trial
    wwhere = "--workers-per-trial" if args.workers_per_trial is not None else str(space.path)
    if workers > 1 and spec.cpus_per_trial * workers > cpus:
        _fail(f"workers_per_trial={workers} ({wwhere}) x cpus_per_trial={spec.cpus_per_trial:g}: this machine "
              f"has {cpus} CPU(s) and Ray starts on it; rule: workers_per_trial x cpus_per_trial at most "
              "its CPUs, or --address of a cluster with a node that has them")
    if spec.gpus_per_trial > 0:
        import torch

        gpus = torch.cuda.device_count()
        if spec.gpus_per_trial > gpus:
            where = "--gpus-per-trial" if args.gpus_per_trial is not None else str(space.path)
            _fail(f"gpus_per_trial={spec.gpus_per_trial:g} ({where}): this machine has {gpus} GPU(s) "
                  "and Ray starts on it; rule: at most its GPUs (0 for CPU), or --address of a "
                  "cluster that has them")
        if workers > 1 and spec.gpus_per_trial * workers > gpus:
            _fail(f"workers_per_trial={workers} ({wwhere}) x gpus_per_trial={spec.gpus_per_trial:g}: this "
                  f"machine has {gpus} GPU(s) and Ray starts on it; rule: one GPU per worker, at most "
                  "its GPUs, or --address of a cluster with a node that has them")


def _check_format(saved: Path, resolved: dict[str, Any]) -> None:
    """An experiment written by another version of tune_nas's layout (its pickled Ray state
    names modules that moved) is refused in one line naming the version that wrote it."""
    written = resolved.get("format", 1)
    if written != FORMAT_VERSION:
        _fail(f"{saved}: written by tune_nas experiment format {written} (format 1: tune_nas "
              f"0.1.x before the layout of format {FORMAT_VERSION}); rule: --resume continues "
              f"experiments of format {FORMAT_VERSION}: resume it with the tune_nas that "
              "started it, or start a new experiment")


def _remote_trials_dir(trials_dir: str) -> RemoteTrialsDir | None:
    """``--trials-dir`` as object storage (checked reachable), or None for a local path."""
    if not is_uri(trials_dir):
        return None
    try:
        remote = RemoteTrialsDir.parse(trials_dir)
        remote.check()
    except TrialsDirError as exc:
        _fail(str(exc))
    return remote


def _alias_space_module(space, original: Path) -> None:
    """Let the first run's ``tuner.pkl`` unpickle on resume.

    It refers to a define-by-run function by its module, which ``load_space`` named after the
    original space file (``tune_nas_space_<stem>``); a resume loads the experiment's copy
    (``space.py``), so that module is registered under the original name as well.
    """
    fn = space.define_by_run
    module = sys.modules.get(getattr(fn, "__module__", "") or "") if fn is not None else None
    if module is not None:
        sys.modules.setdefault(f"tune_nas_space_{original.stem}", module)


def _check_saved_study(experiment_dir: Path, name: str) -> None:
    """On resume, the experiment's own SQLite study must load (a truncated or corrupt
    optuna.db would otherwise fail deep inside Ray's restore, with a traceback). Read only: a
    file that is no study (an empty one) is refused as it is, not given Optuna's tables."""
    import optuna

    from tune_nas.study import readonly_sqlite_storage

    path = ExperimentLayout(experiment_dir).study
    if not path.is_file():
        _fail(f"{path}: missing; rule: resume needs the Optuna study the first run wrote")
    if path.stat().st_size == 0:
        _fail(f"{path}: empty (0 bytes); rule: resume needs the Optuna study the first run wrote")
    problem = _not_an_optuna_database(path)
    if problem:
        _fail(f"{path}: {problem}; rule: resume needs the Optuna study the first run wrote")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna.load_study(study_name=name, storage=readonly_sqlite_storage(path))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"{path}: cannot be read back as study {name!r} ({type(exc).__name__}: "
              f"{reason[:300]}); rule: resume needs the Optuna study the first run wrote")


def _not_an_optuna_database(path: Path) -> str | None:
    """Why the file ``path`` (opened read-only) is no Optuna SQLite database, or None."""
    import sqlite3

    from tune_nas.study import readonly_sqlite_connection

    try:
        with contextlib.closing(readonly_sqlite_connection(path)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        return f"not a SQLite database ({exc})"
    if "studies" not in tables:
        return f"a SQLite database without Optuna's tables (it has: {', '.join(sorted(tables)) or 'none'})"
    return None


def _check_storage(url: str) -> None:
    """An external Optuna storage must be reachable before anything runs (password from the
    environment, e.g. PGPASSWORD; the URL is only ever written with its password masked).
    A SQLite file that does not exist yet is not created here: its directory is checked."""
    from tune_nas.storage.study_db import StorageError, check_storage

    new_file = _new_sqlite_file(url)
    if new_file is not None:
        folder = new_file.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            problem = "is not a directory" if not folder.is_dir() else "is not writable"
            _fail(f"--storage {url}: {folder} {problem}; rule: a SQLite file in a directory this "
                  "user may write")
        return
    try:
        check_storage(url)
    except StorageError as exc:
        _fail(str(exc))


def _new_sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL whose file does not exist yet; else None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or \
            database.startswith("file:"):
        return None
    path = expand_user(database, "--storage")
    return None if path.exists() else path


def _check_table_lookup(space):
    """A tabular experiment: its table is readable and a sampled config names a cell, so a
    missing package or a bad arch string fails here; returns what the trials evaluate on."""
    from tune_nas.config.training import split_config
    from tune_nas.tabular import EDGE_KEYS, NB201Table, TableData, TabularError, cell_ops

    try:
        NB201Table(space.spec.dataset)
        _, arch = split_config(space.sample())
        cell_ops(arch.get("arch"), [arch.get(key) for key in EDGE_KEYS])
    except TabularError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(f"{space.path}: {exc}")
    return TableData(space.spec.dataset)


#: At most this many distinct architectures are built before a search (a sampled one first,
#: then the space's edges: every choice, both ends of each range, one at a time).
MAX_BUILDS_CHECKED = 48


#: No architecture argument (a width, a depth, a count of cells) is larger than this.
MAX_ARCH_INT = 1_000_000


def _check_model_size(space, splits, arch: dict[str, Any], shown: str) -> None:
    """Refuse an architecture whose weights alone would not fit in this machine's memory,
    counted on PyTorch's meta device (no memory is allocated); a model that cannot be built so
    is left to the real build that follows."""
    import torch

    from tune_nas.data.sources import available_memory
    from tune_nas.models import create_model_for

    try:
        with torch.device("meta"):
            params = sum(p.numel() for p in create_model_for(space.spec.model, splits, **arch).parameters())
    except Exception:  # noqa: BLE001 - the real build below names what is wrong
        return
    available = available_memory()
    if params * 4 > available:
        _fail(f"{space.path}: model {space.spec.model!r} with {shown}: {params:,} parameters, "
              f"{params * 4 / 2**30:,.1f} GiB of float32 weights alone, this machine has {available / 2**30:,.1f} GiB "
              "available; rule: a model whose weights fit in memory")


def _check_model_builds(space, splits) -> None:
    """Build the model for a sampled config and for the space's edges (every choice of an
    architecture argument, both ends of its range), so that a value no trial could build fails
    here, naming it, instead of failing the trials that draw it."""
    from tune_nas.config.space_file import SpaceError
    from tune_nas.config.training import split_config
    from tune_nas.models import create_model_for

    built: set[str] = set()
    try:
        configs = [space.sample(), *space.edge_configs()]
    except SpaceError as exc:
        _fail(str(exc))
    workers, images = space.spec.workers_per_trial, len(splits.train_x)
    if workers > 1 and all(min(split_config(c)[0].batch_size, images) < workers for c in configs):
        sizes = sorted({split_config(c)[0].batch_size for c in configs})
        _fail(f"{space.path}: batch_size {', '.join(map(str, sizes))} (train set of {images}) with "
              f"workers_per_trial={workers}: no trial could run; rule: every worker gets at least one image "
              "of each batch (batch_size >= workers_per_trial)")
    side = getattr(splits, "image_size", 0)
    pads = sorted({split_config(c)[0].crop_pad for c in configs})
    if side and pads[-1] >= side:
        _fail(f"{space.path}: crop_pad={pads[-1]} on {splits.describe()}: a crop could hold padding only; rule: "
              f"crop_pad below the images' side ({side} px; 4 is usual for 32 px)")
    for config in configs:
        _, arch = split_config(config)
        key = repr(sorted(arch.items(), key=lambda item: str(item[0])))
        if key in built or len(built) >= MAX_BUILDS_CHECKED:
            continue
        built.add(key)
        shown = ", ".join(f"{k}={v!r}" for k, v in arch.items())
        huge = next((f"{k}={v!r}" for k, v in arch.items() if isinstance(v, int) and abs(v) > MAX_ARCH_INT), None)
        if huge:  # a count of layers or channels so large that building would not end
            _fail(f"{space.path}: model {space.spec.model!r} with {huge}: rule: architecture integers at most "
                  f"{MAX_ARCH_INT:,}")
        _check_model_size(space, splits, arch, shown)
        try:
            create_model_for(space.spec.model, splits, **arch)
        except (ValueError, TypeError, RuntimeError) as exc:
            rule = "" if "rule:" in str(exc) else "; rule: the space's architecture arguments must build the model"
            _fail(f"{space.path}: model {space.spec.model!r} cannot be built for {splits.describe()} "
                  f"with {shown or 'its defaults'}: {exc}{rule}")


def _check_packing(space, splits) -> None:
    """With 0 < gpus_per_trial < 1 and a GPU here, refuse a packing whose memory cannot fit."""
    spec = space.spec
    if not 0 < spec.gpus_per_trial < 1:
        return
    import torch

    if not torch.cuda.is_available():
        return  # the GPUs are on other nodes: Ray places the trials, nothing to measure here
    from tune_nas.trial.packing import estimate_packing

    config = space.sample(spec.seed)
    estimate = estimate_packing(spec.model, config, splits, spec.gpus_per_trial)
    if not estimate.fits:
        _fail(f"--gpus-per-trial {spec.gpus_per_trial}: packing needs {estimate.describe()} "
              "(measured with one dry step); rule: the trials sharing a GPU must fit in 90 % of "
              "its memory: raise --gpus-per-trial or lower batch_size")


def write_experiment_files(space, name: str, experiment_dir: Path, args,
                           storage: str | None = None) -> None:
    from tune_nas.storage.study_db import mask_url

    experiment_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(space.path, experiment_dir / SPACE_COPY)
    from dataclasses import asdict

    resolved = {"name": name, "format": FORMAT_VERSION, "space_file": str(space.path),
                "space_kind": space.kind,
                "spec": asdict(space.spec),
                "overrides": {k: v for k, v in _overrides(args).items() if v is not None},
                "param_space": {k: repr(v) for k, v in space.param_space.items()},
                "storage": mask_url(storage) if storage else None,
                "created": datetime.now().isoformat(timespec="seconds")}
    prior = getattr(args, "prior", None)
    if prior is not None:
        resolved["warm_start"] = prior.as_dict()
    (experiment_dir / EXPERIMENT_FILE).write_text(json.dumps(resolved, indent=2) + "\n")


def build_summary(outcome, space, name: str, experiment_dir: Path, wall_s: float,
                  splits) -> dict[str, Any]:
    """summary.json: the experiment, its objective, counts by state, the best trial by the
    objective (``value`` in the objective's units: a loss for ``val/loss``), every trial."""
    from tune_nas.record.bookkeeper import architecture, hyperparameters

    keeper = outcome.bookkeeper
    spec = space.spec
    objective, objectives, constraints = spec.objective, spec.objective_list, spec.constraint_list
    finished = [t for t in keeper.ranked() if feasible(t.last, constraints)]  # COMPLETE, best first
    best = finished[0] if finished else None
    points = [[t.last.get(o.metric) for o in objectives] for t in finished]
    pareto = sorted(finished[i].number for i in pareto_front(points, objectives))
    best_dict = None
    if best is not None:
        best_dict = {"number": best.number, "trial_id": best.trial_id, "run": best.run,
                     "config": hyperparameters(best.config), "epochs": best.epochs,
                     "value": best.last.get(objective.metric),
                     "val_acc": best.last.get("val/acc"), "val_loss": best.last.get("val/loss"),
                     "test_acc": best.last.get("test/acc"),
                     **{k.replace("/", "_"): best.last.get(k) for k in ("val/r2", "test/r2", "test/mse")
                        if k in best.last},
                     "params": best.last.get("model/params"), "flops": best.last.get("model/flops"),
                     "arch": architecture(best.last.get("arch")), "arch_hash": best.last.get("arch_hash"),
                     "checkpoint": best.checkpoint}
    summary = {
        "experiment": name, "format": FORMAT_VERSION, "space_file": str(space.path),
        "dataset": splits.describe(), "model": space.spec.model,
        "objective": objective.as_dict(), "metric": objective.metric, "mode": objective.direction,
        "searcher": space.spec.searcher, "scheduler": space.spec.scheduler,
        "max_epochs": space.spec.max_epochs, "num_samples": space.spec.num_samples,
        "workers_per_trial": space.spec.workers_per_trial,
        "counts": keeper.counts(), "best": best_dict, "wall_time_s": round(wall_s, 2),
        "study": {"name": outcome.study_name, "storage": outcome.storage_url},
        "versions": _versions(),
        "objectives": [o.as_dict() for o in objectives], "constraints": [c.as_dict() for c in constraints],
        "pareto": pareto,
        "trials": [_trial_dict(t, objectives, constraints) for t in sorted(keeper.trials.values(), key=lambda t: t.number)],
    }
    cells = _cell_counts(outcome)
    if cells is not None:
        summary["cells"] = cells
    return summary


def _trial_dict(record, objectives, constraints) -> dict[str, Any]:
    """A trial's summary record; with several objectives its ``values`` (metric -> last value),
    with constraints whether it keeps them (``feasible``)."""
    out = record.as_dict(objectives[0])
    if len(objectives) > 1:
        out["values"] = {o.metric: record.last.get(o.metric) for o in objectives}
    if constraints:
        out["feasible"] = feasible(record.last, constraints)
    return out


def _cell_counts(outcome) -> dict[str, Any] | None:
    """A cell search's proposal counts (:func:`tune_nas.search.cells.proposal_counts`) from its study."""
    import optuna

    from tune_nas.search.cells import proposal_counts
    from tune_nas.storage.study_db import open_storage

    study = optuna.load_study(study_name=outcome.study_name, storage=open_storage(outcome.storage_url_full))
    return proposal_counts(study.get_trials(deepcopy=False))


def _print_pareto(summary: dict[str, Any]) -> None:
    """With several objectives: the Pareto front, one row per trial on it."""
    objectives = [Objective.from_dict(o) for o in summary.get("objectives", [])]
    if len(objectives) < 2:
        return
    constraints = ", ".join(f"{c['metric']} {c['op']} {c['bound']:g}" for c in summary.get("constraints", []))
    front = [t for t in summary["trials"] if t["number"] in set(summary["pareto"])]
    front.sort(key=lambda t: [-objectives[0].sign * t["values"][objectives[0].metric]])
    print(f"Pareto front of {' / '.join(o.describe() for o in objectives)}: {len(front)} trials"
          + (f" (feasible: {constraints})" if constraints else ""))
    print("  trial  " + "  ".join(f"{o.label:>14}" for o in objectives) + "  test acc")
    for t in front:
        print(f"  {t['number']:>5}  " + "  ".join(f"{formatting.number(t['values'][o.metric]):>14}" for o in objectives)
              + f"  {formatting.number(t['test_acc'])}")


def print_report(summary: dict[str, Any], experiment_dir: Path) -> None:
    from tune_nas.record.console import short_config

    print()
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items())
    print(f"Experiment {summary['experiment']}: {sum(summary['counts'].values())} trials "
          f"({counts}) in {summary['wall_time_s']:.1f} s")
    best = summary["best"]
    _print_pareto(summary)
    if best:
        objective = Objective.from_dict(summary["objective"])
        if "test_r2" in best or "val_r2" in best:  # a regressor
            extra = f", val R² {formatting.number(best.get('val_r2'))}"
            test = f"test R² {formatting.number(best.get('test_r2'))}"
        else:
            extra = "" if objective.metric == "val/acc" or best["val_acc"] is None else \
                f", val acc {best['val_acc']:.4f}"
            test = f"test acc {formatting.number(best['test_acc'])}"
        print(f"Best trial {best['number']} ({best['epochs']} epochs, {best['params']} params): "
              f"{objective.label} {formatting.number(best['value'])}{extra}, {test}")
        print(f"  config: {short_config(best['config'])}")
        if best.get("arch"):
            arch = best["arch"]
            text = json.dumps(arch, separators=(",", ":")) if isinstance(arch, dict) else arch
            print(f"  architecture: {text}" + (f" (hash {best['arch_hash']})" if best.get("arch_hash") else ""))
    else:
        print("No trial completed its full budget; see trials.json for what happened.")
    cells = summary.get("cells")
    if cells:
        print(f"Cells: {cells['trained']} trained, {cells['unique_cells']} unique; proposals resampled: "
              f"{cells['duplicates_avoided']} isomorphic to a cell trained, {cells['invalid_rejected']} invalid")
        if cells.get("exhausted"):
            print(f"  the search ended early: {cells['exhausted']}")
    emulator = summary.get("emulator")
    if emulator:
        print(emulator.get("line") or f"emulator: not measured ({emulator.get('error')})")
    final = summary.get("final_stage")
    if final and final.get("trials"):
        rho = final["rank_correlation"]["spearman"]
        print(f"Final stage: top {final['k']} retrained at full fidelity ({final['data']}, "
              f"{final['epochs']} epochs): Spearman ρ(search, final) = "
              f"{'n/a' if rho is None else f'{rho:.2f}'}; the search's best is "
              f"{'also' if final['top1_agrees'] else 'NOT'} the best at full fidelity "
              f"(trial {final['best_final_trial']})")
        for row in final["trials"]:
            test = next((v for k, v in row.items() if k.startswith("final_test_")), None)
            print(f"  trial {row['search_trial']:>3}: search {row['search_value']:.4f} -> final "
                  f"{formatting.number(row['final_value'])} (test {formatting.number(test)})")
    rel = _display_path(experiment_dir)
    if summary.get("trials_storage"):
        print(f"Trials and checkpoints are in {summary['trials_storage']}/; the driver's files "
              f"in {rel}/ (summary.json, curves.csv, trials.json, optuna.db, tensorboard/)")
    else:
        print(f"Everything is in {rel}/ (summary.json, curves.csv, trials.json, optuna.db, "
              "tensorboard/, checkpoints)")
    print(f"  TensorBoard:      tensorboard --logdir {rel}/tensorboard --host 127.0.0.1")
    storage = summary["study"]["storage"]
    url = storage if not storage.startswith("sqlite") else f"sqlite:///{rel}/optuna.db"
    print(f"  Optuna dashboard: optuna-dashboard {url} --host 127.0.0.1")
    print(f"  Study summary:    python -m tune_nas.study {rel}")


def _fidelity(experiment_dir: Path) -> None:
    """Write fidelity.json / fidelity.txt / curves.png / fidelity.png and print the gist."""
    from tune_nas.analysis.fidelity import fidelity_report

    try:
        report = fidelity_report(experiment_dir)
    except (ValueError, OSError) as exc:
        print(f"  Fidelity analysis skipped: {exc}")
        return
    grace = report.suggested_grace_period
    advice = (f"suggested ASHA grace period {grace}" if grace is not None
              else "no grace period suggested")
    print(f"  Fidelity:         {_display_path(experiment_dir)}/fidelity.txt ({advice}"
          + (f"; {len(report.warnings)} warning(s)" if report.warnings else "") + ")")


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _hold_driver_lock(experiment_dir: Path, name: str) -> None:
    """This process becomes the experiment's one driver, or exits 2 naming the one that is."""
    from tune_nas.storage.driver_lock import ExperimentBusy, hold_driver_lock

    try:
        hold_driver_lock(experiment_dir)
    except ExperimentBusy as exc:
        _fail(f"--resume --name {name}: {exc}; rule: one driver per experiment: stop that one "
              "(Ctrl-C, which saves it) or let it end, then resume")


def main(argv: list[str] | None = None) -> int:
    from tune_nas.storage.driver_lock import release_driver_locks

    try:
        return _main(argv)
    finally:
        release_driver_locks()  # the process ends here, unless a caller (a test) runs on


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        space, (splits, full_splits), name, experiment_dir, storage, remote = prepare(args)
    except UnknownHome as exc:  # a ~USER path of any flag: found while validating, nothing written yet
        _fail(str(exc))
    if args.resume:  # before any Ray work: a second driver would interleave the first one's records
        _hold_driver_lock(experiment_dir, name)

    from tune_nas.ray_tune import cluster
    from tune_nas.ray_tune.run import run_final_stage, run_search
    from tune_nas.record.console import ProgressPrinter

    started = time.monotonic()
    spec = space.spec
    evaluated = (f"cells looked up in {splits.describe()}; one report each" if spec.evaluation == "tabular"
                 else f"{spec.model} on {splits.describe()}; ≤{spec.max_epochs} epochs each")
    print(f"tune_nas: {'resuming' if args.resume else 'starting'} {name}: {spec.num_samples} "
          f"trials of {evaluated}, {spec.searcher} search, {spec.scheduler} scheduler on "
          f"{spec.objective.describe()}", flush=True)
    # Ray's start is mostly waiting for its processes: meanwhile the study's database layer
    # is imported (what opening optuna.db costs), off the path to the first trial.
    from tune_nas.storage.study_db import warm_up

    warming = threading.Thread(target=warm_up, name="warm-up-study-storage", daemon=True)
    warming.start()
    try:
        cluster.init_ray(args.address)
        cluster.check_resources(spec)
        if remote is None:
            cluster.check_trials_dir_is_shared(experiment_dir.parent)
    except cluster.ResourceError as exc:
        cluster.shutdown()
        _fail(str(exc))
    if not args.resume:
        write_experiment_files(space, name, experiment_dir, args, storage)
        _hold_driver_lock(experiment_dir, name)
        if remote:
            remote.upload(experiment_dir, name)
    printer = ProgressPrinter(spec.objective, time_budget_s=spec.time_budget_s,
                              test_metric=TEST_HEADLINE[spec.task])
    warming.join()
    try:
        outcome = run_search(space, splits, experiment_dir, name, printer,
                                   resume=args.resume, storage_url=storage, remote=remote,
                                   prior=args.prior)
        final = (run_final_stage(space, full_splits, outcome, experiment_dir, printer,
                                       remote=remote)
                 if space.spec.final_top_k else None)
    except BaseException as exc:
        cluster.shutdown()
        if not isinstance(exc, KeyboardInterrupt):
            raise
        if remote:
            remote.upload(experiment_dir, name)
        trials_arg = args.trials_dir if remote else _display_path(experiment_dir.parent)
        print(f"\nInterrupted. Continue with: python -m tune_nas.launch --name {name} "
              f"--trials-dir '{trials_arg}' --resume", file=sys.stderr)
        return 130
    wall_s = time.monotonic() - started
    # measured now, with Ray idle (not while it stops, beside the report): the timings are its point
    emulator = _measure_emulator(space, outcome, final, full_splits) if spec.task == "regression" else None

    def report() -> dict[str, Any]:
        from tune_nas.record.bookkeeper import write_json

        summary = build_summary(outcome, space, name, experiment_dir, wall_s, splits)
        if args.prior is not None:
            summary["warm_start"] = args.prior.as_dict()
        if remote:
            summary["trials_storage"] = remote.display(name)
        if final is not None:
            summary["final_stage"] = final
        if emulator is not None:
            summary["emulator"] = emulator
        write_json(experiment_dir / SUMMARY_FILE, summary)
        print_report(summary, experiment_dir)
        _fidelity(experiment_dir)
        if remote:
            count = remote.upload(experiment_dir, name)
            print(f"  Mirrored:         {count} files to {remote.display(name)}/")
        return summary

    # Ray's shutdown is mostly waiting for its processes to exit: the report (summary, the
    # terminal report, the fidelity analysis with pandas and scipy) is made meanwhile.
    summary = while_ray_stops(report, cluster.shutdown)
    finished = summary["counts"].get("COMPLETE", 0) + summary["counts"].get("PRUNED", 0)
    return 0 if finished else 1


def _measure_emulator(space, outcome, final: dict[str, Any] | None, splits) -> dict[str, Any] | None:
    """A regression experiment's best network (the final stage's best retrained one, else the
    search's best COMPLETE trial that keeps the constraints) measured against its simulator
    (:mod:`tune_nas.analysis.emulator`); None when no trial completed. A network that cannot be
    read back is reported in the dict (``error``), not raised: the search's results stand."""
    from tune_nas.analysis.emulator import describe, load_trained_model, measure_emulator

    spec = space.spec
    chosen = None
    if final and final.get("best_final_checkpoint"):
        number = final["best_final_trial"]
        record = next(t for t in outcome.bookkeeper.trials.values() if t.number == number)
        chosen = (f"final stage (search trial {number})", record.config, final["best_final_checkpoint"])
    else:
        ranked = [t for t in outcome.bookkeeper.ranked() if feasible(t.last, spec.constraint_list)]
        if ranked and ranked[0].checkpoint:
            chosen = (f"search trial {ranked[0].number}", ranked[0].config, ranked[0].checkpoint)
    if chosen is None:
        return None
    where, config, checkpoint = chosen
    print(f"tune_nas: measuring the best emulator ({where}) against the simulator", flush=True)
    try:
        model = load_trained_model(spec.model, config, checkpoint, splits)
        result = {"trial": where, "checkpoint": checkpoint, **measure_emulator(model, splits)}
    except Exception as exc:  # a moved checkpoint, a simulator that fails: said, not fatal
        return {"trial": where, "checkpoint": checkpoint, "error": f"{type(exc).__name__}: {exc}"}
    result["line"] = describe(result)
    return result


def while_ray_stops(work: Callable[[], Any], stop_ray: Callable[[], None]) -> Any:
    """Run ``work`` in a thread while ``stop_ray`` runs here; ``work``'s result or its error."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="report-while-ray-stops")
    thread.start()
    try:
        stop_ray()
    finally:
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def exit_now(code: int) -> NoReturn:
    """Exit once everything is written and flushed, skipping the interpreter's teardown.

    By now Ray is stopped, every file is closed and the study's database committed; what is
    left is unloading torch, pandas, scipy and Ray's extension modules (~1.3 s measured on
    the benchmark's 2-core machine) that nothing needs.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
