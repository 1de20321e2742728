"""NAS-Bench-201's cell space trained for real on CIFAR-10: a GPU recipe.

Six categorical edges (``edge0`` .. ``edge5``, arch-string order), the benchmark's network
(C=16, N=5) and its training protocol: SGD with Nesterov momentum 0.9, lr 0.1, weight decay
5e-4, cosine schedule, batch 256, random crop (pad 4) and flips, 200 epochs in the paper.
Here the search trains 12 epochs per trial (ASHA stops the poor cells early), four trials
packed on one GPU (the network is ~1 M parameters); the final stage retrains the best three
cells for the paper's 200 epochs. Unmeasured here (no GPU); the figures are a plan. Compare
the search's best ``arch`` with the table (``python -m tune_nas.launch --space
nasbench201_tabular``), which gives every cell's 200-epoch validation accuracy.
"""

from ray import tune

from tune_nas.tabular import OPS

EXPERIMENT = {
    "description": "NAS-Bench-201 cells (C=16, N=5) trained on CIFAR-10, one GPU",
    "dataset": "cifar10",
    "data_dir": "data",
    "model": "nb201",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 12,
    "grace_period": 2,
    "reduction_factor": 3,
    "num_samples": 48,
    "cpus_per_trial": 4,
    "gpus_per_trial": 0.25,
    "checkpoint_every": 12,
    "n_startup_trials": 12,
    "final_top_k": 3,
    "final_max_epochs": 200,
}

PARAM_SPACE = {
    **{f"edge{i}": tune.choice(list(OPS)) for i in range(6)},
    "C": 16,
    "N": 5,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "batch_size": 256,
    "schedule": "cosine",
    "crop_pad": 4,
    "flip": True,
    "precision": "bf16",
    "channels_last": True,
}
