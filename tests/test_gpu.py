"""GPU paths (skipped without CUDA): device-resident batches, bf16 trials, packing estimates."""

import pytest
import torch

from tune_nas.data.batches import random_crop, random_flip
from tune_nas.data.sources import load_splits
from tune_nas.trial.packing import HEADROOM, PackingEstimate, estimate_packing
from tune_nas.trial.run import TrialSetup, run_trial


def test_packing_estimate_arithmetic_runs_on_cpu():
    gib = 1024**3
    assert PackingEstimate(10 * gib, 4, 80 * gib, "card").fits
    assert not PackingEstimate(20 * gib, 4, 80 * gib, "card").fits
    assert PackingEstimate(int(HEADROOM * 80 * gib), 1, 80 * gib, "card").fits


@pytest.mark.gpu
def test_gpu_augmentation_equals_cpu_augmentation_under_the_same_seed():
    x = torch.randn(32, 3, 8, 8)
    cpu = random_flip(random_crop(x, 2, torch.Generator().manual_seed(1)), torch.Generator().manual_seed(2))
    gpu = random_flip(random_crop(x.cuda(), 2, torch.Generator().manual_seed(1)), torch.Generator().manual_seed(2))
    assert torch.equal(cpu, gpu.cpu())


@pytest.mark.gpu
def test_trial_on_gpu_learns_and_frees_its_memory():
    splits = load_splits("digits")

    class Rec:
        results = []

        def report(self, m, d):
            self.results.append(m)

    before = torch.cuda.memory_allocated()
    run_trial({"lr": 3e-3, "width": 16, "precision": "auto", "channels_last": True}, splits,
              TrialSetup("small_cnn", max_epochs=2, gpus_per_trial=1), Rec())
    assert Rec.results[-1]["test/acc"] > 0.5
    assert torch.cuda.memory_allocated() <= before + 1024**2


@pytest.mark.gpu
def test_packing_estimate_measures_a_dry_step():
    splits = load_splits("digits")
    small = estimate_packing("small_cnn", {"batch_size": 64, "width": 8}, splits, 0.25)
    large = estimate_packing("small_cnn", {"batch_size": 512, "width": 64, "depth": 3}, splits, 0.25)
    assert small.trials_per_gpu == 4 and small.fits
    assert 0 < small.per_trial_bytes < large.per_trial_bytes
