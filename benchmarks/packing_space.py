"""Packing benchmark: 4 small-CNN trials on CIFAR-10, no early stopping (GPU only)."""

EXPERIMENT = {
    "description": "packing benchmark: small CNN on CIFAR-10, 4 trials, no stopping",
    "dataset": "cifar10",
    "model": "small_cnn",
    "scheduler": "none",
    "max_epochs": 3,
    "num_samples": 4,
    "cpus_per_trial": 2,
    "gpus_per_trial": 1,
    "checkpoint_every": 100,
}

PARAM_SPACE = {"lr": 3e-3, "width": 64, "depth": 3, "batch_size": 256, "crop_pad": 4, "flip": True,
               "precision": "auto", "channels_last": True}
