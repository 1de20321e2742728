"""Random search: every configuration drawn independently from the space (Bergstra & Bengio,
JMLR 2012), Optuna's RandomSampler. The baseline every other strategy must beat; no options.
"""

from __future__ import annotations

from tune_nas.search.registry import SearcherSettings


def create_sampler(settings: SearcherSettings):
    import optuna

    settings.check_known("random", ())
    return optuna.samplers.RandomSampler(seed=settings.seed)
