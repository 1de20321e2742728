"""Metric and config keys, defined once: what a trial reports and what a config reserves."""

#: What every epoch's report holds (the search metric and the scheduler's time attribute
#: among them). A space file's ``metric`` must be one of these.
METRICS = ("epoch", "train/loss", "train/acc", "val/loss", "val/acc", "lr", "time/epoch_s",
           "model/params", "model/flops", "model/latency_ms")
#: What the last epoch's report adds when the trial trained its full budget.
FINAL_METRICS = ("test/loss", "test/acc", "test/seconds", "test/images_per_s")
#: Keys of a trial's config that are bookkeeping (the Optuna trial number, the TensorBoard run
#: name, and a searcher's instructions to the trial: ``warm_start`` — start from a parent's
#: trained weights, see :mod:`tune_nas.trial.warm_start`), not hyperparameters.
RESERVED_KEYS = ("trial_number", "trial_run", "warm_start")
#: What a warm-started trial adds to every report: its own epoch budget and the validation
#: accuracy of its starting weights, measured before its first epoch.
BUDGET, WARM_START_VAL_ACC = "budget", "warm_start_val_acc"
#: How many processes trained the trial together (data-parallel workers, ``workers_per_trial``):
#: in every report of a trained trial, 1 for a trial of one process.
WORLD_SIZE = "world_size"
