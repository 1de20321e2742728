"""A search that MINIMISES ``val/loss``, analysed end to end without training: the study
report, the replay of stopping policies, the fidelity analysis and compare's pick of the
search's best trial all take the lowest loss as best and say it is a loss.

The experiment directory is written by hand (experiment.json, curves.csv and trials.json
with the bookkeeper's writers, summary.json, an Optuna study with direction minimize). Its
numbers are chosen so that a rule that maximises, or that ranks by accuracy, picks another
trial: the lowest final loss is trial 3, the highest accuracy trial 5, the lowest accuracy
trial 0; and at epoch 1 the losses rank the trials in the reverse order of the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from test_experiment_loader import MadeTrial, write_experiment_dir

from tune_nas import study as study_cli
from tune_nas.analysis.experiment import load_experiment
from tune_nas.analysis.fidelity import fidelity_report
from tune_nas.compare import best_search_trial, last_epoch
from tune_nas.objectives import Objective
from tune_nas.replay import main as replay_main
from tune_nas.replay import replay_experiment

MAX_EPOCHS = 4
LOSS = Objective("val/loss", "min")
FINAL_LOSS = {0: 0.50, 1: 0.20, 2: 0.35, 3: 0.10, 4: 0.60, 5: 0.45}  # the COMPLETE trials
BEST = 3  # lowest final loss
PRUNED = {6: [1.00], 7: [0.90, 0.80]}  # stopped at epochs 1 and 2
SPEC = {"metric": "val/loss", "mode": "min", "max_epochs": MAX_EPOCHS, "scheduler": "asha",
        "grace_period": 1, "reduction_factor": 2, "model": "small_cnn", "num_samples": 8}


def loss_curve(final: float) -> list[float]:
    """Epoch 1 ranks trials in reverse (the best at the end is the worst first); from epoch 2
    on the losses rank them as at the end."""
    return [1.5 - final, *(final + 0.1 * (MAX_EPOCHS - e) for e in range(2, MAX_EPOCHS + 1))]


def accuracy(number: int) -> float:
    """Unrelated to the loss: highest for trial 5, lowest for trial 0, at every epoch."""
    return 0.5 + 0.05 * number


def made_trials() -> list[MadeTrial]:
    trials = []
    for number, final in FINAL_LOSS.items():
        epochs = [{"val/loss": loss, "val/acc": accuracy(number), "time/epoch_s": 0.5,
                   "model/params": 1000 + number} for loss in loss_curve(final)]
        epochs[-1]["test/acc"] = accuracy(number) - 0.01
        trials.append(MadeTrial(number, "COMPLETE", epochs, {"lr": 0.01 * (number + 1)}))
    for number, losses in PRUNED.items():
        trials.append(MadeTrial(number, "PRUNED", [{"val/loss": v, "val/acc": accuracy(number),
                                                    "time/epoch_s": 0.5} for v in losses],
                                {"lr": 0.01 * (number + 1)}))
    return trials


def write_study(db: Path, trials: list[MadeTrial]) -> None:
    """The study as the Ray layer records it: per-epoch losses, COMPLETE told its final loss."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="minloss", direction="minimize")
    for made in trials:
        trial = study.ask({"lr": FloatDistribution(1e-3, 1.0, log=True)})
        assert trial.number == made.number
        for epoch, metrics in enumerate(made.epochs, 1):
            trial.report(metrics["val/loss"], epoch)
        trial.set_user_attr("epochs", len(made.epochs))
        if made.state == "COMPLETE":
            trial.set_user_attr("test_acc", made.epochs[-1]["test/acc"])
            study.tell(trial, made.epochs[-1]["val/loss"])
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    study._storage.remove_session()


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    trials = made_trials()
    root = write_experiment_dir(tmp_path_factory.mktemp("minmode") / "trials" / "minloss", trials,
                                SPEC, name="minloss")
    write_study(root / "optuna.db", trials)
    return root


def test_the_loader_and_the_summary_say_loss_min(experiment):
    loaded = load_experiment(experiment)
    assert loaded.objective == LOSS
    assert loaded.summary["best"]["number"] == BEST  # the bookkeeper's best, by the objective
    assert loaded.summary["best"]["value"] == pytest.approx(FINAL_LOSS[BEST])


def test_study_ranks_the_lowest_loss_first_and_labels_it_a_loss(experiment, capsys):
    assert study_cli.main([str(experiment), "--json", "--top", "8"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["directions"] == ["minimize"] and report["metric_names"] == ["val/loss"]
    assert report["best"]["number"] == BEST
    assert report["best"]["best_value"] == pytest.approx(FINAL_LOSS[BEST])  # the lowest epoch
    complete = sorted(FINAL_LOSS, key=FINAL_LOSS.get)
    assert [t["number"] for t in report["top"]] == [*complete, 7, 6]  # then pruned by epochs
    assert study_cli.main([str(experiment)]) == 0
    text = capsys.readouterr().out
    assert "objective val/loss (min)" in text and "best val/loss" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    assert lines[header + 1].split()[:2] == ["1", str(BEST)]  # rank 1 of the table


def test_replay_measures_regret_towards_the_lowest_loss(experiment, capsys):
    report = replay_experiment(experiment, grace_periods=(1,), reduction_factors=(2,),
                               thresholds=(0.05,), min_epochs=(2,))
    assert (report.metric, report.mode) == ("val/loss", "min")
    assert report.best_value == pytest.approx(FINAL_LOSS[BEST]) and report.best_trials == [BEST]
    none = next(o for o in report.outcomes if o.policy == "none")
    assert (none.pick, none.regret, none.keeps_best) == (BEST, 0.0, True)
    for outcome in report.outcomes:
        if outcome.pick is not None:
            assert outcome.pick_value == min(FINAL_LOSS[n] for n in outcome.full_trials)
            assert outcome.regret == pytest.approx(outcome.pick_value - FINAL_LOSS[BEST])
            assert outcome.regret >= 0
    assert replay_main([str(experiment)]) == 0
    assert "val/loss (min)" in capsys.readouterr().out


def test_fidelity_ranks_epochs_by_the_loss(experiment):
    report = fidelity_report(experiment, write=False, n_boot=50)
    assert report.objective == LOSS and report.full_trials == len(FINAL_LOSS)
    assert report.at(1).correlation.spearman == pytest.approx(-1.0)  # val/acc would give +1
    assert report.at(2).correlation.spearman == pytest.approx(1.0)
    assert report.suggested_grace_period == 2
    assert report.rungs == [1, 2, 4]
    assert any("rung at epoch 1" in w for w in report.warnings)
    assert report.text().startswith("Fidelity of val/loss (min) in minloss")


def test_compare_retrains_the_lowest_loss(experiment):
    loaded = load_experiment(experiment)
    best = best_search_trial(loaded.summary)
    assert (best["number"], best["complete"]) == (BEST, True)
    assert last_epoch(loaded.curves, best["number"])["val/loss"] == pytest.approx(FINAL_LOSS[BEST])
    # a time budget stopped every trial: the furthest (4 epochs), lowest loss among them
    cut = {**loaded.summary, "best": None,
           "trials": [{**t, "state": "PRUNED"} for t in loaded.summary["trials"]]}
    best = best_search_trial(cut)
    assert (best["number"], best["complete"]) == (BEST, False)
