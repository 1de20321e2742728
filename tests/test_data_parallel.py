"""Data-parallel trials (``workers_per_trial``): sharded batches, metrics over every worker,
a 2-worker CPU trial that reports as a 1-worker one does, resume with 2 workers, a worker
that fails."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
import time

import numpy as np
import pytest
import torch

from tune_nas.data.batches import Augment, TensorBatches
from tune_nas.data.sources import load_splits
from tune_nas.trial.data_parallel import WorkerError
from tune_nas.trial.module import EpochTotals
from tune_nas.trial.run import TrialSetup, run_trial


class Recorder:
    def __init__(self, keep_dir=None):
        self.results, self.keep_dir = [], keep_dir

    def report(self, metrics, checkpoint_dir):
        self.results.append(dict(metrics))
        if checkpoint_dir and self.keep_dir is not None:
            shutil.copytree(checkpoint_dir, self.keep_dir / f"epoch{metrics['epoch']}")


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits")


CONFIG = {"lr": 3e-3, "width": 8, "depth": 2, "batch_size": 64, "trial_number": 2}


def _batches(n=103, batch_size=10, shard=(0, 1), **kw):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1)
    return TensorBatches(images, torch.arange(n), batch_size, mean=(0.0,), std=(1 / 255,),
                         shard=shard, **kw)


@pytest.mark.parametrize("shuffle,drop_last", [(True, True), (False, False)])
@pytest.mark.parametrize("world_size", [2, 3])
def test_the_shards_of_each_batch_are_the_one_worker_batch(shuffle, drop_last, world_size):
    whole = _batches(shuffle=shuffle, drop_last=drop_last, seed=5)
    shards = [_batches(shuffle=shuffle, drop_last=drop_last, seed=5, shard=(r, world_size))
              for r in range(world_size)]
    for b in (whole, *shards):
        b.set_epoch(3)
    assert all(len(s) == len(whole) for s in shards)  # the same steps per epoch on every worker
    parts = [list(s) for s in shards]
    for i, (_, labels) in enumerate(whole):
        joined = torch.cat([parts[r][i][1] for r in range(world_size)])
        assert joined.tolist() == labels.tolist()  # in order: worker r holds the r-th part
        sizes = [len(parts[r][i][1]) for r in range(world_size)]
        assert max(sizes) - min(sizes) <= 1


def test_an_empty_part_of_a_last_small_batch_is_skipped():
    # 21 images in batches of 10: the last batch has one image, worker 1 gets none of it
    rank1 = list(_batches(n=21, shard=(1, 2)))
    assert [len(y) for _, y in rank1] == [5, 5]
    assert [len(y) for _, y in _batches(n=21, shard=(0, 2))] == [5, 5, 1]


def test_workers_augment_their_parts_with_generators_of_their_own():
    a, b = (_batches(n=40, batch_size=40, shard=(r, 2), augment=Augment(flip=True), seed=1) for r in (0, 1))
    flips = [torch.rand(20, generator=x._generator(r)) for r, x in ((0, a), (1, b))]
    assert not torch.equal(flips[0], flips[1])


def test_a_bad_shard_is_refused():
    with pytest.raises(ValueError, match=r"shard=\(2, 2\)"):
        _batches(shard=(2, 2))


class _SummingStrategy:
    """Stands for DDP's reduce over two workers, the second holding the totals state ``other``."""

    world_size, root_device = 2, torch.device("cpu")

    def __init__(self, other: torch.Tensor) -> None:
        self.other = other

    def reduce(self, tensor, reduce_op):
        if reduce_op == "max":  # the state's size, agreed first
            return torch.maximum(tensor, torch.tensor([float(len(self.other))], dtype=torch.float64))
        assert reduce_op == "sum"
        return tensor + self.other


def test_epoch_metrics_are_over_every_workers_images():
    mine = EpochTotals()
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    mine.update(torch.tensor(0.5), logits, y)  # 3 images, 2 right, loss 0.5
    other = torch.tensor([1.0, 1.0 * 1, 1.0], dtype=torch.float64)  # 1 image, loss 1.0, right
    loss, acc = mine.compute_over(_SummingStrategy(other)).tolist()
    assert loss == pytest.approx((0.5 * 3 + 1.0) / 4) and acc == pytest.approx(3 / 4)
    fresh = EpochTotals()
    fresh.update(torch.tensor(0.5), logits, y)
    assert fresh.compute_over(None).tolist() == pytest.approx([0.5, 2 / 3])
    nothing = EpochTotals().compute_over(_SummingStrategy(torch.zeros(3, dtype=torch.float64)))
    assert torch.isnan(nothing).all()


def test_two_cpu_workers_report_world_size_2_and_the_keys_of_one(digits, tmp_path):
    one, two = Recorder(), Recorder(tmp_path)
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=2), one)
    started = time.perf_counter()
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=2, workers_per_trial=2), two)
    seconds = time.perf_counter() - started
    assert [r["epoch"] for r in two.results] == [1, 2]
    assert [r["world_size"] for r in one.results] == [1, 1]
    assert [r["world_size"] for r in two.results] == [2, 2]
    for a, b in zip(one.results, two.results):
        assert set(a) == set(b)
        # the same global batches, learning rate and schedule: the same training up to each
        # worker's batch-norm statistics over its half of a batch
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=0.05)
        assert b["val/acc"] == pytest.approx(a["val/acc"], abs=0.05)
    # the test metrics are over the whole test split (every worker's shard, summed)
    assert two.results[-1]["test/acc"] == pytest.approx(one.results[-1]["test/acc"], abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch1", "epoch2"]  # rank 0's checkpoints only
    assert seconds < 120


@pytest.mark.slow  # two 2-worker trials: ~16 s on 2 cores
def test_two_workers_resume_from_a_checkpoint_exactly(digits, tmp_path):
    setup = TrialSetup("small_cnn", max_epochs=3, workers_per_trial=2)
    full = Recorder(tmp_path)
    run_trial(CONFIG, digits, setup, full)
    resumed = Recorder()
    run_trial(CONFIG, digits, setup, resumed, resume_dir=str(tmp_path / "epoch1"))
    assert [r["epoch"] for r in resumed.results] == [2, 3]  # no epoch repeated or skipped
    for a, b in zip(full.results[1:], resumed.results):
        assert b["world_size"] == 2
        assert b["val/acc"] == pytest.approx(a["val/acc"], abs=1e-6)
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-5)


def test_a_batch_smaller_than_the_workers_fails_the_trial_alone(digits):
    rec = Recorder()
    run_trial({**CONFIG, "batch_size": 1}, digits, TrialSetup("small_cnn", max_epochs=1, workers_per_trial=2), rec)
    assert len(rec.results) == 1
    assert "batch_size=1" in rec.results[0]["error"] and "workers_per_trial=2" in rec.results[0]["error"]


def test_a_failing_worker_ends_the_trial_with_its_error(digits, tmp_path):
    plugin = tmp_path / "rank_one_fails.py"
    plugin.write_text(textwrap.dedent('''
        import torch
        import torch.distributed as dist
        from tune_nas.models import register_model

        @register_model("rank_one_fails")
        class RankOneFails(torch.nn.Module):
            def __init__(self, num_classes, in_channels, image_size):
                super().__init__()
                self.fc = torch.nn.Linear(in_channels * image_size * image_size, num_classes)

            def forward(self, x):
                if self.training and dist.is_initialized() and dist.get_rank() == 1:
                    raise RuntimeError("worker one gives up")
                return self.fc(x.flatten(1))
        '''))
    setup = TrialSetup("rank_one_fails", max_epochs=1, workers_per_trial=2, plugins=(str(plugin),))
    started = time.perf_counter()
    with pytest.raises(WorkerError, match="rank 1 of 2 exited with code 1.*worker one gives up"):
        run_trial({"batch_size": 64}, digits, setup, Recorder())
    assert time.perf_counter() - started < 120  # rank 0 did not wait for a collective's timeout
    import torch.distributed as dist

    assert not dist.is_initialized()  # this process can run the next trial


def test_a_broken_collective_waits_for_the_peer_that_broke_it_to_name_it(tmp_path):
    """Rank 0's gloo error ("connection closed by peer") can come before the failed worker's
    process has exited: its exit code is waited for, briefly, for such errors only."""
    import subprocess
    import sys

    from tune_nas.trial.data_parallel import WorkerProcesses

    workers = object.__new__(WorkerProcesses)
    workers.workdir, workers.world_size = tmp_path, 2
    workers.procs = {1: subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(1); sys.exit(3)"])}
    try:
        assert workers.failed() is None  # still exiting when rank 0's error arrives
        assert workers.failure_after(RuntimeError("worker zero's own bug"), grace_s=10) is None  # not waited for
        broken = RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:39598")
        assert workers.failure_after(broken, grace_s=30) == (1, 3)
    finally:
        workers.stop()


class _StoppedByTune:
    """Ray Tune stops a trial (ASHA, a pause) by raising SystemExit in its thread's report."""

    def report(self, metrics, checkpoint_dir):
        self.at = time.perf_counter()
        raise SystemExit(0)


def test_a_trial_stopped_by_tune_ends_within_tunes_2_seconds_and_leaves_no_worker(digits):
    import threading

    import torch.distributed as dist

    stopped, outcome = _StoppedByTune(), {}

    def trial():  # in a thread of its own, as in a Tune actor
        try:
            run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=3, workers_per_trial=2), stopped)
        except SystemExit:
            outcome["ended"] = time.perf_counter()

    thread = threading.Thread(target=trial)
    thread.start()
    thread.join(120)
    # Tune waits TUNE_FUNCTION_THREAD_TIMEOUT_S (2 s) for the thread before it reuses the actor
    assert outcome["ended"] - stopped.at < 2.0
    assert not _worker_processes() and not dist.is_initialized()


def test_the_training_set_sharded_over_workers_sees_every_image_once_an_epoch():
    n, world_size = 1000, 2
    shards = [_batches(n=n, batch_size=64, shuffle=True, drop_last=True, seed=9, shard=(r, world_size))
              for r in range(world_size)]
    seen = np.concatenate([y.numpy() for s in shards for _, y in s])
    assert len(seen) == len(set(seen.tolist())) == (n // 64) * 64


@pytest.mark.slow  # a real search through Ray: ~1 min on 2 cores
def test_a_search_of_two_worker_trials_through_ray(tmp_path):
    """Ray reserves both workers' CPUs for a trial (a 2-core machine runs one trial at a time),
    ASHA stops and continues trials of 2 workers in reused actors, and everything downstream
    reads as before, with ``world_size`` 2 in every epoch's row and the summary's
    ``workers_per_trial``."""
    from conftest import run_launch

    proc = run_launch("--num-samples", "3", "--max-epochs", "2", "--grace-period", "1", "--name", "dp",
                      "--workers-per-trial", "2", "--cpus-per-trial", "1", "--seed", "1",
                      "--trials-dir", str(tmp_path / "trials"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "trials" / "dp"
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["workers_per_trial"] == 2
    assert sum(summary["counts"].values()) == 3 and summary["best"]["val_acc"] > 0.2
    with (exp / "curves.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["world_size"] for r in rows} == {"2"}
    resolved = json.loads((exp / "experiment.json").read_text())
    assert resolved["overrides"]["workers_per_trial"] == 2
    assert not _worker_processes()  # none left behind, stopped trials' included


def _worker_processes() -> list[str]:
    """Command lines of the data-parallel worker processes running on this machine."""
    from pathlib import Path

    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "tune_nas.trial.data_parallel" in text:
            found.append(text)
    return found


@pytest.mark.slow  # 1-3 min on the shared 2 cores
def test_a_superkernel_whose_thresholds_thaw_after_warmup_trains_on_two_workers(digits):
    """Architecture parameters frozen for the first epoch (requires_grad off), then trained:
    DDP looks for unused parameters every step, so the frozen ones do not stall it."""
    rec = Recorder()
    config = {"batch_size": 64, "arch_warmup_epochs": 1, "cost_weight": 0.01}
    run_trial(config, digits, TrialSetup("superkernel", max_epochs=2, workers_per_trial=2), rec)
    assert [r["epoch"] for r in rec.results] == [1, 2] and not any("error" in r for r in rec.results)
    assert all(r["world_size"] == 2 for r in rec.results)


@pytest.mark.gpu
def test_two_gpu_workers_train_over_nccl_one_gpu_each(digits):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA GPUs (one per worker)")
    one, two = Recorder(), Recorder()
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=2, gpus_per_trial=1), one)
    run_trial(CONFIG, digits, TrialSetup("small_cnn", max_epochs=2, gpus_per_trial=1, workers_per_trial=2), two)
    assert [r["world_size"] for r in two.results] == [2, 2]
    assert set(one.results[-1]) == set(two.results[-1])
    assert two.results[-1]["val/acc"] == pytest.approx(one.results[-1]["val/acc"], abs=0.05)


def test_two_workers_train_a_regressor_with_metrics_over_the_whole_splits():
    """Regression data travel to the other worker too, and MSE and R² are over every shard."""
    from tune_nas.data.arrays import split_arrays

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    splits = split_arrays("waves", x, np.column_stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] ** 2]))
    config = {"lr": 1e-2, "width": 32, "depth": 2, "batch_size": 32, "trial_number": 1}
    one, two = Recorder(), Recorder()
    run_trial(config, splits, TrialSetup("mlp", max_epochs=3), one)
    run_trial(config, splits, TrialSetup("mlp", max_epochs=3, workers_per_trial=2), two)
    assert [r["world_size"] for r in two.results] == [2, 2, 2]
    assert set(one.results[-1]) == set(two.results[-1]) and "test/r2" in two.results[-1]
    for a, b in zip(one.results, two.results):  # no batch norm in an MLP: the same training
        assert b["val/mse"] == pytest.approx(a["val/mse"], rel=1e-3)
        assert b["val/r2"] == pytest.approx(a["val/r2"], abs=1e-3)
    assert two.results[-1]["test/r2"] == pytest.approx(one.results[-1]["test/r2"], abs=1e-3)
