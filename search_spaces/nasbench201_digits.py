"""NAS-Bench-201's cell space trained for real on scikit-learn's digits: minutes on a CPU.

Six categorical edges, one per edge of the cell (``edge0`` .. ``edge5``, in arch-string order:
node 1 <- 0; node 2 <- 0, 1; node 3 <- 0, 1, 2), which the nb201 model takes in place of an
``arch`` string; every trial reports its cell string as ``arch`` (summary.json's best too).
A small network (C=8, one cell per stage) for a few epochs: a smoke test of the space and of
what the table's numbers cost to produce, not NAS-Bench-201's protocol (see
nasbench201_cifar10 for that, and nasbench201_tabular for the looked-up results).
"""

from ray import tune

from tune_nas.tabular import OPS

EXPERIMENT = {
    "description": "NAS-Bench-201 cells (C=8, N=1) trained on digits, 12 trials",
    "dataset": "digits",
    "model": "nb201",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 4,
    "grace_period": 1,
    "reduction_factor": 2,
    "num_samples": 12,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "n_startup_trials": 6,
}

PARAM_SPACE = {
    **{f"edge{i}": tune.choice(list(OPS)) for i in range(6)},
    "C": 8,
    "N": 1,
    "optimizer": "sgd",
    "lr": tune.loguniform(0.02, 0.2),
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "batch_size": 64,
    "schedule": "cosine",
}
