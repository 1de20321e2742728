"""Per-epoch totals that are sums, and so add up over data-parallel workers.

A task's totals (:mod:`.classification`, :mod:`.regression`) keep sums on the device and a
count on the host. Under data-parallel training every worker sums its shard of the batches;
:meth:`SummedTotals.compute_over` adds the workers' sums (one all-reduce through the
Lightning strategy) before computing the metrics, so they are over the whole split, never
over one worker's shard.
"""

from __future__ import annotations

from typing import Any

import torch


class SummedTotals:
    """Totals whose state is a flat vector of sums (the count among them): subclasses say how
    their state is packed (:meth:`state`) and unpacked (:meth:`set_state`)."""

    keys: tuple[str, ...] = ()

    def state(self) -> torch.Tensor | None:
        """Everything summed, as one float64 vector (None when nothing was seen)."""
        raise NotImplementedError

    def set_state(self, state: torch.Tensor) -> None:
        """Take ``state`` (what :meth:`state` packs, summed over workers) as this one's."""
        raise NotImplementedError

    def compute(self) -> torch.Tensor:
        raise NotImplementedError

    def compute_over(self, strategy: Any) -> torch.Tensor:
        """:meth:`compute` over every worker of ``strategy`` (a Lightning strategy; with one
        process, or none, this worker's alone). A worker that saw nothing contributes zeros of
        the size the others use (learnt with a first, one-number all-reduce)."""
        if strategy is None or getattr(strategy, "world_size", 1) <= 1:
            return self.compute()
        device = strategy.root_device
        local = self.state()
        size = torch.tensor([0.0 if local is None else float(len(local))], dtype=torch.float64, device=device)
        size = int(strategy.reduce(size, reduce_op="max").item())
        local = torch.zeros(size, dtype=torch.float64, device=device) if local is None else local.to(device)
        total = strategy.reduce(local.clone(), reduce_op="sum")
        if size and float(total[self.count_index]) > 0:
            self.set_state(total)
        return self.compute()

    #: where the count sits in :meth:`state`
    count_index = 0
