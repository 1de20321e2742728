"""Regularized evolution of a global search space on Fashion-MNIST, on two CPU cores (the
research's REMNet setting: ≤ 10 search epochs per candidate, ≤ 20 final epochs).

    python -m tune_nas.launch --space fashion_mnist_evolution \\
        --dataset imagefolder:../shared/data/fashion-mnist-png.tar.gz

The space (``global_net``, see ``tune_nas.spaces.global_spec``): a stem and 3 stages (28, 14,
7 px) of 2 slots each; every slot is ``none``, ``conv3``, ``conv5`` or ``res3`` (a ResNet basic
block) with an optional skip from 2 or 3 nodes back that may cross stages (area-pooled to the
slot's map, 1×1-projected to its channels, summed pixel-wise); max or average pooling between
stages; dropout before the head. Channels are fixed (32, 64, 128: the research found fixing
channels better on limited resources, and it bounds a candidate's cost); ``sep5`` is left out
because depthwise convs run at a fraction of dense convs' speed on a CPU
(``benchmarks/global_net_speed.py``), which the time budget would pay for.

The search: ``evolution`` (aging, population 16, tournaments of 4) on 20 % of the training
images (10,800; the validation split is the 10 % held out of the training set), ASHA rungs at
1, 3 and 9 epochs of at most 10, within a 45-minute time budget; then the final stage retrains
the 2 best 10-epoch candidates for 20 epochs on all 54,000 training images and reports test
accuracy once. Training settings are fixed, with reason: SGD with Nesterov momentum and a
one-cycle schedule (fast convergence in few epochs), label smoothing 0.1, random crops
(2 px padding) and horizontal flips (augmentation helps both search and final result, the
research's lesson), bf16 autocast and channels_last (2.4x a float32 step on a CPU with AMX).
"""

from ray import tune

from tune_nas.spaces.global_spec import param_choices

EXPERIMENT = {
    "description": "global_net evolved on Fashion-MNIST: 3 stages x 2 slots, 10-epoch search, 20-epoch final",
    "dataset": "fashion_mnist",
    "model": "global_net",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 10,
    "grace_period": 1,
    "reduction_factor": 3,
    "scheduler": "asha",
    "searcher": "evolution",
    "searcher_options": {"population_size": 16, "sample_size": 4},
    "num_samples": 400,  # the time budget ends the search first
    "time_budget_s": 2700,
    "train_fraction": 0.2,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "checkpoint_every": 5,
    "final_top_k": 2,
    "final_max_epochs": 20,
}

PARAM_SPACE = {
    **{name: tune.choice(choices)
       for name, choices in param_choices(stages=3, slots=2, ops=("none", "conv3", "conv5", "res3")).items()},
    "stages": 3,
    "slots": 2,
    "width": 32,
    "pool": tune.choice(["max", "avg"]),
    "dropout": tune.choice([0.0, 0.1, 0.2, 0.3]),
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "warmup_epochs": 1,
    "label_smoothing": 0.1,
    "batch_size": 128,
    "crop_pad": 2,
    "flip": True,
    "precision": "bf16",
    "channels_last": True,
}
