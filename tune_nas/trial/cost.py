"""What a model costs: trainable parameters, FLOPs per image, measured prediction latency.

Works for any ``nn.Module`` that maps ``N×C×H×W`` images to outputs. FLOPs are counted by
PyTorch's own :class:`torch.utils.flop_counter.FlopCounterMode` (2 per multiply-accumulate
of convolutions and matrix products; normalisation, activations and pooling count 0), so
they agree with what :meth:`tune_nas.models.superkernel.SuperkernelNet.expected_cost`
predicts for a child net.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameter elements (``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no_grad for the block; the model's own mode comes back afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _check_shape(in_channels: int, image_size: int) -> None:
    if in_channels < 1 or image_size < 1:
        raise ValueError(f"in_channels={in_channels}, image_size={image_size}; rule: both >= 1")


def flops_per_image(model: nn.Module, in_channels: int, image_size: int) -> int:
    """FLOPs of one eval-mode forward pass of one ``in_channels × image_size²`` image."""
    _check_shape(in_channels, image_size)
    return flops_per_sample(model, (in_channels, image_size, image_size))


def flops_per_sample(model: nn.Module, sample_shape: tuple[int, ...]) -> int:
    """FLOPs of one eval-mode forward pass of one sample of ``sample_shape`` (an image's
    ``C × H × W``, a regressor's ``(inputs,)``)."""
    x = torch.zeros(1, *sample_shape, device=_device_of(model))
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), counter:
        model(x)
    return int(counter.get_total_flops())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency_ms(model: nn.Module, in_channels: int, image_size: int, batch_size: int = 1,
               device: str | torch.device | None = None, warmup: int = 5,
               repeats: int = 20) -> float:
    """Median wall-clock milliseconds of one eval-mode, no-grad forward pass of a batch.

    ``warmup`` passes run first (allocator, cuDNN autotuning, lazy initialisation) and are
    not timed; each of the ``repeats`` timed passes is synchronised on CUDA. ``device``
    (default: where the model is) is where it runs; the model is moved there and back.
    """
    _check_shape(in_channels, image_size)
    return sample_latency_ms(model, (in_channels, image_size, image_size), batch_size, device, warmup, repeats)


def sample_latency_ms(model: nn.Module, sample_shape: tuple[int, ...], batch_size: int = 1,
                      device: str | torch.device | None = None, warmup: int = 5, repeats: int = 20) -> float:
    """:func:`latency_ms` for a batch of samples of any ``sample_shape``."""
    rules = [("batch_size", batch_size >= 1), ("warmup", warmup >= 0), ("repeats", repeats >= 1)]
    for name, ok in rules:
        if not ok:
            raise ValueError(f"latency_ms: {name}={locals()[name]}; rule: "
                             f"{'>= 0' if name == 'warmup' else '>= 1'}")
    home = _device_of(model)
    target = home if device is None else torch.device(device)
    model.to(target)
    x = torch.randn(batch_size, *sample_shape, device=target)
    times = []
    try:
        with _eval_mode(model):
            for _ in range(warmup):
                model(x)
            _synchronize(target)
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                _synchronize(target)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.to(home)
    return statistics.median(times)
