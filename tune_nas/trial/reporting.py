"""How a trial hands its results to whoever runs it, and its seed: shared by trained and
tabular trials. Torch-free, so a tabular trial's worker never imports torch or Lightning."""

from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Hand one epoch's metrics (and optionally a checkpoint directory) to the tuner."""


def trial_seed(experiment_seed: int, trial_number: int) -> int:
    """The seed of one trial: its initialisation and batch order, or the table seed it draws."""
    return (experiment_seed * 1_000_003 + trial_number) % (2**31 - 1)
