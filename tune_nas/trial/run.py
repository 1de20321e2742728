"""What runs inside a trial: data on the device, a model from the registry, one Lightning fit.

:func:`run_trial` knows nothing of Ray: it reports through a :class:`Reporter` (the tuner
passes one that calls ``ray.tune.report``), so it can be run and tested on its own. Every
epoch ends in exactly one report holding the metrics named in :data:`METRICS`; the last
epoch's report also holds the test metrics. A trial whose loss turns NaN, or that runs out of
memory, reports the reason under ``error`` and ends; it is not retried, since it would fail
again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from typing import TYPE_CHECKING, Any

import torch

from tune_nas.config.plugins import import_plugins
from tune_nas.config.training import TrainingConfig, TrialSetup, split_config  # noqa: F401  (re-exported)
from tune_nas.data.batches import Augment, TensorBatches, to_device_tensor
from tune_nas.data.sources import ArraySplits
from tune_nas.metric_keys import (  # noqa: F401
    BUDGET,
    FINAL_METRICS,
    METRICS,
    RESERVED_KEYS,
    WARM_START_VAL_ACC,
    WORLD_SIZE,
    metrics_of,
)
from tune_nas.models import create_model_for
from tune_nas.trial.cost import count_parameters, flops_per_sample, sample_latency_ms
from tune_nas.trial.module import TrialModule, resolve_precision
from tune_nas.trial.reporting import (  # noqa: F401  (Reporter, trial_seed re-exported)
    REPORTS_FILE,
    Reporter,
    parse_reports,
    reports_json,
    trial_seed,
)

if TYPE_CHECKING:
    from tune_nas.trial.data_parallel import TrialGroup

CHECKPOINT_FILE = "trial.ckpt"
#: The key of a warm-started child's checkpoint that keeps what it measured before its first
#: epoch (``{"warm_start_val_acc": ...}``): resumed from that checkpoint, the child needs its
#: parent's checkpoint no more (it may be gone: a moved trials directory) and still reports it.
WARM_START_CKPT_KEY = "tune_nas:warm_start"
#: The key of a checkpoint that keeps torch's random state after its epoch (the CPU generator;
#: the GPU's too when one trained): a resumed trial (paused by ``asha_promotion``, or retried)
#: draws the same dropout masks as if it had never stopped.
RNG_CKPT_KEY = "tune_nas:rng"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; the message names the file and the reason."""


def check_checkpoint(path: str) -> dict[str, Any]:
    """Load ``path`` with ``weights_only=True`` (no arbitrary objects are unpickled) and raise
    :class:`CheckpointError` in one line naming it when it is truncated, corrupt or unsafe;
    returns what it holds."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CheckpointError(f"checkpoint {path}: cannot be loaded safely ({type(exc).__name__}: "
                              f"{reason[:200]}); rule: a Lightning checkpoint written by tune_nas, "
                              "loaded with weights_only=True") from None
    if not isinstance(state, dict) or "state_dict" not in state or "loops" not in state:
        raise CheckpointError(f"checkpoint {path}: not a Lightning trial checkpoint (no "
                              "state_dict/loops); rule: a checkpoint written by tune_nas")
    return state


def trial_device(gpus_per_trial: float, index: int | None = None) -> torch.device:
    """The trial's device; ``index``: a data-parallel worker's GPU (its rank among the GPUs
    Ray made visible to the trial)."""
    if gpus_per_trial > 0 and torch.cuda.is_available():
        return torch.device("cuda", index) if index is not None else torch.device("cuda")
    return torch.device("cpu")


#: Data sets up to this share of the GPU's free memory live on the GPU for the whole trial;
#: larger ones stay in (pinned) host memory and travel batch by batch.
RESIDENT_SHARE = 0.5


def data_device(splits: ArraySplits, device: torch.device) -> torch.device:
    """Where a trial keeps its data: on ``device`` when it fits comfortably, else the CPU."""
    if device.type != "cuda":
        return device
    from tune_nas.trial.packing import dataset_bytes

    free, _ = torch.cuda.mem_get_info(device)
    return device if dataset_bytes(splits) <= RESIDENT_SHARE * free else torch.device("cpu")


def architecture_metrics(model: torch.nn.Module) -> dict[str, Any]:
    """A searchable model's current decisions (``arch/...`` numbers) and its architecture
    string (``arch``), so every epoch's report shows the architecture converge; a cell model's
    isomorphism-invariant key too (``arch_hash``)."""
    out: dict[str, Any] = {}
    decisions = getattr(model, "decisions", None)
    if callable(decisions):
        out.update({k: float(v) for k, v in decisions().items()})
    arch_string = getattr(model, "arch_string", None)
    if callable(arch_string):
        out["arch"] = arch_string()
    arch_hash = getattr(model, "arch_hash", None)
    if callable(arch_hash):
        out["arch_hash"] = arch_hash()
    return out


def failure_report(epoch: int, error: str, measured: dict[str, Any] | None = None,
                   task: str = "classification") -> dict[str, Any]:
    """The last report of a trial that failed by itself (NaN loss, out of memory): every metric
    of its task (:func:`~tune_nas.metric_keys.metrics_of`) is present, NaN where it was not
    measured, so that whichever one the search optimises is in the result (Ray's strict metric
    check would otherwise end the whole search instead of this trial), and ``error`` holds the
    reason."""
    keys = metrics_of(task)
    report: dict[str, Any] = {key: float("nan") for key in keys}
    report.update(measured or {})
    for key in keys:  # the validation metrics are not measured for an epoch whose training diverged
        if key.startswith("val/"):
            report[key] = float("nan")
    report.update(epoch=epoch, error=error)
    return report


def earlier_reports(resume_dir: str | None) -> list[dict[str, Any]]:
    """The reports kept beside the checkpoint in ``resume_dir`` (:data:`REPORTS_FILE`); none
    for a fresh trial, a checkpoint written without them, or a file that cannot be read (they
    are a record, not what the fit resumes from)."""
    path = os.path.join(resume_dir, REPORTS_FILE) if resume_dir else None
    if path is None or not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            return parse_reports(f.read(), path)
    except (OSError, ValueError) as exc:
        warnings.warn(f"{exc}; the trial's next checkpoint keeps only the epochs it runs now", stacklevel=2)
        return []


class _EpochReport:
    """One report per epoch (test metrics and a checkpoint when due); a plain class that
    :func:`_callback` hands to Lightning as a callback. A checkpoint keeps every epoch's
    report up to it (:data:`REPORTS_FILE`): ``reports`` are those of the checkpoint resumed from."""

    def __init__(self, reporter: Reporter, train: TensorBatches, test: TensorBatches,
                 setup: TrialSetup, cost: dict[str, float], task: str = "classification",
                 rng_state: dict[str, Any] | None = None, reports: list[dict[str, Any]] | None = None) -> None:
        self.reporter, self.train, self.test = reporter, train, test
        self.setup, self.cost, self.task = setup, cost, task
        self.rng_state = rng_state  # from the checkpoint resumed from (RNG_CKPT_KEY)
        self.reports = list(reports or [])
        self.started = 0.0

    def on_train_start(self, trainer, module) -> None:
        """Resumed: torch's random state as it was when the checkpoint was written."""
        if self.rng_state:
            torch.set_rng_state(self.rng_state["torch"])
            if "cuda" in self.rng_state and torch.cuda.is_available():
                torch.cuda.set_rng_state(self.rng_state["cuda"])

    def on_train_epoch_start(self, trainer, module) -> None:
        self.train.set_epoch(trainer.current_epoch)
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, module: TrialModule) -> None:
        seconds = time.perf_counter() - self.started
        epoch = trainer.current_epoch + 1
        metrics = {"epoch": epoch, **module.epoch_metrics(), "time/epoch_s": seconds,
                   **self.cost, **architecture_metrics(module.model)}
        if not math.isfinite(metrics["train/loss"]):
            trainer.should_stop = True
            error = f"train/loss is {metrics['train/loss']} at epoch {epoch}"
            self.reporter.report(failure_report(epoch, error, metrics, self.task), None)
            return
        if epoch >= self.setup.max_epochs:
            started = time.perf_counter()
            test = module.evaluate(self.test)
            seconds = time.perf_counter() - started
            per_s = "test/images_per_s" if self.task == "classification" else "test/samples_per_s"
            metrics.update({**{f"test/{k}": v for k, v in test.items()}, "test/seconds": seconds,
                            per_s: len(self.test.images) / max(seconds, 1e-9)})
        self.reports = [r for r in self.reports if r["epoch"] < epoch] + [metrics]
        due = (epoch % self.setup.checkpoint_every == 0 or epoch >= self.setup.max_epochs
               or epoch in self.setup.checkpoint_epochs)
        if not due:
            self.reporter.report(metrics, None)
            return
        ckpt_dir = tempfile.mkdtemp(prefix="tune_nas-ckpt-")
        try:
            trainer.save_checkpoint(os.path.join(ckpt_dir, CHECKPOINT_FILE))
            with open(os.path.join(ckpt_dir, REPORTS_FILE), "w", encoding="utf-8") as f:
                f.write(reports_json(self.reports))
            self.reporter.report(metrics, ckpt_dir)
        finally:
            shutil.rmtree(ckpt_dir, ignore_errors=True)

    def on_save_checkpoint(self, trainer, module, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_CKPT_KEY] = {"torch": torch.get_rng_state(),
                                    **({"cuda": torch.cuda.get_rng_state()} if torch.cuda.is_initialized() else {})}
        if WARM_START_VAL_ACC in self.cost:  # a warm-started child (see WARM_START_CKPT_KEY)
            checkpoint[WARM_START_CKPT_KEY] = {WARM_START_VAL_ACC: self.cost[WARM_START_VAL_ACC]}


def _callback(obj: _EpochReport):
    """``obj`` as a Lightning Callback (Lightning is imported only here, in the worker)."""
    import lightning.pytorch as pl

    class EpochReport(pl.Callback):
        def on_train_start(self, trainer, module):
            obj.on_train_start(trainer, module)

        def on_train_epoch_start(self, trainer, module):
            obj.on_train_epoch_start(trainer, module)

        def on_train_epoch_end(self, trainer, module):
            obj.on_train_epoch_end(trainer, module)

        def on_save_checkpoint(self, trainer, module, checkpoint):
            obj.on_save_checkpoint(trainer, module, checkpoint)

    return EpochReport()


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="torchmetrics")


def run_trial(config: dict[str, Any], splits: ArraySplits, setup: TrialSetup,
              reporter: Reporter, resume_dir: str | None = None, group: TrialGroup | None = None) -> None:
    """Train one configuration for up to ``setup.max_epochs`` epochs, reporting every epoch.

    ``resume_dir`` is a checkpoint directory written by an earlier run of the same trial: the
    fit continues after the epoch it holds (same weights, optimizer, schedule and batches).
    With ``setup.workers_per_trial`` N > 1 this process is rank 0 of N data-parallel workers:
    it starts the others (:mod:`tune_nas.trial.data_parallel`), which call this function with
    their ``group``; every rank sees its shard of each batch, the metrics are over all of
    them, and only rank 0 reports and writes checkpoints.
    """
    ckpt_path = os.path.join(resume_dir, CHECKPOINT_FILE) if resume_dir else None
    resumed = check_checkpoint(ckpt_path) if ckpt_path else {}
    if setup.workers_per_trial > 1 and group is None:
        training, _ = split_config(config)
        smallest = min(training.batch_size, len(splits.train_x))
        if smallest < setup.workers_per_trial:  # a worker would get no images: it would fail again
            reporter.report(failure_report(1, f"batch_size={training.batch_size} (train set of "
                                           f"{len(splits.train_x)}) with workers_per_trial={setup.workers_per_trial}: "
                                           "rule: every worker gets at least one image of each batch",
                                           task=splits.task), None)
            return
        from tune_nas.trial.data_parallel import end_process_group, launch_workers

        try:
            with launch_workers(config, splits, setup, resume_dir) as rank0:
                _train(config, splits, setup, reporter, ckpt_path, resumed, rank0)
        finally:
            end_process_group()
        return
    _train(config, splits, setup, reporter, ckpt_path, resumed, group)


def _train(config: dict[str, Any], splits: ArraySplits, setup: TrialSetup, reporter: Reporter,
           ckpt_path: str | None, resumed: dict[str, Any], group: TrialGroup | None) -> None:
    """:func:`run_trial` in one process (the only one, or one rank of ``group``)."""
    import lightning.pytorch as pl

    _quiet_lightning()
    import_plugins(setup.plugins)
    torch.set_num_threads(max(1, int(setup.cpus_per_trial)))
    training, arch = split_config(config)
    seed = trial_seed(setup.seed, int(config.get("trial_number", 0)))
    pl.seed_everything(seed, workers=False, verbose=False)
    rank, world_size = (group.rank, group.world_size) if group is not None else (0, 1)
    device = trial_device(setup.gpus_per_trial, rank if group is not None else None)

    warm = config.get("warm_start")
    # a warm-started child resumed from its own checkpoint: every weight is there, and what it
    # measured before its first epoch too; its parent's checkpoint is not needed again
    measured = resumed.get(WARM_START_CKPT_KEY, {}).get(WARM_START_VAL_ACC) if warm else None
    if warm:  # a child of the morphism searcher: its own budget, a fine-tuning learning rate
        setup = dataclasses.replace(setup, max_epochs=max(1, min(setup.max_epochs, int(warm["epochs"]))))
        training = dataclasses.replace(training, lr=training.lr * float(warm.get("lr_scale", 1.0)),
                                       warmup_epochs=float(warm.get("warmup_epochs", training.warmup_epochs)))
    earlier = earlier_reports(os.path.dirname(ckpt_path)) if ckpt_path else []
    if earlier and earlier[-1]["epoch"] >= setup.max_epochs:
        # resumed from the checkpoint of its last epoch (retried, or its driver was killed before
        # that epoch's report reached it): nothing is left to train; the last report is said
        # again, so that the trial ends with its final result instead of an older one
        if rank == 0:
            reporter.report(earlier[-1], None)
        return
    if warm and measured is None:  # its parent's weights, morphed
        from tune_nas.trial.warm_start import WarmStartError, warm_started_model

        try:
            model = warm_started_model(setup.model, splits.num_classes, splits.in_channels, splits.image_size,
                                       arch, warm)
        except WarmStartError as exc:  # it would fail again: the trial fails alone, with the reason, no retry
            reporter.report(failure_report(1, str(exc)), None)
            return
    else:
        model = create_model_for(setup.model, splits, **arch)
    task = splits.task
    cost = {WORLD_SIZE: world_size, "model/params": count_parameters(model),
            "model/flops": flops_per_sample(model, splits.sample_shape),
            # one sample, on the trial's device: what a deployed model's prediction costs
            "model/latency_ms": sample_latency_ms(model, splits.sample_shape, device=device,
                                                  warmup=2, repeats=5) if rank == 0 else float("nan")}
    # the space file's switch, on any device: on a CPU with AMX, bf16 convs run fastest in
    # channels_last too (benchmarks/global_net_speed.py); images only
    channels_last = training.channels_last and task == "classification"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    resident = data_device(splits, device)

    def batches(x, y, shard: bool = True, **kw) -> TensorBatches:
        return TensorBatches(to_device_tensor(x, resident), to_device_tensor(y, resident),
                             training.batch_size, mean=getattr(splits, "mean", None),
                             std=getattr(splits, "std", None), channels_last=channels_last, device=device,
                             shard=(rank, world_size) if shard else (0, 1), **kw)

    augment = Augment(training.crop_pad, training.flip) if task == "classification" else None  # images only
    train = batches(splits.train_x, splits.train_y, shuffle=True, drop_last=True, seed=seed, augment=augment)
    if len(train) == 0:
        train = batches(splits.train_x, splits.train_y, shuffle=True, seed=seed, augment=augment)
    val, test = batches(splits.val_x, splits.val_y), batches(splits.test_x, splits.test_y)
    module = TrialModule(model, training, task, len(train), setup.max_epochs)
    if warm:  # what the child starts from (its parent's accuracy if all went well), and its budget
        if measured is None and rank == 0:  # before any process group: on the whole val split
            measured = module.to(device).evaluate(batches(splits.val_x, splits.val_y, shard=False))["acc"]
        cost[WARM_START_VAL_ACC] = float(measured if measured is not None else float("nan"))
        cost[BUDGET] = setup.max_epochs
    if training.compile:
        module.model = torch.compile(module.model)
    report = _EpochReport(reporter, train, test, setup, cost, task, rng_state=resumed.get(RNG_CKPT_KEY),
                          reports=earlier)
    parallel = {"devices": 1} if group is None else {
        "devices": world_size, "num_nodes": 1, "strategy": group.strategy(device.type),
        "use_distributed_sampler": False}  # the batches are sharded already
    trainer = pl.Trainer(
        max_epochs=setup.max_epochs, accelerator=device.type, **parallel,
        precision=resolve_precision(training.precision, device), logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=max(1, len(train)), callbacks=[_callback(report)],
        benchmark=device.type == "cuda", default_root_dir=tempfile.gettempdir())
    try:
        if group is not None:
            group.rendezvous()
        trainer.fit(module, train, val, ckpt_path=ckpt_path, weights_only=True)
    except torch.OutOfMemoryError as exc:
        reporter.report(failure_report(trainer.current_epoch + 1,
                                       f"out of memory: {str(exc).splitlines()[0]}", task=task), None)
    finally:
        del trainer, module, model, train, val, test
        if device.type == "cuda":
            with contextlib.suppress(Exception):
                torch.cuda.empty_cache()
