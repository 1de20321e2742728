"""ResNet50 (3×3 stem, no max-pool) on CIFAR-10: the research's baseline, for a GPU.

Point --dataset at the data: `cifar10` with --data-dir (downloaded when online) or
`imagefolder:../shared/data/cifar10-jpeg.tar.gz`. Random crop (pad 4) and flips run on the
GPU in batches; bf16 autocast and channels_last on GPUs that support them.
"""

from ray import tune

EXPERIMENT = {
    "description": "ResNet50 on CIFAR-10 (GPU)",
    "dataset": "cifar10",
    "data_dir": "data",
    "model": "resnet50",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 30,
    "grace_period": 3,
    "reduction_factor": 3,
    "num_samples": 12,
    "cpus_per_trial": 4,
    "gpus_per_trial": 1,
    "checkpoint_every": 5,
    "n_startup_trials": 6,
}

PARAM_SPACE = {
    "optimizer": "sgd",
    "lr": tune.loguniform(0.02, 0.4),
    "momentum": 0.9,
    "weight_decay": tune.loguniform(1e-5, 1e-3),
    "label_smoothing": tune.uniform(0.0, 0.2),
    "batch_size": tune.choice([256, 512]),
    "schedule": "onecycle",
    "crop_pad": 4,
    "flip": True,
    "precision": "auto",
    "channels_last": True,
}
