"""How the next configuration is proposed: one module per search strategy, found by name.

Every strategy is an Optuna sampler (:class:`optuna.samplers.BaseSampler`), so it serves
plain Optuna code as well as tune_nas's Ray Tune searches, and the study (and
optuna-dashboard) records it like any sampler. Choose one with ``--searcher NAME`` or
``EXPERIMENT["searcher"]``; its options come from ``EXPERIMENT["searcher_options"]``.
"""

from tune_nas.search.registry import (
    SearcherError,
    create_sampler,
    list_searchers,
    register_searcher,
    searcher_summary,
)

__all__ = ["SearcherError", "create_sampler", "list_searchers", "register_searcher", "searcher_summary"]
