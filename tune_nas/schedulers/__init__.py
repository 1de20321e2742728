"""When a trial stops (or pauses) early: one module per scheduler policy, found by name.

A policy is a small pure object fed a stream of ``(trial, epoch, value)`` results that answers
CONTINUE, PAUSE or STOP (:mod:`.policy`); Ray Tune runs every policy through one adapter
(:mod:`tune_nas.ray_tune.scheduler_adapter`), and :mod:`tune_nas.replay` replays them on
recorded curves. Choose one with ``--scheduler NAME`` or ``EXPERIMENT["scheduler"]``:

* :mod:`.asha` — asynchronous successive halving (Li et al. 2020), Ray's ASHA reproduced;
* :mod:`.asha_promotion` — ASHA by promotion (Li et al. 2020, Algorithm 2): trials pause at
  each rung and resume when the rung's ranking promotes them;
* :mod:`.curve_fit` — learning-curve extrapolation (Domhan et al. 2015, simplified);
* :mod:`.none` — every trial trains its full budget.

The policy classes live in their modules (``from tune_nas.schedulers.asha import AshaPolicy``),
imported only when used.
"""

from tune_nas.schedulers.policy import (
    CONTINUE,
    DECISIONS,
    PAUSE,
    STOP,
    PromotionPolicy,
    SchedulerPolicy,
    direction_of,
)
from tune_nas.schedulers.registry import (
    SchedulerError,
    create_policy,
    list_schedulers,
    register_scheduler,
    scheduler_summary,
)

__all__ = ["CONTINUE", "DECISIONS", "PAUSE", "STOP", "PromotionPolicy", "SchedulerError", "SchedulerPolicy", "create_policy",
           "direction_of", "list_schedulers", "register_scheduler", "scheduler_summary"]
