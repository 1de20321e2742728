"""Learning-curve extrapolation as a stopping rule (after Domhan, Springenberg & Hutter, 2015).

*Speeding up Automatic Hyperparameter Optimization of Deep Neural Networks by Extrapolation
of Learning Curves* (IJCAI 2015) fits an ensemble of parametric learning-curve families to a
partial curve and stops a run when the probability that it ends better than the best run so
far is small. This is a simplified version:

* families: saturating curves that rise towards an asymptote (``pow3``, ``exp3``, ``ilog2``,
  ``weibull``), each fitted by least squares (:func:`scipy.optimize.curve_fit`, bounded) to
  the curve in "higher is better" units (a ``min`` metric is negated first);
* each fit predicts the value at ``max_t`` with a variance: the residual noise plus the
  parameter uncertainty carried to ``max_t`` (delta method on the fit's covariance);
* the fits are combined as a mixture weighted by BIC (instead of the paper's MCMC over a
  weighted sum), so the spread between families counts as uncertainty too;
* a trial stops when P(final ≥ best final so far) < ``threshold``, assuming a normal
  predictive distribution, and never before ``min_epochs`` or before any trial has finished.

:class:`CurvePredictor` and :class:`CurveFitPolicy` are pure (numpy/scipy) and fed
``(trial, epoch, value)`` streams (:mod:`tune_nas.schedulers.policy`); Ray Tune runs the policy
through :class:`tune_nas.ray_tune.scheduler_adapter.PolicyScheduler`.

Settings (``EXPERIMENT``): ``max_epochs``, ``curve_fit_min_epochs`` (<= ``max_epochs``),
``curve_fit_threshold`` (in (0, 1)); an accuracy metric's prediction is clipped to [0, 1]. One
objective only: a multi-objective experiment is refused (use ``moasha`` or ``none``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tune_nas.objectives import DIRECTIONS, Objective
from tune_nas.schedulers.policy import CONTINUE, STOP, direction_of
from tune_nas.schedulers.registry import SchedulerError, refuse_several_objectives

if TYPE_CHECKING:
    from tune_nas.config.experiment import ExperimentSpec

MODES = DIRECTIONS


# --------------------------------------------------------------------------- curve families


# Positive parameters are fitted as logarithms (``la`` = log a, ...), so the least squares
# problem is unconstrained and MINPACK's Levenberg-Marquardt (fast) solves it.


def pow3(x: np.ndarray, c: float, la: float, lalpha: float) -> np.ndarray:
    """``c - a·x^(-α)``: power-law approach to the asymptote ``c``."""
    return c - np.exp(la) * np.power(x, -np.exp(lalpha))


def exp3(x: np.ndarray, c: float, la: float, lb: float) -> np.ndarray:
    """``c - a·exp(-b·x)``: exponential saturation."""
    return c - np.exp(la) * np.exp(-np.exp(lb) * x)


def ilog2(x: np.ndarray, c: float, la: float) -> np.ndarray:
    """``c - a / log(x + 1)``: slow, logarithmic approach (two parameters)."""
    return c - np.exp(la) / np.log(x + 1.0)


def weibull(x: np.ndarray, c: float, la: float, lk: float, ld: float) -> np.ndarray:
    """``c - a·exp(-k·x^d)``: Weibull / Janoschek saturation (sigmoidal for d > 1)."""
    return c - np.exp(la) * np.exp(-np.exp(lk) * np.power(x, np.exp(ld)))


@dataclass(frozen=True)
class CurveFamily:
    """A parametric learning-curve model ``fn(x, *params)`` and its starting parameters.

    Parameters are fitted on a curve normalised to start at 0 and span 1 (see
    :meth:`CurvePredictor.predict`), so one starting point serves every metric's scale.
    """

    name: str
    fn: Callable[..., np.ndarray]
    initial: tuple[float, ...]

    @property
    def n_params(self) -> int:
        return len(self.initial)


FAMILIES: tuple[CurveFamily, ...] = (
    CurveFamily("pow3", pow3, (1.2, 0.2, 0.0)),
    CurveFamily("exp3", exp3, (1.1, 0.7, -0.7)),
    CurveFamily("ilog2", ilog2, (1.5, 0.0)),
    CurveFamily("weibull", weibull, (1.1, 0.7, -0.7, 0.0)),
)


@dataclass(frozen=True)
class Prediction:
    """The predicted metric at ``epoch`` (in the metric's own units) and its uncertainty."""

    epoch: int
    mean: float
    std: float
    families: dict[str, float]
    weights: dict[str, float]

    def prob_at_least(self, target: float, mode: str = "max") -> float:
        """P(final is at least as good as ``target``) under a normal predictive distribution.

        For a bounded metric the mass beyond a bound stands for the bound itself (censoring,
        not truncation): a very uncertain prediction keeps a large chance of reaching a good
        target instead of being spread thinly over the range, so doubt means "continue".
        """
        z = (self.mean - target) / self.std if mode == "max" else (target - self.mean) / self.std
        return 0.5 * math.erfc(-z / math.sqrt(2.0))


class CurvePredictor:
    """Extrapolates a partial learning curve with an ensemble of :data:`FAMILIES`.

    ``min_points``: fewer observed epochs give no prediction (``None``). A family is fitted
    only when the curve has more points than it has parameters (one residual degree of
    freedom at least). ``min_std`` (metric units) floors the predictive spread: a curve that
    one family fits exactly is still a single noisy run. ``bounds`` (e.g. ``(0, 1)`` for an
    accuracy) clips the predicted mean.
    """

    _CACHE_SIZE = 4096

    def __init__(self, families: Sequence[CurveFamily] = FAMILIES, min_points: int = 4,
                 min_std: float = 0.005, bounds: tuple[float, float] | None = None) -> None:
        if not families:
            raise ValueError("families=(): rule: at least one curve family")
        if min_points < 2:
            raise ValueError(f"min_points={min_points}: rule: min_points >= 2")
        if not min_std > 0:
            raise ValueError(f"min_std={min_std}: rule: min_std > 0")
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"bounds={bounds}: rule: (low, high) with low < high")
        self.families = tuple(families)
        self.min_points, self.min_std, self.bounds = min_points, min_std, bounds
        self._cache: dict[tuple, Prediction | None] = {}

    def predict(self, epochs: Sequence[float], values: Sequence[float], at: int,
                mode: str = "max") -> Prediction | None:
        """Predict the metric at epoch ``at`` from the observed ``(epochs, values)``.

        Returns ``None`` when there are too few finite points or no family could be fitted.
        """
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: rule: one of {MODES}")
        key = (tuple(map(float, epochs)), tuple(map(float, values)), int(at), mode)
        if key not in self._cache:
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = self._predict(epochs, values, at, mode)
        return self._cache[key]

    def _predict(self, epochs: Sequence[float], values: Sequence[float], at: int,
                 mode: str) -> Prediction | None:
        x = np.asarray(epochs, dtype=float)
        y = np.asarray(values, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
        x, y = x[keep], y[keep]
        if x.size < self.min_points:
            return None
        order = np.argsort(x)
        x, y = x[order], y[order]
        sign = 1.0 if mode == "max" else -1.0
        up = sign * y  # higher is better
        offset = up[0]
        scale = float(np.ptp(up)) or max(abs(float(offset)), 1.0) * 1e-3
        z = (up - offset) / scale
        fits = [fit for family in self.families if (fit := _fit(family, x, z))]
        if not fits:
            return None
        # One noise level for every family: the best fit's residual variance, floored by
        # min_std (a fit through few points is not taken as exact).
        noise = max(min(f.sse / (x.size - f.family.n_params) for f in fits),
                    (self.min_std / scale) ** 2)
        n = x.size
        score = np.array([f.sse / noise + f.family.n_params * math.log(n) for f in fits])  # BIC
        w = np.exp(-0.5 * (score - score.min()))
        w /= w.sum()
        to_metric = (lambda v: sign * (offset + scale * v))
        means, variances = [], []
        for f in fits:
            mean, variance = f.predict(float(at), noise)
            if self.bounds is not None:  # a family may not predict beyond the metric's range
                mean = (min(max(to_metric(mean), self.bounds[0]), self.bounds[1]) / sign
                        - offset) / scale
            means.append(mean)
            variances.append(variance)
        means_z, variances_z = np.array(means), np.array(variances)
        mean_z = float(w @ means_z)
        var_z = max(float(w @ (variances_z + means_z ** 2) - mean_z ** 2), 0.0)
        std = max(scale * math.sqrt(var_z), self.min_std)
        return Prediction(int(at), float(to_metric(mean_z)), float(std),
                          {f.family.name: float(to_metric(m)) for f, m in zip(fits, means)},
                          {f.family.name: float(wi) for f, wi in zip(fits, w)})


_MAX_NFEV = 60  # per parameter; a near-linear curve drives the asymptote away slowly


@dataclass(frozen=True)
class _Fit:
    """A family fitted to a normalised curve: parameters and the residuals' Jacobian."""

    family: CurveFamily
    params: np.ndarray
    jac: np.ndarray
    sse: float

    def predict(self, at: float, noise: float) -> tuple[float, float]:
        """Mean and variance at ``at``: the observation noise plus the parameter uncertainty
        carried to ``at`` (delta method, ``g·(JᵀJ)⁻¹·g·σ²`` with σ² the larger of ``noise``
        and this fit's own residual variance)."""
        fn, params, k = self.family.fn, self.params, self.family.n_params
        with np.errstate(all="ignore"):
            mean = float(fn(np.array([at]), *params)[0])
            sigma2 = max(self.sse / max(self.jac.shape[0] - k, 1), noise)
            grad = np.empty(k)
            for i in range(k):  # central differences of the prediction in each parameter
                h = 1e-6 * max(abs(params[i]), 1.0)
                hi, lo = params.copy(), params.copy()
                hi[i] += h
                lo[i] -= h
                grad[i] = (fn(np.array([at]), *hi)[0] - fn(np.array([at]), *lo)[0]) / (2 * h)
            try:
                param_var = float(grad @ np.linalg.pinv(self.jac.T @ self.jac) @ grad) * sigma2
            except np.linalg.LinAlgError:
                param_var = math.inf
        if not math.isfinite(param_var) or param_var < 0:
            param_var = 1.0  # unidentified parameters: as uncertain as the observed span
        return mean, param_var + sigma2


def _fit(family: CurveFamily, x: np.ndarray, z: np.ndarray) -> _Fit | None:
    """``family`` fitted to ``(x, z)`` by least squares (Levenberg-Marquardt), or None."""
    from scipy.optimize import least_squares

    k = family.n_params
    if x.size <= k:
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            result = least_squares(lambda p: family.fn(x, *p) - z,
                                   np.array(family.initial, dtype=float), method="lm",
                                   max_nfev=_MAX_NFEV * k)
        except (ValueError, np.linalg.LinAlgError):
            return None
    sse = float(result.fun @ result.fun)
    if not (math.isfinite(sse) and np.all(np.isfinite(result.x))):
        return None
    return _Fit(family, result.x, result.jac, sse)


def default_bounds(metric: str) -> tuple[float, float] | None:
    """``(0, 1)`` for an accuracy (a name containing ``acc``), else None (unbounded)."""
    return (0.0, 1.0) if "acc" in metric.rsplit("/", 1)[-1].lower() else None


# --------------------------------------------------------------------------- the policy


class CurveFitPolicy:
    """Stops a trial whose extrapolated final metric is unlikely to beat the best final.

    Feed it every result with :meth:`on_result`; it answers :data:`CONTINUE` or :data:`STOP`.
    ``mode`` is the objective (or its direction, ``"max"``/``"min"``).

    * A result at ``epoch >= max_t`` ends the trial (``STOP``, like ASHA's last rung) and its
      value becomes a candidate for the best final (so does a final passed to :meth:`on_end`).
    * No trial is stopped before ``min_epochs`` epochs, nor while no trial has reached
      ``max_t`` (there is no best final to compare with).
    * Otherwise the trial's curve is extrapolated to ``max_t`` (:class:`CurvePredictor`) and
      the trial stops when P(final ≥ best final) < ``threshold`` (``≤`` for ``mode="min"``).
    """

    def __init__(self, mode: Objective | str, max_t: int, *, min_epochs: int = 4,
                 threshold: float = 0.05, predictor: CurvePredictor | None = None) -> None:
        mode = direction_of(mode)
        if not (isinstance(max_t, int) and max_t >= 1):
            raise ValueError(f"max_t={max_t!r}: rule: an integer >= 1")
        if not (isinstance(min_epochs, int) and 1 <= min_epochs <= max_t):
            raise ValueError(f"min_epochs={min_epochs!r}: rule: an integer, 1 <= min_epochs "
                             f"<= max_t={max_t}")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold!r}: rule: 0 < threshold < 1")
        self.mode, self.max_t, self.min_epochs, self.threshold = mode, max_t, min_epochs, threshold
        self.predictor = predictor or CurvePredictor()
        self.best: float | None = None
        self.history: dict[str, dict[int, float]] = {}
        self.stopped: dict[str, tuple[int, float]] = {}  # trial -> (epoch, probability)
        self.last_probability: dict[str, float] = {}

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def on_result(self, trial_id: str, epoch: int, value: float) -> str:
        """The decision after ``trial_id`` reported ``value`` at ``epoch`` (a value that is not
        a finite number is not part of the curve; at ``max_t`` the trial stops all the same)."""
        finite = value is not None and math.isfinite(value)
        if finite:
            self.history.setdefault(trial_id, {})[int(epoch)] = float(value)
        if epoch >= self.max_t:
            self._offer_final(epoch, value)
            return STOP
        if not finite or self.best is None or epoch < self.min_epochs:
            return CONTINUE
        probability = self.probability(trial_id)
        if probability is None:
            return CONTINUE
        self.last_probability[trial_id] = probability
        if probability < self.threshold:
            self.stopped[trial_id] = (int(epoch), probability)
            return STOP
        return CONTINUE

    def probability(self, trial_id: str) -> float | None:
        """P(``trial_id`` ends at least as good as the best final), or None if unknown."""
        curve = self.history.get(trial_id)
        if self.best is None or not curve:
            return None
        epochs = sorted(curve)
        prediction = self.predictor.predict(epochs, [curve[e] for e in epochs], self.max_t,
                                            self.mode)
        return None if prediction is None else prediction.prob_at_least(self.best, self.mode)

    def on_end(self, trial_id: str, epoch: int, value: float) -> None:
        """``trial_id`` ended: a final at ``max_t`` competes for the best final; its curve goes."""
        self._offer_final(epoch, value)
        self.forget(trial_id)

    def _offer_final(self, epoch: int, value: float) -> None:
        if epoch >= self.max_t and value is not None and math.isfinite(value) \
                and (self.best is None or self._better(value, self.best)):
            self.best = float(value)

    def forget(self, trial_id: str) -> None:
        """Drop a trial's curve (it ended, failed or was removed); the best final stays."""
        self.history.pop(trial_id, None)

    def __repr__(self) -> str:
        return (f"CurveFitPolicy({self.mode}, max_t={self.max_t}, min_epochs={self.min_epochs}, "
                f"threshold={self.threshold:g}; best final {self.best}, {len(self.stopped)} stopped)")


def create_policy(spec: ExperimentSpec) -> CurveFitPolicy:
    refuse_several_objectives("curve_fit", spec)  # it extrapolates one curve
    if not spec.curve_fit_min_epochs <= spec.max_epochs:
        raise SchedulerError(f"curve_fit_min_epochs={spec.curve_fit_min_epochs} > max_epochs="
                             f"{spec.max_epochs}: rule: curve_fit_min_epochs <= max_epochs")
    if not 0 < spec.curve_fit_threshold < 1:
        raise SchedulerError(f"curve_fit_threshold={spec.curve_fit_threshold!r}: rule: 0 < "
                             "curve_fit_threshold < 1 (a stopping probability)")
    return CurveFitPolicy(spec.objective, spec.max_epochs, min_epochs=spec.curve_fit_min_epochs,
                          threshold=spec.curve_fit_threshold,
                          predictor=CurvePredictor(bounds=default_bounds(spec.metric)))

