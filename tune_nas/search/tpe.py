"""TPE: the Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), Optuna's sampler.

Multivariate (Falkner et al. 2018's joint density instead of one per parameter) and with a
constant liar for parallel trials (running trials count as bad results, so trials proposed
at the same time spread out). The first ``n_startup_trials`` configurations are random.

Options (``searcher_options``): ``multivariate`` (bool, default true), ``constant_liar``
(bool, default true), ``n_ei_candidates`` (int 1..10,000, default 24).
"""

from __future__ import annotations

from tune_nas.search.registry import SearcherSettings

#: Candidates TPE draws and scores at every suggestion: far more only costs the driver memory
#: and time (Optuna's default is 24).
MAX_EI_CANDIDATES = 10_000


def create_sampler(settings: SearcherSettings):
    import optuna

    settings.check_known("tpe", ("multivariate", "constant_liar", "n_ei_candidates"))
    boolean = (lambda v: isinstance(v, bool), "true or false")
    multivariate = settings.take("multivariate", True, *boolean)
    constant_liar = settings.take("constant_liar", True, *boolean)
    candidates = settings.take("n_ei_candidates", 24, lambda v: isinstance(v, int)
                               and not isinstance(v, bool) and 1 <= v <= MAX_EI_CANDIDATES,
                               f"an integer 1..{MAX_EI_CANDIDATES:,}")
    return optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=settings.n_startup_trials,
                                      multivariate=multivariate, constant_liar=constant_liar,
                                      n_ei_candidates=candidates)
