"""REINFORCE controller (Williams 1992; Zoph & Le, ICLR 2017), an Optuna sampler.

The policy is an independent softmax per parameter: one logit per choice of a categorical;
an int or float range is cut into ``bins`` equal bins in its (log-)space (fewer when the
parameter has fewer possible values) and a value is drawn uniformly inside the chosen bin.

Training (:class:`ReinforceSampler`): every finished trial's reward ``r = sign * value``
(``sign`` from ``study.direction``) updates each parameter it sampled by

    logits += learning_rate * A * (onehot(chosen bin) - softmax(logits))
              + learning_rate * entropy_weight * dH/dlogits,

with the advantage ``A = (r - b) / s``: ``b`` is an exponential moving average of the rewards
(``baseline_decay``, started at the first reward) and ``s`` the square root of the moving average
of ``(r - b)**2`` (same decay). Dividing by ``s`` makes the step size independent of the metric's
units (percent or fraction, loss or accuracy), so one learning rate fits every study; the first
trial (``s`` undefined) does not move the policy.

COMPLETE trials count with their value; PRUNED trials count with their last intermediate value
(a pruned trial is usually worse than the finished ones, so it pushes the policy away from its
choices, which is what the scheduler concluded); FAIL, RUNNING and WAITING trials do not count.

The policy is state rebuilt deterministically from the study's finished trials in trial-number
order (cached between asks), so it survives pickling and resuming; it needs only numpy.

Options (``searcher_options``): ``learning_rate`` (float in (0, 100], default 0.3: on NAS-Bench-201
CIFAR-10, 100 repetitions x 100 evaluations, the chosen cell's mean val acc was 91.09 / 91.20 /
91.27 / 91.31 / 91.20 / 91.13 % for 0.03 / 0.1 / 0.2 / 0.3 / 0.5 / 1.0, and 0.3 also beat 0.1 on a
synthetic 6-categorical + 1-float objective; larger rates collapse the policy too early), ``baseline_decay``
(float in [0, 1), default 0.9), ``entropy_weight`` (float in [0, 10], default 0.0), ``bins`` (int 2..10,000,
default 10).

Single-objective studies only: several objectives are refused in one line naming the searchers
that take them (``registry.MULTI_OBJECTIVE``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tune_nas.objectives import is_number
from tune_nas.search.registry import SearcherSettings

#: Beyond these the controller cannot work: the logits overflow after one update (the advantage
#: is about 1), or one distribution's grid alone outgrows memory.
MAX_LEARNING_RATE = 100.0
MAX_BINS = 10_000
#: An entropy bonus this large already outweighs the reward (a larger one, 100 and up, steps past
#: the uniform policy and locks onto one arbitrary value: measured on an 8-way choice).
MAX_ENTROPY_WEIGHT = 10.0


def create_sampler(settings: SearcherSettings):
    settings.check_known("reinforce", ("learning_rate", "baseline_decay", "entropy_weight", "bins"))
    settings.check_single_objective("reinforce")
    rate = settings.take("learning_rate", 0.3, lambda v: is_number(v) and 0 < v <= MAX_LEARNING_RATE,
                         f"a number in (0, {MAX_LEARNING_RATE:g}]")
    decay = settings.take("baseline_decay", 0.9, lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)")
    entropy = settings.take("entropy_weight", 0.0, lambda v: is_number(v) and 0 <= v <= MAX_ENTROPY_WEIGHT,
                            f"a number in [0, {MAX_ENTROPY_WEIGHT:g}]")
    bins = settings.take("bins", 10, lambda v: isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= MAX_BINS,
                         f"an integer 2..{MAX_BINS:,}")
    return ReinforceSampler(learning_rate=float(rate), baseline_decay=float(decay),
                            entropy_weight=float(entropy), bins=bins, seed=settings.seed)


def reward_of(trial: FrozenTrial) -> float | None:
    """The value a finished trial is rewarded for (unsigned): a COMPLETE trial's value, a
    PRUNED trial's last intermediate value; None when it has none."""
    if trial.state == TrialState.COMPLETE:
        return float(trial.value)
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return None


class Discretisation:
    """A parameter's choices as the policy sees them: ``size`` actions, a value's action, and
    a value drawn for an action."""

    def __init__(self, dist: BaseDistribution, bins: int) -> None:
        self.dist = dist
        if isinstance(dist, CategoricalDistribution):
            self.size = len(dist.choices)
            return
        self._transform = _SearchSpaceTransform({"x": dist})
        self.low, self.high = (float(b) for b in self._transform.bounds[0])
        if isinstance(dist, IntDistribution) and not dist.log:
            values = (dist.high - dist.low) // dist.step + 1
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            values = int(round((dist.high - dist.low) / dist.step)) + 1
        else:
            values = bins
        self.size = max(1, min(bins, values))

    def action(self, value: Any) -> int:
        if isinstance(self.dist, CategoricalDistribution):
            return self.dist.to_internal_repr(value)
        position = float(self._transform.transform({"x": value})[0])
        share = (position - self.low) / (self.high - self.low) if self.high > self.low else 0.0
        return min(self.size - 1, max(0, int(share * self.size)))

    def value(self, action: int, rng: np.random.RandomState) -> Any:
        if isinstance(self.dist, CategoricalDistribution):
            return self.dist.choices[action]
        width = (self.high - self.low) / self.size
        position = rng.uniform(self.low + action * width, self.low + (action + 1) * width)
        return self._transform.untransform(np.array([position]))["x"]


class PolicyState:
    """The controller's state after some finished trials: logits per parameter, the reward
    baseline and its spread, and which trials it has seen."""

    def __init__(self) -> None:
        self.logits: dict[tuple[str, str], np.ndarray] = {}
        self.baseline: float | None = None
        self.spread: float | None = None
        self.seen: list[int] = []


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


class ReinforceSampler(BaseSampler):
    """A per-parameter softmax policy trained by REINFORCE (see the module docstring)."""

    def __init__(self, learning_rate: float = 0.3, baseline_decay: float = 0.9, entropy_weight: float = 0.0,
                 bins: int = 10, seed: int | None = None) -> None:
        self.learning_rate = learning_rate
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.bins = bins
        self._rng = np.random.RandomState(seed)
        self._state = PolicyState()

    # ----- Optuna's sampler protocol -----
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if param_distribution.single():
            if isinstance(param_distribution, CategoricalDistribution):
                return param_distribution.choices[0]
            return param_distribution.low
        grid = Discretisation(param_distribution, self.bins)
        probabilities = self.probabilities(study, param_name, param_distribution)
        return grid.value(int(self._rng.choice(grid.size, p=probabilities)), self._rng)

    def reseed_rng(self) -> None:
        self._rng.seed()

    # ----- the policy -----
    def probabilities(self, study: Study, param_name: str, dist: BaseDistribution) -> np.ndarray:
        """The policy's current distribution over ``param_name``'s actions (choices or bins)."""
        state = self.train(study)
        logits = state.logits.get(self._key(param_name, dist))
        size = Discretisation(dist, self.bins).size
        return softmax(logits) if logits is not None else np.full(size, 1.0 / size)

    def train(self, study: Study) -> PolicyState:
        """The policy after the study's finished trials, in trial-number order: the cached state
        extended by the new trials when it saw a prefix of them, rebuilt from scratch otherwise
        (a trial with a lower number finished late, or a different study)."""
        finished = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        trials = [t for t in sorted(finished, key=lambda t: t.number) if reward_of(t) is not None]
        numbers = [t.number for t in trials]
        if numbers[:len(self._state.seen)] != self._state.seen:
            self._state = PolicyState()
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        for trial in trials[len(self._state.seen):]:
            self._update(self._state, trial, sign * reward_of(trial))
        return self._state

    def _key(self, name: str, dist: BaseDistribution) -> tuple[str, str]:
        return (name, repr(dist))

    def _update(self, state: PolicyState, trial: FrozenTrial, reward: float) -> None:
        state.seen.append(trial.number)
        if state.baseline is None:
            state.baseline = reward
            return
        decay = self.baseline_decay
        deviation = reward - state.baseline
        state.spread = deviation**2 if state.spread is None else decay * state.spread + (1 - decay) * deviation**2
        advantage = deviation / math.sqrt(state.spread) if state.spread > 0 else 0.0
        state.baseline = decay * state.baseline + (1 - decay) * reward
        for name, dist in trial.distributions.items():
            if dist.single():
                continue
            grid = Discretisation(dist, self.bins)
            logits = state.logits.setdefault(self._key(name, dist), np.zeros(grid.size))
            probabilities = softmax(logits)
            gradient = -probabilities
            gradient[grid.action(trial.params[name])] += 1.0
            step = advantage * gradient
            if self.entropy_weight > 0:
                entropy = -float(np.sum(probabilities * np.log(probabilities + 1e-12)))
                step += self.entropy_weight * (-probabilities * (np.log(probabilities + 1e-12) + entropy))
            logits += self.learning_rate * step

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        pass
