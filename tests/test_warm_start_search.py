"""--warm-start end to end: a second search begins with the first one's finished trials that
fit its space (given to the sampler, not trained again), through Ray, asserted on its files."""

import json
import textwrap

import optuna
import pytest
from conftest import run_launch

SPACE = """
from ray import tune
EXPERIMENT = {{"dataset": "digits", "model": "small_cnn", "max_epochs": 1, "num_samples": {n},
              "train_fraction": 0.3, "image_size": 6, "scheduler": "none", "searcher": "random",
              "seed": 3}}
PARAM_SPACE = {{"lr": tune.loguniform(1e-3, 3e-2), "width": tune.choice({widths})}}
"""


def _study(exp):
    return optuna.load_study(study_name=exp.name, storage=f"sqlite:///{exp / 'optuna.db'}")


@pytest.mark.slow
def test_a_new_search_begins_with_the_earlier_trials_that_fit_its_space(tmp_path):
    trials = tmp_path / "trials"
    for name, n, widths in (("first", 6, [8, 16, 32]), ("second", 2, [8, 16])):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(SPACE.format(n=n, widths=widths)))
    first = run_launch("--space", str(tmp_path / "first.py"), "--name", "first", "--trials-dir", str(trials),
                       cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    earlier = _study(trials / "first").trials
    fits = [t.number for t in earlier if t.params["width"] in (8, 16)]
    misfits = [t.number for t in earlier if t.params["width"] == 32]
    assert fits and misfits, "seed 3 draws both kinds (the test relies on it)"

    second = run_launch("--space", str(tmp_path / "second.py"), "--name", "second", "--trials-dir", str(trials),
                        "--warm-start", str(trials / "first"), cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert f"warm start: {len(fits)} finished trial(s) of {trials / 'first'}" in second.stdout
    saved = json.loads((trials / "second" / "experiment.json").read_text())["warm_start"]
    assert saved["added"] == fits
    assert saved["skipped"] == {str(n): "width=32 is not one of (8, 16)" for n in misfits}
    study = _study(trials / "second").trials
    given, trained = study[:len(fits)], study[len(fits):]
    assert [t.user_attrs["warm_start_from"] for t in given] == [f"{trials / 'first'}#{n}" for n in fits]
    assert [t.value for t in given] == [earlier[n].value for n in fits]
    assert [t.params for t in given] == [earlier[n].params for n in fits]
    summary = json.loads((trials / "second" / "summary.json").read_text())
    # only the new trials trained: two of them, numbered after the ones given
    assert [t["number"] for t in summary["trials"]] == [t.number for t in trained] == [len(fits), len(fits) + 1]
    assert all("warm_start_from" not in t.user_attrs and t.state.name == "COMPLETE" for t in trained)
    assert summary["warm_start"]["added"] == fits
