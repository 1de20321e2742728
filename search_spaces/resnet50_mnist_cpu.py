"""ResNet50 on MNIST at very low fidelity, for a CPU (``tune_nas.compare --preset-suffix _cpu``).

Still ResNet50's 50 layers (3×3 stem, no max-pool), but with a narrow bottleneck
(``width_per_group`` 4 or 8 instead of 64) and searched on 2 % of the training images at
8 px: on 2 shared CPU cores one trial-epoch (900 training images, the 5,000 validation
images) takes a few minutes. The validation and test sets stay whole. Not a measure of what
ResNet50 reaches; the GPU preset is ``resnet50_mnist_h100``.
"""

from ray import tune

EXPERIMENT = {
    "description": "ResNet50 (narrow bottlenecks) on MNIST, CPU, low fidelity",
    "dataset": "mnist",
    "data_dir": "data",
    "model": "resnet50",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 2,
    "grace_period": 1,
    "reduction_factor": 2,
    "num_samples": 2,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "checkpoint_every": 2,
    "n_startup_trials": 2,
    "train_fraction": 0.02,
    "image_size": 8,
    "time_budget_s": 480,
    "final_max_epochs": 1,
}

PARAM_SPACE = {
    "width_per_group": tune.choice([4, 8]),
    "optimizer": "sgd",
    "lr": tune.loguniform(0.02, 0.2),
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "batch_size": 64,
    "schedule": "onecycle",
    "crop_pad": 1,
    "flip": False,
}
