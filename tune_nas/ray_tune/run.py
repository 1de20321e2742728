"""Run a search (or its final stage) with Ray Tune: the Tuner, its storage, resume.

Data flows one way: the launcher hands over a validated space, the decoded data and the
experiment directory; trials run :func:`tune_nas.trial.run.run_trial` in reused Ray workers
(no process start, no re-import, no re-read of the data per trial); the driver-side callback
(:mod:`tune_nas.ray_tune.callbacks`) forwards every trial event to the bookkeeper and tells
Optuna the truth about each trial (:mod:`tune_nas.ray_tune.optuna_bridge`).
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.sample import Domain

from tune_nas.config.space_file import SearchSpace
from tune_nas.config.training import TrialSetup
from tune_nas.data.sources import ArraySplits
from tune_nas.layout import ExperimentLayout
from tune_nas.metric_keys import TEST_HEADLINE
from tune_nas.objectives import selection_order
from tune_nas.ray_tune.callbacks import (
    FINAL_KEY,
    FinalStageEvents,
    MirrorUpload,
    TrialEvents,
    trial_config,
)
from tune_nas.ray_tune.cluster import concurrent_slots
from tune_nas.ray_tune.optuna_bridge import CheckedSearchGenerator, ConstantSpace, RecordingOptunaSearch
from tune_nas.ray_tune.scheduler_adapter import PolicyScheduler
from tune_nas.ray_tune.worker_deaths import worker_deaths_fail_trials
from tune_nas.record.bookkeeper import COMPLETE, Bookkeeper
from tune_nas.record.console import ProgressPrinter
from tune_nas.schedulers import create_policy
from tune_nas.search import create_sampler
from tune_nas.search.cells import CellSampler
from tune_nas.search.prior_trials import PriorTrials
from tune_nas.storage.trials_dir import RemoteTrialsDir, ThrottledUpload


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGUSR1) reached Ray Tune: it saved the experiment and ended the search
    early, with trials unfinished; ``--resume`` continues it."""


def _ray_trial(config: dict[str, Any], splits: ArraySplits, setup: TrialSetup) -> None:
    """The function Ray runs per trial: resume from Ray's checkpoint if there is one."""

    class Reporter:
        def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
            checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            tune.report(metrics, checkpoint=checkpoint)

    from tune_nas.trial.run import run_trial  # in the worker: the driver never imports Lightning

    config = trial_config(config)
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        run_trial(config, splits, setup, Reporter())
        return
    with checkpoint.as_directory() as resume_dir:
        run_trial(config, splits, setup, Reporter(), resume_dir=resume_dir)


def _ray_tabular_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The function Ray runs per trial of a tabular experiment: one lookup, one report."""

    class Reporter:
        def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
            tune.report(metrics)

    from tune_nas.trial.tabular import run_tabular_trial

    run_tabular_trial(trial_config(config), setup, Reporter())


def _trainable(spec, splits: ArraySplits, max_epochs: int, checkpoint_epochs: tuple[int, ...] = ()):
    """Ray's trainable for ``spec``: the data go to the object store once (shared by every
    trial of a node), each trial gets the spec's CPUs and (fractional) GPUs and checkpoints
    after ``checkpoint_epochs`` besides every ``checkpoint_every``. A tabular experiment's
    trials get no data: each reads its table (once per worker process).
    A data-parallel trial (``workers_per_trial`` N > 1) reserves N times the CPUs and GPUs in
    its placement group's one bundle: all on one node, where its actor starts the other N-1
    workers (:mod:`tune_nas.trial.data_parallel`)."""
    workers = int(getattr(spec, "workers_per_trial", 1))
    setup = TrialSetup(model=spec.model, max_epochs=max_epochs, seed=spec.seed,
                       checkpoint_every=spec.checkpoint_every, checkpoint_epochs=checkpoint_epochs,
                       cpus_per_trial=spec.cpus_per_trial, gpus_per_trial=spec.gpus_per_trial,
                       workers_per_trial=workers, plugins=tuple(spec.plugins), dataset=spec.dataset)
    if spec.evaluation == "tabular":
        trial = tune.with_parameters(_ray_tabular_trial, setup=setup)
    else:
        trial = tune.with_parameters(_ray_trial, splits=splits, setup=setup)
    return tune.with_resources(trial, trial_resources(spec))


def trial_resources(spec) -> dict[str, float]:
    """What one trial reserves: every data-parallel worker's CPUs and GPUs."""
    workers = int(getattr(spec, "workers_per_trial", 1))
    return {"cpu": spec.cpus_per_trial * workers, "gpu": spec.gpus_per_trial * workers}


def _ray_storage(remote: RemoteTrialsDir | None, trials_dir: Path, *names: str) -> dict[str, Any]:
    """Ray's ``storage_path`` and ``storage_filesystem`` for ``<trials dir>/<names...>``: the
    object storage when the trials directory is one, else the local directory."""
    if remote:
        return {"storage_path": "/".join([remote.path, *names]), "storage_filesystem": remote.filesystem}
    return {"storage_path": str(trials_dir.joinpath(*names)), "storage_filesystem": None}


def trial_dirname(trial) -> str:
    """Ray's per-trial directory: ``trial_007_<ray id>`` (Optuna number first)."""
    number = trial_config(trial.config).get("trial_number")
    return f"trial_{number:03d}_{trial.trial_id}" if isinstance(number, int) else f"trial_{trial.trial_id}"


@dataclass
class SearchOutcome:
    bookkeeper: Bookkeeper
    study_name: str
    storage_url: str  # masked, for reports
    storage_url_full: str = ""  # as given (never holds a password: those are refused)


def run_search(space: SearchSpace, splits: ArraySplits, experiment_dir: Path, name: str,
               printer: ProgressPrinter, resume: bool = False,
               storage_url: str | None = None, remote: RemoteTrialsDir | None = None,
               prior: PriorTrials | None = None) -> SearchOutcome:
    """Run (or resume) the search of ``space`` on ``splits``; results land in ``experiment_dir``
    (Ray's trials in ``remote`` instead when the trials directory is object storage). A fresh
    study begins with the ``prior`` trials (a warm start), finished, before its first ask."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    spec = space.spec
    # a policy that pauses trials (asha_promotion) resumes them from the epoch they paused
    # after: they checkpoint there, whatever checkpoint_every says
    pause_epochs = getattr(create_policy(spec.scheduler, spec), "pause_epochs", ())
    trainable = _trainable(spec, splits, spec.max_epochs, tuple(pause_epochs))
    from tune_nas.storage.study_db import mask_url, open_storage

    storage_url = storage_url or ExperimentLayout(experiment_dir).study_url()
    # Ray lets a searcher keep only ONE trial pending by default, so with Optuna trials run
    # one at a time whatever the resources: allow as many as can run at once.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(concurrent_slots(spec))
    param_space, define_by_run = dict(space.param_space), space.define_by_run
    if define_by_run is None and not any(isinstance(v, Domain) for v in param_space.values()):
        # nothing to sample (e.g. retraining one configuration): every trial gets the constants
        define_by_run, param_space = ConstantSpace(param_space), {}
    if resume:
        stored = _ray_storage(remote, experiment_dir.parent, name)
        tuner = tune.Tuner.restore(stored["storage_path"], trainable=trainable,
                                   resume_unfinished=True, resume_errored=False,
                                   param_space=param_space or None,
                                   storage_filesystem=stored["storage_filesystem"])
        callbacks = tuner._local_tuner.get_run_config().callbacks or []
        events = next(c for c in callbacks if isinstance(c, TrialEvents))
        events.printer = printer
        events.num_samples = spec.num_samples
        events.scheduler = tuner._local_tuner._tune_config.scheduler  # the one Ray runs (pickled apart)
        # the paths saved with the callbacks are the first run's; the experiment's files may
        # be elsewhere now (a new head node fetching its mirror into another directory)
        events.bookkeeper = Bookkeeper(experiment_dir, spec.objective, spec.max_epochs, task=spec.task)
        events.searcher.storage_url = storage_url
        events.searcher.relocate = events.bookkeeper.moved_here  # parents' checkpoints, if the experiment moved
        for mirror in (c for c in callbacks if isinstance(c, MirrorUpload)):
            mirror.upload.local_dir = experiment_dir  # this machine's mirror
        keeper = _fit(tuner, events.bookkeeper, events, spec.time_budget_s)
        return SearchOutcome(keeper, events.searcher.study_name, mask_url(storage_url), storage_url)

    sampler = create_sampler(spec.searcher, spec.searcher_settings())
    genotype = space.cell_genotype()
    if genotype is not None:  # a cell space: only valid cells, none isomorphic to one trained
        sampler = CellSampler(sampler, genotype, seed=spec.seed)
    storage = open_storage(storage_url)
    objectives = spec.objective_list
    if prior is not None:
        optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                            directions=[o.optuna_direction for o in objectives]).add_trials(prior.trials)
        printer.note(prior.describe())
    searcher = RecordingOptunaSearch(
        space=define_by_run, sampler=sampler, study_name=name, storage=storage,
        metric=[o.metric for o in objectives] if spec.multi_objective else spec.metric,
        mode=[o.direction for o in objectives] if spec.multi_objective else spec.mode)
    searcher.storage_url = storage_url
    searcher.objectives, searcher.constraints = objectives, spec.constraint_list
    scheduler = PolicyScheduler(create_policy(spec.scheduler, spec),
                                spec.objective_list if spec.multi_objective else spec.objective,
                                time_attr="epoch", constraints=spec.constraint_list)
    bookkeeper = Bookkeeper(experiment_dir, spec.objective, spec.max_epochs, task=spec.task)
    limited = (ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent_trials)
               if spec.max_concurrent_trials else searcher)
    generator = CheckedSearchGenerator(limited)  # what Ray would wrap the searcher in
    events = TrialEvents(bookkeeper, searcher, printer, generator, scheduler)
    callbacks: list[tune.Callback] = [events]
    if remote:
        callbacks.append(MirrorUpload(ThrottledUpload(remote, experiment_dir, name)))
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=generator, scheduler=scheduler, num_samples=spec.num_samples,
            reuse_actors=True,
            time_budget_s=spec.time_budget_s or None,
            trial_dirname_creator=trial_dirname, trial_name_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=name, **_ray_storage(remote, experiment_dir.parent), callbacks=callbacks, verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures)),
    )
    keeper = _fit(tuner, events.bookkeeper, events, spec.time_budget_s)
    return SearchOutcome(keeper, name, mask_url(storage_url), storage_url)


def run_final_stage(space: SearchSpace, full_splits: ArraySplits, search: SearchOutcome,
                    experiment_dir: Path, printer: ProgressPrinter,
                    remote: RemoteTrialsDir | None = None) -> dict[str, Any]:
    """Retrain the search's top-k configurations (COMPLETE trials that keep the constraints,
    best first by :func:`~tune_nas.objectives.selection_order`: the objective, or with several
    the Pareto front first) at full fidelity (all data, native size, ``final_max_epochs``), each as a trial of its own under
    ``<experiment>/final/``, record them in the study ``<name>-final`` (same direction), and
    measure whether the proxy ranked them well."""
    import optuna

    from tune_nas.analysis.fidelity import aligned_rank_correlation, top_k_overlap
    from tune_nas.record.bookkeeper import hyperparameters
    from tune_nas.storage.study_db import open_storage

    spec, layout = space.spec, ExperimentLayout(experiment_dir)
    objective = spec.objective
    done = [t for t in search.bookkeeper.trials.values() if t.state == COMPLETE]
    done.sort(key=lambda t: t.number)
    order = selection_order([t.last for t in done], spec.objective_list, spec.constraint_list)
    top = [done[i] for i in order[: spec.final_top_k]]  # feasible; several objectives: the front first
    if not top:
        return {"k": 0, "note": "no COMPLETE search trial to retrain"}
    epochs = spec.final_max_epochs or spec.max_epochs
    trainable = _trainable(spec, full_splits, epochs)
    points = [{**hyperparameters(t.config), "trial_number": t.number,
               "trial_run": f"final_{t.run}"} for t in top]
    keeper = Bookkeeper(layout.final.root, objective, epochs, tensorboard_dir=layout.tensorboard,
                        task=space.spec.task)
    printer.note(f"final stage: retraining the top {len(top)} configurations at full fidelity "
                 f"({full_splits.describe()}, {epochs} epochs)")
    tuner = tune.Tuner(
        trainable,
        param_space={FINAL_KEY: tune.grid_search(points)},  # one trial per configuration
        tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True,
                                    trial_dirname_creator=trial_dirname,
                                    trial_name_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=layout.final.name, verbose=0, **_ray_storage(remote, experiment_dir.parent, experiment_dir.name),
            callbacks=[FinalStageEvents(keeper, printer)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures)))
    _fit(tuner, keeper)

    proxy = {t.number: t.last[objective.metric] for t in top}
    final = {t.number: t.last.get(objective.metric) for t in keeper.trials.values()
             if t.state == COMPLETE}
    test_metric = TEST_HEADLINE[spec.task]  # test/acc, test/r2
    test_key = test_metric.replace("/", "_")
    final_test = {t.number: t.last.get(test_metric) for t in keeper.trials.values()
                  if t.state == COMPLETE}
    study = optuna.create_study(study_name=f"{search.study_name}-final",
                                storage=open_storage(search.storage_url_full),
                                direction=objective.optuna_direction,
                                load_if_exists=True)
    for t in keeper.trials.values():
        value = t.last.get(objective.metric) if t.state == COMPLETE else None
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL,
            value=value, params={}, distributions={},
            user_attrs={"search_trial": t.number, "config": hyperparameters(t.config),
                        "search_value": proxy.get(t.number), test_key: t.last.get(test_metric),
                        "epochs": t.epochs, "checkpoint": t.checkpoint, "error": t.reason}))
    corr = aligned_rank_correlation(proxy, {k: v for k, v in final.items() if v is not None})
    best_final = objective.best_of(final, final.get)
    return {
        "k": len(top), "epochs": epochs, "data": full_splits.describe(),
        "study": f"{search.study_name}-final",
        "trials": [{"search_trial": n, "search_value": proxy[n], "final_value": final.get(n),
                    f"final_{test_key}": final_test.get(n)} for n in proxy],
        "rank_correlation": corr.as_dict(),
        "top1_agrees": best_final == top[0].number if best_final is not None else None,
        "top_half_overlap": top_k_overlap(proxy, final, max(1, len(final) // 2), objective)
        if final else None,
        "best_final_trial": best_final,
        # the retrained best's network, for what is measured after the search (an emulator's speed)
        "best_final_checkpoint": next((t.checkpoint for t in keeper.trials.values()
                                       if t.number == best_final and t.state == COMPLETE), None),
    }


class _StopSignal:
    """Whether Ray Tune caught a stop signal (Ctrl-C, SIGUSR1) during ``fit``.

    For the run Ray installs a SIGINT handler that saves the experiment and ends the search;
    ``fit`` then returns as if the search were done. That handler puts the previous one back
    when it fires, and only then, so finding the previous handler in place afterwards is the
    sign. Ray's handler, left installed after a normal end, is replaced by the previous one.
    """

    def __enter__(self) -> _StopSignal:
        self.armed = (threading.current_thread() is threading.main_thread()
                      and not int(os.getenv("TUNE_DISABLE_SIGINT_HANDLER", "0")))
        self.before = signal.getsignal(signal.SIGINT)
        self.caught = False
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.armed:
            self.caught = signal.getsignal(signal.SIGINT) is self.before
            signal.signal(signal.SIGINT, self.before)


def _fit(tuner, keeper: Bookkeeper, events: TrialEvents | None = None,
         time_budget_s: float = 0.0) -> Bookkeeper:
    """Run ``tuner``; ``keeper``'s files are written whatever happens. At the time budget the
    search's trials still running are ended (``events``); a stop signal raises
    :class:`SearchInterrupted`."""
    try:
        with _StopSignal() as stop, worker_deaths_fail_trials():
            tuner.fit()
        if events is not None and not stop.caught and time_budget_s:
            events.end_unfinished(f"stopped by the search's time budget ({time_budget_s:g} s)")
    finally:
        keeper.close()  # curves.csv and trials.json whole
    if stop.caught:
        raise SearchInterrupted()
    return keeper


