"""Packing several trials on one GPU: estimate a trial's peak GPU memory with one dry step and
refuse a ``gpus_per_trial`` whose packing cannot fit.

Ray treats ``gpus_per_trial=0.25`` as a scheduling share only: four trials land on one GPU
whatever their memory needs, and the fourth dies of out-of-memory an hour later. The launcher
measures first (a forward/backward at the trial's batch size and precision, plus the data set
resident on the GPU) and says before anything runs when the packing cannot fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HEADROOM = 0.9  # leave 10 % of the card for the CUDA context, allocator slack, fragmentation


@dataclass(frozen=True)
class PackingEstimate:
    per_trial_bytes: int
    trials_per_gpu: int
    gpu_bytes: int
    gpu_name: str

    @property
    def fits(self) -> bool:
        return self.per_trial_bytes * self.trials_per_gpu <= HEADROOM * self.gpu_bytes

    def describe(self) -> str:
        gib = 1024**3
        return (f"{self.trials_per_gpu} trial(s) × {self.per_trial_bytes / gib:.2f} GiB on "
                f"{self.gpu_name} ({self.gpu_bytes / gib:.1f} GiB)")


def dataset_bytes(splits) -> int:
    return sum(getattr(splits, k).nbytes for k in ("train_x", "train_y", "val_x", "val_y",
                                                   "test_x", "test_y"))


def estimate_packing(model_name: str, config: dict[str, Any], splits, gpus_per_trial: float,
                     device_index: int = 0) -> PackingEstimate:
    """One dry training step of ``model_name`` with ``config`` on CUDA device ``device_index``."""
    import torch

    from tune_nas.config.training import split_config
    from tune_nas.models import create_model_for
    from tune_nas.tasks import task_named
    from tune_nas.trial.module import resolve_precision

    training, arch = split_config(config)
    device = torch.device("cuda", device_index)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    model = create_model_for(model_name, splits, **arch).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)  # the larger optimizer state
    x = torch.randn(training.batch_size, *splits.sample_shape, device=device)
    if splits.task == "classification":
        y = torch.randint(0, splits.num_classes, (training.batch_size,), device=device)
    else:
        y = torch.randn(training.batch_size, splits.num_outputs, device=device)
    bf16 = resolve_precision(training.precision, device) == "bf16-mixed"
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        loss = task_named(splits.task).loss(model(x), y)
    loss.backward()
    optimizer.step()
    peak = torch.cuda.max_memory_allocated(device) - base
    del model, optimizer, x, y, loss
    torch.cuda.empty_cache()
    props = torch.cuda.get_device_properties(device)
    per_gpu = max(1, math.floor(1 / gpus_per_trial + 1e-9)) if gpus_per_trial < 1 else 1
    return PackingEstimate(int(peak + dataset_bytes(splits)), per_gpu, int(props.total_memory),
                           props.name)
