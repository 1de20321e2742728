"""NAS-Bench-101's cell space trained for real on CIFAR-10: a GPU recipe.

The benchmark's network (stem 128 channels, 3 stacks of 3 cells; ~2.7 M parameters for the
Inception-like cell, the benchmark's figures to the parameter) and close to its training
protocol, searched through the cell's flat encoding (``edge_0`` .. ``edge_20``, ``op_node_0``
.. ``op_node_4``; invalid and isomorphic proposals are resampled before anything trains, see
``tune_nas.search.cells``) with regularized evolution. The benchmark trains with RMSProp,
lr 0.2 cosine-decayed, batch 256 and 108 epochs (4, 12, 36 in its low-fidelity tables); here
SGD with Nesterov momentum (the same cosine schedule), 12 epochs per search trial with ASHA, and
the final stage retrains the best three cells for the benchmark's 108 epochs. Unmeasured here
(no GPU); the figures are a plan.
"""

from ray import tune

from tune_nas.spaces.nasbench101 import param_choices

EXPERIMENT = {
    "description": "NAS-Bench-101 cells (stem 128, 3x3 cells) trained on CIFAR-10, one GPU",
    "dataset": "cifar10",
    "data_dir": "data",
    "model": "nb101",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 12,
    "grace_period": 4,
    "reduction_factor": 3,
    "num_samples": 100,
    "cpus_per_trial": 4,
    "gpus_per_trial": 0.5,
    "checkpoint_every": 12,
    "searcher": "evolution",
    "searcher_options": {"population_size": 20, "sample_size": 5},
    "final_top_k": 3,
    "final_max_epochs": 108,
}

PARAM_SPACE = {
    **{name: tune.choice(choices) for name, choices in param_choices(7).items()},
    "stem_channels": 128,
    "stacks": 3,
    "cells_per_stack": 3,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 1e-4,
    "batch_size": 256,
    "schedule": "cosine",
    "crop_pad": 4,
    "flip": True,
    "precision": "bf16",
    "channels_last": True,
}
