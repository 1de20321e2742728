"""What TensorBoard, ``curves.csv`` and the summary are told about each trial (driver side).

The Ray layer forwards Ray Tune's trial events here; nothing in this module imports Ray. All
writing happens in the driver process, so one writer owns every file (this also holds on a
cluster, where trials run on other machines). A trial's state is a
:class:`tune_nas.states.TrialState`; what is best is the experiment's
:class:`tune_nas.objectives.Objective`; file names come from :mod:`tune_nas.layout`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from tune_nas.layout import CURVE_KEY_COLUMNS, ExperimentLayout
from tune_nas.metric_keys import RESERVED_KEYS, TASKS, final_metrics_of, metrics_of
from tune_nas.objectives import Objective
from tune_nas.states import TrialState

COMPLETE, PRUNED, FAIL, RUNNING, PAUSED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                           TrialState.RUNNING, TrialState.PAUSED)
#: Every task's reported metrics (what TensorBoard gets a scalar of).
_ALL_METRICS = tuple(dict.fromkeys(k for t in TASKS for k in (*metrics_of(t), *final_metrics_of(t))))


#: A regressor's metrics that summary.json's trial records carry (as ``val_mse``...).
_REGRESSION_SUMMARY = ("val/mse", "val/mae", "val/r2", "test/mse", "test/mae", "test/r2")


def curve_metric_columns(task: str) -> tuple[str, ...]:
    """curves.csv's metric columns for an experiment of ``task``, in report order."""
    return tuple(m for m in (*metrics_of(task), *final_metrics_of(task)) if m != "epoch")
_NOT_METRICS = {"trial_id", "done", "training_iteration", "timestamp", "time_this_iter_s",
                "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
                "iterations_since_restore", "checkpoint_dir_name", "date", "config",
                "should_checkpoint", "experiment_tag", "error"}
_SHORT_NAMES = {"weight_decay": "wd", "label_smoothing": "ls",
                "batch_size": "bs", "optimizer": "opt", "dropout": "do", "momentum": "mom"}


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config without bookkeeping keys."""
    return {k: v for k, v in config.items() if k not in RESERVED_KEYS}


def _short_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2g}"
    return str(v)


def run_name(number: int, config: dict[str, Any], max_len: int = 80) -> str:
    """TensorBoard run name of a trial: its Optuna number and a short config, e.g.
    ``007_lr=0.0032,wd=1e-05,width=32``."""
    parts = [f"{_SHORT_NAMES.get(k, k)}={_short_value(v)}" for k, v in sorted(hyperparameters(config).items())
             if k != "arch"]  # an architecture's JSON spec is no name (TensorBoard shows it as text)
    text = ",".join(parts)
    text = text if len(text) <= max_len else text[: max_len - 1] + "…"
    return f"{number:03d}_{text}".replace("/", "-")


def _hparam_value(v: Any) -> bool | float | str:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    return str(v)


def architecture(arch: Any) -> Any:
    """A reported ``arch`` as summary.json holds it: a cell's JSON (``{"matrix": ..., "ops": ...}``)
    as that object, any other string (NAS-Bench-201's ``|op~0|+...``) as it is."""
    if isinstance(arch, str) and arch.startswith("{"):
        try:
            return json.loads(arch)
        except ValueError:
            return arch
    return arch


def lineage(config: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """A morphism child's ``parent`` (trial number), ``morphs`` and ``warm_start_val_acc`` (its
    validation accuracy before its first epoch); nothing for a trial trained from scratch."""
    warm = config.get("warm_start")
    if not isinstance(warm, dict):
        return {}
    return {"parent": warm.get("parent"), "morphs": warm.get("morphs"),
            "warm_start_val_acc": last.get("warm_start_val_acc")}


@dataclass
class TrialRecord:
    """What the driver knows of one trial."""

    trial_id: str
    number: int
    config: dict[str, Any]
    run: str
    state: str = RUNNING
    epochs: int = 0
    last: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    reason: str | None = None
    checkpoint: str | None = None
    retries: int = 0
    #: the epochs it paused after and was resumed from (a pausing scheduler promoted it)
    resumed_after: list[int] = field(default_factory=list)

    def as_dict(self, objective: Objective) -> dict[str, Any]:
        """The record for summary.json: ``value`` is the objective's metric at the trial's last
        epoch, ``best_value`` its best over the epochs (both in the objective's own units)."""
        return {"trial_id": self.trial_id, "number": self.number, "run": self.run,
                "state": self.state, "epochs": self.epochs, "config": hyperparameters(self.config),
                "value": self.last.get(objective.metric), "best_value": self.best_value,
                "val_acc": self.last.get("val/acc"), "val_loss": self.last.get("val/loss"),
                "test_acc": self.last.get("test/acc"),
                **{key.replace("/", "_"): self.last.get(key) for key in _REGRESSION_SUMMARY if key in self.last},
                "params": self.last.get("model/params"),
                "flops": self.last.get("model/flops"), "latency_ms": self.last.get("model/latency_ms"),
                "arch": architecture(self.last.get("arch")), "arch_hash": self.last.get("arch_hash"),
                **lineage(self.config, self.last),
                "reason": self.reason, "checkpoint": self.checkpoint, "retries": self.retries,
                **({"resumed_after": list(self.resumed_after)} if self.resumed_after else {})}


class TensorBoardRuns:
    """One TensorBoard run per trial: scalars per epoch, HParams from the trial's start."""

    def __init__(self, root: Path, metric: str, task: str = "classification") -> None:
        self.root, self.metric, self.task = root, metric, task
        self._writers: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "metric": self.metric, "task": self.task, "_writers": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("task", "classification")  # pickled before regression existed
        self.__dict__.update(state)

    def _writer(self, run: str):
        if run not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            self._writers[run] = SummaryWriter(log_dir=str(self.root / run), flush_secs=5)
        return self._writers[run]

    def start(self, run: str, hparams: dict[str, Any], number: int) -> None:
        """Write the HParams plugin's experiment and session-start records (torch's protos)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        values = {k: _hparam_value(v) for k, v in hyperparameters(hparams).items()}
        values["trial_number"] = float(number)
        shown = ("val/acc", "val/loss", "test/acc") if self.task == "classification" else \
            ("val/mse", "val/r2", "test/r2")
        metrics = {tag: 0.0 for tag in dict.fromkeys((self.metric, *shown))}
        experiment, session_start, _ = hparams_summaries(values, metrics)
        writer = self._writer(run).file_writer
        writer.add_summary(experiment)
        writer.add_summary(session_start)
        warm = hparams.get("warm_start")
        if isinstance(warm, dict):  # a morphism child: where it comes from
            self._writer(run).add_text("lineage", f"parent trial {warm.get('parent')}; morphs: "
                                       + json.dumps(warm.get("morphs", [])), 0)
        writer.flush()

    def epoch(self, run: str, result: dict[str, Any]) -> None:
        writer = self._writer(run)
        step = int(result["epoch"])
        keys = [*_ALL_METRICS, *sorted(k for k in result if k.startswith("arch/"))]
        for key in keys:
            value = result.get(key)
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                writer.add_scalar(key, value, step)
        if isinstance(result.get("arch"), str):
            writer.add_text("arch", result["arch"], step)  # the architecture at this epoch
        writer.flush()

    def end(self, run: str, state: str, reason: str | None, epochs: int) -> None:
        writer = self._writer(run)
        text = state if not reason else f"{state}: {reason}"
        writer.add_text("trial/state", text, epochs)
        writer.add_scalar("trial/epochs", epochs, epochs)
        writer.file_writer.add_summary(_session_end_summary(state))
        writer.close()
        self._writers.pop(run, None)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _session_end_summary(state: str):
    """The HParams plugin's session-end record: SUCCESS for COMPLETE/PRUNED, FAILURE for FAIL."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import (
        PLUGIN_DATA_VERSION,
        PLUGIN_NAME,
        SESSION_END_INFO_TAG,
    )
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    status = {COMPLETE: "STATUS_SUCCESS", PRUNED: "STATUS_SUCCESS", FAIL: "STATUS_FAILURE"}
    info = SessionEndInfo(status=Status.Value(status.get(state, "STATUS_UNKNOWN")),
                          end_time_secs=time.time())
    content = HParamsPluginData(session_end_info=info, version=PLUGIN_DATA_VERSION)
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name=PLUGIN_NAME, content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=meta)])


def _number(value: Any) -> Any:
    """A curve cell as read back from curves.csv ("0.93", "12", "") as a number when it is one."""
    if isinstance(value, str):
        try:
            return float(value) if value else None
        except ValueError:
            return value
    return value


def _record_dict(record: TrialRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in TrialRecord.__dataclass_fields__}


def _journal_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a journal (none when it does not exist); a half-written last line (the
    one being written when the driver was killed) is ignored."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise
    return out


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Bookkeeper:
    """Receives trial events in the driver and keeps TensorBoard, curves.csv and records.

    What a trial's events cost does not grow with the trials before it (a search of
    thousands of cheap trials must not slow down): every epoch is appended to the curves
    journal; a trial's end touches only its own rows, appends them to curves.csv (rewritten
    whole only when a row brings a column the file lacks), lets go of them (the driver holds
    only running trials' rows: its memory does not grow with every epoch ever reported) and
    appends its record to the trials journal. :meth:`close` (the search's end, or a stop)
    writes curves.csv and trials.json whole, sorted and without duplicates, and deletes both
    journals; reading (a resumed run, the analysis) merges the journals in.
    """

    def __init__(self, experiment_dir: str | Path, objective: Objective, max_epochs: int,
                 tensorboard_dir: str | Path | None = None, task: str = "classification") -> None:
        self.dir = Path(experiment_dir)
        self.layout = ExperimentLayout(self.dir)
        self.objective, self.max_epochs, self.task = objective, max_epochs, task
        self.tensorboard = TensorBoardRuns(Path(tensorboard_dir or self.layout.tensorboard),
                                           objective.metric, task)
        self.trials: dict[str, TrialRecord] = {}
        self.curves: dict[tuple[str, int], dict[str, Any]] = {}
        self._epochs: dict[str, set[int]] = {}  # trial id -> its epochs in ``curves``
        self._csv_columns: list[str] | None = None  # curves.csv's header as on disk
        #: on resume: the rows of trials that were running when the driver stopped, by trial
        self._unfinished_rows: dict[str, list[dict[str, Any]]] = {}

    @property
    def metric(self) -> str:
        return self.objective.metric

    @property
    def curves_path(self) -> Path:
        return self.layout.curves

    @property
    def trials_path(self) -> Path:
        return self.layout.trials

    @property
    def journal_path(self) -> Path:
        """Curve rows received since curves.csv was last written, one JSON line each (so that a
        driver killed mid-trial loses no epoch a trial reported: a resumed trial continues
        from its checkpoint, maybe epochs later)."""
        return self.layout.curves_journal

    def load_existing(self) -> None:
        """On resume: keep the trials and curve rows an earlier run of this experiment wrote."""
        items = json.loads(self.trials_path.read_text()) if self.trials_path.exists() else []
        for item in [*items, *_journal_lines(self.layout.trials_journal)]:  # the journal is newer
            record = TrialRecord(**item)
            record.state = TrialState(record.state)
            if record.state.is_finished:  # a RUNNING or PAUSED one continues
                record.checkpoint = self.moved_here(record.checkpoint)
                self.trials[record.trial_id] = record
        if self.curves_path.exists():
            with self.curves_path.open(newline="") as f:
                reader = csv.DictReader(f)
                for row in reader:  # a trial's rows appended at its end follow older ones
                    self._keep_row(row)
                self._csv_columns = list(reader.fieldnames or []) or None
        for row in _journal_lines(self.journal_path):
            key = (row["trial_id"], int(row["epoch"]))
            if row.get("state", RUNNING) == RUNNING and self.curves.get(key, {}).get("state", RUNNING) != RUNNING:
                continue  # an ended trial's rows in curves.csv are final; the journal's are older
            self._keep_row(row)
        for (trial_id, _), row in sorted(self.curves.items(), key=lambda item: item[0][1]):
            if trial_id not in self.trials:
                self._unfinished_rows.setdefault(trial_id, []).append(row)

    def _keep_row(self, row: dict[str, Any]) -> None:
        """Keep a curve row (a retried epoch replaces the earlier row)."""
        epoch = int(row["epoch"])
        self.curves[(row["trial_id"], epoch)] = row
        self._epochs.setdefault(row["trial_id"], set()).add(epoch)

    def moved_here(self, checkpoint: str | None) -> str | None:
        """A checkpoint recorded where this experiment was before its trials directory was
        moved or renamed, as the same path where the experiment is now (when it is there)."""
        marker = f"{os.sep}{self.dir.name}{os.sep}"
        if not checkpoint or "://" in checkpoint or marker not in checkpoint or \
                os.path.exists(checkpoint):
            return checkpoint
        here = self.dir / checkpoint.rsplit(marker, 1)[1]
        return str(here) if here.exists() else checkpoint

    def trial_started(self, trial_id: str, number: int, config: dict[str, Any]) -> TrialRecord:
        record = self.trials.get(trial_id)
        if record is None:
            record = TrialRecord(trial_id, number, dict(config),
                                 config.get("trial_run") or run_name(number, config))
            self.trials[trial_id] = record
            self.tensorboard.start(record.run, config, number)
            self._resume_record(record)
        return record

    def _resume_record(self, record: TrialRecord) -> None:
        """A trial that was running when the driver stopped starts again with the epochs it
        reported then (Ray may resume it from a checkpoint and stop it before it reports)."""
        for row in self._unfinished_rows.pop(record.trial_id, []):
            record.epochs = max(record.epochs, int(row["epoch"]))
            record.last = {k: _number(v) for k, v in row.items() if k not in CURVE_KEY_COLUMNS}
            record.last["epoch"] = int(row["epoch"])
            self._offer_best(record, record.last.get(self.metric))

    def _offer_best(self, record: TrialRecord, value: Any) -> None:
        """Keep ``value`` as the record's best metric value when it is finite and better."""
        if self.objective.better(value, record.best_value):
            record.best_value = value

    def trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        record = self.trials[trial_id]
        if record.state == PAUSED:  # a result: it runs again
            record.state = RUNNING
        if "epoch" not in result:
            return
        epoch = int(result["epoch"])
        record.epochs = max(record.epochs, epoch) if not result.get("error") else record.epochs
        record.last = dict(result)
        self._offer_best(record, result.get(self.metric))
        if result.get("error"):
            return
        self.tensorboard.epoch(record.run, result)
        row = {"trial_id": trial_id, "trial_number": record.number, "run": record.run,
               "state": RUNNING, "final_epoch": "", "epoch": epoch}
        row.update({k: v for k, v in result.items() if k not in _NOT_METRICS and k not in row
                    and isinstance(v, (int, float, str)) and not k.startswith("config/")})
        self._keep_row(row)
        self.dir.mkdir(parents=True, exist_ok=True)
        _append(self.journal_path, json.dumps(row, default=str) + "\n")

    def last_recorded_epoch(self, trial_id: str) -> int:
        """The highest epoch a running trial has a curve row of (0: none)."""
        return max(self._epochs.get(trial_id, ()), default=0)

    def trial_paused(self, trial_id: str) -> None:
        """The scheduler set the trial aside after its last epoch (to resume it later or end it
        PRUNED): PAUSED until it starts again. Nothing is written: a paused trial's rows and
        record are a running trial's (its curve rows stay in the journal)."""
        record = self.trials[trial_id]
        if record.state == RUNNING:
            record.state = PAUSED

    def trial_resumed(self, trial_id: str) -> TrialRecord:
        """A paused trial starts again (from the checkpoint of the epoch it paused after, which
        :attr:`TrialRecord.resumed_after` keeps)."""
        record = self.trials[trial_id]
        if record.state == PAUSED:
            record.state = RUNNING
            record.resumed_after.append(record.epochs)
        return record

    def trial_retried(self, trial_id: str) -> None:
        if trial_id in self.trials:
            self.trials[trial_id].retries += 1

    def trial_ended(self, trial_id: str, state: str, reason: str | None = None,
                    checkpoint: str | None = None) -> TrialRecord:
        record = self.trials[trial_id]
        record.state, record.reason, record.checkpoint = state, reason, checkpoint
        rows = [self.curves[(trial_id, e)] for e in sorted(self._epochs.get(trial_id, ()))]
        for row in rows:
            row["state"], row["final_epoch"] = state, record.epochs
        self.tensorboard.end(record.run, state, reason, record.epochs)
        self._append_curves(rows)
        self._release_rows(trial_id)
        self.save_record(record)
        return record

    def _release_rows(self, trial_id: str) -> None:
        """An ended trial's rows are final in curves.csv: the driver stops holding them (a
        search of thousands of trials of many epochs each would otherwise keep every epoch it
        ever reported; :meth:`write_curves` reads them back from the file)."""
        for epoch in self._epochs.pop(trial_id, ()):
            self.curves.pop((trial_id, epoch), None)

    def save_record(self, record: TrialRecord) -> None:
        """Append ``record`` (ended, or changed since) to the trials journal."""
        self.dir.mkdir(parents=True, exist_ok=True)
        _append(self.layout.trials_journal, json.dumps(strict_json(_record_dict(record)), default=str,
                                                       allow_nan=False) + "\n")

    def _append_curves(self, rows: list[dict[str, Any]]) -> None:
        """Append an ended trial's rows to curves.csv, or write the ended trials' rows whole
        when the file is new or lacks one of the rows' columns."""
        if not rows:
            return
        columns = self._csv_columns
        if columns is None or not self.curves_path.exists() or \
                any(k not in set(columns) for row in rows for k in row):
            self.write_curves(ended_only=True)
            return
        buf = StringIO()
        csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore").writerows(rows)
        _append(self.curves_path, buf.getvalue())

    def write_trials(self) -> None:
        """trials.json: every trial's record (the state a resumed experiment starts from)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        records = sorted(self.trials.values(), key=lambda t: t.number)
        _atomic_write(self.trials_path, json.dumps(
            strict_json([_record_dict(t) for t in records]), indent=1, default=str, allow_nan=False))
        self.layout.trials_journal.unlink(missing_ok=True)  # every record it held is in trials.json now

    def _rows_in_file(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The rows curves.csv holds now (ended trials' rows, as text), by (trial id, epoch)."""
        if not self.curves_path.exists():
            return {}
        with self.curves_path.open(newline="") as f:
            return {(row["trial_id"], int(row["epoch"])): row for row in csv.DictReader(f)}

    def write_curves(self, ended_only: bool = False) -> None:
        """curves.csv whole, sorted by trial number and epoch: the rows already in it (ended
        trials', which the driver no longer holds) and the rows held (a held row replaces the
        file's for the same trial and epoch); with ``ended_only`` the held rows of running
        trials are left out, else the journal, which holds them, is deleted."""
        self.dir.mkdir(parents=True, exist_ok=True)
        merged = self._rows_in_file()
        merged.update((key, r) for key, r in self.curves.items()
                      if not ended_only or r.get("state", RUNNING) != RUNNING)
        rows = sorted(merged.values(), key=lambda r: (int(r["trial_number"]), int(r["epoch"])))
        metric_columns = curve_metric_columns(getattr(self, "task", "classification"))
        held = {k for r in self.curves.values() for k in r}  # running trials' columns too
        extra = sorted(({k for r in rows for k in r} | held) - set(CURVE_KEY_COLUMNS) - set(metric_columns))
        columns = [*CURVE_KEY_COLUMNS, *metric_columns, *extra]
        buf = StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        _atomic_write(self.curves_path, buf.getvalue())
        self._csv_columns = columns
        if not ended_only:
            self.journal_path.unlink(missing_ok=True)  # every row it held is in curves.csv now

    def best(self) -> TrialRecord | None:
        """The best COMPLETE trial by its final metric (the study's best), else None."""
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def ranked(self) -> list[TrialRecord]:
        """COMPLETE trials, best final metric first."""
        done = [t for t in self.trials.values() if t.state == COMPLETE]
        return self.objective.ranked(done, lambda t: t.last.get(self.metric))

    def counts(self) -> dict[str, int]:
        counts = {str(s): 0 for s in (COMPLETE, PRUNED, FAIL)}
        for t in self.trials.values():
            counts[str(t.state)] = counts.get(str(t.state), 0) + 1
        return counts

    def close(self) -> None:
        """The search ended or stopped: curves.csv and trials.json written whole (the journals
        merged and deleted), TensorBoard's files closed."""
        if self.curves or self.journal_path.exists() or self.curves_path.exists():
            self.write_curves()  # sorted: ended trials' rows were appended in the order they ended
        if self.trials or self.layout.trials_journal.exists():
            self.write_trials()
        self.tensorboard.close()


def strict_json(data: Any) -> Any:
    """``data`` with every NaN or infinite float as None: standard JSON (``NaN`` is Python's
    extension, which strict readers — jq, browsers, other languages — refuse)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: strict_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(v) for v in data]
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    _atomic_write(path, json.dumps(strict_json(data), indent=2, default=str, allow_nan=False) + "\n")
