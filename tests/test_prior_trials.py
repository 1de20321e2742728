"""Warm start: which finished trials of an earlier study fit a new space (pure Optuna)."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tune_nas.search.prior_trials import FROM_ATTR, contains, fit_prior_trials

EARLIER = {"lr": FloatDistribution(1e-3, 1e-1, log=True), "width": CategoricalDistribution([8, 16, 64]),
           "depth": IntDistribution(1, 4)}


def earlier_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    rows = [({"lr": 0.01, "width": 8, "depth": 2}, "COMPLETE", 0.9),
            ({"lr": 0.05, "width": 64, "depth": 3}, "COMPLETE", 0.95),   # width outside the new choices
            ({"lr": 0.002, "width": 16, "depth": 4}, "PRUNED", None),    # depth outside the new range
            ({"lr": 0.02, "width": 16, "depth": 1}, "PRUNED", None),
            ({"lr": 0.03, "width": 8, "depth": 1}, "FAIL", None)]        # nothing to learn
    for params, state, value in rows:
        study.add_trial(optuna.trial.create_trial(
            state=getattr(optuna.trial.TrialState, state), value=value, params=params,
            distributions=EARLIER, intermediate_values={1: 0.5} if state == "PRUNED" else {},
            user_attrs={"epochs": 3, "checkpoint": "/elsewhere", "arch": "x"}))
    return study


def test_trials_that_fit_the_new_space_are_added_finished_and_the_rest_skipped_with_a_reason():
    new = {"lr": FloatDistribution(1e-3, 1e-1, log=True), "width": CategoricalDistribution([8, 16]),
           "depth": IntDistribution(1, 3)}
    prior = fit_prior_trials(earlier_study().trials, "trials/old", distributions=new)
    assert [t.user_attrs[FROM_ATTR] for t in prior.trials] == ["trials/old#0", "trials/old#3"]
    assert prior.skipped == {1: "width=64 is not one of (8, 16)", 2: "depth=4 is outside [1, 3]"}
    complete, pruned = prior.trials
    assert complete.state.name == "COMPLETE" and complete.values == [0.9]
    assert pruned.state.name == "PRUNED" and pruned.intermediate_values == {1: 0.5}
    assert complete.user_attrs == {"epochs": 3, "arch": "x", FROM_ATTR: "trials/old#0"}  # no stale checkpoint
    assert complete.distributions == new
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials(prior.trials)  # what the new study begins with; it samples on from them
    assert study.best_value == 0.9 and study.ask().number == 2
    assert "2 finished trial(s) of trials/old" in prior.describe() and "2 skipped (#1: width=64" in prior.describe()


def test_a_space_with_another_parameter_set_fits_nothing():
    fewer = {"lr": FloatDistribution(1e-3, 1e-1, log=True), "width": CategoricalDistribution([8, 16, 64])}
    more = {**EARLIER, "dropout": FloatDistribution(0.0, 0.5)}
    assert set(fit_prior_trials(earlier_study().trials, "s", distributions=fewer).skipped.values()) == {
        "depth is not searched in the new space"}
    assert set(fit_prior_trials(earlier_study().trials, "s", distributions=more).skipped.values()) == {
        "no value for dropout (searched in the new space)"}


def test_a_define_by_run_space_is_asked_along_each_trials_branch():
    def space(trial):
        trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        if trial.suggest_categorical("width", [8, 16, 64]) == 8:
            trial.suggest_int("depth", 1, 2)  # conditional, narrower than before
        return {}

    def earlier_branches(trial):
        trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        trial.suggest_categorical("width", [8, 16, 64])
        trial.suggest_int("depth", 1, 4)

    prior = fit_prior_trials(earlier_study().trials, "s", define_by_run=space)
    # #0 (width 8, depth 2) fits; #1 and #3 take the branch without depth; #2 depth 4 too
    assert [t.params for t in prior.trials] == [{"lr": 0.01, "width": 8, "depth": 2}]
    assert prior.skipped == {1: "depth is not searched in the new space", 2: "depth is not searched in the new space",
                             3: "depth is not searched in the new space"}
    assert earlier_branches  # the earlier space, for the reader


@pytest.mark.parametrize("distribution, value, why", [
    (CategoricalDistribution([True, False]), 1, "1 is not one of (True, False)"),
    (IntDistribution(0, 8, step=2), 3, "3 is outside [0, 8] on step 2"),
    (FloatDistribution(0.0, 1.0), "x", "'x' is no value of FloatDistribution"),
    (FloatDistribution(0.0, 1.0), 0.5, None),
])
def test_contains_says_why_a_value_is_outside(distribution, value, why):
    got = contains(distribution, value)
    assert got == why if why is None else got.startswith(why)
