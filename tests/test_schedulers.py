"""tune_nas.schedulers (pure policies fed made-up result streams, the registry) and the one Ray
adapter that runs them (tune_nas.ray_tune.scheduler_adapter). ASHA is checked decision for
decision against Ray Tune's own AsyncHyperBandScheduler on random streams."""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import dataclass, field

import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from tune_nas.config.space_file import ExperimentSpec, SpaceError
from tune_nas.objectives import Objective
from tune_nas.ray_tune.scheduler_adapter import PolicyScheduler
from tune_nas.schedulers import (
    CONTINUE,
    PAUSE,
    STOP,
    SchedulerError,
    SchedulerPolicy,
    create_policy,
    list_schedulers,
    register_scheduler,
    scheduler_summary,
)
from tune_nas.schedulers import registry as scheduler_registry
from tune_nas.schedulers.asha import AshaPolicy
from tune_nas.schedulers.curve_fit import CurveFitPolicy
from tune_nas.schedulers.none import NoStopping

NAN = float("nan")


@dataclass
class FakeTrial:
    """What a scheduler reads of Ray's Trial."""

    trial_id: str


def feed(policy, stream) -> list[str]:
    """``policy``'s decisions for ``[(trial, epoch, value), ...]``."""
    return [policy.on_result(trial, epoch, value) for trial, epoch, value in stream]


# --------------------------------------------------------------------------- ASHA, by hand


def test_asha_rungs_and_the_cutoff_quantile():
    policy = AshaPolicy("max", max_t=9, grace_period=1, reduction_factor=3)
    assert policy.milestones == [1, 3, 9]
    # rung 1: the 1 - 1/3 quantile (linear interpolation) of the values recorded before
    assert feed(policy, [("a", 1, 0.50),   # nothing recorded yet
                         ("b", 1, 0.40),   # cutoff 0.5
                         ("c", 1, 0.60),   # cutoff of {0.5, 0.4}: 0.4667
                         ("d", 1, 0.55),   # cutoff of {0.5, 0.4, 0.6}: 0.5333
                         ("e", 1, 0.52)]   # cutoff of {0.4, 0.5, 0.55, 0.6}: 0.55
                ) == [CONTINUE, STOP, CONTINUE, CONTINUE, STOP]
    assert policy.stopped == {"b": 1, "e": 1}
    assert policy.rungs[-1].recorded == {"a": 0.5, "b": 0.4, "c": 0.6, "d": 0.55, "e": 0.52}


def test_asha_value_at_the_cutoff_continues_and_min_mode_mirrors_max():
    stream = [("a", 1, 1.0), ("b", 1, 3.0), ("c", 1, 2.0), ("d", 1, 1.99)]  # median{1, 3} = 2
    expected = [CONTINUE, CONTINUE, CONTINUE, STOP]
    assert feed(AshaPolicy("max", 8, 1, 2), stream) == expected
    mirrored = [(t, e, -v) for t, e, v in stream]
    assert feed(AshaPolicy(Objective("val/loss", "min"), 8, 1, 2), mirrored) == expected


def test_asha_judges_a_trial_once_per_rung_at_the_highest_rung_it_reached():
    policy = AshaPolicy("max", max_t=8, grace_period=1, reduction_factor=2)
    assert policy.milestones == [1, 2, 4, 8]
    assert feed(policy, [("a", 1, 1.0), ("a", 4, 5.0)]) == [CONTINUE, CONTINUE]  # rung 2 skipped
    assert feed(policy, [("b", 1, 2.0), ("b", 2, 2.0), ("b", 3, 0.0), ("b", 4, 4.0)]) == [
        CONTINUE, CONTINUE, CONTINUE, STOP]  # epoch 3 is no rung; at 4: 4 < median{5}
    assert [sorted(r.recorded) for r in reversed(policy.rungs)] == [["a", "b"], ["b"], ["a", "b"], []]


def test_asha_stops_at_max_t_and_records_the_final_on_end():
    policy = AshaPolicy("max", max_t=4, grace_period=1, reduction_factor=2)
    assert feed(policy, [("a", e, 0.5) for e in (1, 2, 3)]) == [CONTINUE] * 3
    assert policy.on_result("a", 4, 0.9) == STOP
    assert policy.rungs[0].milestone == 4 and policy.rungs[0].recorded == {}
    policy.on_end("a", 4, 0.9)
    assert policy.rungs[0].recorded == {"a": 0.9}
    assert policy.stopped == {}  # the budget's end is no early stop


def test_asha_nan_never_stops_and_is_ignored_by_the_cutoff_and_forget_keeps_records():
    policy = AshaPolicy("max", 8, 1, 2)
    assert feed(policy, [("a", 1, NAN), ("b", 1, 1.0), ("c", 1, NAN), ("d", 1, 0.5)]) == [
        CONTINUE, CONTINUE, CONTINUE, STOP]  # cutoff of {nan, 1.0, nan} is 1.0
    policy.forget("b")
    assert "b" in policy.rungs[-1].recorded  # as in Ray: a failed trial's values stay
    assert policy.on_result("b", 1, 0.0) == CONTINUE  # a retried trial is not judged twice


@pytest.mark.parametrize("kwargs, message", [
    ({"objective": "up", "max_t": 9}, "mode='up'"),
    ({"objective": "max", "max_t": 0}, "max_t=0"),
    ({"objective": "max", "max_t": 9, "grace_period": 10}, "grace_period=10: rule: 0 < grace_period <= max_t=9"),
    ({"objective": "max", "max_t": 9, "reduction_factor": 1}, "reduction_factor=1: rule: a number > 1"),
])
def test_asha_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AshaPolicy(**kwargs)


# --------------------------------------------------------------------------- ASHA = Ray's ASHA


@pytest.mark.parametrize("max_t, grace, rf", [
    (1000, 1, 10), (243, 1, 3), (9, 1, 3), (8, 1, 2), (100, 1, 10), (30, 3, 2.5), (5, 5, 2),
    (7, 2, 3.3), (64, 1, 4), (10, 1, 1.5)])
def test_asha_rungs_are_rays(max_t, grace, rf):
    """Including the floating-point edge: log(1000)/log(10) < 3, so Ray has 3 rungs there."""
    ray_bracket = AsyncHyperBandScheduler(max_t=max_t, grace_period=grace, reduction_factor=rf)._brackets[0]
    assert AshaPolicy("max", max_t, grace, rf).milestones == [m for m, _ in reversed(ray_bracket._rungs)]


@dataclass
class _Running:
    trial: FakeTrial
    quality: float
    last_epoch: int  # the trial ends by itself after this epoch (its own budget or a crash)
    epoch: int = 0
    results: list = field(default_factory=list)


def _value(rng: random.Random, quality: float, epoch: int, mode: str) -> float:
    if rng.random() < 0.03:
        return NAN
    acc = quality * (1 - math.exp(-epoch / 3)) + rng.gauss(0, 0.03)
    if rng.random() < 0.5:
        acc = round(acc, 2)  # ties
    return acc if mode == "max" else 1.0 - acc


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def drive_like_ray(schedulers, seed: int, mode: str, metric: str, max_t: int, trials: int = 60) -> list:
    """Drive ``schedulers`` through one random search, calling them as Ray's TuneController
    does (add; a result per epoch, sometimes two epochs apart; complete with the last result
    after STOP or when a trial ends by itself; error then add again for a retried trial that
    resumes from an earlier checkpoint; remove), and assert that they decide alike.
    Returns ``[(trial, epoch, value, decision), ...]``."""
    rng = random.Random(seed)
    waiting = [FakeTrial(f"trial_{i:03d}") for i in range(trials)]
    running: dict[str, _Running] = {}
    log = []

    def every(method: str, trial: FakeTrial, *args) -> list:
        return [getattr(s, method)(None, trial, *args) for s in schedulers]

    while waiting or running:
        if waiting and (not running or (len(running) < 4 and rng.random() < 0.4)):
            trial = waiting.pop(0)
            every("on_trial_add", trial)
            last = max_t + 1 if rng.random() < 0.8 else rng.randint(1, max_t)
            running[trial.trial_id] = _Running(trial, rng.random(), last)
            continue
        run = running[rng.choice(sorted(running))]
        event = rng.random()
        if event < 0.02:  # stopped while paused or pending
            every("on_trial_remove", run.trial)
            del running[run.trial.trial_id]
            continue
        if event < 0.05 and run.epoch:  # crashed; retried from an earlier checkpoint
            every("on_trial_error", run.trial)
            every("on_trial_add", run.trial)
            run.epoch = max(0, run.epoch - rng.randint(0, 2))
            continue
        run.epoch += 1 if rng.random() < 0.85 else 2
        result = {"epoch": run.epoch, metric: _value(rng, run.quality, run.epoch, mode),
                  "training_iteration": len(run.results) + 1}
        run.results.append(result)
        decisions = every("on_trial_result", run.trial, dict(result))
        assert len(set(decisions)) == 1, (seed, run.trial.trial_id, result, decisions, log[-5:])
        log.append((run.trial.trial_id, run.epoch, result[metric], decisions[0]))
        if decisions[0] == TrialScheduler.STOP or run.epoch >= run.last_epoch:
            every("on_trial_complete", run.trial, dict(result))
            del running[run.trial.trial_id]
    return log


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # Ray's cutoff of NaN values only
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode, metric", [("max", "val/acc"), ("min", "val/loss")])
@pytest.mark.parametrize("max_t, grace, rf", [(9, 1, 3), (9, 1, 2), (20, 2, 3), (16, 1, 4), (30, 3, 2.5),
                                              (10, 1, 1.5)])
def test_asha_decides_exactly_like_rays_asha_on_random_streams(seed, mode, metric, max_t, grace, rf):
    ray_asha = AsyncHyperBandScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=max_t,
                                       grace_period=grace, reduction_factor=rf)
    policy = AshaPolicy(Objective(metric, mode), max_t, grace, rf)
    ours = PolicyScheduler(policy, Objective(metric, mode))
    log = drive_like_ray([ray_asha, ours], seed, mode, metric, max_t)

    early_stops = [entry for entry in log if entry[3] == STOP and entry[1] < max_t]
    assert early_stops and any(entry[3] == STOP and entry[1] >= max_t for entry in log)
    ray_rungs = ray_asha._brackets[0]._rungs
    assert [m for m, _ in ray_rungs] == [rung.milestone for rung in policy.rungs]
    for (_, ray_recorded), rung in zip(ray_rungs, policy.rungs):
        assert ray_recorded.keys() == rung.recorded.keys()
        assert all(_same(ray_recorded[t], rung.recorded[t]) for t in ray_recorded)


# --------------------------------------------------------------------------- none


def test_no_stopping_continues_until_max_t_and_stops_there():
    policy = NoStopping(max_t=3)
    assert feed(policy, [("a", 1, 0.0), ("a", 2, NAN), ("a", 3, 0.1), ("b", 5, 0.2)]) == [
        CONTINUE, CONTINUE, STOP, STOP]
    with pytest.raises(ValueError, match="max_t=0: rule: an integer >= 1"):
        NoStopping(0)


def test_every_policy_satisfies_the_protocol():
    for policy in (AshaPolicy("max", 9), NoStopping(9), CurveFitPolicy("min", 9)):
        assert isinstance(policy, SchedulerPolicy)


# --------------------------------------------------------------------------- the registry


def test_registry_builds_each_builtin_from_the_experiment_spec():
    assert list_schedulers() == ["asha", "asha_promotion", "curve_fit", "moasha", "none"]
    spec = ExperimentSpec(metric="val/loss", mode="min", max_epochs=12, grace_period=2, reduction_factor=4,
                          curve_fit_min_epochs=3, curve_fit_threshold=0.1)
    asha = create_policy("asha", spec)
    assert isinstance(asha, AshaPolicy) and (asha.mode, asha.max_t, asha.milestones) == ("min", 12, [2, 8])
    curve = create_policy("curve_fit", spec)
    assert isinstance(curve, CurveFitPolicy)
    assert (curve.mode, curve.max_t, curve.min_epochs, curve.threshold) == ("min", 12, 3, 0.1)
    assert curve.predictor.bounds is None  # a loss is unbounded
    assert create_policy("curve_fit", ExperimentSpec()).predictor.bounds == (0.0, 1.0)  # an accuracy
    none = create_policy("none", spec)
    assert isinstance(none, NoStopping) and none.max_t == 12
    assert create_policy("asha", spec) is not asha  # a fresh policy per search
    assert scheduler_summary("asha").startswith("ASHA")


@pytest.mark.parametrize("name, settings, message", [
    ("asha", {"grace_period": 10, "max_epochs": 9}, "grace_period=10 > max_epochs=9: rule: grace_period <= max_epochs"),
    ("curve_fit", {"curve_fit_min_epochs": 10, "max_epochs": 9}, "curve_fit_min_epochs=10 > max_epochs=9"),
    ("curve_fit", {"curve_fit_threshold": 0.0}, r"curve_fit_threshold=0.0: rule: 0 < curve_fit_threshold < 1"),
])
def test_registry_rejects_bad_settings_and_so_does_the_spec(name, settings, message):
    with pytest.raises(SchedulerError, match=message):
        create_policy(name, ExperimentSpec(**settings))
    with pytest.raises(SpaceError, match=f"^space.py: {message}"):
        ExperimentSpec(scheduler=name, **settings).check("space.py")


def test_an_unknown_scheduler_is_named_with_the_known_ones():
    known = "asha, asha_promotion, curve_fit, moasha, none"
    with pytest.raises(SchedulerError, match=f"scheduler 'hyperband' is unknown; rule: one of {known}"):
        create_policy("hyperband", ExperimentSpec())
    with pytest.raises(SpaceError, match=f"^space.py: scheduler='hyperband': rule: one of {known}$"):
        ExperimentSpec(scheduler="hyperband").check("space.py")


def test_a_plugin_registers_a_scheduler_the_spec_accepts(monkeypatch):
    monkeypatch.setattr(scheduler_registry, "_REGISTERED", {})

    @register_scheduler("stop_at_grace")
    def create(spec):
        """Stop every trial at its grace period."""
        return NoStopping(spec.grace_period)

    assert list_schedulers() == ["asha", "asha_promotion", "curve_fit", "moasha", "none", "stop_at_grace"]
    spec = ExperimentSpec(scheduler="stop_at_grace", grace_period=2).check("space.py")
    assert create_policy(spec.scheduler, spec).on_result("a", 2, 0.5) == STOP
    assert scheduler_summary("stop_at_grace") == "Stop every trial at its grace period."


# --------------------------------------------------------------------------- the Ray adapter


class Recorder:
    """A policy that writes down how it is called and answers from a script."""

    def __init__(self, answers: dict[int, str] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple] = []

    def on_result(self, trial_id: str, epoch: int, value: float) -> str:
        self.calls.append(("result", trial_id, epoch, value))
        return self.answers.get(epoch, CONTINUE)

    def on_end(self, trial_id: str, epoch: int, value: float) -> None:
        self.calls.append(("end", trial_id, epoch, value))

    def forget(self, trial_id: str) -> None:
        self.calls.append(("forget", trial_id))


def test_adapter_maps_decisions_and_passes_pause_through():
    policy = Recorder({2: PAUSE, 3: STOP})
    scheduler = PolicyScheduler(policy, Objective("val/acc", "max"))
    trial = FakeTrial("t1")
    values = {1: 0.5, 2: 0.25, 3: 0.125}
    decisions = [scheduler.on_trial_result(None, trial, {"epoch": e, "val/acc": v}) for e, v in values.items()]
    assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.PAUSE, TrialScheduler.STOP]
    assert policy.calls == [("result", "t1", e, v) for e, v in values.items()]
    assert "1 STOP, 1 PAUSE" in scheduler.debug_string()
    assert scheduler.metric == "val/acc"  # Ray checks every result for it
    assert scheduler.supports_buffered_results is False  # every epoch reaches the policy


def test_adapter_refuses_a_decision_ray_does_not_know():
    scheduler = PolicyScheduler(Recorder({1: "MAYBE"}), Objective())
    with pytest.raises(ValueError, match="decided 'MAYBE' for trial t1; rule: one of CONTINUE, PAUSE, STOP"):
        scheduler.on_trial_result(None, FakeTrial("t1"), {"epoch": 1, "val/acc": 0.5})
    with pytest.raises(TypeError, match="rule: an object with on_result, on_end and forget"):
        PolicyScheduler(object(), Objective())


@pytest.mark.parametrize("first, missing", [({"epoch": 1, "val/accuracy": 0.5}, "val/acc"),
                                            ({"training_iteration": 1, "val/acc": 0.5}, "epoch")])
def test_adapter_fails_loudly_when_the_first_result_lacks_the_metric_or_epoch(first, missing):
    policy = Recorder()
    scheduler = PolicyScheduler(policy, Objective("val/acc", "max"))
    with pytest.raises(ValueError, match=f"the first result has no '{missing}'"):
        scheduler.on_trial_result(None, FakeTrial("a"), first)
    assert scheduler.on_trial_result(None, FakeTrial("a"), {"epoch": 1, "val/acc": 0.5}) == CONTINUE
    assert scheduler.on_trial_result(None, FakeTrial("a"), first) == CONTINUE  # later: passed over
    assert policy.calls == [("result", "a", 1, 0.5)]


def test_adapter_ignores_error_results_and_forgets_failed_or_removed_trials():
    policy = Recorder({1: STOP})
    scheduler = PolicyScheduler(policy, Objective("val/loss", "min"))
    nan_report = {"epoch": 1, "val/loss": NAN, "error": "train/loss is nan at epoch 1"}
    assert scheduler.on_trial_result(None, FakeTrial("a"), nan_report) == CONTINUE  # not fed
    scheduler.on_trial_complete(None, FakeTrial("a"), nan_report)
    scheduler.on_trial_complete(None, FakeTrial("b"), {"epoch": 4, "val/loss": 0.25})
    scheduler.on_trial_complete(None, FakeTrial("c"), {})
    scheduler.on_trial_error(None, FakeTrial("d"))
    scheduler.on_trial_remove(None, FakeTrial("e"))
    assert policy.calls == [("forget", "a"), ("end", "b", 4, 0.25), ("forget", "c"), ("forget", "d"),
                            ("forget", "e")]


def test_adapter_takes_no_other_metric_or_mode_from_tune_config():
    scheduler = PolicyScheduler(NoStopping(3), Objective("val/acc", "max"))
    assert scheduler.set_search_properties(None, None) is True
    assert scheduler.set_search_properties("val/acc", "max") is True
    assert scheduler.set_search_properties("val/loss", None) is False
    assert scheduler.set_search_properties(None, "min") is False


def test_adapter_runs_curve_fit_and_its_state_survives_save_and_restore(tmp_path):
    epochs = range(1, 21)
    good = [0.95 - 0.45 * math.exp(-0.5 * (e - 1)) for e in epochs]
    worse = [0.60 - 0.30 * math.exp(-0.8 * (e - 1)) for e in epochs]
    scheduler = PolicyScheduler(CurveFitPolicy("max", 20, min_epochs=4), Objective("val/acc", "max"))
    decisions = [scheduler.on_trial_result(None, FakeTrial("good"), {"epoch": e, "val/acc": good[e - 1]})
                 for e in epochs]
    assert decisions == [CONTINUE] * 19 + [STOP]
    scheduler.on_trial_complete(None, FakeTrial("good"), {"epoch": 20, "val/acc": good[-1]})
    assert scheduler.policy.best == pytest.approx(good[-1])

    path = str(tmp_path / "scheduler.pkl")
    scheduler.save(path)
    restored = PolicyScheduler(CurveFitPolicy("max", 20, min_epochs=4), Objective("val/acc", "max"))
    restored.restore(path)
    assert restored.policy.best == pytest.approx(good[-1])
    assert [restored.on_trial_result(None, FakeTrial("worse"), {"epoch": e, "val/acc": worse[e - 1]})
            for e in range(1, 5)] == [CONTINUE] * 3 + [STOP]
    assert "CurveFitPolicy" in restored.debug_string() and "2 STOP" in restored.debug_string()


def test_adapter_with_asha_pickles_mid_search_and_decides_on_identically(tmp_path):
    stream = [(f"t{i}", e, 0.1 * i + 0.01 * e) for i in range(6) for e in (1, 2, 3)]
    first, rest = stream[:9], stream[9:]
    scheduler = PolicyScheduler(AshaPolicy("max", 9, 1, 3), Objective())
    for trial, epoch, value in first:
        scheduler.on_trial_result(None, FakeTrial(trial), {"epoch": epoch, "val/acc": value})
    clone = pickle.loads(pickle.dumps(scheduler))  # what Ray's tuner.pkl holds
    path = str(tmp_path / "asha.pkl")
    scheduler.save(path)
    restored = PolicyScheduler(AshaPolicy("max", 9, 1, 3), Objective())
    restored.restore(path)
    decide = [[s.on_trial_result(None, FakeTrial(t), {"epoch": e, "val/acc": 0.5 - v}) for t, e, v in rest]
              for s in (scheduler, clone, restored)]
    assert decide[0] == decide[1] == decide[2] and STOP in decide[0]
