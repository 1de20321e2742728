"""Pause-and-resume ASHA (tune_nas.schedulers.asha_promotion) on hand-made result streams, and
the Ray adapter's choice of the trial to run next (a fake controller, no Ray run)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pytest
from ray.tune.experiment import Trial

from tune_nas.config.space_file import ExperimentSpec, SpaceError
from tune_nas.objectives import Objective
from tune_nas.ray_tune.scheduler_adapter import PolicyScheduler
from tune_nas.schedulers import CONTINUE, PAUSE, STOP, PromotionPolicy, SchedulerError, create_policy
from tune_nas.schedulers.asha_promotion import AshaPromotionPolicy

NAN = float("nan")


def feed(policy, stream) -> list[str]:
    return [policy.on_result(trial, epoch, value) for trial, epoch, value in stream]


def test_trials_pause_at_each_rung_and_the_top_third_is_promoted_in_algorithm_2s_order():
    policy = AshaPromotionPolicy("max", max_t=9, grace_period=1, reduction_factor=3)
    assert isinstance(policy, PromotionPolicy)
    assert (policy.milestones, policy.pause_epochs) == ([1, 3, 9], (1, 3))
    # rung 1 holds 1, 2, then 3 trials: floor(n/3) = 0, 0, 1 promotable (b, the best)
    assert feed(policy, [("a", 1, 0.5), ("b", 1, 0.7), ("c", 1, 0.6)]) == [PAUSE] * 3
    assert policy.promotable() == ["b"] and policy.waiting() == {"a": 1, "b": 1, "c": 1}
    policy.resume("b")
    assert policy.promotable() == [] and "b" not in policy.waiting()
    # b trains on (epoch 2 is no rung) and pauses at rung 3, alone there
    assert feed(policy, [("b", 2, 0.75), ("b", 3, 0.8)]) == [CONTINUE, PAUSE]
    # d arrives best at rung 1 (n = 4, top 1 = d) and nothing above is promotable: promoted on the spot
    assert feed(policy, [("d", 1, 0.9)]) == [CONTINUE]
    assert feed(policy, [("d", 3, 0.85)]) == [PAUSE]  # rung 3: n = 2, nobody promotable
    # rung 1 grows to 6 (top 2: d, b, both promoted already), then 7 (top 2: g, d): g goes on
    assert feed(policy, [("e", 1, 0.65), ("f", 1, 0.4), ("g", 1, 0.95)]) == [PAUSE, PAUSE, CONTINUE]
    # rung 3 reaches 3 trials: d (0.85) is its top third; g pauses and d, waiting at the
    # higher rung, is the next job
    assert feed(policy, [("g", 3, 0.5)]) == [PAUSE]
    assert policy.promotable() == ["d"]
    policy.resume("d")
    assert feed(policy, [("d", e, 0.86 + 0.001 * e) for e in range(4, 10)]) == [CONTINUE] * 5 + [STOP]
    policy.on_end("d", 9, 0.869)
    assert policy.rungs[0].recorded == {"d": pytest.approx(0.869)}  # the top rung: finished trials
    # a trial that paused long ago is promoted once enough trials behind it did worse:
    # j (0.66) is 4th of 12 at rung 1, in the top floor(12/3) = 4
    assert feed(policy, [("h", 1, 0.1), ("i", 1, 0.2), ("j", 1, 0.66), ("k", 1, 0.3)]) == [PAUSE] * 4
    assert policy.promotable() == []  # 11 at rung 1: top 3 = g, d, b (all promoted)
    assert feed(policy, [("l", 1, 0.35)]) == [PAUSE]
    assert policy.promotable() == ["j"]
    # none promoted twice; what is left waits to be ended by the caller
    assert policy.promoted == {9: [], 3: ["d"], 1: ["b", "d", "g"]}
    assert policy.waiting() == {"a": 1, "c": 1, "e": 1, "f": 1, "h": 1, "i": 1, "j": 1, "k": 1, "l": 1,
                                "b": 3, "g": 3}
    for trial in list(policy.waiting()):
        policy.forget(trial)  # the adapter's stop of a paused trial
    assert policy.waiting() == {} and policy.promotable() == []
    assert policy.stopped["b"] == 3 and policy.stopped["a"] == 1
    assert len(policy.rungs[-1].recorded) == 12  # records stay
    assert "3 promoted" not in repr(policy) and "4 promoted" in repr(policy)


def test_the_highest_rung_goes_first_and_a_trial_best_below_it_pauses():
    policy = AshaPromotionPolicy("max", max_t=8, grace_period=1, reduction_factor=2)
    assert policy.pause_epochs == (1, 2, 4)
    assert feed(policy, [("a", 1, 0.5), ("b", 1, 0.4)]) == [PAUSE, PAUSE]  # n=2: top 1 = a (paused)
    assert policy.promotable() == ["a"]
    policy.resume("a")
    assert feed(policy, [("a", 2, 0.6), ("c", 1, 0.3)]) == [PAUSE, PAUSE]
    # d is in rung 1's top 2 of 4, then rung 2's top 1 of 2: promoted on the spot twice
    assert feed(policy, [("d", 1, 0.45), ("d", 2, 0.7)]) == [CONTINUE, CONTINUE]
    assert feed(policy, [("e", 1, 0.9), ("e", 2, 0.65)]) == [CONTINUE, PAUSE]  # rung 2: top 1 of 3 is d
    assert feed(policy, [("f", 1, 0.95), ("f", 2, 0.55)]) == [CONTINUE, PAUSE]  # rung 2: top 2 of 4 = d, e
    assert policy.promotable() == ["e"]
    # g is the best at rung 1 and promotable there, but e waits at the higher rung: g pauses
    assert feed(policy, [("g", 1, 0.99)]) == [PAUSE]
    assert policy.promotable() == ["e", "g"]
    policy.resume("e")
    assert policy.promotable() == ["g"]


def test_min_mode_mirrors_max_mode_and_nan_is_never_promoted_nor_counted():
    stream = [("a", 1, 0.5), ("b", 1, NAN), ("c", 1, 0.7), ("d", 1, 0.6)]
    up = AshaPromotionPolicy("max", 4, 1, 2)
    down = AshaPromotionPolicy(Objective("val/loss", "min"), 4, 1, 2)
    # n counts the finite values only: 1, 1, 2 (top 1: c, itself: on the spot), 3 (top 1: c)
    assert feed(up, stream) == [PAUSE, PAUSE, CONTINUE, PAUSE]
    assert feed(down, [(t, e, -v) for t, e, v in stream]) == [PAUSE, PAUSE, CONTINUE, PAUSE]
    assert up.promotable() == down.promotable() == []
    # n = 4: top 2 = c (promoted) and d, which paused before e came
    assert feed(up, [("e", 1, 0.55)]) == feed(down, [("e", 1, -0.55)]) == [PAUSE]
    assert up.promotable() == down.promotable() == ["d"]


def test_resume_refuses_a_trial_that_is_not_promotable_and_a_forgotten_one_is_not():
    policy = AshaPromotionPolicy("max", 9, 1, 3)
    feed(policy, [("a", 1, 0.9), ("b", 1, 0.1), ("c", 1, 0.2)])
    assert policy.promotable() == ["a"]
    with pytest.raises(ValueError, match=r"trial 'b' is not in the top 1/3 of its rung"):
        policy.resume("b")
    with pytest.raises(ValueError, match=r"trial 'z' is not paused"):
        policy.resume("z")
    policy.forget("a")  # failed while paused
    assert policy.promotable() == [] and policy.rungs[-1].recorded["a"] == 0.9


def test_checkpoint_epochs_round_fractional_rungs_up_and_bad_settings_are_one_line():
    assert AshaPromotionPolicy("max", 10, 1, 2.5).pause_epochs == (1, 3, 7)  # rungs 1, 2.5, 6.25
    assert AshaPromotionPolicy("max", 9, 9, 3).pause_epochs == ()  # one rung, at max_t: no pause
    with pytest.raises(SchedulerError, match="^scheduler 'asha_promotion' with max_concurrent_trials=2: paused"):
        create_policy("asha_promotion", ExperimentSpec(max_concurrent_trials=2))
    with pytest.raises(SpaceError, match="^space.py: grace_period=10 > max_epochs=9: rule: grace_period <= max_epochs$"):
        ExperimentSpec(scheduler="asha_promotion", grace_period=10).check("space.py")
    policy = create_policy("asha_promotion", ExperimentSpec(max_epochs=9, grace_period=1, reduction_factor=3))
    assert isinstance(policy, AshaPromotionPolicy) and policy.milestones == [1, 3, 9]
    assert pickle.loads(pickle.dumps(policy)).pause_epochs == (1, 3)


# --------------------------------------------------------------------------- the Ray adapter


@dataclass(eq=False)
class FakeTrial:
    """What the adapter reads of Ray's Trial."""

    trial_id: str
    status: str = Trial.PENDING
    last_result: dict = field(default_factory=dict)

    def set_status(self, status: str) -> None:
        self.status = status


class FakeSearcher:
    def __init__(self) -> None:
        self.finished = False

    def is_finished(self) -> bool:
        return self.finished


class FakeController:
    """The few calls a scheduler may make on Ray's controller wrapper."""

    def __init__(self, trials: list[FakeTrial]) -> None:
        self.trials, self.search_alg, self.stopped = trials, FakeSearcher(), []

    def get_trials(self) -> list[FakeTrial]:
        return self.trials

    def stop_trial(self, trial: FakeTrial) -> None:
        self.stopped.append(trial.trial_id)
        trial.status = Trial.TERMINATED


def result(epoch: int, value: float) -> dict:
    return {"epoch": epoch, "val/acc": value}


def test_adapter_resumes_promotable_paused_trials_before_new_ones_and_ends_the_rest():
    scheduler = PolicyScheduler(AshaPromotionPolicy("max", 9, 1, 3), Objective())
    a, b, c, new = (FakeTrial(n, Trial.RUNNING) for n in ("a", "b", "c", "new"))
    new.status = Trial.PENDING
    controller = FakeController([a, b, c, new])
    for trial, value in ((a, 0.5), (b, 0.7), (c, 0.6)):
        assert scheduler.on_trial_result(controller, trial, result(1, value)) == PAUSE
    assert scheduler.paused_at("b") == 1 and scheduler.paused_at("new") is None
    # b's pause is not through yet (Ray is saving it): the pending trial runs first
    assert scheduler.choose_trial_to_run(controller) is new
    for trial in (a, b, c):
        trial.status = Trial.PAUSED
    assert scheduler.choose_trial_to_run(controller) is b  # promoted: Ray stages it now
    assert scheduler.paused_at("b") is None and scheduler.policy.promotable() == []
    b.status = Trial.PENDING
    assert scheduler.choose_trial_to_run(controller) is b  # FIFO among the pending
    b.status, new.status = Trial.RUNNING, Trial.RUNNING
    assert scheduler.choose_trial_to_run(controller) is None  # a and c wait; nothing new
    assert controller.stopped == []
    # everything ran and the searcher has no more: the paused trials are ended, PRUNED
    b.status, new.status = Trial.TERMINATED, Trial.TERMINATED
    assert scheduler.choose_trial_to_run(controller) is None and controller.stopped == []
    controller.search_alg.finished = True
    assert scheduler.choose_trial_to_run(controller) is None
    assert controller.stopped == ["a", "c"]
    assert scheduler.end_reason("a") == "paused after epoch 1, not promoted when the search ran out of trials"
    assert scheduler.end_reason("b") is None
    assert "2 PAUSE" not in scheduler.debug_string() and "3 PAUSE" in scheduler.debug_string()


def test_adapter_state_travels_in_the_callbacks_snapshot_and_paused_trials_come_back_paused():
    from tune_nas.ray_tune.callbacks import TrialEvents

    scheduler = PolicyScheduler(AshaPromotionPolicy("max", 9, 1, 3), Objective())
    for name, value in (("a", 0.5), ("b", 0.7)):
        scheduler.on_trial_result(None, FakeTrial(name, Trial.RUNNING), result(1, value))
    events = TrialEvents.__new__(TrialEvents)  # only its scheduler matters here
    events.scheduler = scheduler
    state = events.get_state()
    # a resumed search: a fresh adapter (tuner.pkl's), the snapshot's state, Ray's re-queue
    fresh = PolicyScheduler(AshaPromotionPolicy("max", 9, 1, 3), Objective())
    events.scheduler = fresh
    events.set_state(state)
    assert fresh.paused == {"a": 1, "b": 1} and fresh.policy.waiting() == {"a": 1, "b": 1}
    requeued = [FakeTrial("a"), FakeTrial("b"), FakeTrial("c")]  # Ray: every unfinished one PENDING
    for trial in requeued:
        fresh.on_trial_add(None, trial)
    assert [t.status for t in requeued] == [Trial.PAUSED, Trial.PAUSED, Trial.PENDING]
    assert fresh.on_trial_result(None, FakeTrial("c", Trial.RUNNING), result(1, 0.6)) == PAUSE
    assert fresh.policy.promotable() == ["b"]  # the rung kept a and b: n = 3
    events.scheduler = PolicyScheduler(create_policy("asha", ExperimentSpec()), Objective())
    assert events.get_state() is None  # a policy that never pauses: nothing to carry


def test_adapter_keeps_fifo_for_a_policy_that_never_pauses():
    from tune_nas.schedulers.asha import AshaPolicy

    scheduler = PolicyScheduler(AshaPolicy("max", 9, 1, 3), Objective())
    paused, pending = FakeTrial("p", Trial.PAUSED), FakeTrial("q", Trial.PENDING)
    controller = FakeController([paused, pending])
    assert scheduler.choose_trial_to_run(controller) is pending
    pending.status = Trial.RUNNING
    assert scheduler.choose_trial_to_run(controller) is paused  # Ray's FIFO: then paused ones



# --------------------------------------------------------------------------- a real search

PROMOTION_SPACE = '''
EXPERIMENT = {
    "dataset": "digits", "model": "small_cnn", "metric": "val/acc", "mode": "max",
    "max_epochs": 4, "grace_period": 1, "reduction_factor": 2, "num_samples": 8,
    "scheduler": "asha_promotion", "n_startup_trials": 8, "checkpoint_every": 4,
}


def define_by_run(trial):
    # trials 0 and 1 (started together) learn fast, every later one barely: whichever of the two
    # reaches rung 1 first waits there (n = 1), and it is promoted from there at the latest when
    # four trials are recorded (it is in their top 2) -- whatever the order of arrivals
    trial.suggest_categorical("width", [8, 16])
    return {"optimizer": "adamw", "batch_size": 64, "depth": 2, "lr": 0.02 if trial.number < 2 else 1e-5}
'''


@pytest.mark.slow
def test_a_real_search_pauses_resumes_from_the_rung_and_trains_no_epoch_twice(tmp_path):
    """8 trials x <= 4 epochs on digits, rungs at 1, 2 (and 4): trials checkpoint at the rungs
    (checkpoint_every 4 would not), the promoted ones continue from the epoch they paused after,
    and the study, the summary and curves.csv agree on every trial's state."""
    import csv
    import json

    import optuna
    from conftest import run_launch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tmp_path / "promotion.py").write_text(PROMOTION_SPACE)
    proc = run_launch("--space", str(tmp_path / "promotion.py"), "--name", "promo", "--seed", "1",
                      "--trials-dir", str(tmp_path / "trials"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "trials" / "promo"
    summary = json.loads((exp / "summary.json").read_text())
    trials = {t["number"]: t for t in summary["trials"]}
    assert len(trials) == 8 and summary["scheduler"] == "asha_promotion"

    rows = list(csv.DictReader((exp / "curves.csv").open()))
    keys = [(int(r["trial_number"]), int(r["epoch"])) for r in rows]
    assert len(keys) == len(set(keys))  # no duplicate (trial, epoch) rows
    for number, t in trials.items():
        epochs = sorted(e for n, e in keys if n == number)
        assert epochs == list(range(1, t["epochs"] + 1))
        assert {r["state"] for r in rows if int(r["trial_number"]) == number} == {t["state"]}
        # every epoch was trained once: TensorBoard got one val/acc per epoch, in order
        acc = EventAccumulator(str(exp / "tensorboard" / t["run"]))
        acc.Reload()
        assert [e.step for e in acc.Scalars("val/acc")] == epochs

    # states: a trial ends at a rung (1 or 2) PRUNED or trains its 4 epochs COMPLETE; none is
    # left PAUSED or RUNNING; the unpromoted ones say why
    assert {t["state"] for t in trials.values()} <= {"COMPLETE", "PRUNED"}
    assert sum(t["state"] == "COMPLETE" for t in trials.values()) >= 1
    for t in trials.values():
        assert (t["state"], t["epochs"]) in {("COMPLETE", 4), ("PRUNED", 1), ("PRUNED", 2)}
        if t["state"] == "PRUNED":
            assert t["reason"] == (f"paused after epoch {t['epochs']}, not promoted when the search "
                                   "ran out of trials")
    study = optuna.load_study(study_name="promo", storage=f"sqlite:///{exp / 'optuna.db'}")
    for ot in study.trials:
        t = trials[ot.number]
        assert ot.state.name == t["state"]
        assert sorted(ot.intermediate_values) == list(range(1, t["epochs"] + 1))
    # at least one trial paused and was resumed later (promoted from the waiting ones): the
    # study and the summary list the epochs it resumed from
    resumed = {ot.number: ot.user_attrs["resumed_after_epochs"] for ot in study.trials
               if "resumed_after_epochs" in ot.user_attrs}
    assert resumed, "no trial was paused and resumed"
    assert 1 in resumed.get(0, []) + resumed.get(1, [])  # the fast starter that waited at rung 1
    for number, after in resumed.items():
        assert trials[number]["resumed_after"] == after and set(after) <= {1, 2}
        assert trials[number]["epochs"] > max(after)  # it went on past the rung it waited at
    assert "paused (" in proc.stdout or "PRUNED (paused after epoch" in proc.stdout


def test_the_study_report_shows_a_running_optuna_trial_with_a_pause_attribute_as_paused():
    import optuna

    from tune_nas.study import rank_key, trial_row

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    paused, resumed, running = study.ask(), study.ask(), study.ask()
    for trial, value in ((paused, 0.8), (resumed, 0.6), (running, 0.7)):
        trial.report(value, 1)
    paused.set_user_attr("paused_after_epoch", 1)
    resumed.set_user_attr("paused_after_epoch", None)  # promoted: it runs again
    resumed.set_user_attr("resumed_after_epochs", [1])
    rows = [trial_row(t, Objective()) for t in study.get_trials(deepcopy=False)]
    assert [r.state for r in rows] == ["PAUSED", "RUNNING", "RUNNING"]
    assert [r.number for r in sorted(rows, key=lambda r: rank_key(r, Objective()))] == [2, 1, 0]
