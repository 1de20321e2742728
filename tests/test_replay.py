"""tune_nas.replay: stopping policies re-run over curves made up in each test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python
from test_curves import write_experiment

from tune_nas.replay import (
    EXIT_BAD_INPUT,
    PolicySpec,
    RecordedTrial,
    default_policies,
    main,
    replay,
    replay_experiment,
    simulate,
)
from tune_nas.schedulers.asha import AshaPolicy
from tune_nas.schedulers.none import NoStopping

# max_t=4, grace 1, rf 2: ASHA's rungs at epochs 1, 2 and 4.
LATE_BLOOMER = {
    0: [0.50, 0.60, 0.70, 0.80],
    1: [0.40, 0.90, 0.95, 0.99],  # worst at epoch 1, best at the end
    2: [0.60, 0.65, 0.70, 0.75],
}


def trials_of(curves: dict[int, list[float]], max_epochs: int) -> list[RecordedTrial]:
    return [RecordedTrial(n, "COMPLETE" if len(v) >= max_epochs else "PRUNED",
                          {e: x for e, x in enumerate(v, start=1)}, {e: 2.0 for e in range(1, len(v) + 1)})
            for n, v in curves.items()]


def test_no_stopping_spends_the_full_budget_and_picks_the_true_best():
    outcome = simulate(trials_of(LATE_BLOOMER, 4), NoStopping(4), 4, "max", name="none")
    assert outcome.epochs == 12 and outcome.seconds == pytest.approx(24.0)
    assert outcome.full_trials == [0, 1, 2] and outcome.stopped == {}
    assert (outcome.pick, outcome.keeps_best, outcome.regret) == (1, True, 0.0)


def test_asha_stops_the_late_bloomer_and_pays_in_regret():
    outcome = simulate(trials_of(LATE_BLOOMER, 4), AshaPolicy("max", 4, 1, 2), 4, "max")
    # trial 1 at epoch 1: 0.40 < cutoff median{0.50} -> stop; trial 2: 0.60 >= median{0.5, 0.4}
    # at epoch 1 and 0.65 >= median{0.60} at epoch 2 -> runs to the end.
    assert outcome.stopped == {1: 1}
    assert outcome.epochs == 4 + 1 + 4
    assert outcome.full_trials == [0, 2]
    assert outcome.pick == 0 and outcome.pick_value == pytest.approx(0.80)
    assert outcome.keeps_best is False and outcome.regret == pytest.approx(0.19)


def test_asha_in_min_mode_mirrors_max_mode():
    losses = {n: [1.0 - v for v in curve] for n, curve in LATE_BLOOMER.items()}
    outcome = simulate(trials_of(losses, 4), AshaPolicy("min", 4, 1, 2), 4, "min")
    assert outcome.stopped == {1: 1} and outcome.pick == 0
    assert outcome.regret == pytest.approx(0.19)


def test_curve_fit_stops_a_clearly_worse_trial_in_replay():
    epochs = np.arange(1, 11)
    good = 0.95 - 0.45 * np.exp(-0.5 * (epochs - 1))
    worse = 0.60 - 0.30 * np.exp(-0.8 * (epochs - 1))
    curves = {0: list(good), 1: list(worse), 2: list(good - 0.001)}
    specs = [s for s in default_policies("max", 10, "val/acc", grace_periods=(), thresholds=(0.05,))
             if s.name != "none"]
    assert [s.name for s in specs] == ["curvefit(m=4,p=0.05)"]
    report = replay(trials_of(curves, 10), specs, 10, "max")
    outcome = report.outcomes[0]
    assert outcome.stopped == {1: 4}
    assert outcome.epochs == 10 + 4 + 10
    assert outcome.keeps_best and outcome.regret == 0.0


def test_censored_trials_are_counted_but_never_picked():
    curves = {0: [0.5, 0.6, 0.7, 0.8], 1: [0.9, 0.95]}  # trial 1 was pruned at epoch 2
    trials = trials_of(curves, 4)
    outcome = simulate(trials, NoStopping(4), 4, "max")
    assert outcome.censored == [1] and outcome.epochs == 6
    assert outcome.pick == 0 and outcome.keeps_best  # the best *known* final
    report = replay(trials, [PolicySpec("none", lambda: NoStopping(4))], 4, "max")
    assert report.complete_trials == 1 and report.best_trials == [0]
    assert "≥6" in report.text()


def test_replay_report_ranks_policies_by_regret_then_epochs():
    report = replay(trials_of(LATE_BLOOMER, 4), [
        PolicySpec("none", lambda: NoStopping(4)),
        PolicySpec("asha", lambda: AshaPolicy("max", 4, 1, 2)),
    ], 4, "max")
    assert [o.fraction_of_full for o in report.outcomes] == [pytest.approx(1.0), pytest.approx(0.75)]
    assert report.best_policy.policy == "none"  # ASHA loses the best trial here
    data = report.as_dict()
    assert data["best_policy"] == "none" and data["best_value"] == pytest.approx(0.99)
    assert data["policies"][1]["stopped"] == {"1": 1}


def test_cli_prints_a_table_and_writes_only_with_out(tmp_path, capsys):
    exp = write_experiment(tmp_path / "exp", LATE_BLOOMER, 4, grace=1, rf=2)
    before = sorted(p.name for p in exp.iterdir())
    assert main([str(exp), "--grace", "1", "--rf", "2", "--thresholds", "0.05",
                 "--min-epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "asha(g=1,rf=2)" in out and "curvefit(m=2,p=0.05)" in out
    assert "Best policy: none" in out
    assert sorted(p.name for p in exp.iterdir()) == before  # inspection writes nothing

    assert main([str(exp), "--grace", "1", "--rf", "2", "--json", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "replay.json").read_text())
    assert printed == written
    asha = next(p for p in written["policies"] if p["policy"] == "asha(g=1,rf=2)")
    assert asha["stopped"] == {"1": 1} and asha["regret"] == pytest.approx(0.19)


def test_cli_rejects_bad_input_with_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "missing")])
    assert exc.value.code == EXIT_BAD_INPUT
    assert "no such directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--rf", "1"])
    assert exc.value.code == EXIT_BAD_INPUT


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_out_on_a_full_disk_is_one_line_after_the_printed_report(tmp_path, capsys):
    exp = write_experiment(tmp_path / "exp", LATE_BLOOMER, 4, grace=1, rf=2)
    with pytest.raises(SystemExit) as exc:
        main([str(exp), "--grace", "1", "--rf", "2", "--out", "/dev/full"])
    captured = capsys.readouterr()
    assert exc.value.code == EXIT_BAD_INPUT
    assert "asha(g=1,rf=2)" in captured.out  # the report is not lost
    assert captured.err.strip().splitlines() == [
        "tune_nas.replay: error: --out /dev/full: cannot be written (No space left on device); the report is "
        "above; rule: a file in a directory with room for it"]


def test_replay_experiment_complete_only_drops_pruned_trials(tmp_path):
    curves = dict(LATE_BLOOMER)
    curves[3] = [0.1]
    exp = write_experiment(tmp_path / "exp", curves, 4, grace=1, rf=2)
    every = replay_experiment(exp, policies=[PolicySpec("none", lambda: NoStopping(4))])
    complete = replay_experiment(exp, trial_set="complete",
                                 policies=[PolicySpec("none", lambda: NoStopping(4))])
    assert (every.trials, complete.trials) == (4, 3)
    assert every.outcomes[0].censored == [3] and complete.outcomes[0].censored == []


def test_replay_runs_every_default_policy_without_importing_ray():
    """The replay's policies are the search's own, pure: replaying loads no Ray."""
    code = ("import sys\n"
            "from tune_nas.replay import RecordedTrial, default_policies, replay\n"
            "trials = [RecordedTrial(n, 'COMPLETE', {e: 0.1 * n + 0.01 * e for e in range(1, 7)}) for n in range(6)]\n"
            "report = replay(trials, default_policies('max', 6, 'val/acc'), 6, 'max')\n"
            "print(len(report.outcomes), sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch'}))\n")
    assert run_python(code) == "22 []"  # none + 3 x 3 ASHA + 3 x 3 ASHA by promotion + 3 curve-fit


def test_asha_by_promotion_pauses_holds_no_worker_and_resumes_where_a_trial_paused():
    from tune_nas.replay import play
    from tune_nas.schedulers.asha_promotion import AshaPromotionPolicy

    policy = AshaPromotionPolicy("max", 4, 1, 2)  # rungs at 1, 2 and 4
    played = play(trials_of(LATE_BLOOMER, 4), policy, 4, workers=1)
    # one worker: 0 pauses at 1 and 1 starts; 1 pauses below 0, which resumes (rung 1's top of
    # 2) and pauses at 2; 2 is the best at both rungs and runs through; 0 and 1 wait till the end
    assert policy.promoted == {4: [], 2: ["2"], 1: ["0", "2"]}
    assert played.reached == {0: 2, 1: 1, 2: 4} and played.epochs == 7  # no epoch counted twice
    assert played.stopped == {0: 2, 1: 1} and played.full_trials == [2] and played.censored == []
    assert policy.waiting() == {}
    outcome = simulate(trials_of(LATE_BLOOMER, 4), AshaPromotionPolicy("max", 4, 1, 2), 4, "max")
    assert (outcome.pick, outcome.epochs) == (2, 7) and outcome.regret == pytest.approx(0.24)
    # a promoted trial whose recording ends at its rung (stopped there in the recorded run)
    # is censored, not stopped
    short = trials_of({0: [0.9], 1: [0.5], 2: [0.4]}, 4)
    censored = play(short, AshaPromotionPolicy("max", 4, 1, 2), 4, workers=2)
    assert censored.censored == [0] and censored.stopped == {1: 1, 2: 1}
