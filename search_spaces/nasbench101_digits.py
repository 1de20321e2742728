"""NAS-Bench-101's cell space trained for real on scikit-learn's digits: minutes on a CPU.

The cell is searched through its flat encoding (``edge_0`` .. ``edge_20``: one 0/1 choice per
upper-triangular entry of the 7x7 adjacency matrix, row by row; ``op_node_0`` .. ``op_node_4``:
the op of each inner vertex), which every searcher handles; proposals that are no valid cell
(input cut off from output, more than 9 edges after pruning) or that are isomorphic to a cell
already trained are resampled before anything trains (``tune_nas.search.cells``), and the
``evolution`` searcher mutates the cell with NAS-Bench-101's own mutation. Every trial reports
its pruned cell as ``arch`` (``{"matrix", "ops"}``) and its isomorphism-invariant ``arch_hash``.

A small skeleton (stem 16 channels, 3 stacks of 1 cell: 8, 4, 2 px) for 8 epochs: a search of
the space and of what training cells costs, not NAS-Bench-101's protocol (see
nasbench101_cifar10). ``--searcher random`` (or tpe, reinforce) drops the evolution options.
"""

from ray import tune

from tune_nas.spaces.nasbench101 import param_choices

EXPERIMENT = {
    "description": "NAS-Bench-101 cells (stem 16, 3 stacks of 1 cell) trained on digits, 32 trials",
    "dataset": "digits",
    "model": "nb101",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 8,
    "grace_period": 2,
    "reduction_factor": 2,
    "num_samples": 32,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "searcher": "evolution",
    "searcher_options": {"population_size": 10, "sample_size": 3},
    "n_startup_trials": 8,
}

PARAM_SPACE = {
    **{name: tune.choice(choices) for name, choices in param_choices(7).items()},
    "stem_channels": 16,
    "stacks": 3,
    "cells_per_stack": 1,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "batch_size": 64,
    "schedule": "cosine",
}
