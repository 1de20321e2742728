"""ResNet50 on CIFAR-10 for one H100, sized for ``tune_nas.compare``'s 10-minute goal (≥ 94 %).

``python -m tune_nas.compare --preset-suffix _h100``: a 4-minute search (a quarter of the
training images, two trials packed per GPU, ASHA from epoch 2), then the best configuration
retrained for 35 epochs on all 45,000 training images (about 5 minutes at ~8k images/s).
The recipe of fast CIFAR training (airbench's): data resident on the GPU, random crop (pad 4)
and flips in batches on the GPU, bf16 autocast, channels_last, one-cycle SGD, batch 512,
label smoothing. Unmeasured here (no GPU); the figures are a plan, not a result.
"""

from ray import tune

EXPERIMENT = {
    "description": "ResNet50 on CIFAR-10, one H100, 10-minute budget",
    "dataset": "cifar10",
    "data_dir": "data",
    "model": "resnet50",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 12,
    "grace_period": 2,
    "reduction_factor": 3,
    "num_samples": 8,
    "cpus_per_trial": 4,
    "gpus_per_trial": 0.5,
    "checkpoint_every": 12,
    "n_startup_trials": 4,
    "train_fraction": 0.25,
    "time_budget_s": 240,
    "final_max_epochs": 35,
}

PARAM_SPACE = {
    "optimizer": "sgd",
    "lr": tune.loguniform(0.05, 0.5),
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": tune.loguniform(1e-4, 1e-3),
    "label_smoothing": tune.uniform(0.0, 0.2),
    "batch_size": 512,
    "schedule": "onecycle",
    "crop_pad": 4,
    "flip": True,
    "precision": "bf16",
    "channels_last": True,
}
