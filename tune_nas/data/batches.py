"""Batches straight from device-resident tensors, augmented in whole batches.

A torch ``DataLoader`` pays Python work per image (indexing, collate, transforms) and a copy
to the device per batch. For data sets that fit in (GPU or host) memory this module keeps the
uint8 images on the training device once and cuts shuffled batches by indexing, normalising
and augmenting each batch with a few tensor operations (as airbench does), so an epoch costs
what its arithmetic costs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def to_device_tensor(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """A tensor on ``device`` from a (possibly read-only, shared) numpy array, copied once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only object-store buffers
        tensor = torch.from_numpy(np.asarray(array))
    return tensor.to(device, non_blocking=True) if tensor.device != torch.device(device) else tensor


def random_crop(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random crop of ``images`` (N×C×H×W) after zero-padding every side by ``pad``.

    Equivalent to torchvision's ``RandomCrop(size, padding=pad)`` applied to each image
    independently, done for the whole batch with one gather.
    """
    if pad <= 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator,
                            device=generator.device if generator is not None else "cpu")
    offsets = offsets.to(images.device)
    rows = (offsets[0][:, None] + torch.arange(h, device=images.device))  # N×H
    cols = (offsets[1][:, None] + torch.arange(w, device=images.device))  # N×W
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    mask = torch.rand(images.shape[0], generator=generator,
                      device=generator.device if generator is not None else "cpu")
    mask = (mask < 0.5).to(images.device)[:, None, None, None]
    return torch.where(mask, images.flip(-1), images)


@dataclass(frozen=True)
class Augment:
    """Batch augmentation: random crop after ``crop_pad`` zero padding, left-right flips."""

    crop_pad: int = 0
    flip: bool = False

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        images = random_crop(images, self.crop_pad, generator)
        return random_flip(images, generator) if self.flip else images

    @property
    def enabled(self) -> bool:
        return self.crop_pad > 0 or self.flip


class TensorBatches:
    """An iterable of ``(float images, labels)`` batches cut from device-resident uint8 tensors.

    Normalisation (``(x/255 - mean) / std``) and augmentation run per batch on the tensors'
    device. Without ``mean`` and ``std`` the inputs are taken as they are (float arrays already
    standardised, e.g. a regression data set's) and the targets may be float too.
    ``shuffle`` draws a fresh permutation each epoch from ``seed`` and the epoch set
    by :meth:`set_epoch`, so a resumed trial sees the same batches it would have seen.

    ``shard=(rank, world_size)``: one data-parallel worker's part of every batch. All workers
    cut the same global batches of ``batch_size`` images (same permutation), and worker
    ``rank`` keeps the ``rank``-th of ``world_size`` near-equal parts of each, so together they
    see each epoch's images once and the global batch (and the steps per epoch, and so the
    learning-rate schedule) are those of one worker. Augmentation draws from a generator of
    the worker's own. A part that would be empty (a last batch smaller than ``world_size``) is
    skipped.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 mean: tuple[float, ...] | None, std: tuple[float, ...] | None, shuffle: bool = False,
                 drop_last: bool = False, augment: Augment | None = None, seed: int = 0,
                 channels_last: bool = False, device: torch.device | str | None = None,
                 shard: tuple[int, int] = (0, 1)) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size={batch_size}: must be positive")
        rank, world_size = shard
        if not 0 <= rank < world_size:
            raise ValueError(f"shard={shard}: rule: (rank, world_size) with 0 <= rank < world_size")
        self.rank, self.world_size = rank, world_size
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed, self.epoch = seed, 0
        self.channels_last = channels_last
        # where batches are computed: the images' device, or (for data that does not fit on
        # the GPU) a GPU that each uint8 batch is copied to before normalising and augmenting
        self.device = torch.device(device) if device is not None else images.device
        self.mean = self.inv_std = None
        if mean is not None and std is not None:
            shape = (1, len(mean), 1, 1)
            self.mean = torch.tensor(mean, device=self.device).view(shape) * 255.0
            self.inv_std = 1.0 / (torch.tensor(std, device=self.device).view(shape) * 255.0)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self, rank: int = 0) -> torch.Generator:
        g = torch.Generator(device="cpu")
        g.manual_seed(self.seed * 100_003 + self.epoch + rank * 1_000_000_007)
        return g

    def _part(self, idx: slice | torch.Tensor, size: int) -> slice | torch.Tensor:
        """This worker's part of one global batch of ``size`` images (``idx`` selects them):
        the first ``size % world_size`` parts hold one image more (``torch.tensor_split``)."""
        if self.world_size == 1:
            return idx
        base, extra = divmod(size, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        stop = start + base + (self.rank < extra)
        if isinstance(idx, slice):
            return slice(idx.start + start, idx.start + stop)
        return idx[start:stop]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        g = self._generator() if (self.shuffle or self.augment) else None
        order = torch.randperm(n, generator=g).to(self.images.device) if self.shuffle else None
        # one worker of several: the same permutation as every other, augmentations of its own
        g_augment = self._generator(self.rank) if self.augment is not None and self.world_size > 1 else g
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min(n, (i + 1) * self.batch_size))
            idx = self._part(order[sl] if order is not None else sl, sl.stop - sl.start)
            if self.world_size > 1 and (idx.stop - idx.start if isinstance(idx, slice) else len(idx)) == 0:
                continue
            x = self.images[idx].to(self.device, non_blocking=True)
            x = (x.float() - self.mean) * self.inv_std if self.mean is not None else x.float()
            if self.augment is not None:
                x = self.augment(x, g_augment)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx].to(self.device, non_blocking=True)
