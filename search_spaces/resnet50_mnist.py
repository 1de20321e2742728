"""ResNet50 (3×3 stem, no max-pool, grey input) on MNIST: the research's baseline, for a GPU.

Random crop (pad 2) on the GPU and no flips (a flipped digit is another digit); bf16,
channels_last, one-cycle SGD, batch 512. ``--dataset mnist`` reads torchvision's files under
``data_dir`` (downloaded when online).
"""

from ray import tune

EXPERIMENT = {
    "description": "ResNet50 on MNIST (GPU)",
    "dataset": "mnist",
    "data_dir": "data",
    "model": "resnet50",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 8,
    "grace_period": 2,
    "reduction_factor": 3,
    "num_samples": 8,
    "cpus_per_trial": 4,
    "gpus_per_trial": 0.5,
    "checkpoint_every": 8,
    "n_startup_trials": 4,
    "train_fraction": 0.25,
    "time_budget_s": 240,
    "final_max_epochs": 10,
}

PARAM_SPACE = {
    "optimizer": "sgd",
    "lr": tune.loguniform(0.02, 0.4),
    "momentum": 0.9,
    "weight_decay": tune.loguniform(1e-5, 1e-3),
    "label_smoothing": 0.1,
    "batch_size": 512,
    "schedule": "onecycle",
    "crop_pad": 2,
    "flip": False,
    "precision": "bf16",
    "channels_last": True,
}
