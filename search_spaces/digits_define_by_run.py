"""The digits search written as an Optuna define-by-run function.

Conditional parameters are the reason to write a space this way: momentum exists only for
SGD, and the dropout only for nets deeper than one stage.
"""

EXPERIMENT = {
    "description": "small CNN on digits, define-by-run space with conditional parameters",
    "dataset": "digits",
    "model": "small_cnn",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 9,
    "grace_period": 1,
    "reduction_factor": 3,
    "num_samples": 16,
}


def define_by_run(trial):
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adamw"])
    if optimizer == "sgd":
        trial.suggest_float("lr", 1e-3, 3e-1, log=True)
        trial.suggest_float("momentum", 0.5, 0.95)
    else:
        trial.suggest_float("lr", 3e-4, 3e-2, log=True)
    trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    trial.suggest_categorical("width", [16, 32, 64])
    depth = trial.suggest_int("depth", 1, 3)
    if depth > 1:
        trial.suggest_float("dropout", 0.0, 0.3)
    return {"batch_size": 64}
