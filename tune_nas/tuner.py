"""The one module that talks to Ray Tune: Tuner, ASHA, the Optuna searcher, callbacks, resume.

Data flows one way: the launcher hands over a validated space, the decoded data and the
experiment directory; trials run :func:`tune_nas.trainable.run_trial` in reused Ray workers
(no process start, no re-import, no re-read of the data per trial); the driver-side callback
forwards every trial event to :class:`tune_nas.bookkeeping.Bookkeeper` and tells Optuna the
truth about each trial (see :class:`RecordingOptunaSearch`).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bookkeeping import COMPLETE, FAIL, PRUNED, RUNNING, Bookkeeper, final_state, run_name
from .console import ProgressPrinter
from .data import ArraySplits
from .spaces import SearchSpace
from .training_config import TrialSetup
from .trials_storage import RemoteTrialsDir, ThrottledUpload

# Ray's own per-trial CSV/JSON/TensorBoard loggers would duplicate bookkeeping.py's files.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1e9")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, SearchGenerator  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402
from ray.tune.search.sample import Domain  # noqa: E402

STUDY_FILE = "optuna.db"


class ResourceError(ValueError):
    """The cluster cannot run the requested trials (e.g. GPUs asked for, none present)."""


class CheckedSearchGenerator(SearchGenerator):
    """Ray's wrapper of a searcher, which counts the trials it has created, with a check of
    that count on resume.

    Ray's experiment snapshot on object storage is uploaded file by file: a driver killed in
    between can leave a count that includes trials the restored experiment does not hold.
    Those never run, and Ray, counting them, would end the search short of ``num_samples``.
    """

    def reconcile(self, known_trials: int) -> int:
        """Count only the ``known_trials`` the restored experiment holds; returns how many
        created trials it lost (their Optuna trials are FAIL "orphaned"), now created anew."""
        lost = self._counter - known_trials
        if lost > 0:
            self._counter = known_trials
        return max(0, lost)


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGUSR1) reached Ray Tune: it saved the experiment and ended the search
    early, with trials unfinished; ``--resume`` continues it."""


def study_storage_url(experiment_dir: Path) -> str:
    return f"sqlite:///{experiment_dir / STUDY_FILE}"


class ConstantSpace:
    """A define-by-run "space" that samples nothing and returns fixed values."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = dict(values)

    def __call__(self, trial) -> dict[str, Any]:
        return dict(self.values)


class RecordingOptunaSearch(OptunaSearch):
    """Ray's Optuna searcher, telling the study what actually happened to each trial.

    Ray's ``OptunaSearch`` stores every stopped trial as COMPLETE with its last (early-rung)
    value. Here a trial the scheduler stopped is told as PRUNED (its per-epoch values are its
    intermediate values), only a trial that trained ``max_epochs`` is COMPLETE, and a failed
    one is FAIL with the reason as a user attribute. The sampler therefore learns from pruned
    trials the way Optuna's TPE does by design: they rank below every complete trial, ordered
    by the epoch they reached and their last value there.

    Each Optuna trial carries ``ray_trial_id`` and ``tensorboard_run`` from its start and
    ``epochs``, ``checkpoint``, ``test_acc`` and ``params`` at its end; each Ray trial's config
    carries ``trial_number`` (the Optuna number) and ``trial_run`` (its TensorBoard run).
    The final ``tell`` is made by :class:`TrialEvents`, which sees the whole Ray trial.
    """

    #: Where the study lives now; set by the tuner on every run, fresh or resumed. The pickled
    #: searcher (Ray's tuner.pkl and searcher-state-*.pkl) holds only the study's name and its
    #: trials' ids, never a storage: an experiment that moved since (another disk, a renamed
    #: folder, a new head node) resumes with its own optuna.db, not a path that is gone.
    storage_url: str | None = None

    def _detached(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get("_ot_study") is not None:
            state["_ot_trial_ids"] = {rid: t._trial_id for rid, t in state["_ot_trials"].items()}
            state.update(_ot_study=None, _ot_trials={})
        # Ray's tuner.pkl is written before the study is set up: the storage goes in neither
        state.update(_storage=None, storage_url=None)  # given anew by every run
        return state

    def _setup_study(self, mode) -> None:
        """Create (or load) the study where :attr:`storage_url` says, for a searcher that was
        unpickled before its study was set up (Ray's tuner.pkl)."""
        if self._storage is None and self.storage_url:
            from .study_storage import open_storage

            self._storage = open_storage(self.storage_url)
        super()._setup_study(mode)

    def __getstate__(self) -> dict[str, Any]:
        return self._detached()

    def save(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump(self._detached(), f)

    def restore(self, checkpoint_path: str) -> None:
        url = self.storage_url  # this run's, not the one saved with the state
        super().restore(checkpoint_path)
        self.attach(url)

    def attach(self, storage_url: str | None = None) -> None:
        """Open the study (at ``storage_url``, else :attr:`storage_url`) for a searcher that
        was unpickled; a searcher that holds its study already is left as it is."""
        import optuna

        from .study_storage import open_storage

        if storage_url:
            self.storage_url = storage_url
        ids = self.__dict__.pop("_ot_trial_ids", None)
        if ids is None:
            return
        if not self.storage_url:
            raise RuntimeError("the restored Optuna searcher was given no study storage")
        self._storage = open_storage(self.storage_url)
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                           sampler=self._sampler, pruner=optuna.pruners.NopPruner())
        self._ot_trials = {rid: optuna.trial.Trial(self._ot_study, tid) for rid, tid in ids.items()}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        if config is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        config["trial_number"] = ot_trial.number
        config["trial_run"] = run_name(ot_trial.number, config)
        ot_trial.set_user_attr("ray_trial_id", trial_id)
        ot_trial.set_user_attr("tensorboard_run", config["trial_run"])
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value) and "epoch" in result:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a retried epoch is reported once only
                self._ot_trials[trial_id].report(float(value), int(result["epoch"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Deferred: :meth:`finish` tells the study, with the reason and attributes."""

    def skip_told(self) -> list[int]:
        """After a driver restart: trials the study was told the end of after Ray's last
        experiment snapshot are re-run by Ray (its state says RUNNING; on object storage that
        snapshot is minutes old). What the study was told first stands: the re-run's results
        are not reported to the finished Optuna trial. Returns their numbers."""
        told = []
        for trial_id, frozen in self._open_trials():
            if frozen.state.is_finished():
                self._completed_trials.add(trial_id)
                told.append(frozen.number)
        return told

    def _open_trials(self) -> list[tuple[str, Any]]:
        """(Ray trial id, the study's frozen trial) of every trial this searcher proposed and
        has not recorded as ended; none before the study is opened."""
        study = getattr(self, "_ot_study", None)
        if study is None:
            return []
        return [(trial_id, study._storage.get_trial(ot_trial._trial_id))
                for trial_id, ot_trial in self._ot_trials.items()
                if trial_id not in self._completed_trials]

    def fail_orphans(self) -> list[int]:
        """After a driver restart: Optuna trials asked after Ray's last experiment snapshot
        are unknown to the restored searcher (its state is saved in the same snapshot as
        Ray's trials), never train, and would stay RUNNING; record them as FAIL with the
        reason. Returns their numbers."""
        import optuna

        study = getattr(self, "_ot_study", None)
        if study is None or not self._ot_trials:
            return []
        known = {t.number for t in self._ot_trials.values()}
        orphans = [t for t in study.get_trials(deepcopy=False,
                                               states=(optuna.trial.TrialState.RUNNING,))
                   if t.number not in known]
        for t in orphans:
            _tell_failed(study, t, "orphaned: the driver stopped after Optuna proposed this "
                         "trial and before Ray recorded it; it never trained (the resumed run "
                         "proposes a new trial instead)")
        return [t.number for t in orphans]

    def fail_unstarted(self, reason: str) -> list[int]:
        """Optuna trials proposed for Ray trials that never started (the search ended first,
        e.g. at its time budget): FAIL with ``reason``, so that none stays RUNNING in the
        study. Returns their numbers."""
        failed = []
        for trial_id, frozen in self._open_trials():
            if not frozen.state.is_finished():
                _tell_failed(self._ot_study, frozen, reason)
                failed.append(frozen.number)
            self._completed_trials.add(trial_id)
        return failed

    def finish(self, trial_id: str, state: str, value: float | None, attrs: dict[str, Any],
               last_result: dict[str, Any] | None = None) -> int | None:
        """Tell the study how ``trial_id`` ended; returns its Optuna number.

        Ray hands a trial's final result to ``on_trial_complete`` instead of
        ``on_trial_result``, so that epoch's intermediate value is reported here.
        """
        import optuna

        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return None
        if self._ot_study._storage.get_trial(ot_trial._trial_id).state.is_finished():
            # told before the driver was killed but after Ray's last experiment snapshot: the
            # resumed run re-runs the trial; the study keeps what it was told first
            self._completed_trials.add(trial_id)
            return ot_trial.number
        if last_result:
            self.on_trial_result(trial_id, last_result)
        for key, attr in attrs.items():
            if attr is not None:
                ot_trial.set_user_attr(key, attr)
        states = {COMPLETE: optuna.trial.TrialState.COMPLETE,
                  PRUNED: optuna.trial.TrialState.PRUNED, FAIL: optuna.trial.TrialState.FAIL}
        if state == COMPLETE and (value is None or not math.isfinite(value)):
            state = FAIL
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._ot_study.tell(ot_trial, value if state == COMPLETE else None, state=states[state])
        self._completed_trials.add(trial_id)
        return ot_trial.number


def _tell_failed(study, trial, reason: str) -> None:
    """Tell the study that ``trial`` (a frozen trial) failed, with ``reason`` as its error."""
    import optuna

    study._storage.set_trial_user_attr(trial._trial_id, "error", reason)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _error_reason(trial) -> str:
    """The last line of a trial's error (the exception's message), for humans and Optuna."""
    try:
        err = trial.get_error()
    except (OSError, ValueError) as exc:  # the error file is missing or unreadable: say so
        return (f"the trial failed and its error file could not be read "
                f"({type(exc).__name__}: {exc})")[:500]
    text = str(err) if err else ""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "the trial's worker failed without an error message"


class TrialEvents(tune.Callback):
    """Forwards Ray Tune's trial events to the bookkeeper, the study and the console."""

    def __init__(self, bookkeeper: Bookkeeper, searcher: RecordingOptunaSearch,
                 printer: ProgressPrinter, generator: CheckedSearchGenerator | None = None) -> None:
        self.bookkeeper, self.searcher, self.printer = bookkeeper, searcher, printer
        self.generator = generator
        self.trials_at_end: list[Any] = []  # Ray's trials as the search ended

    def __setstate__(self, state: dict[str, Any]) -> None:
        # experiments saved before ``generator`` and ``trials_at_end`` existed
        self.__dict__.update({"generator": None, "trials_at_end": [], **state})

    def end_unfinished(self, reason: str) -> list[int]:
        """Record the trials still running when the search ended (its time budget ran out)
        as PRUNED, with ``reason``, in the study and the bookkeeping, and the ones proposed
        but never started as FAIL in the study; returns the numbers of the PRUNED ones."""
        ended = []
        for trial in self.trials_at_end:
            record = self.bookkeeper.trials.get(trial.trial_id)
            if record is not None and record.state == RUNNING:
                self._ended(trial, PRUNED, reason)
                ended.append(record.number)
        self.searcher.fail_unstarted(f"never started: {reason}")
        return ended

    def setup(self, **info: Any) -> None:
        self.bookkeeper.load_existing()
        # On resume: trials that ended before the driver stopped. Ray re-runs those that ended
        # after its last experiment snapshot (its state still says RUNNING); their recorded
        # outcome stands and the re-run's events are ignored.
        self.ended_before = set(self.bookkeeper.trials)
        self.printer.start(info.get("total_num_samples"))

    def _started(self, trial) -> None:
        if trial.trial_id not in self.bookkeeper.trials:
            self.bookkeeper.trial_started(trial.trial_id, int(trial.config.get("trial_number", -1)),
                                          trial.config)

    def on_step_begin(self, iteration, trials, **info) -> None:
        if not getattr(self, "orphans_checked", False):
            self.orphans_checked = True
            self.searcher.attach()  # no searcher state was saved before the driver stopped
            self.searcher.skip_told()
            self.searcher.fail_orphans()
            if self.generator is not None:
                self.generator.reconcile(len(trials))

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._started(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if trial.trial_id in getattr(self, "ended_before", ()):
            return
        self._started(trial)
        self.bookkeeper.trial_result(trial.trial_id, result)
        self.printer.tick(self.bookkeeper)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id in getattr(self, "ended_before", ()):
            return
        self.bookkeeper.trial_retried(trial.trial_id)
        self.printer.note(f"trial {trial.config.get('trial_number')} failed "
                          f"({_error_reason(trial)}); retrying from its last checkpoint")

    def _ended(self, trial, state: str, reason: str | None) -> None:
        if trial.trial_id in getattr(self, "ended_before", ()):
            self.searcher._completed_trials.add(trial.trial_id)
            record, location = self.bookkeeper.trials.get(trial.trial_id), checkpoint_location(trial)
            if record is not None and location and location != record.checkpoint:
                # the re-run replaced the checkpoint recorded first (Ray keeps one per trial):
                # point at the one that exists (the study's attribute keeps what it was told)
                record.checkpoint = location
                self.bookkeeper.write_trials()
            return
        self._started(trial)
        last = trial.last_result or {}
        checkpoint = checkpoint_location(trial)
        value = last.get(self.bookkeeper.metric) if state == COMPLETE else None
        record = self.bookkeeper.trials[trial.trial_id]
        self.searcher.finish(trial.trial_id, state, value, {
            "epochs": record.epochs, "checkpoint": checkpoint, "test_acc": last.get("test/acc"),
            "params": last.get("model/params"), "flops": last.get("model/flops"),
            "latency_ms": last.get("model/latency_ms"), "arch": last.get("arch"),
            "error": reason, "retries": record.retries},
            last_result=last)
        record = self.bookkeeper.trial_ended(trial.trial_id, state, reason, checkpoint)
        self.printer.trial_ended(record, self.bookkeeper)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        state = final_state(last, self.bookkeeper.max_epochs)
        self._ended(trial, state, last.get("error"))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, FAIL, _error_reason(trial))

    def on_experiment_end(self, trials, **info) -> None:
        self.trials_at_end = list(trials)
        self.bookkeeper.close()


def _ray_trial(config: dict[str, Any], splits: ArraySplits, setup: TrialSetup) -> None:
    """The function Ray runs per trial: resume from Ray's checkpoint if there is one."""

    class Reporter:
        def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
            checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            tune.report(metrics, checkpoint=checkpoint)

    from .trainable import run_trial  # in the worker: the driver never imports Lightning

    config = trial_config(config)
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        run_trial(config, splits, setup, Reporter())
        return
    with checkpoint.as_directory() as resume_dir:
        run_trial(config, splits, setup, Reporter(), resume_dir=resume_dir)


def _trainable(spec, splits: ArraySplits, max_epochs: int):
    """Ray's trainable for ``spec``: the data go to the object store once (shared by every
    trial of a node), each trial gets the spec's CPUs and (fractional) GPUs."""
    setup = TrialSetup(model=spec.model, max_epochs=max_epochs, seed=spec.seed,
                       checkpoint_every=spec.checkpoint_every, cpus_per_trial=spec.cpus_per_trial,
                       gpus_per_trial=spec.gpus_per_trial, plugins=tuple(spec.plugins))
    return tune.with_resources(tune.with_parameters(_ray_trial, splits=splits, setup=setup),
                               {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})


def _ray_storage(remote: RemoteTrialsDir | None, trials_dir: Path, *names: str) -> dict[str, Any]:
    """Ray's ``storage_path`` and ``storage_filesystem`` for ``<trials dir>/<names...>``: the
    object storage when the trials directory is one, else the local directory."""
    if remote:
        return {"storage_path": "/".join([remote.path, *names]), "storage_filesystem": remote.filesystem}
    return {"storage_path": str(trials_dir.joinpath(*names)), "storage_filesystem": None}


def checkpoint_location(trial) -> str | None:
    """A trial's last checkpoint: a local path, or a URI (``s3://bucket/...``) on object storage."""
    checkpoint = trial.checkpoint
    if checkpoint is None:
        return None
    kind = getattr(checkpoint.filesystem, "type_name", "local")
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"


class MirrorUpload(tune.Callback):
    """With the trials directory on object storage: copy the driver's files there as trials
    end (throttled) and when the experiment ends."""

    def __init__(self, upload: ThrottledUpload) -> None:
        self.upload = upload

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.upload()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.upload()

    def on_experiment_end(self, trials, **info) -> None:
        self.upload(force=True)


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


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Start (or connect to) Ray quietly: no dashboard, worker logs kept off the terminal."""
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                  logging_level=logging.ERROR, configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)


SHARED_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre",
                      "beegfs", "gpfs", "9p", "virtiofs", "efs", "fuse")


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; "" if unknown)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            mount = parts[1].replace("\\040", " ")
            if (str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                best, kind = mount, parts[2]
    return kind


def check_trials_dir_is_shared(trials_dir: Path) -> None:
    """On a cluster of several nodes, trial results must land on storage every node sees."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    hosts = {(n.get("NodeManagerHostname"), n.get("NodeManagerAddress")) for n in alive}
    if len(hosts) <= 1:
        return  # one node, or several on this one machine: all see the same directory
    kind = filesystem_type(trials_dir)
    if not kind.startswith(SHARED_FILESYSTEMS):
        raise ResourceError(
            f"--trials-dir {trials_dir}: a node-local {kind or 'unknown'} filesystem, but the Ray "
            f"cluster has {len(alive)} nodes; rule: on a multi-node cluster use a directory "
            "every node mounts (NFS and the like; Ray >= 2.7 does not copy trial results to "
            "the head)")


def autoscaling_limits() -> dict[str, float]:
    """The most of each resource the cluster's autoscaler may bring up, as it reports its node
    groups to Ray (autoscaler v2, KubeRay); empty where none is reported (a fixed cluster, a
    local Ray, the v1 autoscaler). Read through the call Ray Train uses for the same check."""
    from ray._private import state

    read = getattr(state.state, "get_max_resources_from_cluster_config", None)
    return {k: float(v) for k, v in ((read() if read else None) or {}).items()}


def check_resources(spec) -> dict[str, float]:
    """Refuse trials the cluster can never place (more CPUs/GPUs per trial than any total,
    counting what its autoscaler may still add: GPU workers that are not up yet)."""
    total = ray.cluster_resources()
    limits = autoscaling_limits()
    cpus = max(total.get("CPU", 0.0), limits.get("CPU", 0.0))
    gpus = max(total.get("GPU", 0.0), limits.get("GPU", 0.0))
    scaling = " (counting what its autoscaler may add)" if limits else ""
    if spec.gpus_per_trial > 0 and gpus < spec.gpus_per_trial:
        raise ResourceError(f"--gpus-per-trial {spec.gpus_per_trial}: the Ray cluster has "
                            f"{gpus:g} GPU(s){scaling}; rule: at most the cluster's GPUs (0 for CPU)")
    if spec.cpus_per_trial > cpus:
        raise ResourceError(f"--cpus-per-trial {spec.cpus_per_trial}: the Ray cluster has "
                            f"{cpus:g} CPU(s){scaling}; rule: at most the cluster's CPUs")
    return total


def concurrent_slots(spec) -> int:
    """How many trials the cluster's resources (and max_concurrent_trials) let run at once."""
    total = ray.cluster_resources() if ray.is_initialized() else {}
    slots = int(total.get("CPU", os.cpu_count() or 1) // spec.cpus_per_trial)
    if spec.gpus_per_trial > 0:
        slots = min(slots, int(total.get("GPU", 0) // spec.gpus_per_trial))
    if spec.max_concurrent_trials:
        slots = min(slots, spec.max_concurrent_trials)
    return max(1, slots)


def run_search(space: SearchSpace, splits: ArraySplits, experiment_dir: Path, name: str,
               printer: ProgressPrinter, resume: bool = False,
               storage_url: str | None = None, remote: RemoteTrialsDir | None = None) -> SearchOutcome:
    """Run (or resume) the search of ``space`` on ``splits``; results land in ``experiment_dir``
    (Ray's trials in ``remote`` instead when the trials directory is object storage)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    spec = space.spec
    trainable = _trainable(spec, splits, spec.max_epochs)
    from .study_storage import mask_url, open_storage

    storage_url = storage_url or study_storage_url(experiment_dir)
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
        # the paths saved with the callbacks are the first run's; the experiment's files may
        # be elsewhere now (a new head node fetching its mirror into another directory)
        events.bookkeeper = Bookkeeper(experiment_dir, spec.metric, spec.mode, spec.max_epochs)
        events.searcher.storage_url = storage_url
        for mirror in (c for c in callbacks if isinstance(c, MirrorUpload)):
            mirror.upload.local_dir = experiment_dir  # this machine's mirror
        keeper = _fit(tuner, events.bookkeeper, events, spec.time_budget_s)
        return SearchOutcome(keeper, name, mask_url(storage_url), storage_url)

    sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=spec.n_startup_trials,
                                         multivariate=True, constant_liar=True)
    storage = open_storage(storage_url)
    searcher = RecordingOptunaSearch(space=define_by_run, metric=spec.metric,
                                     mode=spec.mode, sampler=sampler, study_name=name,
                                     storage=storage)
    searcher.storage_url = storage_url
    if spec.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="epoch", metric=spec.metric, mode=spec.mode,
                                  max_t=spec.max_epochs, grace_period=spec.grace_period,
                                  reduction_factor=spec.reduction_factor)
    elif spec.scheduler == "curve_fit":
        from .schedulers import CurveFitScheduler, default_bounds

        scheduler = CurveFitScheduler(metric=spec.metric, mode=spec.mode, max_t=spec.max_epochs,
                                      time_attr="epoch", min_epochs=spec.curve_fit_min_epochs,
                                      threshold=spec.curve_fit_threshold,
                                      bounds=default_bounds(spec.metric))
    else:
        scheduler = FIFOScheduler()
    bookkeeper = Bookkeeper(experiment_dir, spec.metric, spec.mode, spec.max_epochs)
    limited = (ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent_trials)
               if spec.max_concurrent_trials else searcher)
    generator = CheckedSearchGenerator(limited)  # what Ray would wrap the searcher in
    events = TrialEvents(bookkeeper, searcher, printer, generator)
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


FINAL_DIR = "final"
FINAL_KEY = "final"  # a final-stage trial's config is {FINAL_KEY: the configuration to retrain}


def trial_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration a trial trains (unwrapping a final-stage trial's)."""
    return config.get(FINAL_KEY, config) if isinstance(config.get(FINAL_KEY), dict) else config


class FinalStageEvents(tune.Callback):
    """Bookkeeping of the final stage: curves, records and TensorBoard runs, no searcher."""

    def __init__(self, bookkeeper: Bookkeeper, printer: ProgressPrinter) -> None:
        self.bookkeeper, self.printer = bookkeeper, printer

    def _started(self, trial) -> None:
        if trial.trial_id not in self.bookkeeper.trials:
            config = trial_config(trial.config)
            self.bookkeeper.trial_started(trial.trial_id, int(config["trial_number"]), config)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._started(trial)
        self.bookkeeper.trial_result(trial.trial_id, result)

    def _ended(self, trial, state: str, reason: str | None) -> None:
        self._started(trial)
        record = self.bookkeeper.trial_ended(
            trial.trial_id, state, reason, checkpoint_location(trial))
        self.printer.trial_ended(record, self.bookkeeper)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        self._ended(trial, final_state(last, self.bookkeeper.max_epochs), last.get("error"))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, FAIL, _error_reason(trial))


def run_final_stage(space: SearchSpace, full_splits: ArraySplits, search: SearchOutcome,
                    experiment_dir: Path, printer: ProgressPrinter,
                    remote: RemoteTrialsDir | None = None) -> dict[str, Any]:
    """Retrain the search's top-k configurations at full fidelity (all data, native size,
    ``final_max_epochs``), each as a trial of its own under ``<experiment>/final/``, record
    them in the study ``<name>-final``, and measure whether the proxy ranked them well."""
    import optuna

    from .bookkeeping import hyperparameters
    from .curves import aligned_rank_correlation, top_k_overlap
    from .study_storage import open_storage

    spec = space.spec
    top = search.bookkeeper.ranked()[: spec.final_top_k]
    if not top:
        return {"k": 0, "note": "no COMPLETE search trial to retrain"}
    epochs = spec.final_max_epochs or spec.max_epochs
    trainable = _trainable(spec, full_splits, epochs)
    points = [{**hyperparameters(t.config), "trial_number": t.number,
               "trial_run": f"final_{t.run}"} for t in top]
    final_dir = experiment_dir / FINAL_DIR
    keeper = Bookkeeper(final_dir, spec.metric, spec.mode, epochs,
                        tensorboard_dir=experiment_dir / "tensorboard")
    printer.note(f"final stage: retraining the top {len(top)} configurations at full fidelity "
                 f"({full_splits.describe()}, {epochs} epochs)")
    tuner = tune.Tuner(
        trainable,
        param_space={FINAL_KEY: tune.grid_search(points)},  # one trial per configuration
        tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True,
                                    trial_dirname_creator=trial_dirname,
                                    trial_name_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=FINAL_DIR, verbose=0, **_ray_storage(remote, experiment_dir.parent, experiment_dir.name),
            callbacks=[FinalStageEvents(keeper, printer)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures)))
    _fit(tuner, keeper)

    proxy = {t.number: t.last[spec.metric] for t in top}
    final = {t.number: t.last.get(spec.metric) for t in keeper.trials.values()
             if t.state == COMPLETE}
    final_test = {t.number: t.last.get("test/acc") for t in keeper.trials.values()
                  if t.state == COMPLETE}
    study = optuna.create_study(study_name=f"{search.study_name}-final",
                                storage=open_storage(search.storage_url_full),
                                direction="maximize" if spec.mode == "max" else "minimize",
                                load_if_exists=True)
    for t in keeper.trials.values():
        value = t.last.get(spec.metric) if t.state == COMPLETE else None
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL,
            value=value, params={}, distributions={},
            user_attrs={"search_trial": t.number, "config": hyperparameters(t.config),
                        "search_value": proxy.get(t.number), "test_acc": t.last.get("test/acc"),
                        "epochs": t.epochs, "checkpoint": t.checkpoint, "error": t.reason}))
    corr = aligned_rank_correlation(proxy, {k: v for k, v in final.items() if v is not None})
    best_final = (max if spec.mode == "max" else min)(final, key=final.get) if final else None
    return {
        "k": len(top), "epochs": epochs, "data": full_splits.describe(),
        "study": f"{search.study_name}-final",
        "trials": [{"search_trial": n, "search_value": proxy[n], "final_value": final.get(n),
                    "final_test_acc": final_test.get(n)} for n in proxy],
        "rank_correlation": corr.as_dict(),
        "top1_agrees": best_final == top[0].number if best_final is not None else None,
        "top_half_overlap": top_k_overlap(proxy, final, max(1, len(final) // 2), spec.mode)
        if final else None,
        "best_final_trial": best_final,
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
        with _StopSignal() as stop:
            tuner.fit()
        if events is not None and not stop.caught and time_budget_s:
            events.end_unfinished(f"stopped by the search's time budget ({time_budget_s:g} s)")
    finally:
        keeper.write_curves()
        keeper.write_trials()
        keeper.close()
    if stop.caught:
        raise SearchInterrupted()
    return keeper


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
