"""Regularized evolution of the global space on Fashion-MNIST for one H100 (the CPU preset
``fashion_mnist_evolution``, scaled to what a GPU affords within the research's REMNet budget:
≤ 10 search epochs per candidate, ≤ 20 final epochs).

    python -m tune_nas.launch --space fashion_mnist_evolution_h100 \\
        --dataset imagefolder:../shared/data/fashion-mnist-png.tar.gz

What changes from the CPU preset, and why: the search sees all 54,000 training images (the
CPU preset 20 %: a low-fidelity proxy weakens the ranking, the research's lesson), wider
channels (64, 128, 256 instead of 32, 64, 128), 3 slots per stage instead of 2 with ``sep5``
back among the ops (a GPU runs depthwise convs well), four trials packed per GPU, an hour of
search, population 32 and tournaments of 8 for the ~300 candidates that fit, then the 4 best
retrained for 20 epochs. The data set lives on the GPU (crop and flip in batches there), bf16
autocast, channels_last, batch 256. Unmeasured here (no GPU was lent): a plan, not a result.
"""

from ray import tune

from tune_nas.spaces.global_spec import param_choices

EXPERIMENT = {
    "description": "global_net evolved on Fashion-MNIST, one H100: 3 stages x 3 slots, width 64",
    "dataset": "fashion_mnist",
    "model": "global_net",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 10,
    "grace_period": 1,
    "reduction_factor": 3,
    "scheduler": "asha",
    "searcher": "evolution",
    "searcher_options": {"population_size": 32, "sample_size": 8},
    "num_samples": 2000,  # the time budget ends the search first
    "time_budget_s": 3600,
    "train_fraction": 1.0,
    "cpus_per_trial": 4,
    "gpus_per_trial": 0.25,
    "checkpoint_every": 5,
    "final_top_k": 4,
    "final_max_epochs": 20,
}

PARAM_SPACE = {
    **{name: tune.choice(choices) for name, choices in param_choices(stages=3, slots=3).items()},
    "stages": 3,
    "slots": 3,
    "width": 64,
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
    "batch_size": 256,
    "crop_pad": 2,
    "flip": True,
    "precision": "bf16",
    "channels_last": True,
}
