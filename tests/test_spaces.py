import textwrap

import pytest

from tune_nas.config.space_file import SpaceError, load_space


def write(tmp_path, body: str, name="space.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


GOOD = """
from ray import tune
EXPERIMENT = {"dataset": "digits", "model": "small_cnn", "max_epochs": 3}
PARAM_SPACE = {"lr": tune.loguniform(1e-4, 1e-2), "width": tune.choice([8, 16]), "batch_size": 32}
"""


@pytest.mark.parametrize("preset", ["default", "digits_define_by_run", "resnet50_cifar10"])
def test_presets_load(preset):
    space = load_space(preset)
    assert space.spec.metric == "val/acc" and space.spec.max_epochs > 0
    assert space.sample()  # a concrete config


def test_good_file_and_overrides(tmp_path):
    space = load_space(write(tmp_path, GOOD))
    assert space.spec.max_epochs == 3 and space.kind == "param space"
    assert space.with_overrides(max_epochs=5, seed=None).spec.max_epochs == 5


def test_define_by_run_sample_has_conditional_params():
    space = load_space("digits_define_by_run")
    keys = [set(space.sample(seed).keys()) for seed in range(20)]
    assert any("momentum" in k for k in keys) and any("momentum" not in k for k in keys)


BAD = [
    ("EXPERIMENT = {'max_epochs': 3}\n", "defines neither PARAM_SPACE and define_by_run"),
    ("PARAM_SPACE = {'lr': 0.1}\n", "EXPERIMENT is NoneType"),
    ("EXPERIMENT = {'max_epoch': 3}\nPARAM_SPACE = {'lr': 0.1}\n", "unknown EXPERIMENT key 'max_epoch' (did you mean 'max_epochs'?)"),
    ("EXPERIMENT = {'max_epochs': -1}\nPARAM_SPACE = {'lr': 0.1}\n", "max_epochs=-1: rule: a positive integer"),
    ("EXPERIMENT = {'num_samples': 0}\nPARAM_SPACE = {'lr': 0.1}\n", "num_samples=0"),
    ("EXPERIMENT = {'metric': 'val/accuracy'}\nPARAM_SPACE = {'lr': 0.1}\n", "metric='val/accuracy': rule: one of the reported metrics"),
    ("EXPERIMENT = {'mode': 'maximize'}\nPARAM_SPACE = {'lr': 0.1}\n", "mode='maximize'"),
    ("EXPERIMENT = {'model': 'vgg'}\nPARAM_SPACE = {'lr': 0.1}\n", "model='vgg'"),
    ("EXPERIMENT = {'dataset': 'imagenet'}\nPARAM_SPACE = {'lr': 0.1}\n", "unknown data set"),
    ("EXPERIMENT = {'grace_period': 5, 'max_epochs': 3}\nPARAM_SPACE = {'lr': 0.1}\n", "grace_period <= max_epochs"),
    ("EXPERIMENT = {'gpus_per_trial': -1}\nPARAM_SPACE = {'lr': 0.1}\n", "gpus_per_trial=-1"),
    ("from ray import tune\nEXPERIMENT = {}\nPARAM_SPACE = {'lr': tune.uniform(0.1, 0.01)}\n", "low < high"),
    ("from ray import tune\nEXPERIMENT = {}\nPARAM_SPACE = {'width': tune.randint(8, 8)}\n", "low < high"),
    ("from ray import tune\nEXPERIMENT = {}\nPARAM_SPACE = {'widht': tune.choice([8])}\n", "unknown hyperparameter 'widht' (did you mean 'width'?)"),
    ("EXPERIMENT = {}\nPARAM_SPACE = {'optimizer': 'rmsprop'}\n", "optimizer='rmsprop'"),
    ("EXPERIMENT = {}\nPARAM_SPACE = {'lr': -1.0}\n", "lr=-1.0: rule: > 0"),
    ("EXPERIMENT = {}\nPARAM_SPACE = {'trial_number': 3}\n", "reserved"),
    ("EXPERIMENT = {}\nPARAM_SPACE = {'lr': {'a': 1}}\n", "rule: a tune search domain"),
    ("EXPERIMENT = {}\nPARAM_SPACE = {}\n", "a non-empty dict"),
    ("EXPERIMENT = {}\ndef define_by_run(trial):\n    return 3\n", "returned int"),
    ("EXPERIMENT = {}\ndef define_by_run(trial):\n    trial.suggest_float('lr', 1, 0)\n", "define_by_run raised"),
    ("EXPERIMENT = {}\ndef define_by_run(trial):\n    trial.suggest_int('depht', 1, 3)\n", "unknown hyperparameter 'depht'"),
    ("EXPERIMENT = {\n", "syntax error"),
    ("import no_such_module\n", "importing it raised ModuleNotFoundError"),
]


@pytest.mark.parametrize("body, message", BAD)
def test_bad_space_files_give_one_line_naming_file_key_and_rule(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    text = str(info.value)
    assert message in text
    assert "\n" not in text and path.split("/")[-1] in text


def test_missing_space_file_lists_presets():
    with pytest.raises(SpaceError, match="no such file.*default"):
        load_space("no_such_preset")


def test_override_that_breaks_a_rule_names_the_flag(tmp_path):
    space = load_space(write(tmp_path, GOOD))
    with pytest.raises(SpaceError, match="--max-epochs.*max_epochs=0"):
        space.with_overrides(max_epochs=0)
