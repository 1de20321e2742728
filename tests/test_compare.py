"""``python -m tune_nas.compare``: input rules, the final retraining's configuration, the report
and (``slow``) a real comparison on digits asserted on the files it writes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tune_nas import compare
from tune_nas.compare import CompareError, DataChoice, parse_datasets
from tune_nas.models import create_model
from tune_nas.trial.cost import count_parameters

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ input


def test_datasets_named_aliased_and_derived_from_an_image_folder(tmp_path):
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    archive.write_bytes(b"")
    other = tmp_path / "my photos"
    other.mkdir()
    got = parse_datasets(f"digits,cifar10=imagefolder:{other},imagefolder:{archive}"
                         .replace(",imagefolder:", ",x=imagefolder:"))
    assert got == [DataChoice("digits", "digits"),
                   DataChoice("cifar10", f"imagefolder:{other.resolve()}"),
                   DataChoice("x", f"imagefolder:{archive.resolve()}")]
    # an image folder without an alias takes the known name its file name starts with
    assert parse_datasets(f"imagefolder:{archive}") == [
        DataChoice("cifar10", f"imagefolder:{archive.resolve()}")]
    assert compare._label_of_folder(str(archive)) == "cifar10"
    assert compare._label_of_folder(str(other)) == "my_photos"
    assert compare._label_of_folder("/x/mnist_small") == "mnist"
    assert compare._label_of_folder("/x/mnistlike") == "mnistlike"


@pytest.mark.parametrize("text, needle", [
    ("imagenet", "unknown data set"),
    ("digits,,cifar10", "an empty entry"),
    ("digits,digits", "appears twice"),
    ("cifar10=imagefolder:/no/such/place", "/no/such/place does not exist"),
    ("9x=digits", "label '9x'"),
])
def test_bad_datasets_are_one_line_errors(text, needle):
    with pytest.raises(CompareError, match=needle.replace("(", r"\(")):
        parse_datasets(text)


CLI_CASES = [
    (["--models", "vgg"], "unknown model 'vgg'"),
    (["--models", "small_cnn,small_cnn", "--datasets", "digits"], "appears twice"),
    (["--datasets", "imagenet"], "unknown data set"),
    (["--models", "small_cnn", "--datasets", "digits", "--preset-suffix", "_nope"],
     "no preset for small_cnn on digits"),
    (["--models", "small_cnn", "--datasets", "digits", "--preset-suffix", "../x"],
     "--preset-suffix"),
    (["--models", "small_cnn", "--datasets", "digits", "--preset-suffix", "_tiny",
      "--num-samples", "0"], "--num-samples must be > 0"),
    (["--models", "small_cnn", "--datasets", "digits", "--preset-suffix", "_tiny",
      "--final-train-fraction", "0"], "0 < --final-train-fraction <= 1"),
    (["--models", "small_cnn", "--datasets", "digits", "--preset-suffix", "_tiny",
      "--max-epochs", "1", "--time-budget-s", "-1"], "--time-budget-s must be >= 0"),
    (["--name", "a/b", "--models", "small_cnn", "--datasets", "digits"], "plain directory name"),
]


@pytest.mark.parametrize("args, needle", CLI_CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, needle):
    with pytest.raises(SystemExit) as info:
        compare.main([*args, "--trials-dir", str(tmp_path / "trials")])
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], err
    assert out == ""
    assert not (tmp_path / "trials").exists()


def test_a_preset_that_searches_another_model_is_refused(tmp_path, monkeypatch):
    (tmp_path / "resnet50_digits.py").write_text(
        (REPO / "search_spaces" / "small_cnn_digits_tiny.py").read_text())
    monkeypatch.setattr(compare, "SPACES_DIR", tmp_path)
    with pytest.raises(CompareError, match="must search 'resnet50'"):
        compare.resolve_pairs(["resnet50"], [DataChoice("digits", "digits")], "", {})


# ------------------------------------------------------------------ the final retraining

SUPERNET_CONFIG = {
    "preset": "full_res", "channels": "8,8,16,16,16,16,24", "channel_divisor": 4,
    "layers_per_block": 1, "kernel_sizes": "3,5,7,9", "expansions": "3,6", "cost": "flops",
    "width_mult": 1.0, "dropout": 0.1, "optimizer": "adamw", "lr": 0.01, "batch_size": 64,
    "cost_weight": 0.3, "arch_lr": 0.05, "arch_warmup_epochs": 1,
}
ARCH = "stem-c8s1|k3e3c8s1|skip|k5e6c16s1|skip|k9e3c16s1|skip|k7e6c24s1|head-c96"


def test_the_superkernel_retrains_its_child_without_supernet_keys():
    model, config = compare.final_config("superkernel", SUPERNET_CONFIG, ARCH)
    assert model == "mbconv_net"
    assert config == {"arch": ARCH, "dropout": 0.1, "optimizer": "adamw", "lr": 0.01,
                      "batch_size": 64}
    net = create_model("mbconv_net", 10, 1, 8, arch=config["arch"], dropout=config["dropout"])
    assert net.arch_string() == ARCH
    with pytest.raises(CompareError, match="no 'arch' string"):
        compare.final_config("superkernel", SUPERNET_CONFIG, None)


def test_other_models_retrain_their_own_config():
    config = {"lr": 0.01, "width": 16, "depth": 2}
    assert compare.final_config("small_cnn", config, None) == ("small_cnn", config)


def test_the_final_space_is_json_read_by_a_fixed_space_file(tmp_path):
    from tune_nas.config.space_file import load_space

    pair = compare.resolve_pairs(["superkernel"], [DataChoice("digits", "digits")], "_tiny",
                                 {})[0]
    model, config = compare.final_config("superkernel", SUPERNET_CONFIG, ARCH)
    settings = compare.final_space(pair, model, config, 3, "a test", 2.0, 0.5, 6)
    path = compare.write_final_space(tmp_path, "sk-digits-final", settings)
    assert path == tmp_path / "spaces" / "sk-digits-final.py"
    assert path.read_text() == compare.FINAL_SPACE_SOURCE  # no configuration written as Python
    assert json.loads(path.with_suffix(".json").read_text()) == settings
    space = load_space(str(path))
    spec = space.spec
    assert (spec.model, spec.max_epochs, spec.num_samples, spec.scheduler) == (
        "mbconv_net", 3, 1, "none")
    assert (spec.train_fraction, spec.image_size, spec.cpus_per_trial) == (0.5, 6, 2.0)
    assert space.sample() == config  # every key a constant
    # the launcher's copy in the experiment directory (what --resume loads) finds the same JSON
    copy = tmp_path / "sk-digits-final" / "space.py"
    copy.parent.mkdir()
    shutil.copyfile(path, copy)
    assert load_space(str(copy)).sample() == config
    # once that experiment has started, it keeps what it retrains: other settings are refused
    (copy.parent / "experiment.json").write_text("{}")
    assert compare.write_final_space(tmp_path, "sk-digits-final", settings) == path
    other = {**settings, "PARAM_SPACE": {**settings["PARAM_SPACE"], "lr": 0.5}}
    with pytest.raises(CompareError, match="retrains another configuration"):
        compare.write_final_space(tmp_path, "sk-digits-final", other)
    assert json.loads(path.with_suffix(".json").read_text()) == settings


def _pruned(number: int, epochs: int, value: float | None, val_acc: float | None) -> dict:
    """A trial of summary.json as the launcher writes it (``value`` in the objective's units)."""
    return {"number": number, "state": "PRUNED" if value is not None else "FAIL", "epochs": epochs,
            "value": value, "best_value": value, "val_acc": val_acc, "config": {"lr": 0.1 * number}}


def test_a_search_stopped_by_its_time_budget_retrains_its_furthest_best_trial():
    summary = {"experiment": "x", "objective": {"metric": "val/acc", "direction": "max"},
               "best": None, "trials": [_pruned(0, 1, 0.9, 0.9), _pruned(1, 2, 0.5, 0.5),
                                        _pruned(2, 2, 0.7, 0.7), _pruned(3, 3, None, None)]}
    best = compare.best_search_trial(summary)
    assert best["number"] == 2 and best["complete"] is False
    summary["best"] = {"number": 0, "value": 0.9}
    assert compare.best_search_trial(summary) == {"number": 0, "value": 0.9, "complete": True}


def test_a_loss_search_retrains_its_lowest_loss_trial():
    """summary.json's trials carry ``value`` in the objective's units: for val/loss (min) the
    pick is the lowest loss among the trials that went furthest, whatever their accuracy."""
    summary = {"experiment": "x", "objective": {"metric": "val/loss", "direction": "min"},
               "metric": "val/loss", "mode": "min", "best": None,
               "trials": [_pruned(0, 2, 0.30, 0.93), _pruned(1, 2, 0.10, 0.97),
                          _pruned(2, 2, 0.20, 0.95), _pruned(3, 1, 0.05, 0.99)]}
    best = compare.best_search_trial(summary)
    assert (best["number"], best["value"], best["complete"]) == (1, 0.10, False)


# ------------------------------------------------------------------ the report


ROW = {"model": "superkernel", "dataset": "cifar10", "data": "imagefolder:x",
       "final_model": "mbconv_net", "device": "CPU: 2 cores", "test_acc": 0.5,
       "search_wall_s": 10.0, "final_wall_s": 20.0, "final_train_s": 15.0,
       "train_total_s": 30.0, "predict_s": 2.0, "images_per_s": 5000.0, "test_images": 10000,
       "params": 12345, "flops": 6.7e6, "final_epochs": 1, "search_trials": 2,
       "search_complete": 1, "search_pruned": 1, "search_failed": 0, "best_search_trial": 0,
       "best_search_val_acc": 0.4, "search_metric": "val/acc", "best_search_value": 0.4,
       "search_preset": "superkernel_cifar10_cpu.py",
       "arch": ARCH, "config": "{}"}
SETTINGS = {"date": "today", "machine": "CPU: 2 cores; no GPU", "models": ["resnet50",
            "superkernel"], "datasets": ["cifar10 (x)"], "preset_suffix": "_cpu",
            "final_epochs": 1, "final_fidelity": "0.05 of the training images at 16 px",
            "budget": "the presets'"}


def test_markdown_puts_the_research_beside_ours_and_marks_what_is_unmeasured():
    missing = [("resnet50", "cifar10", "failed: boom"), ("resnet50", "mnist", "not in this run"),
               ("superkernel", "mnist", "not in this run")]
    text = compare.markdown([ROW], SETTINGS, missing)
    assert "CPU: 2 cores; no GPU" in text
    assert "0.05 of the training images at 16 px" in text
    assert "| cifar10 | superkernel | 88.79 % | 50.00 % | CPU: 2 cores |" in text
    assert "| cifar10 | resnet50 | 76.33 % | unmeasured | – |" in text
    assert "| mnist | superkernel | not recorded | unmeasured | – |" in text
    assert "unmeasured: failed: boom" in text
    assert text.count("unmeasured (no GPU in this run)") == 2
    assert "best trial 0 (search val/acc 0.4000)" in text
    assert "| 15.0 | 2.00 | 5.0k | 12.3k | 6.70M |" in text  # seconds, then counts


def test_charts_are_written_one_per_metric(tmp_path):
    other = {**ROW, "model": "resnet50", "final_model": "resnet50", "test_acc": 0.4}
    paths = compare.write_charts([ROW, other], tmp_path, "CPU: 2 cores")
    shown = [k for k, *_ in compare.CHARTS if k not in ("test_r2", "speedup")]  # no emulator in the rows
    assert [p.name for p in paths] == [f"comparison_{k}.png" for k in shown]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ a real comparison


def run_compare(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "tune_nas.compare", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def digits_comparison(tmp_path_factory) -> Path:
    """small_cnn vs the superkernel on digits, 2 trials × 2 epochs each, 2-epoch finals."""
    root = tmp_path_factory.mktemp("compare")
    args = ("--models", "small_cnn,superkernel", "--datasets", "digits", "--preset-suffix",
            "_tiny", "--name", "c", "--trials-dir", str(root / "trials"), "--seed", "1")
    proc = run_compare(*args, cwd=root)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = root / "trials" / "c"
    (out / "stdout.txt").write_text(proc.stdout)
    again = run_compare(*args, cwd=root, timeout=300)  # every experiment is reused
    assert again.returncode == 0, again.stderr[-3000:]
    (out / "again.txt").write_text(again.stdout)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_comparison_files_hold_consistent_numbers(digits_comparison):
    import optuna

    out = digits_comparison
    rows = {r["model"]: r for r in _rows(out / "comparison.csv")}
    assert set(rows) == {"small_cnn", "superkernel"}
    for model, row in rows.items():
        final_dir = out / f"{model}-digits-final"
        final = json.loads((final_dir / "summary.json").read_text())
        search = json.loads((out / f"{model}-digits" / "summary.json").read_text())
        config = final["best"]["config"]
        assert row["final_model"] == final["model"] == (
            "mbconv_net" if model == "superkernel" else model)
        # accuracy: what the final experiment's summary and study recorded
        acc = float(row["test_acc"])
        assert 0 <= acc <= 1 and acc == pytest.approx(final["best"]["test_acc"])
        study = optuna.load_study(study_name=f"{model}-digits-final",
                                  storage=f"sqlite:///{final_dir / 'optuna.db'}")
        assert study.best_trial.user_attrs["test_acc"] == pytest.approx(acc)
        # parameters: the model built from the recorded config
        arch = {k: v for k, v in config.items() if k not in compare_training_keys()}
        net = create_model(final["model"], 10, 1, 8, **arch)
        assert int(row["params"]) == count_parameters(net) == final["best"]["params"]
        assert float(row["flops"]) > 0
        assert float(row["predict_s"]) > 0 and float(row["images_per_s"]) > 0
        assert int(row["test_images"]) == 359  # digits' test split
        assert float(row["search_wall_s"]) == pytest.approx(search["wall_time_s"])
        assert float(row["final_wall_s"]) == pytest.approx(final["wall_time_s"])
        assert 0 < float(row["final_train_s"]) < float(row["final_wall_s"])
        assert int(row["final_epochs"]) == final["best"]["epochs"] == 2
        assert int(row["search_trials"]) == 2
        assert int(row["best_search_trial"]) == search["best"]["number"]
    # the child the superkernel search chose, without the supernet's keys
    sk = json.loads((out / "superkernel-digits-final" / "summary.json").read_text())["best"]
    with (out / "superkernel-digits" / "curves.csv").open(newline="") as f:
        curves = list(csv.DictReader(f))
    best = json.loads((out / "superkernel-digits" / "summary.json").read_text())["best"]
    last = max((r for r in curves if int(r["trial_number"]) == best["number"]),
               key=lambda r: int(r["epoch"]))
    assert sk["config"]["arch"] == last["arch"] == rows["superkernel"]["arch"]
    assert not {"arch_lr", "arch_warmup_epochs", "cost_weight", "preset"} & set(sk["config"])
    assert sk["config"]["lr"] == pytest.approx(best["config"]["lr"])


@pytest.mark.slow
def test_comparison_report_charts_and_reuse(digits_comparison):
    out = digits_comparison
    text = (out / "comparison.md").read_text()
    assert "* Machine: CPU: " in text and ("no GPU" in text or "GPU: " in text)
    # the research's superkernel figures stay beside ours, unmeasured; resnet50 was not run
    assert "| cifar10 | superkernel | 88.79 % | unmeasured | – |" in text
    assert "76.33" not in text
    for model in ("small_cnn", "superkernel"):
        assert f"| digits | {model} |" in text
    for key, *_ in compare.charts_for(data_rows(out)):
        assert (out / f"comparison_{key}.png").stat().st_size > 1000
    assert not (out / "comparison_test_r2.png").exists()  # classifiers only
    again = (out / "again.txt").read_text()
    assert again.count("reusing") == 4 and "running" not in again
    data = json.loads((out / "comparison.json").read_text())
    assert [r["model"] for r in data["rows"]] == ["small_cnn", "superkernel"]


def data_rows(out: Path) -> list[dict]:
    return json.loads((out / "comparison.json").read_text())["rows"]


def compare_training_keys() -> set[str]:
    from tune_nas.config.training import TrainingConfig

    return set(TrainingConfig.keys())


def test_emulator_rows_get_their_own_table_and_charts(tmp_path):
    emulator = {**ROW, "model": "mlp", "final_model": "mlp", "dataset": "burgers", "test_acc": None,
                "test_r2": 0.99931, "speedup": 4321.0, "emulator_us_per_sample": 6.5,
                "simulator_ms_per_sample": 28.1}
    text = compare.markdown([ROW, emulator], SETTINGS, [])
    assert "## Emulators" in text
    assert "| burgers | mlp | 0.9993 | 6.50 | 28.10 | 4,321× |" in text
    paths = compare.write_charts([ROW, emulator], tmp_path, "CPU: 2 cores")
    assert {"comparison_test_r2.png", "comparison_speedup.png"} <= {p.name for p in paths}


def test_a_regression_data_set_finds_the_emulator_presets():
    assert compare.preset_path("mlp", "burgers", "", regression=True).name == "emulator_burgers.py"
    assert compare.preset_path("conv1d", "burgers", "", regression=True).name == "emulator_burgers_conv1d.py"
    assert compare.preset_path("mlp", "burgers", "").name == "mlp_burgers.py"  # image data: the plain rule
    pairs = compare.resolve_pairs(["mlp", "conv1d"], compare.parse_datasets("burgers=sim:burgers"), "", {})
    assert [(p.model, p.preset.name) for p in pairs] == [("mlp", "emulator_burgers.py"),
                                                          ("conv1d", "emulator_burgers_conv1d.py")]


def test_the_terminal_table_shows_an_emulators_r2_and_speedup():
    emulator = {**ROW, "model": "mlp", "dataset": "burgers", "test_acc": None, "test_r2": 0.99931, "speedup": 4321.0}
    lines = compare.markdown_table_console([ROW, emulator]).splitlines()
    assert lines[0].split()[:5] == ["dataset", "model", "test_acc", "test_r2", "speedup"]
    assert lines[2].split()[:5] == ["burgers", "mlp", "–", "0.9993", "4,321x"]
    assert "test_r2" not in compare.markdown_table_console([ROW])  # classifiers only: as before
