"""Ray Tune search domains in a space file's ``PARAM_SPACE``: checked and sampled here.

``tune_nas.config.space_file`` validates space files without Ray; it comes here only for a value
that is not a plain constant (a file with a Tune param space imported Ray itself already), so
loading a define-by-run space, or a param space of constants, never imports Ray.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from ray.tune.search.sample import Categorical, Domain, Float, Integer


class DomainError(ValueError):
    """A ``PARAM_SPACE`` value that is no usable search domain; the message is one line
    naming the key, the value and the rule (the caller prefixes the file)."""


def is_domain(value: Any) -> bool:
    """Whether ``value`` is a Tune search domain (``tune.uniform``, ``tune.choice``, ...)."""
    return isinstance(value, Domain)


def check_domain(key: str, value: Any) -> None:
    """Raise :class:`DomainError` unless ``value`` is a Tune domain Optuna can sample: a
    float/int range with low < high (low > 0 on a log scale) or a non-empty choice."""
    if not isinstance(value, Domain):
        raise DomainError(f"PARAM_SPACE[{key!r}]={value!r}: rule: a tune search domain (tune.uniform, "
                          "tune.choice, ...) or a constant (number, string, bool, or a list of them)")
    if isinstance(value, (Float, Integer)):
        lo, hi = value.lower, value.upper
        if lo is None or hi is None or not lo < hi:
            raise DomainError(f"PARAM_SPACE[{key!r}] has low={lo} and high={hi}; rule: low < high")
        sampler = value.get_sampler()
        quantum = getattr(sampler, "q", None)
        sampler = type(getattr(sampler, "sampler", sampler)).__name__  # a quantized one wraps another
        if "Normal" in sampler:
            raise DomainError(f"PARAM_SPACE[{key!r}] is a normal distribution (tune.randn/qrandn); rule: a "
                              "range Optuna can sample: tune.uniform/loguniform/randint/qrandint/choice")
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise DomainError(f"PARAM_SPACE[{key!r}] has low={lo} and high={hi}; rule: finite bounds")
        if quantum is not None and not (isinstance(quantum, (int, float)) and quantum > 0 and math.isfinite(quantum)):
            raise DomainError(f"PARAM_SPACE[{key!r}] is quantized with q={quantum!r}; rule: q > 0")
        if "LogUniform" in sampler and lo <= 0:
            raise DomainError(f"PARAM_SPACE[{key!r}] is log-uniform from {lo}; rule: low > 0 for a log scale")
    elif isinstance(value, Categorical):
        if not value.categories:
            raise DomainError(f"PARAM_SPACE[{key!r}] is an empty choice; rule: tune.choice needs at least one value")
    else:
        raise DomainError(f"PARAM_SPACE[{key!r}] is a {type(value).__name__}; rule: "
                          "tune.uniform/loguniform/randint/qrandint/choice (what Optuna can sample)")


def sample_param_space(param_space: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """One concrete configuration: every domain sampled (seeded), every constant as it is."""
    rng = np.random.default_rng(seed)
    return {k: (v.sample(random_state=rng) if isinstance(v, Domain) else v) for k, v in param_space.items()}


def edge_values(value: Any) -> list[Any]:
    """The values of a domain worth checking besides a random draw: every choice of a
    ``tune.choice``, both ends of a numeric range (the upper end of ``tune.randint`` is
    exclusive); nothing for a constant."""
    if isinstance(value, Categorical):
        return list(value.categories)
    if isinstance(value, Integer):
        return [value.lower, value.upper - 1]
    if isinstance(value, Float):
        return [value.lower, value.upper]
    return []
