"""NAS-Bench-201's network (Dong & Yang, ICLR 2020) around one cell: the model ``nb201``.

The benchmark's skeleton: a 3×3 conv stem (``C`` channels) + BN, three stages of ``N``
copies of the cell joined by two residual reduction blocks (stride 2, channels doubled: the
benchmark's "ResNet basic block"), then BN-ReLU, global average pooling and a linear layer.
Cell ops as in the paper: ``nor_conv_kxk`` = ReLU-Conv-BN, ``avg_pool_3x3`` stride 1,
``skip_connect`` identity, ``none`` zeros; a node is the sum of its incoming edges, node 3 is
the cell's output. With C=16, N=5 and 10 classes the parameter count is the table's
``model_size`` (MB = million parameters).

One deviation, for odd feature maps (MNIST's 7 px after a reduction, a 9 px input): the
reduction's shortcut pools with ``ceil_mode`` so that it matches the strided conv's
ceil(n/2) output; for even sizes (CIFAR) it is the benchmark's pooling exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from tune_nas.models.registry import register_model
from tune_nas.tabular.nasbench201 import EDGES, arch_string, cell_ops


class ReLUConvBN(nn.Sequential):
    """ReLU, k×k convolution (no bias), BN: the benchmark's ``nor_conv_kxk``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    """The ``none`` edge: contributes nothing to its node (zeros of the input's shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _edge_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"nb201: edge op {name!r}: rule: a NAS-Bench-201 op")


class Cell(nn.Module):
    """Four nodes; edge ``i`` (see :data:`EDGES`) takes node ``from`` to node ``to``."""

    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_edge_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to_node in range(1, 4):
            nodes.append(sum(op(nodes[frm]) for op, (to, frm) in zip(self.edges, EDGES) if to == to_node))
        return nodes[-1]


class ResidualReduction(nn.Module):
    """The benchmark's "ResNet basic block" between stages: two ReLU-Conv-BN (the first with
    stride 2) plus a shortcut of 2×2 average pooling and a 1×1 conv to the new width."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, ceil_mode=True),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem, three stages of ``N`` cells with two reductions, BN-ReLU, pooling, linear."""

    def __init__(self, ops: tuple[str, ...], num_classes: int, in_channels: int, C: int, N: int) -> None:
        super().__init__()
        self.ops = ops
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        channels = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(channels, channels * 2))
                channels *= 2
            layers += [Cell(ops, channels) for _ in range(N)]
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))

    def arch_string(self) -> str:
        """The cell's NAS-Bench-201 string: reported as ``arch`` every epoch."""
        return arch_string(self.ops)


@register_model("nb201")
def nb201(num_classes: int, in_channels: int, image_size: int, arch: str | None = None, C: int = 16, N: int = 5,
          edge0: str | None = None, edge1: str | None = None, edge2: str | None = None,
          edge3: str | None = None, edge4: str | None = None, edge5: str | None = None) -> nn.Module:
    """The NAS-Bench-201 network for one cell, chosen EITHER by ``arch`` (the benchmark's
    string; default :data:`~tune_nas.tabular.nasbench201.DEFAULT_ARCH`, the paper's best
    CIFAR-10 cell) OR by ``edge0`` .. ``edge5`` (one op per edge in arch-string order: what a
    search space samples, one categorical per edge). ``C`` is the stem's width, ``N`` the
    cells per stage. Any image of at least 8 px and any channel count."""
    ops = cell_ops(arch, (edge0, edge1, edge2, edge3, edge4, edge5))
    rules = [("C", C, isinstance(C, int) and C >= 1, "an integer >= 1"),
             ("N", N, isinstance(N, int) and N >= 1, "an integer >= 1"),
             ("image_size", image_size, image_size >= 8, ">= 8 px (two stride-2 reductions)")]
    for name, value, ok, rule in rules:
        if not ok:
            raise ValueError(f"nb201: {name}={value!r}; rule: {rule}")
    return NB201Network(ops, num_classes, in_channels, C, N)
