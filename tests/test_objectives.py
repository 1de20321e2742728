"""The one rule for "best" with several objectives: dominance, non-dominated sorting, crowding,
hypervolume, constraints (hand-made points, answers worked out by hand)."""

from __future__ import annotations

import math

import pytest

from tune_nas.objectives import (
    Constraint,
    Objective,
    crowding_distances,
    dominance_order,
    dominates,
    feasible,
    hypervolume,
    nondominated_ranks,
    pareto_front,
)

ACC, PARAMS = Objective("val/acc", "max"), Objective("model/params", "min")
BOTH = (ACC, PARAMS)
#: (accuracy, parameters): front A, B, D; then C and F; E has no accuracy
POINTS = [(0.90, 100), (0.80, 50), (0.85, 200), (0.95, 300), (None, 1), (0.70, 60)]


def test_dominance_and_front():
    assert dominates((0.9, 100), (0.85, 200), BOTH) and not dominates((0.9, 100), (0.8, 50), BOTH)
    assert not dominates((0.9, 100), (0.9, 100), BOTH)  # equal points dominate neither way
    assert pareto_front(POINTS, BOTH) == [0, 1, 3]


def test_nondominated_ranks_peel_fronts():
    assert nondominated_ranks(POINTS, BOTH) == [0, 0, 1, 0, None, 1]
    chain = [(0.1, 1), (0.2, 1), (0.3, 1)]  # each dominates the one before
    assert nondominated_ranks(chain, BOTH) == [2, 1, 0]


def test_crowding_keeps_the_extremes_and_prefers_isolated_points():
    front = [(0.80, 50), (0.82, 60), (0.90, 100), (0.95, 300)]
    distance = crowding_distances(front, [0, 1, 2, 3])
    assert math.isinf(distance[0]) and math.isinf(distance[3])
    # (0.82, 60): neighbours span 0.10/0.15 accuracy and 50/250 params; (0.90, 100): 0.13/0.15 and 240/250
    assert distance[1] == pytest.approx(0.10 / 0.15 + 50 / 250)
    assert distance[2] == pytest.approx(0.13 / 0.15 + 240 / 250)


def test_dominance_order_is_rank_then_crowding_then_index():
    # front {0, 1, 3}: 1 and 3 are extremes (inf), 0 is between; then C (2) and F (5) (both extremes
    # of the second front: by index); E (no value) last
    assert dominance_order(POINTS, BOTH) == [1, 3, 0, 2, 5, 4]


def test_hypervolume_in_the_objectives_units():
    # reference (acc 0, 400 params): 50..100 at 0.80, 100..300 at 0.90, 300..400 at 0.95
    assert hypervolume(POINTS, BOTH, (0.0, 400)) == pytest.approx(50 * 0.8 + 200 * 0.9 + 100 * 0.95)
    assert hypervolume([(0.5, 500)], BOTH, (0.0, 400)) == 0.0  # worse than the reference: nothing
    assert hypervolume([], BOTH, (0.0, 400)) == 0.0
    with pytest.raises(ValueError, match="one value per objective"):
        hypervolume(POINTS, BOTH, (0.0,))


def test_constraints_follow_optunas_sign_convention():
    small = Constraint("model/params", "<=", 100)
    accurate = Constraint("val/acc", ">=", 0.9)
    assert small.violation(80) == -20 and small.violation(130) == 30
    assert accurate.violation(0.95) == pytest.approx(-0.05) and accurate.violation(None) == math.inf
    assert small.key == "model/params<=100" and Constraint.from_dict(small.as_dict()) == small
    assert feasible({"model/params": 100, "val/acc": 0.9}, (small, accurate))
    assert not feasible({"model/params": 101, "val/acc": 0.99}, (small, accurate))
    for bad in [("", "<=", 1), ("x", "<", 1), ("x", "<=", math.nan)]:
        with pytest.raises(ValueError, match="rule"):
            Constraint(*bad)


def test_trials_are_selected_feasible_first_by_one_objective_or_the_front():
    from tune_nas.objectives import Constraint, selection_order

    acc, size = Objective("val/acc", "max"), Objective("model/params", "min")
    results = [{"val/acc": 0.90, "model/params": 100},   # 0: on the front
               {"val/acc": 0.95, "model/params": 900},   # 1: best accuracy, too large
               {"val/acc": 0.80, "model/params": 50},    # 2: on the front
               {"val/acc": 0.85, "model/params": 200},   # 3: dominated by 0
               {"val/acc": float("nan"), "model/params": 10},  # 4: no value
               {"val/acc": 0.93, "model/params": 400}]   # 5: on the front
    assert selection_order(results, [acc]) == [1, 5, 0, 3, 2]
    small = [Constraint("model/params", "<=", 500)]
    assert selection_order(results, [acc], small) == [5, 0, 3, 2]
    front_first = selection_order(results, [acc, size], small)
    assert set(front_first[:3]) == {0, 2, 5} and front_first[3:] == [3]
    # the front's ends first (infinite crowding distance), then its middle
    assert front_first[2] == 0
