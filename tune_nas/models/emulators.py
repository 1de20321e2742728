"""Searchable emulator models (regression): an MLP family and a 1-D convolutional family for
field outputs. Both map ``N × num_inputs`` standardised inputs to ``N × prod(output_shape)``
standardised outputs.

* ``mlp``: ``depth`` hidden layers of ``width`` units, an ``activation``, optional residual
  connections (between hidden layers of equal width), LayerNorm and dropout.
* ``conv1d``: a decoder for fields (``output_shape`` = channels × points; a plain vector is one
  channel): a linear layer to ``channels`` × ``points / 2**upsamples`` (by default up to 2
  stages, as many as the points' factors of 2 allow), then ``upsamples`` stages of ×2
  linear upsampling and ``convs_per_stage`` convolutions (``kernel_size``, ``padding`` zeros
  or circular for periodic fields), a 1×1 convolution to the output channels.
"""

from __future__ import annotations

import math

from torch import nn

from tune_nas.models.registry import register_model

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
PADDINGS = ("zeros", "circular")


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r}: rule: one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _check(name: str, value, ok: bool, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r}: rule: {rule}")


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class MLP(nn.Module):
    def __init__(self, num_inputs: int, num_outputs: int, depth: int, width: int, activation: str,
                 residual: bool, dropout: float, layer_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(num_inputs, width), _activation(activation)]
        for _ in range(depth - 1):
            block = nn.Sequential(*([nn.LayerNorm(width)] if layer_norm else []), nn.Linear(width, width),
                                  _activation(activation), *([nn.Dropout(dropout)] if dropout else []))
            layers.append(_Residual(block) if residual else block)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x):
        return self.head(self.body(x))


@register_model("mlp")
def mlp(num_inputs: int, output_shape: tuple[int, ...], depth: int = 3, width: int = 128,
        activation: str = "gelu", residual: bool = True, dropout: float = 0.0,
        layer_norm: bool = False) -> nn.Module:
    """A multilayer perceptron of ``depth`` hidden layers (≥ 1) of ``width`` units."""
    _check("depth", depth, _int(depth) and depth >= 1, "an integer >= 1 (hidden layers)")
    _check("width", width, _int(width) and width >= 1, "an integer >= 1")
    _check("dropout", dropout, isinstance(dropout, (int, float)) and 0 <= dropout < 1, "0 <= dropout < 1")
    _activation(activation)
    return MLP(num_inputs, math.prod(output_shape), depth, width, activation, bool(residual),
               float(dropout), bool(layer_norm))


class FieldDecoder(nn.Module):
    def __init__(self, num_inputs: int, out_channels: int, points: int, channels: int, upsamples: int,
                 convs_per_stage: int, kernel_size: int, activation: str, padding: str) -> None:
        super().__init__()
        self.channels, self.base = channels, points >> upsamples
        self.project = nn.Sequential(nn.Linear(num_inputs, channels * self.base), _activation(activation))
        layers: list[nn.Module] = []
        for stage in range(upsamples + 1):
            if stage:
                layers.append(nn.Upsample(scale_factor=2, mode="linear", align_corners=False))
            for _ in range(convs_per_stage):
                layers += [nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2,
                                     padding_mode=padding), _activation(activation)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv1d(channels, out_channels, 1)

    def forward(self, x):
        h = self.project(x).view(len(x), self.channels, self.base)
        return self.head(self.body(h)).flatten(1)


@register_model("conv1d")
def conv1d(num_inputs: int, output_shape: tuple[int, ...], channels: int = 32, upsamples: int | None = None,
           convs_per_stage: int = 1, kernel_size: int = 5, activation: str = "gelu",
           padding: str = "zeros") -> nn.Module:
    """A 1-D convolutional decoder from the inputs to a field of ``output_shape`` (channels ×
    points, or a vector as one channel)."""
    _check("output_shape", output_shape, len(output_shape) in (1, 2), "(points,) or (channels, points)")
    out_channels, points = (1, output_shape[0]) if len(output_shape) == 1 else output_shape[-2:]
    if upsamples is None:  # up to two ×2 stages, as many as the points allow
        upsamples = min(2, (points & -points).bit_length() - 1)
    _check("channels", channels, _int(channels) and channels >= 1, "an integer >= 1")
    _check("upsamples", upsamples, _int(upsamples) and upsamples >= 0 and points % (1 << upsamples) == 0,
           f"an integer >= 0 with 2**upsamples dividing the {points} output points")
    _check("convs_per_stage", convs_per_stage, _int(convs_per_stage) and convs_per_stage >= 1, "an integer >= 1")
    _check("kernel_size", kernel_size, _int(kernel_size) and kernel_size >= 1 and kernel_size % 2 == 1,
           "an odd integer >= 1")
    _check("padding", padding, padding in PADDINGS, f"one of {', '.join(PADDINGS)}")
    _activation(activation)
    return FieldDecoder(num_inputs, out_channels, points, channels, upsamples, convs_per_stage,
                        kernel_size, activation, padding)
