"""``global_net``: a network of the global search space of :mod:`tune_nas.spaces.global_spec`
(a chain of searchable slots over a few resolutions, skips that may cross stages, merged by
pixel-wise sums with the dimension handling the research recommends).

The layout, for ``stages`` = 3 and ``width`` = w on a 28-px image: stem 3×3 conv (w) → stage 0
slots at 28 px → ``pool`` 2×2 → 3×3 entry conv (2w) → stage 1 slots at 14 px → ``pool`` → entry
conv (4w) → stage 2 slots at 7 px → global average pool → dropout → linear. Every conv is
followed by BN and ReLU. A stage is pooled only while its map is at least 2 px.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tune_nas.models.registry import register_model, with_flat_parameters
from tune_nas.spaces.global_spec import MAX_SLOTS, POOLS, GlobalSpec, param_names

#: The default network: a small ResNet-like chain (the space's hand-designed reference point).
DEFAULT_ARCH = "conv3,res3,none/res3,res3,none/res3,res3,none"


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """A ResNet basic block at constant channels: relu(x + bn(conv(relu(bn(conv(x))))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels, 3),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def make_op(op: str, channels: int) -> nn.Module:
    """The module a slot's op computes (channels in = channels out)."""
    if op == "none":
        return nn.Identity()
    if op in ("conv3", "conv5"):
        return conv_bn_relu(channels, channels, int(op[-1]))
    if op == "sep5":
        return nn.Sequential(nn.Conv2d(channels, channels, 5, padding=2, groups=channels, bias=False),
                             nn.Conv2d(channels, channels, 1, bias=False),
                             nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
    if op == "res3":
        return ResBlock(channels)
    raise ValueError(f"global_net: op {op!r}; rule: one of none, conv3, conv5, sep5, res3")


class Merge(nn.Module):
    """Brings a skip's source to a slot's shape: area interpolation (average pooling) to a
    smaller map, a 1×1 conv + BN to other channels; identity when the shapes agree."""

    def __init__(self, c_in: int, c_out: int, size_in: int, size_out: int) -> None:
        super().__init__()
        self.size_in, self.size_out = size_in, size_out
        self.project = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
                        if c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size_in != self.size_out:
            x = F.adaptive_avg_pool2d(x, self.size_out)
        return self.project(x)


class GlobalNet(nn.Module):
    """The network of one :class:`GlobalSpec` (see the module's docstring)."""

    def __init__(self, spec: GlobalSpec, num_classes: int, in_channels: int, image_size: int,
                 width: int, pool: str, dropout: float) -> None:
        super().__init__()
        self.spec = spec
        self.stem = conv_bn_relu(in_channels, width, 3)
        self.entries, self.ops, self.merges = nn.ModuleList(), nn.ModuleList(), nn.ModuleDict()
        self.pools: list[bool] = []
        #: per slot, the node its skip adds (None: no skip); node 0 is the stem, node i + 1 slot i
        self.sources: list[int | None] = []
        shapes = [(width, image_size)]  # the (channels, size) of every node
        channels, size, current = width, image_size, 0
        for stage, index, op, k in spec.slots():
            if stage != current:  # a stage's first slot: pool and widen first
                current = stage
                pooled = size >= 2
                size = size // 2 if pooled else size
                self.pools.append(pooled)
                self.entries.append(conv_bn_relu(channels, channels * 2, 3))
                channels *= 2
            self.ops.append(make_op(op, channels))
            self.sources.append(max(0, index + 1 - k) if k else None)
            if k:
                c_src, size_src = shapes[self.sources[-1]]
                self.merges[str(index)] = Merge(c_src, channels, size_src, size)
            shapes.append((channels, size))
        self.pool = F.max_pool2d if pool == "max" else F.avg_pool2d
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [self.stem(x)]
        index = 0
        for stage, ops in enumerate(self.spec.ops):
            x = nodes[-1]
            if stage:
                if self.pools[stage - 1]:
                    x = self.pool(x, 2)
                x = self.entries[stage - 1](x)
            for _ in ops:
                x = self.ops[index](x)
                source = self.sources[index]
                if source is not None:
                    x = x + self.merges[str(index)](nodes[source])
                nodes.append(x)
                index += 1
        return self.head(nodes[-1])

    def arch_string(self) -> str:
        return self.spec.to_string()


def _refuse(name: str, value: Any, rule: str) -> None:
    raise ValueError(f"global_net: {name}={value!r}; rule: {rule}")


def _global_net(num_classes: int, in_channels: int, image_size: int, width: int = 32, pool: str = "max",
                dropout: float = 0.0, stages: int = 3, slots: int = 3, arch: str | None = None,
                **flat: Any) -> GlobalNet:
    """A network of the global space: ``arch`` (a string, see :class:`GlobalSpec`) or the flat
    encoding ``op_i``/``skip_i`` for ``stages`` × ``slots`` slots; neither: :data:`DEFAULT_ARCH`."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        _refuse("width", width, "an integer >= 1")
    if pool not in POOLS:
        _refuse("pool", pool, f"one of {POOLS}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        _refuse("dropout", dropout, "0 <= dropout < 1")
    given = {k: v for k, v in flat.items() if v is not None}
    try:
        if given and arch is not None:
            _refuse("arch", arch, "an arch string OR op_*/skip_* parameters, not both")
        spec = (GlobalSpec.from_params(given, stages, slots) if given
                else GlobalSpec.parse(DEFAULT_ARCH if arch is None else arch))
    except ValueError as error:
        raise ValueError(str(error) if str(error).startswith("global_net") else f"global_net: {error}") from None
    return GlobalNet(spec, num_classes, in_channels, image_size, width, pool, float(dropout))


global_net = register_model("global_net")(with_flat_parameters(_global_net, sum(param_names(MAX_SLOTS), [])))
