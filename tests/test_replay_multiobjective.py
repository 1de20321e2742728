"""tune_nas.replay with several objectives: MOASHA against no stopping on curves made up here,
judged by epochs, the hypervolume of the returned front and its gap to the no-stopping front."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from conftest import run_python

from tune_nas.objectives import Objective
from tune_nas.replay import (
    PolicySpec,
    RecordedTrial,
    default_front_policies,
    front_gap,
    main,
    recorded_trials,
    reference_point,
    replay_experiment,
    replay_fronts,
)
from tune_nas.schedulers.moasha import MoashaPolicy
from tune_nas.schedulers.none import NoStopping
from tune_nas.schedulers.policy import STOP

ACC, PARAMS = Objective("val/acc", "max"), Objective("model/params", "min")
OBJECTIVES = (ACC, PARAMS)

# max_epochs 4; trial number -> (parameters, val/acc per epoch). Finals: 0 (0.80, 1000),
# 1 (0.85, 4000), 2 (0.60, 500), 3 (0.75, 2000: dominated by 0), 4 (0.90, 8000).
TRIALS = {
    0: (1000, [0.50, 0.60, 0.70, 0.80]),
    1: (4000, [0.40, 0.50, 0.60, 0.85]),  # a late bloomer, and large
    2: (500, [0.30, 0.40, 0.50, 0.60]),   # the smallest
    3: (2000, [0.45, 0.55, 0.65, 0.75]),
    4: (8000, [0.60, 0.70, 0.80, 0.90]),  # the most accurate, the largest
}
# The reference point: acc 0.6 - 1% of 0.3, params 8000 + 1% of 7500.
REFERENCE = (0.597, 8075.0)
# The no-stopping front {2, 0, 1, 4} in slabs of accuracy, each as wide as 8075 minus the
# fewest parameters among the points at least that accurate:
FULL_HV = 0.003 * 7575 + 0.2 * 7075 + 0.05 * 4075 + 0.05 * 75  # = 1645.225


def write_experiment(root: Path, trials: dict[int, tuple[int, list[float]]], max_epochs: int = 4) -> Path:
    """An experiment dir: curves.csv (val/acc and model/params every epoch) + experiment.json."""
    root.mkdir(parents=True, exist_ok=True)
    columns = ["trial_id", "trial_number", "run", "state", "final_epoch", "epoch", "val/acc", "model/params",
               "time/epoch_s"]
    with (root / "curves.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for number, (params, accs) in trials.items():
            state = "COMPLETE" if len(accs) >= max_epochs else "PRUNED"
            for epoch, acc in enumerate(accs, start=1):
                writer.writerow({"trial_id": f"id{number}", "trial_number": number, "run": f"{number:03d}_x",
                                 "state": state, "final_epoch": len(accs), "epoch": epoch, "val/acc": acc,
                                 "model/params": params, "time/epoch_s": 0.5})
    spec = {"objectives": {"val/acc": "max", "model/params": "min"}, "max_epochs": max_epochs,
            "grace_period": 1, "reduction_factor": 2, "scheduler": "moasha", "num_samples": len(trials)}
    (root / "experiment.json").write_text(json.dumps({"name": "two_objectives", "spec": spec}))
    return root


def recorded(trials: dict[int, tuple[int, list[float]]]) -> list[RecordedTrial]:
    return [RecordedTrial(n, "COMPLETE" if len(accs) >= 4 else "PRUNED",
                          {e: (a, float(params)) for e, a in enumerate(accs, start=1)})
            for n, (params, accs) in trials.items()]


def policies(*settings: tuple[int, float]) -> list[PolicySpec]:
    return [PolicySpec("none", lambda: NoStopping(4))] + [
        PolicySpec(f"moasha(g={g},rf={rf:g})", lambda g=g, rf=rf: MoashaPolicy(OBJECTIVES, 4, g, rf))
        for g, rf in settings]


# --------------------------------------------------------------------------- the measures


def test_front_gap_is_the_worst_best_shortfall_at_every_size():
    reference = [(0.60, 500), (0.80, 1000), (0.85, 4000), (0.90, 8000)]
    assert front_gap(reference, reference, OBJECTIVES) == (0.0, [])
    # 0.85 at 4000 is matched best by 0.80 at 1000 (a point at least as small): short by 0.05;
    # 0.60 at 500 is matched by 0.59 at 400: short by 0.01
    gap, unmatched = front_gap(reference, [(0.59, 400), (0.80, 1000), (0.90, 8000)], OBJECTIVES)
    assert gap == pytest.approx(0.05) and unmatched == []
    gap, unmatched = front_gap(reference, [(0.80, 1000), (0.90, 8000)], OBJECTIVES)
    assert math.isinf(gap) and unmatched == [0]  # nothing as small as 500
    assert front_gap([(0.5, 100)], [(0.9, 100)], OBJECTIVES) == (0.0, [])  # better is no shortfall


def test_reference_point_is_the_worst_final_pushed_out_by_one_percent_of_the_range():
    finals = [(a, float(p)) for p, a in ((p, accs[-1]) for p, accs in TRIALS.values())]
    assert reference_point(finals, OBJECTIVES) == pytest.approx(REFERENCE)
    assert reference_point([(0.5, 0.0), (0.5, 0.0)], OBJECTIVES) == pytest.approx((0.49, 0.01))  # no range: 1% of 1
    assert reference_point([], OBJECTIVES) is None


# --------------------------------------------------------------------------- the replay


def test_moasha_spends_fewer_epochs_and_its_front_is_judged_against_no_stopping():
    report = replay_fronts(recorded(TRIALS), policies((1, 2), (2, 2)), 4, OBJECTIVES)
    assert report.reference_point == pytest.approx(REFERENCE)
    assert report.front == [0, 1, 2, 4] and report.hypervolume == pytest.approx(FULL_HV)
    none, g1, g2 = report.outcomes

    assert (none.epochs, none.fraction_of_full, none.front, none.gap) == (20, 1.0, [0, 1, 2, 4], 0.0)
    assert none.hypervolume == pytest.approx(FULL_HV) and none.hypervolume_fraction == pytest.approx(1.0)

    # g=1, rf=2 (rungs 1, 2, 4), one trial after another: 1 is dominated by 0 at epoch 1, 3 too;
    # 2 is the smallest: at rungs 1 and 2 it and 0 are the two ends of the front (a tie), so it
    # continues (a tie-break by arrival stopped it at rung 2, and the front lost its small end);
    # 4 is the accuracy extreme at both rungs.
    assert g1.stopped == {1: 1, 3: 1} and g1.full_trials == [0, 2, 4]
    assert (g1.epochs, g1.fraction_of_full) == (4 + 1 + 4 + 1 + 4, pytest.approx(14 / 20))
    assert g1.front == [0, 2, 4]
    assert g1.hypervolume == pytest.approx(FULL_HV - 0.05 * 4000)
    assert g1.gap == pytest.approx(0.05) and g1.unmatched == []  # 1's 0.85 at 4000 vs 0's 0.80

    # g=2, rf=2 (rungs 2, 4): 1 and 3 stop at epoch 2; 2 keeps the small end of the front
    assert g2.stopped == {1: 2, 3: 2} and g2.full_trials == [0, 2, 4] and g2.epochs == 16
    assert g2.front == [0, 2, 4]
    assert g2.hypervolume == pytest.approx(FULL_HV - 0.05 * 4000)  # trial 1's slab, less its sliver
    assert g2.gap == pytest.approx(0.05) and g2.unmatched == []  # 1's 0.85 at 4000 vs 0's 0.80

    assert report.best_policy is none  # the only one with gap 0
    data = report.as_dict()
    assert [o["metric"] for o in data["objectives"]] == ["val/acc", "model/params"]
    assert data["policies"][1]["gap"] == pytest.approx(0.05) and data["policies"][1]["unmatched"] == []
    assert data["policies"][2]["gap"] == pytest.approx(0.05) and data["policies"][2]["stopped"] == {"1": 2, "3": 2}


class StopsTheSmallest(NoStopping):
    """Stops trial 2 (the smallest net) after its first epoch: a front without its small end."""

    def on_result(self, trial_id, epoch, value):
        return STOP if trial_id == "2" else super().on_result(trial_id, epoch, value)


def test_a_front_that_lost_its_small_end_has_an_infinite_gap_told_as_null_in_json():
    spec = PolicySpec("stops-2", lambda: StopsTheSmallest(4))
    report = replay_fronts(recorded(TRIALS), policies() + [spec], 4, OBJECTIVES)
    outcome = report.outcomes[1]
    assert outcome.stopped == {2: 1} and outcome.front == [0, 1, 4]
    assert math.isinf(outcome.gap) and outcome.unmatched == [2]  # nothing returned as small as trial 2
    data = report.as_dict()["policies"][1]
    assert data["gap"] is None and data["unmatched"] == [2] and data["stopped"] == {"2": 1}
    assert report.text().splitlines()[4].split()[-1] == "inf"


def test_replay_experiment_reads_vectors_from_curves_and_the_cli_prints_and_writes(tmp_path, capsys):
    exp = write_experiment(tmp_path / "exp", TRIALS)
    report = replay_experiment(exp, grace_periods=(1, 2), reduction_factors=(2,), thresholds=(0.05,))
    assert [o.policy for o in report.outcomes] == ["none", "moasha(g=1,rf=2)", "moasha(g=2,rf=2)"]
    assert [o.epochs for o in report.outcomes] == [20, 14, 16]
    assert report.outcomes[2].seconds == pytest.approx(8.0)  # 16 epochs of 0.5 s
    assert report.outcomes[2].gap == pytest.approx(0.05)

    before = sorted(p.name for p in exp.iterdir())
    assert main([str(exp), "--grace", "1,2", "--rf", "2"]) == 0
    text = capsys.readouterr().out
    assert "objectives val/acc (max), model/params (min)" in text
    assert "No-stopping front: trial(s) 0, 1, 2, 4; hypervolume 1645" in text
    g2_line = next(line for line in text.splitlines() if "moasha(g=2,rf=2)" in line)
    assert g2_line.split() == ["moasha(g=2,rf=2)", "16", "80%", "8.0", "3", "0", "3", "1445", "88%", "0.0500"]
    assert next(line for line in text.splitlines() if "moasha(g=1,rf=2)" in line).split()[-1] == "0.0500"
    assert "Best policy: none (gap 0.0000, 20 epochs = 100% of no stopping)." in text
    assert sorted(p.name for p in exp.iterdir()) == before  # inspection writes nothing

    assert main([str(exp), "--grace", "2", "--rf", "2", "--json", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "replay.json").read_text())
    assert printed["front"] == [0, 1, 2, 4] and printed["reference_point"] == pytest.approx(list(REFERENCE))
    moasha = printed["policies"][1]
    assert (moasha["epochs"], moasha["fraction_of_full"], moasha["front"]) == (16, 0.8, [0, 2, 4])


def test_an_epoch_missing_an_objective_is_not_recorded_and_censors_the_trial(tmp_path):
    exp = write_experiment(tmp_path / "exp", {0: (1000, [0.5, 0.6, 0.7, 0.8]), 1: (500, [0.4, 0.5])})
    rows = (exp / "curves.csv").read_text().splitlines()
    rows[1] = rows[1].replace(",1000,", ",,")  # trial 0's epoch 1 lost its parameter count
    (exp / "curves.csv").write_text("\n".join(rows) + "\n")
    report = replay_experiment(exp, grace_periods=(1,), reduction_factors=(2,))
    trials = recorded_trials(report_curves(exp), ["val/acc", "model/params"])
    assert sorted(trials[0].values) == [2, 3, 4] and trials[1].values[2] == (0.5, 500.0)
    none = report.outcomes[0]
    assert none.censored == [1] and none.full_trials == [] and none.front == []  # 0 never started
    assert report.complete_trials == 1 and report.front == [0]


def report_curves(exp: Path):
    from tune_nas.analysis.experiment import load_experiment

    return load_experiment(exp).curves


def test_single_objective_experiments_replay_as_before(tmp_path):
    exp = write_experiment(tmp_path / "exp", TRIALS)
    data = json.loads((exp / "experiment.json").read_text())
    data["spec"].pop("objectives")
    data["spec"].update(metric="val/acc", mode="max", scheduler="asha")
    (exp / "experiment.json").write_text(json.dumps(data))
    report = replay_experiment(exp, grace_periods=(1,), reduction_factors=(2,), thresholds=())
    assert [o.policy for o in report.outcomes] == ["none", "asha(g=1,rf=2)", "asha_promotion(g=1,rf=2)"]
    assert report.best_trials == [4] and report.outcomes[0].pick == 4


def test_default_front_policies_and_no_ray_in_the_replay():
    assert [s.name for s in default_front_policies(OBJECTIVES, 4, grace_periods=(1, 4), reduction_factors=(2, 3))] == [
        "none", "moasha(g=1,rf=2)", "moasha(g=1,rf=3)"]
    code = ("import sys\n"
            "from tune_nas.objectives import Objective\n"
            "from tune_nas.replay import RecordedTrial, default_front_policies, replay_fronts\n"
            "objs = (Objective('val/acc', 'max'), Objective('model/params', 'min'))\n"
            "trials = [RecordedTrial(n, 'COMPLETE', {e: (0.1 * n + 0.01 * e, 100.0 * (n % 3 + 1)) for e in range(1, 7)})"
            " for n in range(6)]\n"
            "report = replay_fronts(trials, default_front_policies(objs, 6), 6, objs)\n"
            "print(len(report.outcomes), sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch'}))\n")
    assert run_python(code) == "10 []"  # none + 3 x 3 MOASHA
