"""Ray Tune callbacks: every trial event forwarded to the bookkeeper, the study and the
console; the final stage's bookkeeping; the object-storage mirror."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ray import tune

from tune_nas.metric_keys import TEST_METRICS
from tune_nas.ray_tune.checkpoints import checkpoint_reports, repair_missing_checkpoints
from tune_nas.ray_tune.optuna_bridge import CheckedSearchGenerator, RecordingOptunaSearch
from tune_nas.ray_tune.scheduler_adapter import PolicyScheduler
from tune_nas.record.bookkeeper import COMPLETE, FAIL, PAUSED, PRUNED, RUNNING, Bookkeeper
from tune_nas.record.console import ProgressPrinter
from tune_nas.schedulers import PromotionPolicy
from tune_nas.states import TrialState, final_state
from tune_nas.storage.trials_dir import ThrottledUpload

FINAL_KEY = "final"  # a final-stage trial's config is {FINAL_KEY: the configuration to retrain}


def trial_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration a trial trains (unwrapping a final-stage trial's)."""
    return config.get(FINAL_KEY, config) if isinstance(config.get(FINAL_KEY), dict) else config



_FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)$", re.MULTILINE)
_MEMORY_KILL = "running low on memory"  # Ray's memory monitor's message for a worker it killed


def _error_text(trial) -> str:
    """The trial's error text: the driver's own copy first (Tune writes it at once and copies
    it to the experiment's storage later, so ``get_error`` still finds nothing for a trial
    whose worker was killed a moment ago), else the stored one."""
    local = getattr(trial, "error_file", None)
    if local and os.path.isfile(local):
        return Path(local).read_text(errors="replace")
    err = trial.get_error()
    return str(err) if err else ""


def _error_reason(trial) -> str:
    """One line for humans and Optuna: of a trial's latest failure, the exception's message
    (its last line), or, when Ray's memory monitor killed the trial's worker, its line saying
    so (``out of memory: ...``, as a trial's own out-of-memory error reads)."""
    try:
        text = _error_text(trial)
    except (OSError, ValueError) as exc:  # the error file is missing or unreadable: say so
        return (f"the trial failed and its error file could not be read "
                f"({type(exc).__name__}: {exc})")[:500]
    text = _FAILURE_HEADER.split(text)[-1]  # Tune appends one block per failure
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    killed = next((ln for ln in lines if _MEMORY_KILL in ln), None)
    if killed is not None:
        killed = killed.removeprefix("OutOfMemoryError: ")
        return f"out of memory: Ray's memory monitor killed the trial's worker ({killed})"[:500]
    return lines[-1][:500] if lines else "the trial's worker failed without an error message"


class TrialEvents(tune.Callback):
    """Forwards Ray Tune's trial events to the bookkeeper, the study and the console.

    With a ``scheduler`` that pauses trials (``asha_promotion``), a trial it paused is PAUSED
    in the bookkeeping and the console and carries the ``paused_after_epoch`` user attribute in
    the study (its Optuna state stays RUNNING) until it starts again (then ``resumed_after``
    in its record and ``resumed_after_epochs`` in the study list the epochs it resumed from);
    one stopped while paused ends PRUNED with the scheduler's reason."""

    #: the scheduler Ray runs (None: pauses are not shown); class default for older pickles
    scheduler: PolicyScheduler | None = None
    #: the experiment's num_samples, set by a resumed run (None: the generator's count stands)
    num_samples: int | None = None

    def __init__(self, bookkeeper: Bookkeeper, searcher: RecordingOptunaSearch,
                 printer: ProgressPrinter, generator: CheckedSearchGenerator | None = None,
                 scheduler: PolicyScheduler | None = None) -> None:
        self.bookkeeper, self.searcher, self.printer = bookkeeper, searcher, printer
        self.generator = generator
        self.scheduler = scheduler
        self.trials_at_end: list[Any] = []  # Ray's trials as the search ended

    def end_unfinished(self, reason: str) -> list[int]:
        """Record the trials still running when the search ended (its time budget ran out)
        as PRUNED, with ``reason``, in the study and the bookkeeping, and the ones proposed
        but never started as FAIL in the study; returns the numbers of the PRUNED ones."""
        ended = []
        for trial in self.trials_at_end:
            record = self.bookkeeper.trials.get(trial.trial_id)
            if record is not None and record.state in (RUNNING, PAUSED):
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
        # a resumed run knows the experiment's total even where Ray restarted it counting 1
        self.printer.start(self.num_samples or info.get("total_num_samples"))

    def _started(self, trial) -> None:
        if trial.trial_id not in self.bookkeeper.trials:
            self.bookkeeper.trial_started(trial.trial_id, int(trial.config.get("trial_number", -1)),
                                          trial.config)

    def on_step_begin(self, iteration, trials, **info) -> None:
        if not getattr(self, "orphans_checked", False):
            self.orphans_checked = True
            self.searcher.attach()  # no searcher state was saved before the driver stopped
            held = {t.trial_id: trial_config(t.config).get("trial_number") for t in trials}
            lost = self.searcher.reconcile(held)  # before skip_told: it may attach trials
            self._record_as_told(self.searcher.skip_told(), trials)
            if self.generator is not None and self.generator.searcher is not self.searcher:
                for trial_id in lost:  # a concurrency limiter: free the slots they held
                    self.generator.searcher.on_trial_complete(trial_id, error=True)
            if self.generator is not None:
                if trials:  # the experiment's directory may have been renamed or moved since
                    self.generator.relocate(trials[0].storage)
                self.generator.reconcile(len(trials))
                if self.num_samples:  # trials that ended before and Ray no longer holds count too
                    self.generator.expect(self.num_samples - sum(i not in held for i in self.ended_before))
            for trial in trials:  # a resumed search: the trials still paused say so
                if self.scheduler is not None and self.scheduler.paused_at(trial.trial_id) is not None \
                        and trial.status == "PAUSED" and trial.trial_id not in self.ended_before:
                    self._started(trial)
                    self.bookkeeper.trial_paused(trial.trial_id)
            for trial_id, found in repair_missing_checkpoints(trials).items():
                trial = next(t for t in trials if t.trial_id == trial_id)
                number = trial_config(trial.config).get("trial_number")
                recovered = self._record_checkpoint_reports(trial) if found else ""
                self.printer.note(f"trial {number}: the checkpoint the saved experiment names is gone; "
                                  + (f"continuing from {found.rsplit('/', 1)[-1]}{recovered}" if found
                                     else "starting again"))

    def _record_checkpoint_reports(self, trial) -> str:
        """A trial resumed from a checkpoint newer than Ray's snapshot: the epochs up to it
        that the stopped driver never received (the trial wrote the checkpoint, the driver was
        killed before the report reached it) recorded from the checkpoint's reports, in the
        curves and the study. Returns what the console is told of it."""
        checkpoint = trial.run_metadata.checkpoint_manager.latest_checkpoint_result.checkpoint
        try:
            reports = checkpoint_reports(checkpoint)
        except (OSError, ValueError) as exc:
            return f" (its reports could not be read, epochs after the last recorded one may lack a row: {exc})"
        self._started(trial)
        last = self.bookkeeper.last_recorded_epoch(trial.trial_id)
        missing = [r for r in reports if r["epoch"] > last]
        for report in missing:
            self.bookkeeper.trial_result(trial.trial_id, report)
            self.searcher.on_trial_result(trial.trial_id, report)
        if not missing:
            return ""
        epochs = ", ".join(str(r["epoch"]) for r in missing)
        return (f" (epoch{'s' if len(missing) > 1 else ''} {epochs} recorded from it: the stopped driver "
                "had not received them)")

    def _record_as_told(self, told: dict[str, Any], trials: list) -> None:
        """Trials the study was told the end of whose record did not reach the trials journal
        (the driver was killed between the two writes): recorded as the study was told, with
        the epochs their curve rows hold, and the re-run's events ignored like those of any
        trial that ended before the driver stopped."""
        by_id = {t.trial_id: t for t in trials}
        for trial_id, frozen in told.items():
            if trial_id in self.ended_before or trial_id not in by_id:
                continue
            self._started(by_id[trial_id])
            self.bookkeeper.trial_ended(trial_id, TrialState(frozen.state.name), frozen.user_attrs.get("error"),
                                        self.bookkeeper.moved_here(frozen.user_attrs.get("checkpoint")))
            self.ended_before.add(trial_id)

    def get_state(self) -> dict[str, Any] | None:
        """What Ray's experiment snapshot keeps of this callback: the state of a scheduler that
        pauses trials (Ray 2.60 saves no scheduler state of its own; see the adapter)."""
        if self.scheduler is None or not isinstance(self.scheduler.policy, PromotionPolicy):
            return None
        return {"scheduler": self.scheduler.state()}

    def set_state(self, state: dict[str, Any]) -> None:
        """A resumed search: the scheduler as it was at the last snapshot (before Ray re-queues
        the trials, so that the paused ones stay paused)."""
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state(state["scheduler"])

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._started(trial)
        record = self.bookkeeper.trials[trial.trial_id]
        if record.state == PAUSED:  # promoted: it continues from the epoch it paused after
            record = self.bookkeeper.trial_resumed(trial.trial_id)
            self.searcher.mark_paused(trial.trial_id, None, record.resumed_after)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if trial.trial_id in getattr(self, "ended_before", ()):
            return
        self._started(trial)
        self.bookkeeper.trial_result(trial.trial_id, result)
        paused_after = self.scheduler.paused_at(trial.trial_id) if self.scheduler is not None else None
        if paused_after is not None and not result.get("error"):
            self.bookkeeper.trial_paused(trial.trial_id)
            self.searcher.mark_paused(trial.trial_id, paused_after)
        self.printer.tick(self.bookkeeper, result)

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
                self.bookkeeper.save_record(record)
            return
        self._started(trial)
        last = trial.last_result or {}
        checkpoint = checkpoint_location(trial)
        value = last.get(self.bookkeeper.metric) if state == COMPLETE else None
        record = self.bookkeeper.trials[trial.trial_id]
        self.searcher.finish(trial.trial_id, state, value, {
            "epochs": record.epochs, "checkpoint": checkpoint,
            **{key.replace("/", "_"): last.get(key) for key in TEST_METRICS if key in last or key == "test/acc"},
            "params": last.get("model/params"), "flops": last.get("model/flops"),
            "latency_ms": last.get("model/latency_ms"), "arch": last.get("arch"),
            "arch_hash": last.get("arch_hash"),
            "error": reason, "retries": record.retries},
            last_result=last)
        record = self.bookkeeper.trial_ended(trial.trial_id, state, reason, checkpoint)
        self.printer.trial_ended(record, self.bookkeeper)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        state = final_state(last, self.bookkeeper.max_epochs)
        reason = last.get("error")
        if not reason and self.scheduler is not None:  # stopped while paused, never promoted
            reason = self.scheduler.end_reason(trial.trial_id)
        self._ended(trial, state, reason)
        compact_ended_trial(trial)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, FAIL, _error_reason(trial))

    def on_experiment_end(self, trials, **info) -> None:
        self.trials_at_end = list(trials)
        self.bookkeeper.close()


def compact_ended_trial(trial) -> None:
    """Drop what Ray keeps in memory for a finished trial and no one reads again.

    Measured with ``benchmarks/driver_memory.py`` (NAS-Bench-201 tabular, one report a trial), of
    the ~55 KB the driver grew by per ended trial:

    * its run metadata's ``metric_n_steps``: for every number the trial reports (~21 with Ray's
      counters) two sequences of its last 5 and 10 values (for ``last-5-avg``/``last-10-avg``),
      ~7.8 KB, and ~2 KB more of the JSON Ray keeps of it for its experiment snapshots. Ray
      only appends to them for a trial that reports a result, and a finished trial reports
      none: its averages stay in ``metric_analysis``, the sequences are dropped (emptied; what a
      restored snapshot of the finished trial holds then).
    * its placement group factory: equal for every trial of an experiment, but each holds its
      own ``inspect`` binding of ``placement_group``'s signature, ~5.3 KB. A finished trial
      points at one shared factory equal to its own (Ray compares and hashes factories by
      value, and pickles them without the binding, so its snapshot is unchanged).
    """
    metadata = getattr(trial, "run_metadata", None)
    if getattr(metadata, "metric_n_steps", None):
        metadata.metric_n_steps = {}
    factory = getattr(trial, "placement_group_factory", None)
    if factory is not None:
        trial.placement_group_factory = _SHARED_FACTORIES.setdefault(factory, factory)


#: One placement group factory per distinct resource request, shared by finished trials.
_SHARED_FACTORIES: dict[Any, Any] = {}


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


