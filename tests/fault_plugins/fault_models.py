"""A tiny model that injects one fault into the process that trains it (test plugin).

``fault_linear`` is a linear classifier on the flattened image (8×8 digits: an epoch takes
milliseconds). Its architecture arguments choose the fault, so a space file decides which
trial gets which fault (``define_by_run`` sees the Optuna trial number):

* ``fault``: ``none``, ``sigkill`` (the worker process kills itself with SIGKILL, only on
  the first attempt: the retried trial runs in a new process, so the ``marker`` file is
  what remembers that the kill already happened), ``nan`` (the output, hence the loss,
  turns NaN), ``oom`` (``torch.OutOfMemoryError`` is raised), ``hog`` (the process takes
  ``hog_gb`` GB of host memory and keeps it, so that Ray's memory monitor kills it);
* ``fault_step``: the fault fires at this training forward (1-based), so a test that knows
  the number of batches per epoch places it mid-epoch;
* ``marker``: a file path; ``sigkill`` creates it just before killing;
* ``step_seconds``: sleep per training forward (slows a trial down so that a test can act
  while it runs);
* ``tag``: a number for the files below (a space passes the Optuna trial number);
* ``started_dir``: when set, every build of the model writes
  ``<started_dir>/<tag>-<pid>-<ray node id>``, so a test can see where a trial runs;
* with ``marker`` set, the first training forward of each model appends
  ``<pid> <step>`` to ``<marker>.log``: the step counter is a buffer saved in checkpoints, so
  a trial resumed from its epoch-2 checkpoint starts at step 2 × batches + 1, not at 1.

Imported by the driver and by every Ray worker (``EXPERIMENT["plugins"]``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch

from tune_nas.models import register_model

FAULTS = ("none", "sigkill", "nan", "oom", "hog")


class FaultLinear(torch.nn.Module):
    def __init__(self, num_classes: int, in_features: int, fault: str, fault_step: int,
                 marker: str, step_seconds: float, hog_gb: float = 0.0) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(in_features, num_classes)
        self.fault, self.fault_step, self.marker = fault, fault_step, marker
        self.step_seconds = step_seconds
        self.hog_gb, self._hog = hog_gb, []
        # training forwards of this trial; a buffer, so a checkpoint carries it
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._logged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps += 1
            step = int(self.steps)
            if self.marker and not self._logged:
                self._logged = True
                with open(f"{self.marker}.log", "a") as log:
                    log.write(f"{os.getpid()} {step}\n")
            if self.step_seconds:
                time.sleep(self.step_seconds)
            if self.fault == "sigkill" and step == self.fault_step:
                marker = Path(self.marker)
                if not marker.exists():
                    marker.write_text(f"{os.getpid()}\n")
                    os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "hog" and step >= self.fault_step and not self._hog:
                self._hog.append(torch.ones(int(self.hog_gb * 2**30) // 4))  # written, so resident
            if self.fault == "oom" and step == self.fault_step:
                raise torch.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 64.00 GiB (injected by fault_linear)")
        out = self.fc(x.flatten(1))
        if self.fault == "nan" and self.training and int(self.steps) >= self.fault_step:
            out = out * float("nan")
        return out


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "driver"
    except Exception:
        return "unknown"


@register_model("fault_linear")
def fault_linear(num_classes: int, in_channels: int, image_size: int, fault: str = "none",
                 fault_step: int = 0, marker: str = "", step_seconds: float = 0.0,
                 tag: int = -1, started_dir: str = "", hog_gb: float = 0.0) -> torch.nn.Module:
    if fault not in FAULTS:
        raise ValueError(f"fault={fault!r}: rule: one of {FAULTS}")
    if started_dir:
        Path(started_dir, f"{tag}-{os.getpid()}-{_node_id()}").touch()
    return FaultLinear(num_classes, in_channels * image_size * image_size, fault, fault_step,
                       marker, step_seconds, hog_gb)
