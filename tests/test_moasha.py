"""MOASHA (tune_nas.schedulers.moasha) fed hand-made result streams, its registry entry, the
single-objective schedulers' refusal of several objectives, and the Ray adapter turning
results into vectors and stopping trials that break a constraint on a fixed cost metric
(called with stub trials: no Ray cluster)."""

from __future__ import annotations

import math
import pickle
import random
import re
from dataclasses import dataclass

import pytest
from ray.tune.schedulers import TrialScheduler

from tune_nas.config.space_file import ExperimentSpec, SpaceError
from tune_nas.objectives import Constraint, Objective, dominance_order
from tune_nas.ray_tune.scheduler_adapter import PolicyScheduler
from tune_nas.schedulers import CONTINUE, STOP, SchedulerError, SchedulerPolicy, create_policy
from tune_nas.schedulers.asha import AshaPolicy
from tune_nas.schedulers.moasha import MoashaPolicy, kept_at_rung
from tune_nas.schedulers.none import NoStopping

NAN = float("nan")
ACC, PARAMS = Objective("val/acc", "max"), Objective("model/params", "min")
ACC_PARAMS = (ACC, PARAMS)
TWO_OBJECTIVES = {"val/acc": "max", "model/params": "min"}


@dataclass
class FakeTrial:
    """What a scheduler reads of Ray's Trial."""

    trial_id: str


def feed(policy, stream) -> list[str]:
    return [policy.on_result(trial, epoch, value) for trial, epoch, value in stream]


# --------------------------------------------------------------------------- the ranking


def test_dominance_order_ranks_by_front_then_crowding_then_arrival():
    points = [(0.60, 500), (0.90, 3000), (0.60, 500), (0.50, 600), (0.80, 1000)]
    # front {0, 1, 2, 4}; 3 is dominated by 0 and 2. Crowding on the front: 0 and 1 bound both
    # objectives (infinite), 4 spans (0.9-0.6)/0.3 + (3000-500)/2500 = 2, the twin 2 spans
    # (0.8-0.6)/0.3 + (1000-500)/2500 = 0.867.
    assert dominance_order(points, ACC_PARAMS) == [0, 1, 4, 2, 3]


def test_kept_at_rung_keeps_the_top_ceil_n_over_eta_and_every_copy_of_a_kept_vector():
    points = [(0.60, 500), (0.90, 3000), (0.60, 500)]
    assert dominance_order(points, ACC_PARAMS) == [0, 1, 2]  # the twin 2 sits inside the crowd
    assert kept_at_rung(points, ACC_PARAMS, 2) == [0, 1, 2]  # top ceil(3/2) = 2, and 0's twin
    assert kept_at_rung(points, ACC_PARAMS, 3) == [0, 1, 2]  # top ceil(3/3) = 1: 0, its tie 1 (the other end), 0's twin
    assert kept_at_rung(points + [(0.8, 1000)], ACC_PARAMS, 4) == [0, 1, 2]  # top 1, the ends tie; 3 has 3 ahead
    # two ends of a front tie (rank 0, infinite crowding): both continue, arrival never decides
    assert kept_at_rung(points[:2], ACC_PARAMS, 2) == [0, 1]
    assert kept_at_rung(points[:2] + [(0.5, 600)], ACC_PARAMS, 3) == [0, 1]  # top ceil(3/3) = 1 and its tie
    assert kept_at_rung([(0.6, 500), (0.9, 3000), (0.8, 1000)], ACC_PARAMS, 3) == [0, 1]  # the middle: 2 ahead


# --------------------------------------------------------------------------- rung decisions


def test_moasha_rung_decisions_on_a_hand_made_stream():
    policy = MoashaPolicy(ACC_PARAMS, max_t=4, grace_period=1, reduction_factor=2)
    assert policy.milestones == [1, 2, 4]
    rung_1 = [("small", 1, (0.60, 500)),   # first at the rung
              ("big", 1, (0.90, 3000)),    # n=2, keep 1: both ends of the front (a tie): continues
              ("twin", 1, (0.60, 500)),    # n=3, keep 2: small is its twin, an end
              ("worse", 1, (0.50, 600)),   # n=4, keep 2: dominated by small and twin
              ("mid", 1, (0.80, 1000)),    # n=5, keep 3: behind small, big (ends); ahead of twin (0.87 < 2)
              ("mid2", 1, (0.70, 800))]    # n=6, keep 3: 3 ahead (small, big, mid: crowding 1.03 < 1.2)
    assert feed(policy, rung_1) == [CONTINUE, CONTINUE, CONTINUE, STOP, CONTINUE, STOP]
    rung_2 = [("small", 2, (0.70, 500)),   # first at rung 2
              ("twin", 2, (0.65, 500)),    # n=2, keep 1: dominated by small
              ("mid", 2, (0.85, 1000)),    # n=3, keep 2: small and mid on the front
              ("big", 2, (0.80, 3000)),    # n=4, keep 2: dominated by mid
              ("small", 3, (0.10, 500))]   # epoch 3 is no rung: not judged
    assert feed(policy, rung_2) == [CONTINUE, STOP, CONTINUE, STOP, CONTINUE]
    assert policy.stopped == {"worse": 1, "mid2": 1, "twin": 2, "big": 2}
    assert policy.on_result("mid", 4, (0.86, 1000)) == STOP  # the budget's end
    assert policy.rungs[0].recorded == {}  # ... recorded by on_end, not on_result
    policy.on_end("mid", 4, (0.86, 1000))
    policy.on_end("big", 2, (0.80, 3000))  # stopped at rung 2, already recorded there: no change
    assert [policy.rungs[0].recorded, policy.rungs[1].recorded] == [
        {"mid": (0.86, 1000.0)},
        {"small": (0.70, 500.0), "twin": (0.65, 500.0), "mid": (0.85, 1000.0), "big": (0.80, 3000.0)}]
    assert list(policy.rungs[2].recorded) == ["small", "big", "twin", "worse", "mid", "mid2"]
    assert "MoashaPolicy(val/acc (max), model/params (min)" in repr(policy) and "4 stopped early" in repr(policy)


def test_a_large_model_must_be_accurate_from_the_first_rung():
    """The cost objective counts from the first rung: a large model goes on only when it is more
    accurate than the smaller ones, a small one when it is the best of its size."""
    policy = MoashaPolicy(ACC_PARAMS, max_t=8, grace_period=1, reduction_factor=2)
    assert feed(policy, [("a", 1, (0.50, 1000)),
                         ("b", 1, (0.50, 4000)),   # n=2, keep 1: as accurate as a, larger
                         ("c", 1, (0.60, 8000)),   # n=3, keep 2: more accurate than a: the front
                         ("d", 1, (0.55, 9000)),   # n=4, keep 2: dominated by c
                         ("e", 1, (0.45, 500))]    # n=5, keep 3: the smallest, an extreme of the front
                ) == [CONTINUE, STOP, CONTINUE, STOP, CONTINUE]


def test_a_missing_value_never_stops_a_trial_and_is_not_counted_at_the_rung():
    policy = MoashaPolicy(ACC_PARAMS, max_t=9, grace_period=1, reduction_factor=3)
    assert feed(policy, [("a", 1, (0.9, 100)),
                         ("nan_acc", 1, (NAN, 200)),    # nothing to rank it by: continues
                         ("nan_cost", 1, (0.1, NAN)),   # the same for a missing cost
                         ("x", 1, (0.5, 300))]          # ranked among a and x only: n=2, keep 1
                ) == [CONTINUE, CONTINUE, CONTINUE, STOP]  # (counting the NaNs: n=4, keep 2)
    assert "nan_acc" in policy.rungs[-1].recorded  # recorded: not judged again at this rung
    assert policy.on_result("nan_acc", 1, (0.0, 200)) == CONTINUE
    assert policy.rungs[-1].recorded["nan_acc"][1] == 200.0 and math.isnan(policy.rungs[-1].recorded["nan_acc"][0])


def test_values_must_match_the_objectives():
    policy = MoashaPolicy(ACC_PARAMS, 9)
    with pytest.raises(ValueError, match=r"value \(0.5,\); rule: a tuple of 2 values in that order"):
        policy.on_result("a", 1, (0.5,))
    with pytest.raises(ValueError, match="value 0.5; rule: a tuple of 2 values"):
        policy.on_result("a", 1, 0.5)
    assert MoashaPolicy([ACC], 9).on_result("a", 1, 0.5) == CONTINUE  # one objective: a number will do


class RankEverything(MoashaPolicy):
    """MOASHA's rule taken literally: rank every complete vector at the rung, the newcomer last."""

    def _continues(self, earlier, score):
        if any(math.isnan(v) for v in score):
            return True
        vectors = [v for v in earlier if not any(math.isnan(x) for x in v)] + [score]
        return len(vectors) - 1 in kept_at_rung(vectors, self.objectives, self.reduction_factor)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("objectives", [ACC_PARAMS, (ACC, PARAMS, Objective("model/latency_ms", "min"))])
def test_moasha_shortcuts_decide_as_ranking_every_vector(seed, objectives):
    """MoashaPolicy leaves out of the ranking what cannot change the newcomer's place; on random
    streams (ties, NaN, 2 and 3 objectives) it decides exactly as ranking everything does."""
    rng = random.Random(seed)
    fast, literal = MoashaPolicy(objectives, 9, 1, 3), RankEverything(objectives, 9, 1, 3)
    for trial in range(60):
        size = [rng.choice([1, 2, 4, 8]) for _ in objectives[1:]]
        quality = rng.random()
        for epoch in range(1, 10):
            acc = NAN if rng.random() < 0.03 else round(quality * (1 - math.exp(-epoch / 3)) + rng.gauss(0, 0.05), 1)
            value = (acc, *size)
            decision = fast.on_result(str(trial), epoch, value)
            assert decision == literal.on_result(str(trial), epoch, value), (seed, trial, epoch, value)
            if decision == STOP:
                break
    assert fast.stopped == literal.stopped and len(fast.stopped) >= 20


@pytest.mark.parametrize("kwargs, message", [
    ({"objectives": [], "max_t": 9}, r"objectives=\(\): rule: one or more"),
    ({"objectives": ["max"], "max_t": 9}, "rule: one or more tune_nas.objectives.Objective"),
    ({"objectives": [ACC, ACC], "max_t": 9}, r"objectives \['val/acc', 'val/acc'\]: rule: each metric once"),
    ({"objectives": ACC_PARAMS, "max_t": 0}, "max_t=0"),
    ({"objectives": ACC_PARAMS, "max_t": 9, "grace_period": 10}, "grace_period=10: rule: 0 < grace_period <= max_t=9"),
    ({"objectives": ACC_PARAMS, "max_t": 9, "reduction_factor": 1}, "reduction_factor=1: rule: a number > 1"),
])
def test_moasha_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MoashaPolicy(**kwargs)


def test_moasha_shares_ashas_rungs():
    for max_t, grace, rf in [(1000, 1, 10), (9, 1, 3), (30, 3, 2.5), (10, 1, 1.5)]:
        assert MoashaPolicy(ACC_PARAMS, max_t, grace, rf).milestones == AshaPolicy("max", max_t, grace, rf).milestones
    assert isinstance(MoashaPolicy(ACC_PARAMS, 9), SchedulerPolicy)


# --------------------------------------------------------------------------- one objective = top k


class TopK:
    """The reference: at each rung, a trial continues iff fewer than ceil(n/η) of the n values
    recorded there (its own included, NaN left out) are strictly better than its own."""

    def __init__(self, objective: Objective, milestones: list[float], max_t: int, rf: float) -> None:
        self.objective, self.max_t, self.rf = objective, max_t, rf
        self.recorded: dict[float, dict[str, float]] = {m: {} for m in milestones}

    def _judge(self, trial: str, epoch: int, value: float) -> str:
        reached = [m for m in self.recorded if m <= epoch and trial not in self.recorded[m]]
        if not reached:
            return CONTINUE
        rung = self.recorded[max(reached)]
        others = [v for v in rung.values() if not math.isnan(v)]
        rung[trial] = value
        if math.isnan(value):
            return CONTINUE
        better = sum(self.objective.better(v, value) for v in others)
        return CONTINUE if better < math.ceil((len(others) + 1) / self.rf) else STOP

    def on_result(self, trial: str, epoch: int, value: float) -> str:
        return STOP if epoch >= self.max_t else self._judge(trial, epoch, value)

    def on_end(self, trial: str, epoch: int, value: float) -> None:
        self._judge(trial, epoch, value)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("direction", ["max", "min"])
@pytest.mark.parametrize("max_t, grace, rf", [(9, 1, 3), (8, 1, 2), (20, 2, 3), (10, 1, 1.5)])
def test_with_one_objective_moasha_keeps_exactly_the_top_k(seed, direction, max_t, grace, rf):
    objective = Objective("val/acc", direction)
    policy = MoashaPolicy([objective], max_t, grace, rf)
    reference = TopK(objective, policy.milestones, max_t, rf)
    rng = random.Random(seed)
    early_stops = 0
    for trial in range(50):
        quality = rng.random()
        for epoch in range(1, max_t + 1):
            if rng.random() < 0.03:
                value = NAN
            else:
                value = round(quality * (1 - math.exp(-epoch / 3)) + rng.gauss(0, 0.03), 2)  # ties
            ours, theirs = policy.on_result(str(trial), epoch, value), reference.on_result(str(trial), epoch, value)
            assert ours == theirs, (seed, trial, epoch, value)
            if ours == STOP:
                early_stops += epoch < max_t
                policy.on_end(str(trial), epoch, value)
                reference.on_end(str(trial), epoch, value)
                break
    assert early_stops >= 10


def test_one_objective_ties_share_a_decision_and_the_count_differs_from_ashas_quantile():
    policy = MoashaPolicy([ACC], max_t=9, grace_period=1, reduction_factor=2)
    assert feed(policy, [("a", 1, 5.0), ("b", 1, 4.0), ("c", 1, 4.0), ("d", 1, 4.0)]) == [
        CONTINUE, STOP, CONTINUE, CONTINUE]  # d: one value better (< ceil(4/2)); its tie c continued too
    stream = [("a", 1, 1.0), ("b", 1, 3.0), ("c", 1, 1.5)]
    assert feed(MoashaPolicy([ACC], 8, 1, 2), stream)[-1] == CONTINUE  # top 2 of 3
    assert feed(AshaPolicy("max", 8, 1, 2), stream)[-1] == STOP  # 1.5 < median{1, 3}


# --------------------------------------------------------------------------- the registry


def test_registry_builds_moasha_from_the_spec_objectives():
    spec = ExperimentSpec(objectives=TWO_OBJECTIVES, max_epochs=12, grace_period=2, reduction_factor=4)
    policy = create_policy("moasha", spec)
    assert isinstance(policy, MoashaPolicy)
    assert (policy.objectives, policy.max_t, policy.milestones) == (ACC_PARAMS, 12, [2, 8])
    assert create_policy("moasha", ExperimentSpec()).objectives == (ACC,)  # one objective is fine
    assert create_policy("none", spec).on_result("a", 12, (0.5, 1000)) == STOP  # none takes tuples
    with pytest.raises(SchedulerError, match="grace_period=10 > max_epochs=9: rule: grace_period <= max_epochs"):
        create_policy("moasha", ExperimentSpec(objectives=TWO_OBJECTIVES, max_epochs=9, grace_period=10))


@pytest.mark.parametrize("name", ["asha", "asha_promotion", "curve_fit"])
def test_single_objective_schedulers_refuse_several_objectives_in_one_line(name):
    spec = ExperimentSpec(objectives=TWO_OBJECTIVES, scheduler=name)
    message = (f"scheduler '{name}' ranks trials by one objective, the experiment has 2 (val/acc, model/params); "
               "rule: with several objectives, scheduler 'moasha' or 'none'")
    with pytest.raises(SchedulerError) as exc:
        create_policy(name, spec)
    assert str(exc.value) == message
    with pytest.raises(SpaceError, match=f"^space.py: {re.escape(message)}$"):
        spec.check("space.py")
    ExperimentSpec(objectives=TWO_OBJECTIVES, scheduler="moasha").check("space.py")  # accepted


# --------------------------------------------------------------------------- the Ray adapter


class Recorder:
    """A policy that writes down how it is called."""

    def __init__(self, stop_at: int = 0) -> None:
        self.stop_at = stop_at
        self.calls: list[tuple] = []

    def on_result(self, trial_id, epoch, value):
        self.calls.append(("result", trial_id, epoch, value))
        return STOP if epoch == self.stop_at else CONTINUE

    def on_end(self, trial_id, epoch, value):
        self.calls.append(("end", trial_id, epoch, value))

    def forget(self, trial_id):
        self.calls.append(("forget", trial_id))


def result(epoch: int, acc: float, params: float | None = 1000, **extra) -> dict:
    row = {"epoch": epoch, "val/acc": acc, "val/loss": 1 - acc, "training_iteration": epoch, **extra}
    if params is not None:
        row["model/params"] = params
    return row


def test_adapter_feeds_a_tuple_per_result_with_several_objectives():
    policy = Recorder()
    scheduler = PolicyScheduler(policy, ACC_PARAMS)
    assert scheduler.metric == "val/acc" and scheduler.objective == ACC  # Ray checks the primary
    assert scheduler.on_trial_result(None, FakeTrial("t"), result(1, 0.5, 1234)) == TrialScheduler.CONTINUE
    scheduler.on_trial_result(None, FakeTrial("t"), result(2, 0.625, 1234))
    scheduler.on_trial_complete(None, FakeTrial("t"), result(2, 0.625, 1234))
    assert policy.calls == [("result", "t", 1, (0.5, 1234.0)), ("result", "t", 2, (0.625, 1234.0)),
                            ("end", "t", 2, (0.625, 1234.0))]
    assert all(type(v) is float for call in policy.calls for v in call[3])
    assert "on val/acc (max), model/params (min)" in scheduler.debug_string()


def test_adapter_feeds_a_number_for_one_objective_however_it_is_given():
    for objective in (ACC, [ACC], (ACC,)):
        policy = Recorder()
        PolicyScheduler(policy, objective).on_trial_result(None, FakeTrial("t"), result(1, 0.5))
        assert policy.calls == [("result", "t", 1, 0.5)]


def test_adapter_needs_every_objective_in_the_first_result_and_passes_over_later_gaps():
    policy = Recorder()
    scheduler = PolicyScheduler(policy, ACC_PARAMS)
    with pytest.raises(ValueError, match="the first result has no 'model/params'"):
        scheduler.on_trial_result(None, FakeTrial("a"), result(1, 0.5, params=None))
    scheduler.on_trial_result(None, FakeTrial("a"), result(1, 0.5))
    assert scheduler.on_trial_result(None, FakeTrial("a"), result(2, 0.6, params=None)) == TrialScheduler.CONTINUE
    scheduler.on_trial_complete(None, FakeTrial("a"), result(2, 0.6, params=None))  # no vector: forgotten
    assert policy.calls == [("result", "a", 1, (0.5, 1000.0)), ("forget", "a")]
    with pytest.raises(ValueError, match="epoch=1, val/acc=0.5, model/params='big'; rule: numbers"):
        PolicyScheduler(Recorder(), ACC_PARAMS).on_trial_result(None, FakeTrial("b"), result(1, 0.5, "big"))
    with pytest.raises(TypeError, match="rule: an Objective or a sequence of them"):
        PolicyScheduler(Recorder(), ["val/acc"])


def test_adapter_runs_moasha_as_the_policy_decides_alone():
    stream = [("small", 1, 0.60, 500), ("big", 1, 0.90, 3000), ("twin", 1, 0.60, 500),
              ("worse", 1, 0.50, 600), ("mid", 1, 0.80, 1000)]
    alone = MoashaPolicy(ACC_PARAMS, 4, 1, 2)
    scheduler = PolicyScheduler(MoashaPolicy(ACC_PARAMS, 4, 1, 2), ACC_PARAMS)
    ray_decisions = [scheduler.on_trial_result(None, FakeTrial(t), result(e, a, p)) for t, e, a, p in stream]
    assert ray_decisions == feed(alone, [(t, e, (a, p)) for t, e, a, p in stream]) == [
        CONTINUE, CONTINUE, CONTINUE, STOP, CONTINUE]
    clone = pickle.loads(pickle.dumps(scheduler))  # Ray's experiment state
    assert clone.policy.rungs[-1].recorded == scheduler.policy.rungs[-1].recorded


def test_adapter_stops_a_trial_breaking_a_fixed_cost_constraint_at_its_first_result():
    policy = Recorder()
    constraints = [Constraint("model/params", "<=", 2000), Constraint("val/acc", ">=", 0.9)]
    scheduler = PolicyScheduler(policy, ACC, constraints=constraints)
    assert scheduler.stopping_constraints == (constraints[0],)  # accuracy is the study's business
    assert scheduler.on_trial_result(None, FakeTrial("huge"), result(1, 0.99, 5000)) == TrialScheduler.STOP
    scheduler.on_trial_complete(None, FakeTrial("huge"), result(1, 0.99, 5000))
    assert scheduler.on_trial_result(None, FakeTrial("weak"), result(1, 0.1, 2000)) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, FakeTrial("weak"), result(2, 0.2, params=None)) == TrialScheduler.CONTINUE
    assert policy.calls == [("forget", "huge"), ("result", "weak", 1, 0.1), ("result", "weak", 2, 0.2)]
    assert scheduler.infeasible == {"huge": "model/params <= 2000"}
    assert "1 STOP (1 for constraints)" in scheduler.debug_string()
    assert "model/params <= 2000" in scheduler.debug_string()
    with pytest.raises(ValueError, match="the first result has no 'model/params'"):
        PolicyScheduler(Recorder(), ACC, constraints=constraints).on_trial_result(
            None, FakeTrial("a"), result(1, 0.5, params=None))


@pytest.mark.parametrize("make", [lambda: NoStopping(9), lambda: AshaPolicy("max", 9, 1, 3),
                                  lambda: MoashaPolicy(ACC_PARAMS, 9, 1, 3)])
def test_constraint_stops_work_with_every_policy_and_never_reach_its_rungs(make):
    objectives = ACC_PARAMS if isinstance(make(), MoashaPolicy) else ACC
    scheduler = PolicyScheduler(make(), objectives, constraints=[Constraint("model/flops", "<=", 1e6)])
    big = result(1, 0.99, 1000, **{"model/flops": 2e6})
    assert scheduler.on_trial_result(None, FakeTrial("big"), big) == TrialScheduler.STOP
    scheduler.on_trial_complete(None, FakeTrial("big"), big)
    small = result(1, 0.5, 1000, **{"model/flops": 5e5})
    assert scheduler.on_trial_result(None, FakeTrial("small"), small) == TrialScheduler.CONTINUE
    for rung in getattr(scheduler.policy, "rungs", []):
        assert "big" not in rung.recorded  # the infeasible trial raised no bar


def test_adapter_state_survives_save_restore_and_an_older_pickle(tmp_path):
    scheduler = PolicyScheduler(NoStopping(4), ACC, constraints=[Constraint("model/params", "<=", 10)])
    scheduler.on_trial_result(None, FakeTrial("a"), result(1, 0.5, 100))
    path = str(tmp_path / "adapter.pkl")
    scheduler.save(path)
    restored = PolicyScheduler(NoStopping(4), ACC)
    restored.restore(path)
    assert restored.infeasible == {"a": "model/params <= 10"} and restored.stopping_constraints
    old = pickle.loads(pickle.dumps(PolicyScheduler(NoStopping(4), ACC)))
    for key in ("objectives", "constraints", "infeasible"):  # as an adapter pickled before them
        del old.__dict__[key]
    old = pickle.loads(pickle.dumps(old))
    assert old.objectives == (ACC,) and old.constraints == () and old.infeasible == {}
    assert old.on_trial_result(None, FakeTrial("b"), result(4, 0.5)) == TrialScheduler.STOP
