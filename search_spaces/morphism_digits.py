"""Network morphism on scikit-learn's digits: children grow from their parents' trained weights, minutes on a CPU.

The first 4 trials train ``morph_net`` chains drawn from the whole family the benchmark's
evolution searches (width 8-64, 1-6 conv-BN-ReLU layers, pooling while the map stays >= 2 px: no
morph adds a pool, so the seeds set them) from scratch for 6 epochs: with the same start as
evolution's first population, what differs is how the children train. Every later trial is the
child of a finished one (a tournament of 3): one or two function-preserving transforms (widen a
layer, insert a layer, add a skip, grow a kernel) of the parent's network, starting from the
parent's trained weights, for 2 epochs at 0.3 × the parent's learning rate.
Each child measures its validation accuracy before its first epoch (``warm_start_val_acc``:
the parent's, when the transforms preserved the function); summary.json records ``parent``
and ``morphs`` per trial. No early stopping: a child is already cheap.
"""

from ray import tune

EXPERIMENT = {
    "description": "morph_net grown by network morphism on digits, 24 trials",
    "dataset": "digits",
    "model": "morph_net",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 6,
    "scheduler": "none",
    "searcher": "morphism",
    "searcher_options": {"seed_trials": 4, "sample_size": 3, "max_morphs": 2, "child_epochs": 2,
                         "max_layers": 6, "max_channels": 64, "max_kernel": 5},
    "num_samples": 24,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "checkpoint_every": 1,
}

PARAM_SPACE = {
    # the seeds: measured against width 8/16 x depth 3/4 seeds in the README ("Network morphism")
    "width": tune.choice([8, 12, 16, 24, 32, 48, 64]),
    "depth": tune.choice([1, 2, 3, 4, 5, 6]),
    "optimizer": "adamw",
    "lr": 0.01,
    "weight_decay": 1e-4,
    "batch_size": 64,
}
