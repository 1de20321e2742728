"""The bridge between Ray Tune's search loop and the Optuna study: Ray's Optuna searcher,
telling the study what actually happened to each trial, and Ray's search generator with a
check of its trial count on resume."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

from ray.tune.search import Searcher, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from tune_nas.record.bookkeeper import COMPLETE, FAIL, PRUNED, run_name
from tune_nas.search.registry import CONFIG_ATTR

#: The user attribute of a paused trial: the epoch it paused after (None once it runs again).
PAUSED_ATTR = "paused_after_epoch"
#: The user attribute of a trial resumed after a pause: the epochs it was resumed from.
RESUMED_ATTR = "resumed_after_epochs"


class CheckedSearchGenerator(SearchGenerator):
    """Ray's wrapper of a searcher, which counts the trials it has created, with a check of
    that count on resume.

    Ray's experiment snapshot on object storage is uploaded file by file: a driver killed in
    between can leave a count from another moment than the trials the restored experiment
    holds. A count above them includes trials that never run (Ray, counting them, would end the
    search short of ``num_samples``); a count below them (the generator's file older than the
    experiment's) would create trials beyond ``num_samples``.
    """

    def expect(self, total: int) -> None:
        """Create trials until the experiment holds ``total`` (raised, never lowered). A driver
        killed while Ray rewrote its experiment snapshot leaves it empty; Ray then restarts the
        experiment from tuner.pkl, holding none of the earlier trials and counting
        ``num_samples`` as 1 (measured with Ray 2.60): the trials that ended before count
        towards the total, the rest are created anew."""
        self._total_samples = max(self._total_samples, total)

    def relocate(self, storage: Any) -> None:
        """Create trials where ``storage`` (a restored trial's) says the experiment is now. Ray
        moves the trials it restores into a renamed or moved experiment directory, but not the
        experiment this generator saved: the trials it creates would otherwise be written to the
        old directory and fail ("Unable to set up cluster storage", measured with Ray 2.60)."""
        current = getattr(self._experiment, "storage", None)
        where = ("storage_fs_path", "experiment_dir_name")
        if current is None or all(getattr(current, a) == getattr(storage, a) for a in where):
            return
        moved = copy.copy(current)
        for attribute in ("storage_filesystem", *where):
            setattr(moved, attribute, getattr(storage, attribute))
        self._experiment.storage = moved
        self._experiment.spec["storage"] = moved

    def reconcile(self, known_trials: int) -> int:
        """Count exactly the ``known_trials`` the restored experiment holds; returns how many
        created trials it lost (their Optuna trials are FAIL "orphaned"), now created anew."""
        lost = self._counter - known_trials
        self._counter = known_trials
        return max(0, lost)


def optuna_distributions(param_space: dict[str, Any]) -> dict[str, Any]:
    """The Optuna distributions of a Tune param space (what Ray's Optuna searcher samples)."""
    return OptunaSearch.convert_search_space(dict(param_space))


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

    With several objectives (:attr:`objectives`, a multi-objective study; Optuna takes no
    intermediate values there) a trial that trained ``max_epochs`` is COMPLETE with one value
    per objective; a stopped one is PRUNED without values (so no sampler ranks it with a
    full-budget trial) and keeps its values at the stop as the user attribute ``values_at_stop``
    ({metric: value}); its per-epoch values are in curves.csv and TensorBoard as for any trial.
    Every constraint (:attr:`constraints`) is set on COMPLETE and PRUNED trials with Optuna's
    ``trial.set_constraint`` (its violation: <= 0 when kept), which Optuna's samplers and
    ``study.best_trials`` read.

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
    #: The experiment's objectives (several: a multi-objective study) and constraints; set by
    #: the tuner. Class defaults keep searchers pickled before they existed loadable.
    objectives: tuple = ()
    constraints: tuple = ()
    #: Where a checkpoint recorded before the experiment moved is now (set by a resumed run:
    #: the bookkeeper's ``moved_here``); never pickled.
    relocate = None

    @property
    def told_trials(self) -> dict[str, tuple[int, int]]:
        """The trials whose end the study was told: Ray trial id -> (Optuna trial id, number).

        Ray's ``OptunaSearch`` keeps an Optuna ``Trial`` per Ray trial for the whole search,
        each with a copy of its frozen trial (~1.7 KB more per trial, measured with
        ``benchmarks/driver_memory.py``); once the study was told a trial's end
        nothing asks that object again, so :meth:`finish` keeps just these two numbers
        (``_ot_trials`` holds the trials not told yet). Created on first use: searchers pickled
        before it existed hold their told trials in ``_ot_trials``."""
        return self.__dict__.setdefault("_told", {})

    def _known_number(self, trial_id: str) -> int | None:
        """The Optuna number of a Ray trial this searcher proposed, told or not (else None)."""
        if trial_id in self._ot_trials:
            return self._ot_trials[trial_id].number
        told = self.told_trials.get(trial_id)
        return told[1] if told else None

    def _forget_told(self, trial_id: str) -> None:
        """Keep only the ids of ``trial_id``'s Optuna trial, now that the study was told its end."""
        ot_trial = self._ot_trials.pop(trial_id, None)
        if ot_trial is not None:
            self.told_trials[trial_id] = (ot_trial._trial_id, ot_trial.number)

    @property
    def study_name(self) -> str:
        """The study's name: the one the experiment began with, kept when its directory is renamed."""
        return self._study_name

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def _detached(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get("_ot_study") is not None:
            state["_ot_trial_ids"] = {rid: t._trial_id for rid, t in state["_ot_trials"].items()}
            state.update(_ot_study=None, _ot_trials={})
        # Ray's tuner.pkl is written before the study is set up: the storage goes in neither
        state.update(_storage=None, storage_url=None)  # given anew by every run
        state.pop("relocate", None)
        return state

    def _setup_study(self, mode) -> None:
        """Create (or load) the study where :attr:`storage_url` says, for a searcher that was
        unpickled before its study was set up (Ray's tuner.pkl)."""
        if self._storage is None and self.storage_url:
            from tune_nas.storage.study_db import open_storage

            self._storage = open_storage(self.storage_url)
        super()._setup_study(mode)
        names = [o.metric for o in self.objectives]
        if names and self._ot_study.metric_names != names:  # the study says what each value is
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental in Optuna
                self._ot_study.set_metric_names(names)

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

        from tune_nas.storage.study_db import open_storage

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
        storage = self._ot_study._storage
        self._ot_trials = {}
        for rid, tid in ids.items():
            if rid in self._completed_trials:  # told (a state saved before ``told`` existed)
                self.told_trials[rid] = (tid, storage.get_trial_number_from_id(tid))
            else:
                self._ot_trials[rid] = optuna.trial.Trial(self._ot_study, tid)

    #: Why the searcher stopped proposing before ``num_samples`` (a cell space used up), or None.
    exhausted: str | None = None

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        from tune_nas.search.cells import SpaceExhausted

        if self.exhausted:
            return Searcher.FINISHED
        try:
            config = super().suggest(trial_id)
        except SpaceExhausted as exc:  # no new valid cell left: end the search, not the driver
            self._ot_trials.pop(trial_id, None)
            storage, study_id = self._ot_study._storage, self._ot_study._study_id
            frozen = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, exc.trial_number))
            _tell_failed(self._ot_study, frozen, str(exc))
            self.exhausted = str(exc)
            return Searcher.FINISHED
        if config is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        # what the searcher asked the trial to do besides its parameters (a warm start from a
        # parent's weights): the system attribute CONFIG_ATTR, see tune_nas.search.registry
        extra = self._ot_study._storage.get_trial_system_attrs(ot_trial._trial_id).get(CONFIG_ATTR)
        if extra:
            extra = dict(extra)
            warm = extra.get("warm_start")
            if self.relocate is not None and isinstance(warm, dict):  # the experiment moved since the parent ended
                extra["warm_start"] = {**warm, "checkpoint": self.relocate(warm.get("checkpoint"))}
            config.update(extra)
        config["trial_number"] = ot_trial.number
        config["trial_run"] = run_name(ot_trial.number, config)
        ot_trial.set_user_attr("ray_trial_id", trial_id)
        ot_trial.set_user_attr("tensorboard_run", config["trial_run"])
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if self.multi_objective:
            return  # Optuna refuses intermediate values in a multi-objective study
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value) and "epoch" in result:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a retried epoch is reported once only
                self._ot_trials[trial_id].report(float(value), int(result["epoch"]))

    def mark_paused(self, trial_id: str, epoch: int | None,
                    resumed_after: list[int] | None = None) -> None:
        """Say in the study that ``trial_id`` is paused after ``epoch`` (the user attribute
        ``paused_after_epoch``), or with ``epoch`` None that it runs again, resumed after the
        epochs ``resumed_after`` (``resumed_after_epochs``). Its Optuna state stays RUNNING while
        paused; a trial ended while paused is told PRUNED like any stopped trial."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        ot_trial.set_user_attr(PAUSED_ATTR, epoch)
        if resumed_after is not None:
            ot_trial.set_user_attr(RESUMED_ATTR, list(resumed_after))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Deferred: :meth:`finish` tells the study, with the reason and attributes."""

    def skip_told(self) -> dict[str, Any]:
        """After a driver restart: trials the study was told the end of after Ray's last
        experiment snapshot are re-run by Ray (its state says RUNNING; on object storage that
        snapshot is minutes old). What the study was told first stands: the re-run's results
        are not reported to the finished Optuna trial. Returns them: Ray trial id -> the
        study's frozen trial (its state and attributes as told)."""
        told = {}
        for trial_id, frozen in self._open_trials():
            if frozen.state.is_finished():
                self._completed_trials.add(trial_id)
                told[trial_id] = frozen
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

    def reconcile(self, held: dict[str, Any]) -> list[str]:
        """After a driver restart: make the study agree with the Ray trials the restored
        experiment holds (``held``: Ray trial id -> the Optuna number in its config).

        Ray's experiment state and this searcher's state are two files of one snapshot,
        written (and copied to the trials directory or a bucket) one after the other: a driver
        killed in between leaves them from different moments.

        * A held Ray trial the restored searcher does not know (its state is older) is
          attached to its Optuna trial again, so that its end is told.
        * A RUNNING Optuna trial that no held Ray trial carries never trains: asked after
          Ray's snapshot, or known to a searcher state newer than Ray's. It is told FAIL with
          an "orphaned" reason (the resumed run proposes a new trial instead).

        Returns the Ray trial ids this searcher knew that the experiment lost (a concurrency
        limiter around it must forget them too)."""
        import optuna

        study = getattr(self, "_ot_study", None)
        if study is None:
            return []
        storage, study_id = study._storage, study._study_id
        numbers = {int(n) for n in held.values() if n is not None}
        known_numbers = {ot.number for ot in self._ot_trials.values()} | {n for _, n in self.told_trials.values()}
        for trial_id, number in held.items():
            if self._known_number(trial_id) is None and number is not None and int(number) not in known_numbers:
                try:
                    tid = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
                except KeyError:
                    continue  # not this study's trial
                self._ot_trials[trial_id] = optuna.trial.Trial(study, tid)
        lost = [trial_id for trial_id in self._ot_trials
                if trial_id not in held and trial_id not in self._completed_trials]
        self._completed_trials.update(lost)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if t.number not in numbers:
                _tell_failed(study, t, "orphaned: the driver stopped after Optuna proposed this "
                             "trial and before Ray's saved experiment held it; it never trained "
                             "(the resumed run proposes a new trial instead)")
        return lost

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
            self._forget_told(trial_id)
            return ot_trial.number
        if last_result:
            self.on_trial_result(trial_id, last_result)
        for key, attr in attrs.items():
            if attr is not None:
                ot_trial.set_user_attr(key, attr)
        states = {COMPLETE: optuna.trial.TrialState.COMPLETE,
                  PRUNED: optuna.trial.TrialState.PRUNED, FAIL: optuna.trial.TrialState.FAIL}
        told: float | list[float] | None = value
        if self.multi_objective:
            last = last_result or {}
            told = [last.get(o.metric) for o in self.objectives]
            if state == PRUNED:
                ot_trial.set_user_attr("values_at_stop", {o.metric: last.get(o.metric) for o in self.objectives})
        finite = all(isinstance(v, (int, float)) and math.isfinite(v)
                     for v in (told if isinstance(told, list) else [told]))
        if state == COMPLETE and not finite:
            state = FAIL
        if state in (COMPLETE, PRUNED):
            for constraint in self.constraints:
                ot_trial.set_constraint(constraint.key, constraint.violation((last_result or {}).get(constraint.metric)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._ot_study.tell(ot_trial, told if state == COMPLETE else None, state=states[state])
        self._completed_trials.add(trial_id)
        self._forget_told(trial_id)
        return ot_trial.number


def _tell_failed(study, trial, reason: str) -> None:
    """Tell the study that ``trial`` (a frozen trial) failed, with ``reason`` as its error."""
    import optuna

    study._storage.set_trial_user_attr(trial._trial_id, "error", reason)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


