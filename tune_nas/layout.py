"""Every file of an experiment directory (``<trials-dir>/<name>/``), spelled once.

Who writes what (data flows one way: launch → Ray layer → trial → here → analysis):

===========================  ============================================================
``experiment.json``          the launcher, before the first trial: the resolved settings
                             (``spec``: every ExperimentSpec field), the flags that
                             overrode the space file (``overrides``), the space file's
                             path and kind, the study storage (masked), the format
                             version that wrote it (``format``), when it was created
``space.py``                 the launcher: a copy of the space file (resume loads it)
``optuna.db``                the Optuna study (SQLite), unless ``--storage`` names another
``curves.csv``               the bookkeeper: one row per (trial, epoch), columns
                             :data:`CURVE_KEY_COLUMNS` then every reported metric
``curves.journal.jsonl``     the bookkeeper: every curve row as it arrives, one JSON line
                             (merged on resume and by readers; deleted once curves.csv
                             is written whole, at the search's end)
``trials.json``              the bookkeeper: every trial's record (resume starts from it),
                             written whole at the search's end
``trials.journal.jsonl``     the bookkeeper: each ended trial's record as it ends, one
                             JSON line (read after trials.json; deleted with it written)
``tensorboard/``             the bookkeeper: one run per trial
``summary.json``             the launcher, at the end: counts, the best trial, every trial
``fidelity.json`` / ``.txt`` the fidelity analysis; ``curves.png``, ``fidelity.png`` its
                             plots
``final/``                   the final stage (retrained top-k), with its own curves and
                             trials (and Ray's files)
``driver.lock``              the running driver's lock (pid, host, since): one driver per
                             experiment (:mod:`tune_nas.storage.driver_lock`); not mirrored
``trial_NNN_<id>/``,         Ray Tune's experiment (trial directories, checkpoints,
``tuner.pkl``, ``*-state-*`` resumable state); only the Ray layer reads them
===========================  ============================================================

No Ray, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The version of this layout (and of the pickled Ray state beside it). An experiment whose
#: experiment.json says another version is refused on resume with one line naming it.
FORMAT_VERSION = 2

EXPERIMENT_FILE = "experiment.json"
SPACE_COPY = "space.py"
STUDY_FILE = "optuna.db"
CURVES_FILE = "curves.csv"
CURVES_JOURNAL = "curves.journal.jsonl"
TRIALS_FILE = "trials.json"
TRIALS_JOURNAL = "trials.journal.jsonl"
TENSORBOARD_DIR = "tensorboard"
SUMMARY_FILE = "summary.json"
FIDELITY_JSON = "fidelity.json"
FIDELITY_TEXT = "fidelity.txt"
CURVES_PNG = "curves.png"
FIDELITY_PNG = "fidelity.png"
FINAL_DIR = "final"
RAY_STATE_FILE = "tuner.pkl"
DRIVER_LOCK = "driver.lock"

#: curves.csv starts with these columns; every reported metric follows (the known ones in
#: :data:`tune_nas.metric_keys.METRICS` order, then any other, sorted by name).
CURVE_KEY_COLUMNS = ("trial_id", "trial_number", "run", "state", "final_epoch", "epoch")


@dataclass(frozen=True)
class ExperimentLayout:
    """The paths of one experiment directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def name(self) -> str:
        return self.root.name

    experiment = property(lambda self: self.root / EXPERIMENT_FILE)
    space_copy = property(lambda self: self.root / SPACE_COPY)
    study = property(lambda self: self.root / STUDY_FILE)
    curves = property(lambda self: self.root / CURVES_FILE)
    curves_journal = property(lambda self: self.root / CURVES_JOURNAL)
    trials = property(lambda self: self.root / TRIALS_FILE)
    trials_journal = property(lambda self: self.root / TRIALS_JOURNAL)
    tensorboard = property(lambda self: self.root / TENSORBOARD_DIR)
    summary = property(lambda self: self.root / SUMMARY_FILE)
    fidelity_json = property(lambda self: self.root / FIDELITY_JSON)
    fidelity_text = property(lambda self: self.root / FIDELITY_TEXT)
    curves_png = property(lambda self: self.root / CURVES_PNG)
    fidelity_png = property(lambda self: self.root / FIDELITY_PNG)
    final = property(lambda self: ExperimentLayout(self.root / FINAL_DIR))
    ray_state = property(lambda self: self.root / RAY_STATE_FILE)
    driver_lock = property(lambda self: self.root / DRIVER_LOCK)

    def study_url(self) -> str:
        """The default study storage: SQLite in the experiment directory."""
        return f"sqlite:///{self.study}"
