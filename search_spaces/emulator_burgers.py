"""An emulator of Burgers' equation: an MLP that replaces a stiff PDE solve, minutes on a CPU.

The data set ``sim:burgers`` is made by tune_nas's own simulator (tune_nas/simulators/burgers.py):
4,000 runs of the viscous Burgers equation on a periodic domain, solved by SciPy's implicit
BDF (~20-30 ms a run on one core), from the viscosity and four initial-condition amplitudes
(5 inputs) to the field at t = 0.5 and t = 1 on 64 points (2 × 64 outputs). The first launch
simulates them (about a minute on 2 cores) and caches them under the data directory.

The search minimises the validation MSE (standardised outputs) with TPE over the MLP's depth,
width, activation and residual connections and the optimiser's settings; ASHA stops the
worst trials at 6, 18 and 54 epochs. At the end the launcher measures the best emulator's
test R² and its time per sample against the simulator's (summary.json's ``emulator``).
``--model conv1d`` with ``search_spaces/emulator_burgers_conv1d.py`` searches convolutional
decoders instead.
"""

from ray import tune

EXPERIMENT = {
    "description": "MLP emulator of the viscous Burgers equation (sim:burgers), 32 trials, minutes on 2 CPU cores",
    "dataset": "sim:burgers",
    "model": "mlp",
    "max_epochs": 60,
    "grace_period": 6,
    "reduction_factor": 3,
    "searcher": "tpe",
    "n_startup_trials": 10,
    "num_samples": 32,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "time_budget_s": 480,
}

PARAM_SPACE = {
    "optimizer": "adamw",
    "schedule": "cosine",
    "lr": tune.loguniform(3e-4, 1e-2),
    "weight_decay": tune.loguniform(1e-7, 1e-3),
    "batch_size": tune.choice([32, 64, 128]),
    "depth": tune.randint(2, 6),
    "width": tune.choice([64, 128, 256]),  # wider nets gain little R² and cost prediction time
    "activation": tune.choice(["gelu", "silu", "tanh", "relu"]),
    "residual": tune.choice([True, False]),
}
