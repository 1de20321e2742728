"""A tabular trial: the cell's recorded result looked up in NAS-Bench-201, no training.

:func:`run_tabular_trial` is what a trial runs when the experiment's ``evaluation`` is
``"tabular"``: it builds the cell from the config (``arch`` or ``edge0..edge5``, as the nb201
model takes it), draws one of the table's training seeds with a generator seeded from the
experiment seed and the trial number (so a rerun reports the same numbers) and reports ONE
epoch. Ray-free and torch-free: it reports through the same :class:`Reporter` as a trained
trial, so it is tested without Ray. ``time/epoch_s`` is what the lookup took (what the
progress line's time-left estimate reads); the table's training time of the cell, simulated,
is ``table/train_s``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tune_nas.config.training import TrialSetup, split_config
from tune_nas.metric_keys import FINAL_METRICS, METRICS
from tune_nas.tabular import EDGE_KEYS, NB201Table, arch_string, cell_ops
from tune_nas.trial.reporting import Reporter, trial_seed

#: The network NAS-Bench-201 trained every cell in: C=16 stem channels, N=5 cells per stage.
TABLE_C, TABLE_N = 16, 5


def tabular_report(ops: tuple[str, ...], result: dict[str, float], seconds: float) -> dict[str, Any]:
    """One epoch's report from a table row: every key of METRICS and FINAL_METRICS (NaN where
    the table records nothing: losses, lr, flops, the test split), so Ray's strict metric check
    finds whichever one the search optimises."""
    report: dict[str, Any] = {key: float("nan") for key in (*METRICS, *FINAL_METRICS)}
    report.update({
        "epoch": 1,
        "val/acc": result["val_acc"] / 100.0,
        "time/epoch_s": seconds,  # the lookup, really spent here
        "table/train_s": result["train_time"],  # simulated: what training the cell took the benchmark
        "model/params": result["model_size"] * 1e6,
        "model/latency_ms": result["latency"] * 1000.0,
        "arch": arch_string(ops),
    })
    return report


def run_tabular_trial(config: dict[str, Any], setup: TrialSetup, reporter: Reporter) -> None:
    """Look the configured cell up in ``setup.dataset``'s table and report it once."""
    _, arch = split_config(config)
    unknown = sorted(set(arch) - {"arch", "C", "N", *EDGE_KEYS})
    if unknown:
        raise ValueError(f"tabular trial: unknown argument(s) {unknown}; rule: the cell, as arch or edge0..edge5")
    if (arch.get("C", TABLE_C), arch.get("N", TABLE_N)) != (TABLE_C, TABLE_N):
        raise ValueError(f"tabular trial: C={arch.get('C')!r}, N={arch.get('N')!r}; rule: the table's network, "
                         f"C={TABLE_C}, N={TABLE_N}")
    ops = cell_ops(arch.get("arch"), [arch.get(key) for key in EDGE_KEYS])
    started = time.perf_counter()
    rng = np.random.default_rng(trial_seed(setup.seed, int(config.get("trial_number", 0))))
    result = NB201Table(setup.dataset).lookup(ops, rng)
    reporter.report(tabular_report(ops, result, time.perf_counter() - started), None)
