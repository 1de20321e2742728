"""The only package that imports Ray: the Tuner, the Optuna bridge, callbacks, the scheduler
adapter and the cluster checks. What it runs (searchers, scheduler policies, trials) is
Ray-free and decided elsewhere; this layer adapts, it does not decide.
"""

import os

# Set before Ray is imported anywhere in the process. Ray's own per-trial CSV/JSON/TensorBoard
# loggers would duplicate the bookkeeper's files.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1e9")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
