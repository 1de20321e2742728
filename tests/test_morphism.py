"""The network-morphism search (issue 18): the sampler's decisions on hand-made studies, a
child trial that starts from its parent's weights (and a control proving that the check
bites), lineage in the study and the summary through a real launch, and a resumed search.

The sampler is driven on in-memory Optuna studies (``create_trial`` + ``add_trial``, then
``study.ask()``): no Ray, no training. ``run_trial`` is called directly with a recording
reporter on digits. Only the launcher tests start Ray.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from test_faults import (  # noqa: F401  (ray_env: a fixture)
    assert_nothing_lost,
    ended_records,
    explain,
    kill_ray_of,
    killed_when_done,
    launch,
    launch_cmd,
    ray_env,
)

from tune_nas.search.morphism import MORPHS_ATTR, PARENT_ATTR, MorphismSampler, is_parent
from tune_nas.search.registry import CONFIG_ATTR, SearcherError, SearcherSettings, create_sampler
from tune_nas.spaces.morph_spec import MorphLimits, MorphSpec, apply_to_spec, describe, possible_morphs, small_spec
from tune_nas.states import final_state

LR = FloatDistribution(1e-4, 1e-1, log=True)
LIMITS = MorphLimits(max_layers=5, max_channels=32, max_kernel=5)
ARCHS = [small_spec(4, 1, 1), small_spec(8, 2, 1), small_spec(4, 2, 2), small_spec(8, 1, 0)]


# ---------------------------------------------------------------- 1: the sampler, no Ray


def _parent(value: float | None, number: int, state: TrialState = TrialState.COMPLETE, *, arch: bool = True,
            checkpoint: bool = True) -> optuna.trial.FrozenTrial:
    """A finished trial as the Ray layer records it: its ``lr``, ``arch`` and ``checkpoint``."""
    attrs = {}
    if arch:
        attrs["arch"] = ARCHS[number % len(ARCHS)].to_json()
    if checkpoint:
        attrs["checkpoint"] = f"/trials/exp/trial_{number:03d}/checkpoint_000005"
    return create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                        params={"lr": 0.001 * (1 + number)}, distributions={"lr": LR},
                        user_attrs=attrs)


def _study(trials: list[optuna.trial.FrozenTrial], direction: str = "maximize", seed: int = 0,
           **options) -> tuple[optuna.Study, MorphismSampler]:
    sampler = MorphismSampler(limits=LIMITS, seed=seed, **{"seed_trials": 2, **options})
    study = optuna.create_study(direction=direction, sampler=sampler)
    for trial in trials:
        study.add_trial(trial)
    return study, sampler


def _handed(study: optuna.Study, trial: optuna.Trial) -> dict | None:
    """What the sampler handed the trial through the Optuna system attribute (None: a seed trial)."""
    return study._storage.get_trial_system_attrs(trial._trial_id).get(CONFIG_ATTR)


def _ask_child(study: optuna.Study) -> tuple[optuna.Trial, dict]:
    trial = study.ask()
    handed = _handed(study, trial)
    assert handed is not None, f"trial {trial.number} got no parent"
    return trial, handed


def test_seed_trials_get_nothing_even_when_parents_exist():
    study, _ = _study([_parent(0.9, 0), _parent(0.8, 1)], seed_trials=4)
    for number in (2, 3):  # below seed_trials: trained from scratch although 0 and 1 could be parents
        trial = study.ask()
        assert trial.number == number and _handed(study, trial) is None
        assert PARENT_ATTR not in study._storage.get_trial(trial._trial_id).user_attrs
    assert _handed(study, study.ask()) is not None  # trial 4: the first child


def test_without_any_parent_a_later_trial_is_a_seed_trial():
    study, _ = _study([_parent(None, 0, TrialState.FAIL), _parent(None, 1, TrialState.PRUNED)], seed_trials=1)
    trial = study.ask()
    assert trial.number == 2 and _handed(study, trial) is None


def test_a_child_gets_its_arch_the_warm_start_and_its_lineage():
    parents = [_parent(0.7, 0), _parent(0.95, 1)]
    study, _ = _study(parents, sample_size=2, max_morphs=2, child_epochs=3)
    for _ in range(6):
        trial, handed = _ask_child(study)
        assert set(handed) == {"arch", "warm_start"}
        warm = handed["warm_start"]
        assert set(warm) == {"parent", "parent_arch", "checkpoint", "morphs", "epochs", "lr_scale"}  # no warm-up given
        assert warm["lr_scale"] == 1.0  # MorphismSampler's own default; the searcher's factory sets 0.3
        assert warm["parent"] == 1  # the better one: the tournament holds both
        assert warm["parent_arch"] == parents[1].user_attrs["arch"]
        assert warm["checkpoint"] == parents[1].user_attrs["checkpoint"]
        assert warm["epochs"] == 3
        assert 1 <= len(warm["morphs"]) <= 2
        spec = MorphSpec.from_json(warm["parent_arch"])
        for morph in warm["morphs"]:
            spec = apply_to_spec(spec, morph)
        assert handed["arch"] == spec.to_json() != warm["parent_arch"]
        assert json.loads(json.dumps(handed)) == handed  # JSON-able: it travels in the Ray config
        attrs = study._storage.get_trial(trial._trial_id).user_attrs
        assert attrs[PARENT_ATTR] == 1
        assert attrs[MORPHS_ATTR] == [describe(m) for m in warm["morphs"]]


def test_child_architectures_stay_within_the_limits():
    study, _ = _study([_parent(0.9, 1)], seed_trials=1, max_morphs=3)
    for _ in range(30):
        _, handed = _ask_child(study)
        spec = MorphSpec.from_json(handed["arch"])
        assert spec.num_layers <= LIMITS.max_layers
        assert all(layer.channels <= LIMITS.max_channels and layer.kernel <= LIMITS.max_kernel
                   for layer in spec.layers)


@pytest.mark.parametrize("direction, best", [("maximize", 2), ("minimize", 0)])
def test_with_the_whole_population_in_the_tournament_the_best_trial_is_the_parent(direction, best):
    values = [0.5, 0.7, 0.9, 0.6]
    study, _ = _study([_parent(v, n) for n, v in enumerate(values)], direction=direction, sample_size=4)
    assert {_ask_child(study)[1]["warm_start"]["parent"] for _ in range(10)} == {best}


def test_a_tie_goes_to_the_younger_trial():
    study, _ = _study([_parent(0.9, 0), _parent(0.9, 1), _parent(0.5, 2)], sample_size=3)
    assert {_ask_child(study)[1]["warm_start"]["parent"] for _ in range(10)} == {1}
    study, _ = _study([_parent(0.2, 0), _parent(0.2, 1), _parent(0.5, 2)], direction="minimize", sample_size=3)
    assert {_ask_child(study)[1]["warm_start"]["parent"] for _ in range(10)} == {1}


def test_a_small_tournament_gives_every_parent_a_chance():
    study, _ = _study([_parent(v, n) for n, v in enumerate([0.5, 0.7, 0.9, 0.6])], sample_size=1)
    assert {_ask_child(study)[1]["warm_start"]["parent"] for _ in range(60)} == {0, 1, 2, 3}


def test_only_complete_trials_with_checkpoint_and_arch_are_parents():
    trials = [
        _parent(0.99, 0, checkpoint=False),            # COMPLETE, the best value, but no checkpoint
        _parent(0.98, 1, arch=False),                  # COMPLETE, no arch
        _parent(None, 2, TrialState.PRUNED),           # stopped early: has both
        _parent(None, 3, TrialState.FAIL),
        _parent(None, 4, TrialState.RUNNING),
        _parent(0.10, 5),                              # the only parent, the worst value
    ]
    assert [is_parent(t) for t in trials] == [False] * 5 + [True]
    study, _ = _study(trials, sample_size=10)
    assert {_ask_child(study)[1]["warm_start"]["parent"] for _ in range(20)} == {5}


def test_a_child_keeps_its_parents_hyperparameters_and_a_seed_trial_samples_its_own():
    parents = [_parent(0.7, 0), _parent(0.9, 1)]
    study, _ = _study(parents, sample_size=2, seed_trials=3)
    seed_trial = study.ask()
    assert _handed(study, seed_trial) is None
    assert seed_trial.suggest_float("lr", LR.low, LR.high, log=True) not in {p.params["lr"] for p in parents}
    child, handed = _ask_child(study)
    assert handed["warm_start"]["parent"] == 1
    assert child.suggest_float("lr", LR.low, LR.high, log=True) == parents[1].params["lr"]


def test_a_fresh_sampler_finds_a_childs_parent_in_the_study():
    """After a driver restart the sampler is new: the parent is read from the child's user attrs."""
    parents = [_parent(0.7, 0), _parent(0.9, 1)]
    study, _ = _study(parents, sample_size=2)
    child, _ = _ask_child(study)
    fresh = MorphismSampler(limits=LIMITS, seed=0, seed_trials=2, sample_size=2)
    frozen = study._storage.get_trial(child._trial_id)
    space = fresh.infer_relative_search_space(study, frozen)
    assert space == {"lr": LR}
    assert fresh.sample_relative(study, frozen, space) == {"lr": parents[1].params["lr"]}


def test_a_stored_trial_made_into_a_trial_object_again_keeps_its_decision():
    """Optuna calls ``before_trial`` whenever ``optuna.trial.Trial(study, id)`` is made; Ray's
    searcher does so for all its trials when a search resumes. A finished trial must not be
    written to (Optuna refuses: the resume failed), a running child must keep its parent and
    morphs, and a running seed trial must stay one although parents exist by then."""
    study, _ = _study([_parent(None, 0, TrialState.FAIL)], seed_trials=1, sample_size=1)
    seed_trial = study.ask()  # trial 1: no parent yet
    assert _handed(study, seed_trial) is None
    study.add_trial(_parent(0.5, 2))
    child, handed = _ask_child(study)  # trial 3: the child of 2
    study.add_trial(_parent(0.99, 4))  # a better parent appears
    lineage = study._storage.get_trial(child._trial_id).user_attrs
    for trial_id in (t._trial_id for t in study.get_trials(deepcopy=False)):
        optuna.trial.Trial(study, trial_id)  # what the resumed searcher does; no UpdateFinishedTrialError
    assert _handed(study, seed_trial) is None
    assert PARENT_ATTR not in study._storage.get_trial(seed_trial._trial_id).user_attrs
    assert _handed(study, child) == handed and handed["warm_start"]["parent"] == 2
    assert study._storage.get_trial(child._trial_id).user_attrs == lineage
    assert _ask_child(study)[1]["warm_start"]["parent"] in (2, 4)  # a new trial is still a child


def _children(seed: int, count: int = 8) -> list[dict]:
    study, _ = _study([_parent(v, n) for n, v in enumerate([0.5, 0.7, 0.9, 0.6])], seed=seed, sample_size=2)
    return [_ask_child(study)[1] for _ in range(count)]


def test_the_same_seed_gives_the_same_children():
    assert _children(seed=7) == _children(seed=7)
    assert _children(seed=7) != _children(seed=8)


def _settings(**options) -> SearcherSettings:
    return SearcherSettings(seed=3, options=options)


def test_options_reach_the_sampler():
    sampler = create_sampler("morphism", _settings(seed_trials=5, sample_size=4, max_morphs=1, child_epochs=3,
                                                  max_layers=6, max_channels=64, max_kernel=5))
    assert (sampler.seed_trials, sampler.sample_size, sampler.max_morphs, sampler.child_epochs) == (5, 4, 1, 3)
    assert sampler.limits == MorphLimits(max_layers=6, max_channels=64, max_kernel=5)
    assert "widen_all" not in sampler.limits.ops  # opt-in
    chosen = create_sampler("morphism", _settings(ops=["widen_all", "deepen", "widen_all"]))
    assert chosen.limits.ops == ("widen_all", "deepen")
    assert {m["op"] for m in possible_morphs(small_spec(8, 3), chosen.limits)} == {"widen_all", "deepen"}


@pytest.mark.parametrize("options, named", [
    ({"seed_trial": 4}, "'seed_trial'"),
    ({"sample_size": 0}, "'sample_size'"),
    ({"child_epochs": 1.5}, "'child_epochs'"),
    ({"max_morphs": True}, "'max_morphs'"),
    ({"max_channels": -8}, "'max_channels'"),
    ({"max_kernel": 4}, "'max_kernel'"),
    ({"ops": []}, "'ops'"),
    ({"ops": "widen"}, "'ops'"),
    ({"ops": ["widen", "shrink"]}, "'ops'"),
    ({"child_warmup_epochs": -0.5}, "'child_warmup_epochs'"),
    ({"child_warmup_epochs": float("nan")}, "'child_warmup_epochs'"),
    ({"child_warmup_epochs": "1"}, "'child_warmup_epochs'"),
])
def test_bad_options_are_refused_in_one_line_naming_the_option(options, named):
    with pytest.raises(SearcherError) as info:
        create_sampler("morphism", _settings(**options))
    message = str(info.value)
    assert named in message and "rule" in message and "\n" not in message
    if "max_kernel" in options:
        assert "odd" in message


def test_several_objectives_are_refused():
    from tune_nas.objectives import Objective

    settings = SearcherSettings(objectives=(Objective("val/acc", "max"), Objective("model/params", "min")))
    with pytest.raises(SearcherError, match=r"searcher 'morphism' with 2 objectives.*exactly one objective"):
        create_sampler("morphism", settings)


def test_a_model_that_cannot_be_morphed_is_refused_by_the_spec_check():
    from tune_nas.config.experiment import ExperimentSpec, SpaceError

    with pytest.raises(SpaceError) as info:
        ExperimentSpec(model="small_cnn", searcher="morphism", scheduler="none").check("space.py")
    message = str(info.value)
    assert message.startswith("space.py: model='small_cnn'") and "morph_net" in message and "\n" not in message
    ExperimentSpec(model="morph_net", searcher="morphism", scheduler="none").check("space.py")  # accepted


# ------------------------------------------- 2: a child trial starts from its parent, no Ray


class Recorder:
    """A reporter that keeps every report and, given ``keep``, a copy of every checkpoint
    directory (``keep/epoch<N>``; the trial deletes its own after reporting)."""

    def __init__(self, keep: Path | None = None) -> None:
        self.results: list[dict] = []
        self.keep = keep

    def report(self, metrics, checkpoint_dir) -> None:
        self.results.append(dict(metrics))
        if checkpoint_dir and self.keep is not None:
            shutil.copytree(checkpoint_dir, self.keep / f"epoch{metrics['epoch']}")


PARENT_CONFIG = {"width": 8, "depth": 2, "lr": 0.01, "optimizer": "adamw", "batch_size": 64, "trial_number": 0}
#: one of each kind of transform, so every Net2Net transform meets real trained weights
MORPHS = [{"op": "widen", "layer": 0, "channels": 12, "seed": 5, "split": "random"},
          {"op": "deepen", "after": 0}, {"op": "skip", "from": 1, "to": 2}, {"op": "kernel", "layer": 2, "kernel": 5}]


@pytest.fixture(scope="module")
def digits():
    from tune_nas.data.sources import load_splits

    return load_splits("digits")


@pytest.fixture(scope="module")
def trained_parent(digits, tmp_path_factory) -> dict:
    """A morph_net parent trained 2 epochs: its reports and its last checkpoint (a copy)."""
    from tune_nas.trial.run import TrialSetup, run_trial

    recorder = Recorder(tmp_path_factory.mktemp("parent"))
    run_trial(dict(PARENT_CONFIG), digits, TrialSetup("morph_net", max_epochs=2), recorder)
    assert [r["epoch"] for r in recorder.results] == [1, 2]
    return {"results": recorder.results, "checkpoint": str(recorder.keep / "epoch2"),
            "arch": recorder.results[-1]["arch"]}


def _child_config(parent: dict, epochs: int = 1, checkpoint: str | None = None) -> dict:
    spec = MorphSpec.from_json(parent["arch"])
    for morph in MORPHS:
        spec = apply_to_spec(spec, morph)
    warm = {"parent": 0, "parent_arch": parent["arch"], "checkpoint": checkpoint or parent["checkpoint"],
            "morphs": MORPHS, "epochs": epochs}
    return {**PARENT_CONFIG, "trial_number": 5, "arch": spec.to_json(), "warm_start": warm}


def _run_child(digits, config: dict, max_epochs: int = 6) -> list[dict]:
    from tune_nas.trial.run import TrialSetup, run_trial

    recorder = Recorder()
    run_trial(config, digits, TrialSetup("morph_net", max_epochs=max_epochs), recorder)
    return recorder.results


def test_a_child_starts_at_its_parents_accuracy_and_trains_its_own_budget(digits, trained_parent):
    parent_acc = trained_parent["results"][-1]["val/acc"]
    assert parent_acc > 0.5  # the parent learned something: a random net would not match it by chance
    results = _run_child(digits, _child_config(trained_parent, epochs=2))
    assert [r["epoch"] for r in results] == [1, 2]  # its own budget, not the experiment's 6
    assert all(r["budget"] == 2 for r in results)
    assert abs(results[0]["warm_start_val_acc"] - parent_acc) <= 1e-6
    assert "test/acc" in results[-1]  # its last epoch is its final one
    assert results[-1]["arch"] == _child_config(trained_parent)["arch"]
    assert final_state(results[-1], 6) == "COMPLETE"  # its budget, not the experiment's max_epochs


def test_a_child_whose_parent_weights_are_not_loaded_does_not_match_its_parent(digits, trained_parent,
                                                                               monkeypatch):
    """The control: with the parent's weights not loaded, the check above fails."""
    from tune_nas.models.morph_net import MorphNet

    loaded = []
    monkeypatch.setattr(MorphNet, "load_state_dict", lambda self, state, strict=True, assign=False: loaded.append(1))
    results = _run_child(digits, _child_config(trained_parent, epochs=1))
    assert loaded, "the child never tried to load its parent's weights"
    assert abs(results[0]["warm_start_val_acc"] - trained_parent["results"][-1]["val/acc"]) > 0.1


def _failure(results: list[dict]) -> str:
    """The one report of a child that could not start: FAIL (an ``error``), no retry to follow."""
    from tune_nas.states import TrialState, final_state

    assert len(results) == 1 and final_state(results[0], 6) == TrialState.FAIL
    return results[0]["error"]


def test_a_child_fine_tunes_at_its_lr_scale(digits, trained_parent):
    """``lr_scale`` multiplies the child's learning rate (its schedule's every step): a child at
    0.1 reports a tenth of the rate of the same child at 1.0."""
    full = _child_config(trained_parent, epochs=2)
    scaled = {**full, "warm_start": {**full["warm_start"], "lr_scale": 0.1}}
    rates = [[r["lr"] for r in _run_child(digits, config)] for config in (full, scaled)]
    assert len(rates[0]) == len(rates[1]) == 2
    for at_full, at_tenth in zip(*rates):
        assert at_tenth == pytest.approx(0.1 * at_full, rel=1e-6)


def test_a_child_warms_up_for_its_warmup_epochs(digits, trained_parent):
    """``warmup_epochs`` in the warm start replaces the child's warm-up: with one epoch of it, a
    2-epoch child's cosine starts after epoch 1, so its rate there is the full one — twice that of
    the same child without it (halfway down its cosine) — and both end at zero."""
    plain = _child_config(trained_parent, epochs=2)
    warmed = {**plain, "warm_start": {**plain["warm_start"], "warmup_epochs": 1.0}}
    rates = [[r["lr"] for r in _run_child(digits, config)] for config in (plain, warmed)]
    assert rates[1][0] == pytest.approx(2 * rates[0][0], rel=1e-6)
    assert rates[1][0] == pytest.approx(PARENT_CONFIG["lr"], rel=1e-6)
    assert rates[0][1] == pytest.approx(0.0, abs=1e-9) and rates[1][1] == pytest.approx(0.0, abs=1e-9)


def test_the_searcher_hands_its_children_their_warmup():
    parents = [_parent(0.7, 0), _parent(0.95, 1)]
    study, _ = _study(parents, sample_size=2, child_warmup_epochs=0.25)
    _, handed = _ask_child(study)
    assert handed["warm_start"]["warmup_epochs"] == 0.25
    assert create_sampler("morphism", _settings(child_warmup_epochs=1)).child_warmup_epochs == 1.0
    assert create_sampler("morphism", _settings()).child_warmup_epochs is None  # the parent's own, by default


def test_a_missing_parent_checkpoint_fails_the_child_in_one_line_naming_the_parent(digits, trained_parent, tmp_path):
    message = _failure(_run_child(digits, _child_config(trained_parent, checkpoint=str(tmp_path / "gone"))))
    assert message.startswith("parent trial 0:") and str(tmp_path / "gone") in message and "\n" not in message
    assert "no such file" in message and "does not fit" not in message  # the reason, not a wrong one


def test_a_corrupt_parent_checkpoint_fails_the_child_naming_the_parent_and_the_file(digits, trained_parent,
                                                                                    tmp_path):
    from tune_nas.trial.run import CHECKPOINT_FILE

    broken = tmp_path / "checkpoint_000001"
    broken.mkdir()
    (broken / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    message = _failure(_run_child(digits, _child_config(trained_parent, checkpoint=str(broken))))
    assert message.startswith("parent trial 0:") and str(broken / CHECKPOINT_FILE) in message
    assert "cannot be read" in message and "\n" not in message


def test_a_resumed_child_continues_from_its_own_checkpoint_without_its_parents(digits, trained_parent, tmp_path):
    """A child interrupted after its first epoch continues from its own checkpoint: it needs its
    parent's no more (the experiment may have moved since), reports the warm_start_val_acc it
    measured before its first epoch, and ends at its own budget."""
    from tune_nas.trial.run import TrialSetup, run_trial

    parent_copy = tmp_path / "parent_checkpoint"
    shutil.copytree(trained_parent["checkpoint"], parent_copy)
    config = _child_config(trained_parent, epochs=2, checkpoint=str(parent_copy))
    full = Recorder(tmp_path / "child")
    run_trial(dict(config), digits, TrialSetup("morph_net", max_epochs=6), full)
    assert [r["epoch"] for r in full.results] == [1, 2]
    shutil.rmtree(parent_copy)  # the parent's checkpoint is gone (a moved trials directory)
    resumed = Recorder()
    run_trial(dict(config), digits, TrialSetup("morph_net", max_epochs=6), resumed,
              resume_dir=str(tmp_path / "child" / "epoch1"))
    assert [r["epoch"] for r in resumed.results] == [2]
    assert resumed.results[0]["budget"] == 2
    assert resumed.results[0]["warm_start_val_acc"] == full.results[0]["warm_start_val_acc"]
    assert resumed.results[0]["val/acc"] == pytest.approx(full.results[1]["val/acc"], abs=1e-6)


def test_morphs_that_do_not_lead_to_the_childs_arch_are_refused(digits, trained_parent):
    import re

    config = _child_config(trained_parent)
    config["arch"] = small_spec(8, 3, 1).to_json()
    assert re.match(r"^parent trial 0: its morphs .* not the child's arch", _failure(_run_child(digits, config)))


# ------------------------------------------------ 3: lineage through a real launch (Ray)

CHILD_EPOCHS, SEED_EPOCHS = 1, 2
SPACE = '''"""A tiny morphism search (written by tests/test_morphism.py)."""
from ray import tune

EXPERIMENT = {{
    "dataset": "digits", "model": "morph_net", "metric": "val/acc", "mode": "max",
    "max_epochs": {max_epochs}, "scheduler": "none", "searcher": "morphism", "seed": {seed},
    "searcher_options": {{"seed_trials": 2, "sample_size": 2, "max_morphs": 2, "child_epochs": {child_epochs},
                         "max_layers": 4, "max_channels": 16, "max_kernel": 5}},
    "num_samples": {num_samples}, "cpus_per_trial": 1, "gpus_per_trial": 0, "checkpoint_every": 1,
}}
PARAM_SPACE = {{"width": tune.choice([4, 8]), "depth": tune.choice([1, 2]), "lr": tune.loguniform(0.003, 0.03),
               "batch_size": 64}}
'''


def write_space(path: Path, *, num_samples: int, max_epochs: int = SEED_EPOCHS, child_epochs: int = CHILD_EPOCHS,
                seed: int = 0) -> Path:
    path.write_text(SPACE.format(num_samples=num_samples, max_epochs=max_epochs, child_epochs=child_epochs,
                                 seed=seed))
    return path


def load_study(exp: Path) -> optuna.Study:
    return optuna.load_study(study_name=exp.name, storage=f"sqlite:///{exp / 'optuna.db'}")


def check_lineage(exp: Path, child_epochs: int, seed_epochs: int) -> list[dict]:
    """Every child of the experiment in ``exp`` (summary.json, study, trial directories) as the
    morphism search promises; returns the children's summary records."""
    summary = json.loads((exp / "summary.json").read_text())
    by_number = {t["number"]: t for t in summary["trials"]}
    children = [t for t in summary["trials"] if t.get("parent") is not None]
    study = {t.number: t for t in load_study(exp).get_trials(deepcopy=False)}
    for t in summary["trials"]:
        frozen = study[t["number"]]
        handed = frozen.system_attrs.get(CONFIG_ATTR)
        if t.get("parent") is None:  # a seed trial: trained from scratch for the full budget
            assert handed is None and PARENT_ATTR not in frozen.user_attrs, t["number"]
            assert "warm_start_val_acc" not in t and "morphs" not in t
            assert t["state"] != "COMPLETE" or t["epochs"] == seed_epochs
            continue
        parent = by_number[t["parent"]]
        assert parent["state"] == "COMPLETE" and study[t["parent"]].state == TrialState.COMPLETE, t["number"]
        assert t["state"] == "COMPLETE" and t["epochs"] == child_epochs, (t["number"], t["state"], t["epochs"])
        # the goal of issue 18: the child starts where its parent ended
        assert abs(t["warm_start_val_acc"] - parent["val_acc"]) <= 0.002, (t["number"], t["warm_start_val_acc"],
                                                                          parent["val_acc"])
        spec = MorphSpec.from_dict(parent["arch"])
        assert t["morphs"]
        for morph in t["morphs"]:
            spec = apply_to_spec(spec, morph)
        assert MorphSpec.from_dict(t["arch"]) == spec, t["number"]
        assert {k: t["config"][k] for k in ("width", "depth", "lr")} == \
            {k: parent["config"][k] for k in ("width", "depth", "lr")}  # the parent's hyperparameters
        # the study says the same: lineage attributes, and the parent's checkpoint that was handed over
        assert frozen.user_attrs[PARENT_ATTR] == t["parent"]
        assert frozen.user_attrs[MORPHS_ATTR] == [describe(m) for m in t["morphs"]]
        assert handed["warm_start"]["parent"] == t["parent"] and handed["warm_start"]["morphs"] == t["morphs"]
        assert handed["warm_start"]["checkpoint"] == study[t["parent"]].user_attrs["checkpoint"]
        assert Path(handed["warm_start"]["checkpoint"]).is_dir()
        assert handed["arch"] == spec.to_json()
    return children


@pytest.fixture(scope="module")
def morph_search(tmp_path_factory) -> Path:
    """A real 8-trial morphism search on digits (2 seed trials of 2 epochs, children of 1)."""
    from conftest import run_launch

    root = tmp_path_factory.mktemp("morph")
    space = write_space(root / "tiny_morph.py", num_samples=8)
    proc = run_launch("--space", str(space), "--name", "m", "--trials-dir", str(root / "trials"), cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root / "trials" / "m"


def test_every_child_starts_from_a_complete_parent_at_its_accuracy(morph_search):
    children = check_lineage(morph_search, CHILD_EPOCHS, SEED_EPOCHS)
    assert len(children) >= 2, "the search made fewer than 2 children"
    summary = json.loads((morph_search / "summary.json").read_text())
    assert summary["counts"].get("COMPLETE") == 8


def test_a_childs_tensorboard_run_says_where_it_comes_from(morph_search):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = json.loads((morph_search / "summary.json").read_text())
    for t in summary["trials"]:
        acc = EventAccumulator(str(morph_search / "tensorboard" / t["run"]))
        acc.Reload()
        texts = acc.Tags()["tensors"]
        if t.get("parent") is None:
            assert "lineage/text_summary" not in texts
            continue
        [event] = acc.Tensors("lineage/text_summary")
        text = event.tensor_proto.string_val[0].decode()
        assert text == f"parent trial {t['parent']}; morphs: {json.dumps(t['morphs'])}"


# ------------------------------------ 4: a morphism search killed and resumed (Ray, slow)


def _ended_children(exp: Path) -> dict[int, int]:
    """Ended children in the trial records (trials.json and its journal): number -> parent."""
    return {r["number"]: r["config"]["warm_start"]["parent"] for r in ended_records(exp)
            if r["state"] != "RUNNING" and isinstance(r["config"].get("warm_start"), dict)}


@pytest.mark.slow
def test_a_killed_morphism_search_resumes_with_its_lineage_intact(tmp_path, ray_env):  # noqa: F811
    num_samples, child_epochs, seed_epochs = 10, 2, 3
    space = write_space(tmp_path / "resume_morph.py", num_samples=num_samples, max_epochs=seed_epochs,
                        child_epochs=child_epochs, seed=2)
    exp = tmp_path / "trials" / "killed"
    driver = subprocess.Popen(launch_cmd("--space", str(space), "--name", exp.name, "--trials-dir", str(exp.parent)),
                              cwd=tmp_path, env=ray_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = time.monotonic()
    with killed_when_done(driver, ray_env):
        while not _ended_children(exp) and driver.poll() is None and time.monotonic() - started < 300:
            time.sleep(0.1)
        assert driver.poll() is None, "the search ended before the test could kill it:\n" + driver.stdout.read()
    before = _ended_children(exp)
    recorded_before = {r["number"] for r in ended_records(exp)}
    assert before and len(recorded_before) < num_samples

    proc = launch("--name", exp.name, "--trials-dir", str(exp.parent), "--resume", env=ray_env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert f"resuming {exp.name}" in proc.stdout

    assert_nothing_lost(exp, num_samples, allow_orphans=True)
    children = check_lineage(exp, child_epochs, seed_epochs)
    lineage = {t["number"]: t["parent"] for t in children}
    assert {n: lineage.get(n) for n in before} == before  # what was recorded before the kill stands
    study = load_study(exp)
    proposed_after = [n for n in lineage if n not in recorded_before and n > max(recorded_before)]
    assert proposed_after, f"no child was proposed after the resume: {lineage}, recorded before {recorded_before}"
    assert all(study.trials[n].user_attrs[PARENT_ATTR] == lineage[n] for n in lineage)
