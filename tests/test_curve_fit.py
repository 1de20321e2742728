"""tune_nas.schedulers.curve_fit: curve extrapolation and stopping, on made-up result streams."""

from __future__ import annotations

import numpy as np
import pytest

from tune_nas.objectives import Objective
from tune_nas.schedulers import CONTINUE, STOP
from tune_nas.schedulers.curve_fit import CurveFitPolicy, CurvePredictor, default_bounds

EPOCHS = np.arange(1, 21, dtype=float)


def saturating(final: float, start: float, rate: float = 0.5) -> np.ndarray:
    """An accuracy curve rising from about ``start`` to ``final`` (exponential saturation)."""
    return final - (final - start) * np.exp(-rate * (EPOCHS - 1))


def feed(policy: CurveFitPolicy, trial: str, curve, upto: int) -> list[str]:
    return [policy.on_result(trial, e, float(curve[e - 1])) for e in range(1, upto + 1)]


def test_predictor_extrapolates_a_saturating_curve():
    curve = saturating(0.95, 0.4, rate=0.4)
    prediction = CurvePredictor().predict(EPOCHS[:8], curve[:8], at=20)
    assert prediction.mean == pytest.approx(curve[19], abs=0.01)
    assert 0.005 <= prediction.std < 0.05
    assert prediction.prob_at_least(0.99) < 0.05 < prediction.prob_at_least(0.93)
    assert set(prediction.weights) == {"pow3", "exp3", "ilog2", "weibull"}
    assert sum(prediction.weights.values()) == pytest.approx(1.0)


def test_predictor_needs_points_and_is_symmetric_in_mode():
    predictor = CurvePredictor()
    curve = saturating(0.9, 0.3)
    assert predictor.predict(EPOCHS[:3], curve[:3], at=20) is None  # min_points = 4
    up = predictor.predict(EPOCHS[:6], curve[:6], at=20, mode="max")
    down = predictor.predict(EPOCHS[:6], -curve[:6], at=20, mode="min")
    assert down.mean == pytest.approx(-up.mean) and down.std == pytest.approx(up.std)
    assert down.prob_at_least(-0.95, "min") == pytest.approx(up.prob_at_least(0.95, "max"))


def test_bounds_clip_an_accuracy_prediction():
    curve = 0.5 + 0.1 * EPOCHS  # still rising fast: a linear continuation would pass 1
    prediction = CurvePredictor(bounds=(0.0, 1.0)).predict(EPOCHS[:4], curve[:4], at=20)
    assert prediction.mean <= 1.0
    assert default_bounds("val/acc") == (0.0, 1.0) and default_bounds("val/loss") is None


def test_first_trial_is_never_stopped_without_a_best_final():
    policy = CurveFitPolicy("max", 20, min_epochs=4)
    bad = saturating(0.3, 0.1)
    assert feed(policy, "first", bad, 19) == [CONTINUE] * 19
    assert policy.on_result("first", 20, float(bad[19])) == STOP  # the budget is spent
    assert policy.best == pytest.approx(bad[19])


def test_clearly_worse_curve_stops_at_min_epochs_and_steep_one_continues():
    policy = CurveFitPolicy("max", 20, min_epochs=4, threshold=0.05)
    feed(policy, "good", saturating(0.95, 0.5), 20)
    assert policy.best == pytest.approx(saturating(0.95, 0.5)[19])

    worse = saturating(0.6, 0.3, rate=0.8)  # flat at 0.6 by epoch 4
    decisions = feed(policy, "worse", worse, 4)
    assert decisions == [CONTINUE] * 3 + [STOP]  # never before min_epochs
    assert policy.stopped["worse"][0] == 4 and policy.stopped["worse"][1] < 0.05

    steep = 0.2 + 0.1 * EPOCHS  # 0.3 ... 0.7 by epoch 5, nowhere near saturating yet
    assert feed(policy, "steep", np.minimum(steep, 0.97), 6) == [CONTINUE] * 6
    assert "steep" not in policy.stopped


def test_a_curve_as_good_as_the_best_continues_to_the_end():
    policy = CurveFitPolicy("max", 20)
    curve = saturating(0.95, 0.5)
    feed(policy, "a", curve, 20)
    assert feed(policy, "b", curve + 0.002, 19) == [CONTINUE] * 19


def test_min_mode_stops_a_loss_that_stays_high():
    policy = CurveFitPolicy("min", 20, min_epochs=5, threshold=0.05)
    good_loss = 0.2 + 1.8 * np.exp(-0.4 * (EPOCHS - 1))
    feed(policy, "good", good_loss, 20)
    assert policy.best == pytest.approx(good_loss[19])
    high_loss = 1.2 + 0.8 * np.exp(-0.9 * (EPOCHS - 1))
    assert feed(policy, "high", high_loss, 5) == [CONTINUE] * 4 + [STOP]
    falling = 2.0 - 0.1 * EPOCHS  # still falling steeply
    assert feed(policy, "falling", falling, 6) == [CONTINUE] * 6


def test_policy_ignores_nan_and_validates_arguments():
    policy = CurveFitPolicy("max", 10)
    assert policy.on_result("t", 1, float("nan")) == CONTINUE and "t" not in policy.history
    for kwargs, message in [({"mode": "up", "max_t": 10}, "mode='up'"),
                            ({"mode": "max", "max_t": 0}, "max_t=0"),
                            ({"mode": "max", "max_t": 10, "min_epochs": 11}, "min_epochs=11"),
                            ({"mode": "max", "max_t": 10, "threshold": 1.5}, "threshold=1.5")]:
        with pytest.raises(ValueError, match=message):
            CurveFitPolicy(**kwargs)


def test_on_end_offers_a_full_budget_final_and_drops_the_curve():
    policy = CurveFitPolicy(Objective("val/acc", "max"), 5, min_epochs=2)
    feed(policy, "a", [0.5, 0.6], 2)
    policy.on_end("a", 2, 0.6)  # stopped early: no final
    assert policy.best is None and "a" not in policy.history
    policy.on_end("b", 5, 0.8)
    policy.on_end("c", 5, 0.7)  # worse: the best stays
    policy.on_end("d", 5, float("nan"))
    assert policy.best == 0.8
    assert policy.on_result("e", 5, float("nan")) == STOP  # the budget is spent whatever the value


def test_the_objective_gives_the_direction():
    loss = CurveFitPolicy(Objective("val/loss", "min"), 20, min_epochs=5)
    assert loss.mode == "min"
    loss.on_end("good", 20, 0.2)
    assert feed(loss, "high", 1.2 + 0.8 * np.exp(-0.9 * (EPOCHS - 1)), 5) == [CONTINUE] * 4 + [STOP]
