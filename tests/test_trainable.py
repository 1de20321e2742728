"""run_trial without Ray: one report per epoch, test metrics at the end, exact resume."""

import math
import shutil

import pytest
import torch

from tune_nas.data.sources import load_splits
from tune_nas.models import register_model
from tune_nas.trial.reporting import REPORTS_FILE, parse_reports
from tune_nas.trial.run import FINAL_METRICS, METRICS, TrialSetup, run_trial


class Recorder:
    def __init__(self, keep_dir=None):
        self.results, self.checkpoints, self.keep_dir = [], [], keep_dir

    def report(self, metrics, checkpoint_dir):
        self.results.append(dict(metrics))
        if checkpoint_dir and self.keep_dir is not None:
            dest = self.keep_dir / f"epoch{metrics['epoch']}"
            shutil.copytree(checkpoint_dir, dest)
            self.checkpoints.append(dest)


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits")


CONFIG = {"lr": 3e-3, "width": 8, "depth": 2, "batch_size": 64, "trial_number": 2}


def test_one_report_per_epoch_with_all_metrics_and_test_at_the_end(digits, tmp_path):
    rec = Recorder(tmp_path)
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=3, checkpoint_every=2), rec)
    assert [r["epoch"] for r in rec.results] == [1, 2, 3]
    for r in rec.results:
        assert set(METRICS) <= set(r)
        assert 0 <= r["val/acc"] <= 1 and r["time/epoch_s"] > 0
    assert not set(FINAL_METRICS) & set(rec.results[0])
    assert 0.5 < rec.results[-1]["test/acc"] <= 1  # it learned something real
    assert rec.results[-1]["train/loss"] < rec.results[0]["train/loss"]
    # checkpoints only when due: every 2nd epoch and the final one
    assert [c.name for c in rec.checkpoints] == ["epoch2", "epoch3"]


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_resume_from_checkpoint_continues_exactly(digits, tmp_path, dropout):
    """A paused (asha_promotion) or retried trial goes on as if never stopped: weights,
    optimizer, schedule, batch order and (with dropout) the random stream."""
    config = {**CONFIG, "dropout": dropout}
    full = Recorder(tmp_path)
    run_trial(config, digits, TrialSetup("small_cnn", max_epochs=3), full)
    resumed = Recorder()
    run_trial(config, digits, TrialSetup("small_cnn", max_epochs=3), resumed,
              resume_dir=str(tmp_path / "epoch1"))
    assert [r["epoch"] for r in resumed.results] == [2, 3]  # no epoch repeated or skipped
    for a, b in zip(full.results[1:], resumed.results):
        assert a["val/acc"] == pytest.approx(b["val/acc"], abs=1e-6)
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-5)


def test_every_checkpoint_keeps_the_reports_of_the_epochs_up_to_it(digits, tmp_path):
    """A driver killed between a checkpoint and its report reaching it records the epoch from
    the checkpoint: each one holds every epoch's report up to it, across a resume too."""
    first = Recorder(tmp_path / "first")
    (tmp_path / "first").mkdir()
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=4, checkpoint_every=2), first)
    for name, epochs in (("epoch2", [1, 2]), ("epoch4", [1, 2, 3, 4])):
        kept = parse_reports((tmp_path / "first" / name / REPORTS_FILE).read_text(), name)
        assert [r["epoch"] for r in kept] == epochs
        for report in kept:  # what was reported, as JSON keeps it (NaN latency is left out)
            reported = first.results[report["epoch"] - 1]
            assert report["train/loss"] == reported["train/loss"]
            assert report["val/acc"] == reported["val/acc"]
            assert report["model/params"] == reported["model/params"]
    resumed = Recorder(tmp_path / "resumed")
    (tmp_path / "resumed").mkdir()
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=4, checkpoint_every=2), resumed,
              resume_dir=str(tmp_path / "first" / "epoch2"))
    kept = parse_reports((tmp_path / "resumed" / "epoch4" / REPORTS_FILE).read_text(), "epoch4")
    assert [r["epoch"] for r in kept] == [1, 2, 3, 4]
    assert kept[0]["train/loss"] == first.results[0]["train/loss"]  # from the checkpoint resumed from
    assert kept[2]["train/loss"] == resumed.results[0]["train/loss"]  # the epochs run now
    assert "test/acc" in kept[3] and "test/acc" not in kept[2]


def test_a_trial_resumed_from_its_last_epochs_checkpoint_reports_its_final_result_again(digits, tmp_path):
    """Retried, or its driver killed before the last report reached it, a trial resumed from the
    checkpoint of its last epoch trains nothing and ends with its final result (test metrics
    included), not with whatever older result Ray held."""
    first = Recorder(tmp_path)
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=2), first)
    again = Recorder()
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=2), again, resume_dir=str(tmp_path / "epoch2"))
    (final,) = again.results
    assert final["epoch"] == 2 and final["test/acc"] == first.results[-1]["test/acc"]
    assert final["train/loss"] == first.results[-1]["train/loss"]
    longer = Recorder()  # a longer budget than the checkpoint's: training goes on
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=3), longer, resume_dir=str(tmp_path / "epoch2"))
    assert [r["epoch"] for r in longer.results] == [3]


def test_a_checkpoint_with_unreadable_reports_is_still_resumed_from(digits, tmp_path):
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=1), Recorder(tmp_path))
    (tmp_path / "epoch1" / REPORTS_FILE).write_text("[{]")
    resumed = Recorder(tmp_path / "again")
    (tmp_path / "again").mkdir()
    with pytest.warns(UserWarning, match="reports.json: not JSON"):
        run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=2), resumed,
                  resume_dir=str(tmp_path / "epoch1"))
    assert [r["epoch"] for r in resumed.results] == [2]
    kept = parse_reports((tmp_path / "again" / "epoch2" / REPORTS_FILE).read_text(), "epoch2")
    assert [r["epoch"] for r in kept] == [2]  # what could be kept


def test_same_seed_same_trial_number_same_result(digits):
    a, b = Recorder(), Recorder()
    for rec in (a, b):
        run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=1, seed=7), rec)
    assert a.results[0]["train/loss"] == b.results[0]["train/loss"]


class _NanAfter(torch.nn.Module):
    """A linear classifier whose output turns NaN after ``steps`` training forwards."""

    def __init__(self, num_classes, in_channels, image_size, steps=30):
        super().__init__()
        self.fc = torch.nn.Linear(in_channels * image_size * image_size, num_classes)
        self.steps, self.calls = steps, 0

    def forward(self, x):
        self.calls += int(self.training)
        out = self.fc(x.flatten(1))
        return out * float("nan") if self.calls > self.steps else out


@register_model("test_nan_after")
def _nan_after(num_classes, in_channels, image_size, steps: int = 30):
    return _NanAfter(num_classes, in_channels, image_size, steps)


def test_nan_loss_ends_the_trial_with_its_reason(digits):
    rec = Recorder()
    # 1295 train images / 64 = 20 steps per epoch: NaN appears during epoch 2
    run_trial({"lr": 1e-3, "batch_size": 64}, digits, TrialSetup("test_nan_after", max_epochs=4), rec)
    assert [r["epoch"] for r in rec.results] == [1, 2]
    assert "error" not in rec.results[0]
    assert rec.results[-1]["error"] == "train/loss is nan at epoch 2"
    assert math.isnan(rec.results[-1]["val/acc"])


def test_epoch_totals_equal_torchmetrics_mean_loss_and_micro_accuracy():
    import torch
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy

    from tune_nas.trial.module import EpochTotals

    gen = torch.Generator().manual_seed(0)
    totals, mean, acc = EpochTotals(), MeanMetric(), MulticlassAccuracy(10, average="micro")
    for n in (64, 64, 17):  # a short last batch: the mean is weighted by batch size
        logits, y = torch.randn(n, 10, generator=gen), torch.randint(0, 10, (n,), generator=gen)
        loss = torch.nn.functional.cross_entropy(logits, y)
        totals.update(loss, logits, y)
        mean.update(loss, weight=n)
        acc.update(logits, y)
    got_loss, got_acc = totals.compute().tolist()
    assert got_loss == pytest.approx(float(mean.compute()), rel=1e-6)
    assert got_acc == pytest.approx(float(acc.compute()), rel=1e-6)
    assert totals.count == 145
    totals.update(torch.tensor(float("nan")), logits, y)  # a diverged step shows in the mean
    assert math.isnan(totals.compute()[0].item())
    totals.reset()
    assert all(math.isnan(v) for v in totals.compute().tolist())  # nothing seen: NaN, not 0


@pytest.mark.parametrize("before, after", [(None, "None"), ("1", "1")])
def test_trials_keep_the_users_nvml_cuda_check_setting(before, after):
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import, which makes every optimizer
    step reload NVML on a GPU-less machine; the trial module puts the user's setting back."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"}
    if before is not None:
        env["PYTORCH_NVML_BASED_CUDA_CHECK"] = before
    code = ("import os, tune_nas.trial.run\n"
            "print(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [after]


def test_the_trial_module_keeps_hook_names_plain_and_still_registers_layers():
    """Lightning's hook name skips nn.Module's attribute checks; parameters and layers set
    on the module later are still registered (and so trained and checkpointed)."""
    from tune_nas.config.training import TrainingConfig
    from tune_nas.trial.module import TrialModule

    module = TrialModule(torch.nn.Linear(4, 2), TrainingConfig(), "classification", steps_per_epoch=1,
                         max_epochs=1)
    module._current_fx_name = "training_step"
    assert module._current_fx_name == "training_step"
    assert "_current_fx_name" not in module._parameters and "_current_fx_name" not in module._modules
    module.head = torch.nn.Linear(2, 2)
    module.scale = torch.nn.Parameter(torch.ones(1))
    names = {n for n, _ in module.named_parameters()}
    assert {"head.weight", "scale", "model.weight"} <= names
    assert "head.weight" in module.state_dict()


class _OutOfMemoryAt(torch.nn.Module):
    """A linear classifier that raises torch.OutOfMemoryError at training forward ``step``."""

    def __init__(self, num_classes, in_channels, image_size, step=25):
        super().__init__()
        self.fc = torch.nn.Linear(in_channels * image_size * image_size, num_classes)
        self.step, self.calls = step, 0

    def forward(self, x):
        self.calls += int(self.training)
        if self.calls == self.step:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.fc(x.flatten(1))


@register_model("test_oom_at")
def _oom_at(num_classes, in_channels, image_size, step: int = 25):
    return _OutOfMemoryAt(num_classes, in_channels, image_size, step)


def test_out_of_memory_reports_every_metric_so_any_objective_sees_the_failure(digits):
    """Ray ends the WHOLE search when a result lacks the searched metric: a trial that ran out
    of memory must report every metric (NaN), whichever one the search optimises."""
    rec = Recorder()
    run_trial({"lr": 1e-3, "batch_size": 64}, digits, TrialSetup("test_oom_at", max_epochs=3), rec)
    assert [r["epoch"] for r in rec.results] == [1, 2]
    last = rec.results[-1]
    assert last["error"].startswith("out of memory: CUDA out of memory")
    assert set(METRICS) <= set(last)
    assert math.isnan(last["val/loss"]) and math.isnan(last["val/acc"])


def test_nan_loss_report_carries_every_metric(digits):
    rec = Recorder()
    run_trial({"lr": 1e-3, "batch_size": 64}, digits, TrialSetup("test_nan_after", max_epochs=4), rec)
    assert set(METRICS) <= set(rec.results[-1]) and math.isnan(rec.results[-1]["val/loss"])
