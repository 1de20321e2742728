"""Single-Path NAS: an MBConv supernet whose layers choose kernel size, expansion and skip.

Single-Path NAS (Stamoulis et al., 2019, "Single-Path NAS: Designing Hardware-Efficient
ConvNets in less than 4 Hours") encodes every candidate operation of an MBConv layer in one
*superkernel*: the depthwise kernel of the largest size holds the smaller kernels as centred
cores, and the expanded channels hold the smaller expansion ratios as leading groups. A
decision is a learned threshold on the norm of the weights that a larger choice adds::

    w_k = w_{k1} + 1(x_{k2} > t_{k2}) · (w_{k2\\k1} + 1(x_{k3} > t_{k3}) · (w_{k3\\k2} + ...))

where ``w_{k2\\k1}`` is the ring of depthwise weights between kernel sizes ``k1`` and ``k2``
and ``x_{k2}`` its power. The same nesting over channel groups decides the expansion ratio,
and the first group's own threshold lets a residual layer collapse to the identity (skip).

Choices made here (and why):

* **Power** ``x`` is the ring's squared norm divided by its number of weights (its mean
  squared weight), so thresholds of rings and groups of different sizes are comparable.
  Depthwise weights start as N(0, 1): a BatchNorm follows the depthwise conv, so their scale
  does not change the function, and every ``x`` starts near 1 while thresholds start at
  ``threshold_init`` (0: the whole supernet is active at first).
* **Kernel rings** use the depthwise weights of all expanded channels; **channel groups**
  use the depthwise weights *after* the kernel decision (as the paper does), divided by the
  group's channel count times the chosen kernel area.
* **Indicators** are hard 0/1 in the forward pass; gradients reach thresholds (and weights)
  through ``sigmoid((x - t) / temperature)`` (straight-through).
* Channel groups are masked *after* the depthwise BN and activation, and a skipped layer
  multiplies its whole branch by 0, so a dropped choice contributes exactly nothing and the
  plain child net (:func:`extract_child`) computes the same function in eval mode.
* Only residual layers (stride 1, same channels) may be skipped; the first layer of a block
  that changes channels or resolution always keeps its first expansion group.
* **Cost** (:meth:`SuperkernelNet.expected_cost`) is the FLOPs (``cost="flops"``: 2 × the
  multiply-accumulates of every conv and the classifier, what
  ``torch.utils.flop_counter.FlopCounterMode`` counts) or the trainable parameters
  (``cost="params"``) of the child the current indicators select, as a fraction of the full
  supernet's (all largest choices, no skip; ``1.0``). The same straight-through indicators
  make it differentiable in the thresholds; its value is exactly the child's cost fraction,
  so ``cost_weight`` (λ) is scale-free.

Architecture strings (:func:`format_arch` / :func:`parse_arch`) describe a plain child net
layer by layer, ``|``-separated, timm-like::

    stem-c16s1|k9e6c16s1|skip|k5e3c24s2|...|head-c1280

``stem-c{C}s{S}``: 3×3 stem conv to ``C`` channels, stride ``S``; ``k{K}e{E}c{C}s{S}``: an
MBConv layer (1×1 expand to ``E ×`` its input channels, ``K×K`` depthwise with stride ``S``,
1×1 project to ``C`` channels, residual when ``S == 1`` and the channels match); ``skip``: a
layer the search removed (identity); ``head-c{H}``: a 1×1 head conv to ``H`` channels
(``head-c0``: none) before global pooling and the classifier.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tune_nas.models.registry import register_model

#: MobileNetV2's seven bottleneck stages (Sandler et al., 2018): output channels.
MOBILENET_CHANNELS = (16, 24, 32, 64, 96, 160, 320)
#: Per-block strides of the presets; ``mobilenet`` is MobileNetV2's (small images: see
#: :func:`preset_strides`), ``full_res`` keeps the full resolution as Single-Path NAS's
#: research variant did.
PRESETS = ("full_res", "mobilenet")
COSTS = ("flops", "params", "latency")
SMALL_IMAGE_PX = 64


# ---------------------------------------------------------------------------------------------
# architecture strings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """One MBConv layer of a child net; ``expansion == 0`` marks a skipped (removed) layer."""

    kernel: int
    expansion: int
    out_channels: int
    stride: int

    @property
    def skipped(self) -> bool:
        return self.expansion == 0


@dataclass(frozen=True)
class ArchSpec:
    """A whole child net: stem, MBConv layers (skipped ones included) and head."""

    stem_channels: int
    stem_stride: int
    layers: tuple[LayerSpec, ...]
    head_channels: int


_STEM = re.compile(r"stem-c(\d+)s(\d+)")
_HEAD = re.compile(r"head-c(\d+)")
_LAYER = re.compile(r"k(\d+)e(\d+)c(\d+)s(\d+)")


def format_arch(spec: ArchSpec) -> str:
    """The architecture string of ``spec`` (see the module doc); :func:`parse_arch` inverts it."""
    tokens = [f"stem-c{spec.stem_channels}s{spec.stem_stride}"]
    tokens += ["skip" if layer.skipped else
               f"k{layer.kernel}e{layer.expansion}c{layer.out_channels}s{layer.stride}"
               for layer in spec.layers]
    tokens.append(f"head-c{spec.head_channels}")
    return "|".join(tokens)


def parse_arch(arch: str) -> ArchSpec:
    """Parse an architecture string (see the module doc); ``ValueError`` names the bad token."""
    tokens = arch.strip().split("|")
    rule = "stem-c{C}s{S}|k{K}e{E}c{C}s{S}|...|skip|...|head-c{H}"
    if len(tokens) < 2:
        raise ValueError(f"arch={arch!r}: rule: {rule}")
    stem, head = _STEM.fullmatch(tokens[0]), _HEAD.fullmatch(tokens[-1])
    if stem is None:
        raise ValueError(f"arch={arch!r}: first token {tokens[0]!r}; rule: stem-c{{C}}s{{S}}")
    if head is None:
        raise ValueError(f"arch={arch!r}: last token {tokens[-1]!r}; rule: head-c{{H}}")
    channels = int(stem[1])
    layers = []
    for i, token in enumerate(tokens[1:-1], start=1):
        if token == "skip":
            layers.append(LayerSpec(0, 0, channels, 1))
            continue
        match = _LAYER.fullmatch(token)
        if match is None:
            raise ValueError(f"arch={arch!r}: token {i} {token!r}; rule: 'skip' or "
                             "k{K}e{E}c{C}s{S} (kernel, expansion, out channels, stride)")
        kernel, expansion, out, stride = map(int, match.groups())
        if kernel % 2 == 0 or expansion < 1 or out < 1 or stride < 1:
            raise ValueError(f"arch={arch!r}: token {i} {token!r}; rule: odd kernel, "
                             "expansion >= 1, channels >= 1, stride >= 1")
        layers.append(LayerSpec(kernel, expansion, out, stride))
        channels = out
    spec = ArchSpec(int(stem[1]), int(stem[2]), tuple(layers), int(head[1]))
    if spec.stem_channels < 1 or spec.stem_stride < 1:
        raise ValueError(f"arch={arch!r}: stem {tokens[0]!r}; rule: channels and stride >= 1")
    return spec


# ---------------------------------------------------------------------------------------------
# argument helpers
# ---------------------------------------------------------------------------------------------


def _int_tuple(name: str, value: str | Sequence[int]) -> tuple[int, ...]:
    """``"3,5,7"`` or ``(3, 5, 7)`` or ``[3, 5, 7]`` → ``(3, 5, 7)`` (search spaces pass strings)."""
    rule = "integers, as a tuple or a comma-separated string"
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
        out = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"superkernel: {name}={value!r}; rule: {rule}") from None
    if not out or any(not isinstance(v, str) and v != int(v) for v in items):
        raise ValueError(f"superkernel: {name}={value!r}; rule: non-empty, {rule}")
    return out


def _is_int(value: object) -> bool:
    """An integer, numpy's included (search spaces may sample them), never a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def make_divisible(value: float, divisor: int) -> int:
    """``value`` rounded to a multiple of ``divisor`` (at least ``divisor``, never below 90 %
    of ``value``), as MobileNet and timm round scaled channel counts."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def preset_strides(preset: str, num_blocks: int, image_size: int) -> tuple[int, tuple[int, ...]]:
    """(stem stride, per-block strides) of ``preset`` for ``num_blocks`` blocks.

    ``full_res``: all 1. ``mobilenet``: MobileNetV2's (stem 2, blocks 1,2,2,2,1,2,1); on
    images of at most 64 px the stem and the second block keep stride 1, as the CIFAR
    versions of MobileNetV2 do (32 px → 4 px before the head).
    """
    if preset == "full_res":
        return 1, (1,) * num_blocks
    if preset == "mobilenet":
        blocks = [1, 2, 2, 2, 1, 2, 1][:num_blocks] + [1] * max(0, num_blocks - 7)
        if image_size <= SMALL_IMAGE_PX:
            if num_blocks > 1:
                blocks[1] = 1
            return 1, tuple(blocks)
        return 2, tuple(blocks)
    raise ValueError(f"superkernel: preset={preset!r}; rule: one of {PRESETS}")


def _out_size(size: int, stride: int) -> int:
    """Output size of a conv with an odd kernel and ``padding = kernel // 2``."""
    return (size - 1) // stride + 1


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


def _mbconv_flops(in_ch: int, hidden, out_ch: int, kernel_area, size: int, stride: int):
    """2 × multiply-accumulates of expand, depthwise and project convs on a ``size`` px map."""
    out = _out_size(size, stride)
    return 2 * (size * size * in_ch * hidden + out * out * hidden * (kernel_area + out_ch))


def _mbconv_params(in_ch: int, hidden, out_ch: int, kernel_area):
    """Weights of expand, depthwise and project convs plus their three BatchNorms."""
    return in_ch * hidden + 2 * hidden + hidden * kernel_area + 2 * hidden + hidden * out_ch + 2 * out_ch


# ---------------------------------------------------------------------------------------------
# the supernet
# ---------------------------------------------------------------------------------------------


def _dense_depthwise_taps(height: int, width: int, kernel: int, stride: int,
                          device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For :func:`depthwise_conv`: for every (output pixel, input pixel) pair, the kernel tap
    that links them (flat index into K×K) and whether there is one."""
    out_h, out_w, pad = _out_size(height, stride), _out_size(width, stride), kernel // 2
    oy, ox, iy, ix = torch.meshgrid(torch.arange(out_h), torch.arange(out_w),
                                    torch.arange(height), torch.arange(width), indexing="ij")
    ky, kx = iy - oy * stride + pad, ix - ox * stride + pad
    valid = ((ky >= 0) & (ky < kernel) & (kx >= 0) & (kx < kernel)).flatten()
    tap = (ky.clamp(0, kernel - 1) * kernel + kx.clamp(0, kernel - 1)).flatten()
    return tap.to(device), valid.to(device)


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, stride: int,
                   cache: dict | None = None) -> torch.Tensor:
    """Depthwise conv of ``x`` with an odd square ``weight`` (C×1×K×K), padding ``K // 2``.

    When the kernel covers the feature map (H·W <= K², e.g. a 9×9 superkernel on 8×8 digits)
    the conv is a dense H·W × H·W matrix per channel, gathered from the weights and applied
    as one batched matmul: no more multiply-adds than the conv, and (measured on CPU, 288
    channels, 9×9 on 8×8, batch 64) ~5× faster to train than PyTorch's depthwise conv
    backward. Larger maps use ``F.conv2d``. ``cache`` keeps the tap index per shape.
    """
    channels, kernel = weight.shape[0], weight.shape[-1]
    n, _, height, width = x.shape
    if height * width > kernel * kernel:
        return F.conv2d(x, weight, None, stride, kernel // 2, groups=channels)
    key = (height, width, kernel, stride, x.device)
    index = None if cache is None else cache.get(key)
    if index is None:
        index = _dense_depthwise_taps(height, width, kernel, stride, x.device)
        if cache is not None:
            cache[key] = index
    tap, valid = index
    out_h, out_w = _out_size(height, stride), _out_size(width, stride)
    dense = weight.reshape(channels, kernel * kernel).gather(1, tap.expand(channels, -1))
    dense = (dense * valid.to(dense.dtype)).reshape(channels, out_h * out_w, height * width)
    y = torch.bmm(dense, x.reshape(n, channels, height * width).permute(1, 2, 0))
    return y.permute(2, 0, 1).reshape(n, channels, out_h, out_w)


def _indicator(power: torch.Tensor, threshold: torch.Tensor, temperature: float) -> torch.Tensor:
    """``1(power > threshold)`` in the forward pass; gradient of ``sigmoid((p - t) / T)``."""
    soft = torch.sigmoid((power - threshold) / temperature)
    hard = (power > threshold).to(soft.dtype)
    return hard + (soft - soft.detach())


class Gates(NamedTuple):
    """A layer's straight-through indicators (0/1 values) and the masks built from them."""

    kernel: list[torch.Tensor]      # cumulative: kernel[i] = 1 iff kernel > kernel_sizes[i]
    expansion: list[torch.Tensor]   # cumulative: expansion[j] = 1 iff ratio > expansions[j]
    keep: torch.Tensor              # 0 iff the layer is skipped (always 1 when not skippable)
    kernel_mask: torch.Tensor       # K×K
    channel_mask: torch.Tensor      # hidden


class SuperkernelMBConv(nn.Module):
    """One searchable MBConv layer: 1×1 expand → depthwise superkernel → 1×1 project.

    The expanded width is ``in_channels × max(expansions)``; expansion ``e`` uses the leading
    ``in_channels × e`` channels. The depthwise kernel is ``max(kernel_sizes)`` square;
    kernel ``k`` uses its centred ``k × k`` core.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 kernel_sizes: Sequence[int], expansions: Sequence[int], input_size: int,
                 temperature: float = 1.0, threshold_init: float = 0.0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_sizes, self.expansions = tuple(kernel_sizes), tuple(expansions)
        self.input_size, self.temperature = input_size, temperature
        self.residual = stride == 1 and in_channels == out_channels
        kmax, self.hidden = self.kernel_sizes[-1], in_channels * self.expansions[-1]
        self.expand = _conv_bn(in_channels, self.hidden, 1)
        self.depthwise = nn.Conv2d(self.hidden, self.hidden, kmax, stride, kmax // 2,
                                   groups=self.hidden, bias=False)
        nn.init.normal_(self.depthwise.weight, 0.0, 1.0)  # BN follows: scale-free; power ≈ 1
        self.dw_bn, self.act = nn.BatchNorm2d(self.hidden), nn.ReLU6(inplace=True)
        self.project = _conv_bn(self.hidden, out_channels, 1, act=False)
        self.kernel_thresholds = nn.Parameter(
            torch.full((len(self.kernel_sizes) - 1,), float(threshold_init)))
        self.expansion_thresholds = nn.Parameter(
            torch.full((len(self.expansions) - 1,), float(threshold_init)))
        self.skip_threshold = (nn.Parameter(torch.tensor(float(threshold_init)))
                               if self.residual else None)
        # ring i: the weights kernel_sizes[i] adds to kernel_sizes[i-1] (ring 0: the core)
        rings = torch.zeros(len(self.kernel_sizes), kmax, kmax)
        inside = torch.zeros(kmax, kmax)
        for i, k in enumerate(self.kernel_sizes):
            lo = (kmax - k) // 2
            square = torch.zeros(kmax, kmax)
            square[lo:lo + k, lo:lo + k] = 1
            rings[i], inside = square - inside, square
        self.register_buffer("rings", rings, persistent=False)
        self.group_bounds = [0] + [in_channels * e for e in self.expansions]
        self._index_cache: dict = {}

    def arch_parameters(self) -> list[nn.Parameter]:
        params = [self.kernel_thresholds, self.expansion_thresholds, self.skip_threshold]
        return [p for p in params if p is not None and p.numel() > 0]

    def gates(self) -> Gates:
        """The indicators of the current weights and thresholds (see the module doc)."""
        t = self.temperature
        power = self.depthwise.weight.squeeze(1).pow(2)  # hidden × K × K
        kernel, cumulative = [], None
        kernel_mask = self.rings[0]
        for i in range(1, len(self.kernel_sizes)):
            ring = self.rings[i]
            ring_power = (power * ring).sum() / (self.hidden * ring.sum())
            gate = _indicator(ring_power, self.kernel_thresholds[i - 1], t)
            cumulative = gate if cumulative is None else cumulative * gate
            kernel.append(cumulative)
            kernel_mask = kernel_mask + cumulative * ring
        area = kernel_mask.detach().sum()
        channel_power = (power * kernel_mask).sum((1, 2))  # hidden: power of the chosen kernel
        b = self.group_bounds

        def group_power(j: int) -> torch.Tensor:
            return channel_power[b[j]:b[j + 1]].sum() / ((b[j + 1] - b[j]) * area)

        keep = (_indicator(group_power(0), self.skip_threshold, t) if self.residual
                else torch.ones((), device=power.device, dtype=power.dtype))
        expansion, cumulative, pieces = [], None, [power.new_ones(b[1])]
        for j in range(1, len(self.expansions)):
            gate = _indicator(group_power(j), self.expansion_thresholds[j - 1], t)
            cumulative = gate if cumulative is None else cumulative * gate
            expansion.append(cumulative)
            pieces.append(cumulative.expand(b[j + 1] - b[j]))
        return Gates(kernel, expansion, keep, kernel_mask, torch.cat(pieces))

    @torch.no_grad()
    def choice(self) -> tuple[int, int]:
        """(kernel size, expansion ratio) of the current indicators; expansion 0: skipped."""
        g = self.gates()
        kernel = self.kernel_sizes[sum(int(v.item()) for v in g.kernel)]
        expansion = self.expansions[sum(int(v.item()) for v in g.expansion)]
        return kernel, expansion if g.keep.item() > 0.5 else 0

    @torch.no_grad()
    def measure_latency(self, warmup: int = 2, repeats: int = 5) -> None:
        """Measure every candidate op (kernel × expansion) as a plain MBConv on this machine:
        one image at this layer's input size, median milliseconds (Single-Path NAS's runtime
        model, made of measurements instead of a fitted formula)."""
        from tune_nas.trial.cost import latency_ms

        table = torch.zeros(len(self.kernel_sizes), len(self.expansions))
        for i, k in enumerate(self.kernel_sizes):
            for j, e in enumerate(self.expansions):
                op = MBConv(self.in_channels, self.out_channels, k, e, self.stride)
                table[i, j] = latency_ms(op, self.in_channels, self.input_size, warmup=warmup,
                                         repeats=repeats)
        self.latency_table = table

    def _latency(self, g: Gates) -> torch.Tensor:
        """Expected latency of the chosen op: Σ P(kernel=i)·P(expansion=j)·L[i, j], with the
        nested (cumulative) indicators turned into one-hot choice weights."""
        table = self.latency_table.to(g.keep.device)

        def one_hot(cumulative: list[torch.Tensor]) -> torch.Tensor:
            cumulative = [c.to(table.device, table.dtype) for c in cumulative]
            on = [torch.ones((), device=table.device), *cumulative]
            off = [*cumulative, torch.zeros((), device=table.device)]
            return torch.stack([a - b for a, b in zip(on, off)])

        return one_hot(g.kernel) @ table @ one_hot(g.expansion)

    def cost(self, kind: str, gates: Gates | None = None) -> torch.Tensor:
        """FLOPs, params or measured latency of the chosen ops (differentiable through the
        indicators)."""
        g = self.gates() if gates is None else gates
        if kind == "latency":
            return g.keep * self._latency(g)
        ks, es, c = self.kernel_sizes, self.expansions, self.in_channels
        area = ks[0] ** 2 + sum(gate * (ks[i + 1] ** 2 - ks[i] ** 2)
                                for i, gate in enumerate(g.kernel))
        hidden = c * es[0] + sum(gate * c * (es[j + 1] - es[j]) for j, gate in enumerate(g.expansion))
        if kind == "flops":
            value = _mbconv_flops(c, hidden, self.out_channels, area, self.input_size, self.stride)
        else:
            value = _mbconv_params(c, hidden, self.out_channels, area)
        return g.keep * value

    def full_cost(self, kind: str) -> float:
        if kind == "latency":
            return float(self.latency_table[-1, -1])
        kmax, c = self.kernel_sizes[-1], self.in_channels
        if kind == "flops":
            return _mbconv_flops(c, self.hidden, self.out_channels, kmax**2, self.input_size,
                                 self.stride)
        return _mbconv_params(c, self.hidden, self.out_channels, kmax**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gates()
        h = self.expand(x)
        weight = self.depthwise.weight * g.kernel_mask.to(x.dtype)
        h = depthwise_conv(h, weight.to(h.dtype), self.stride, self._index_cache)
        h = self.act(self.dw_bn(h)) * g.channel_mask.to(h.dtype).view(1, -1, 1, 1)
        h = self.project(h)
        if self.residual:
            return x + g.keep.to(h.dtype) * h
        return h


class SuperkernelNet(nn.Module):
    """Stem → blocks of :class:`SuperkernelMBConv` layers → head; see the module doc."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int,
                 channels: Sequence[int], strides: Sequence[int], stem_channels: int,
                 stem_stride: int, head_channels: int, layers_per_block: int,
                 kernel_sizes: Sequence[int], expansions: Sequence[int], cost: str,
                 temperature: float, threshold_init: float, dropout: float) -> None:
        super().__init__()
        self.cost_kind, self.num_classes = cost, num_classes
        self.in_channels, self.image_size = in_channels, image_size
        self.stem_channels, self.stem_stride, self.head_channels = (stem_channels, stem_stride,
                                                                    head_channels)
        self.stem = _conv_bn(in_channels, stem_channels, 3, stem_stride)
        size, ch = _out_size(image_size, stem_stride), stem_channels
        self._fixed_flops = 2 * size * size * in_channels * stem_channels * 9
        self._fixed_params = in_channels * stem_channels * 9 + 2 * stem_channels
        layers, self.layer_names = [], []
        for b, (out, stride) in enumerate(zip(channels, strides), start=1):
            for i in range(layers_per_block):
                s = stride if i == 0 else 1
                layers.append(SuperkernelMBConv(ch, out, s, kernel_sizes, expansions, size,
                                                temperature, threshold_init))
                self.layer_names.append(f"b{b}.{i}")
                size, ch = _out_size(size, s), out
        self.layers = nn.ModuleList(layers)
        self.head = _conv_bn(ch, head_channels, 1) if head_channels else nn.Identity()
        features = head_channels or ch
        if head_channels:
            self._fixed_flops += 2 * size * size * ch * head_channels
            self._fixed_params += ch * head_channels + 2 * head_channels
        self.pool, self.dropout = nn.AdaptiveAvgPool2d(1), nn.Dropout(dropout)
        self.classifier = nn.Linear(features, num_classes)
        self._fixed_flops += 2 * features * num_classes
        self._fixed_params += features * num_classes + num_classes
        if cost == "latency":  # stem, head and classifier are fixed: only the layers count
            for layer in self.layers:
                layer.measure_latency()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        x = self.pool(self.head(x)).flatten(1)
        return self.classifier(self.dropout(x))

    def arch_parameters(self) -> list[nn.Parameter]:
        """The thresholds (learned with their own learning rate, no weight decay)."""
        return [p for layer in self.layers for p in layer.arch_parameters()]

    def full_cost(self) -> int:
        """FLOPs per image, parameters or measured latency (ms, layers only) of the full
        supernet as a plain net (every layer at its largest kernel and expansion)."""
        fixed = self._fixed_cost()
        return fixed + sum(layer.full_cost(self.cost_kind) for layer in self.layers)

    def _fixed_cost(self) -> float:
        return {"flops": self._fixed_flops, "params": self._fixed_params}.get(self.cost_kind, 0.0)

    def expected_cost(self) -> torch.Tensor:
        """The chosen child's FLOPs, params or latency (``cost``) as a fraction of
        :meth:`full_cost`: a scalar in (0, 1], exact in value, differentiable in the thresholds
        (straight-through)."""
        fixed = self._fixed_cost()
        total = sum(layer.cost(self.cost_kind) for layer in self.layers)
        return (fixed + total) / self.full_cost()

    @torch.no_grad()
    def decisions(self) -> dict[str, float]:
        """``arch/<layer>/kernel`` and ``arch/<layer>/expansion`` (0: skipped) for every layer
        (``b{block}.{layer}``, blocks from 1), and ``arch/cost``: :meth:`expected_cost`."""
        out: dict[str, float] = {}
        for name, layer in zip(self.layer_names, self.layers):
            kernel, expansion = layer.choice()
            out[f"arch/{name}/kernel"] = float(kernel)
            out[f"arch/{name}/expansion"] = float(expansion)
        out["arch/cost"] = float(self.expected_cost())
        return out

    @torch.no_grad()
    def arch_spec(self) -> ArchSpec:
        layers = []
        for layer in self.layers:
            kernel, expansion = layer.choice()
            layers.append(LayerSpec(0, 0, layer.out_channels, 1) if expansion == 0 else
                          LayerSpec(kernel, expansion, layer.out_channels, layer.stride))
        return ArchSpec(self.stem_channels, self.stem_stride, tuple(layers), self.head_channels)

    def arch_string(self) -> str:
        """The current decisions as an architecture string (see the module doc)."""
        return format_arch(self.arch_spec())


@register_model("superkernel")
def superkernel(num_classes: int, in_channels: int, image_size: int, preset: str = "full_res",
                width_mult: float = 1.0, channels: str | Sequence[int] = MOBILENET_CHANNELS,
                strides: str | Sequence[int] | None = None,
                kernel_sizes: str | Sequence[int] = (3, 5, 7, 9),
                expansions: str | Sequence[int] = (3, 6, 9), layers_per_block: int = 2,
                stem_channels: int | None = None, head_channels: int | None = None,
                channel_divisor: int = 8, cost: str = "flops", temperature: float = 1.0,
                threshold_init: float = 0.0, dropout: float = 0.0) -> SuperkernelNet:
    """The Single-Path NAS supernet (see the module doc).

    ``channels`` per block (scaled by ``width_mult``, rounded to ``channel_divisor``);
    ``strides`` per block, default from ``preset`` (``full_res``: the research variant, no
    downsampling; ``mobilenet``: MobileNetV2's); ``layers_per_block`` searchable MBConv layers
    per block; ``stem_channels`` default the first block's, ``head_channels`` default 4× the
    last block's (``0``: no head conv); ``cost``: what :meth:`~SuperkernelNet.expected_cost`
    measures, ``flops`` or ``params``; ``temperature`` of the indicators' sigmoid relaxation.
    Tuples may be given as comma-separated strings (``"3,5,7,9"``), as search spaces do.
    """
    if not (isinstance(width_mult, (int, float)) and width_mult > 0):
        raise ValueError(f"superkernel: width_mult={width_mult!r}; rule: a number > 0")
    if not (_is_int(channel_divisor) and channel_divisor >= 1):
        raise ValueError(f"superkernel: channel_divisor={channel_divisor!r}; rule: >= 1")
    base = _int_tuple("channels", channels)
    block_channels = tuple(make_divisible(c * width_mult, int(channel_divisor)) for c in base)
    stem_stride, preset_block_strides = preset_strides(preset, len(block_channels), image_size)
    block_strides = preset_block_strides if strides is None else _int_tuple("strides", strides)
    ks = _int_tuple("kernel_sizes", kernel_sizes)
    es = _int_tuple("expansions", expansions)
    rules = [
        ("channels", all(c > 0 for c in base), "all > 0"),
        ("strides", len(block_strides) == len(block_channels) and all(s in (1, 2) for s in
                                                                      block_strides),
         f"one stride (1 or 2) per block ({len(block_channels)})"),
        ("kernel_sizes", list(ks) == sorted(set(ks)) and all(k % 2 == 1 and k > 0 for k in ks),
         "odd sizes, strictly increasing"),
        ("expansions", list(es) == sorted(set(es)) and es[0] >= 1,
         "integers >= 1, strictly increasing"),
        ("layers_per_block", _is_int(layers_per_block) and layers_per_block >= 1,
         "an integer >= 1"),
        ("cost", cost in COSTS, f"one of {COSTS}"),
        ("temperature", isinstance(temperature, (int, float)) and temperature > 0, "> 0"),
        ("dropout", 0.0 <= dropout < 1.0, "0 <= dropout < 1"),
        ("stem_channels", stem_channels is None or (_is_int(stem_channels) and stem_channels >= 1),
         "an integer >= 1"),
        ("head_channels", head_channels is None or (_is_int(head_channels) and head_channels >= 0),
         "an integer >= 0 (0: no head conv)"),
    ]
    values = {"channels": channels, "strides": strides, "kernel_sizes": kernel_sizes,
              "expansions": expansions, "layers_per_block": layers_per_block, "cost": cost,
              "temperature": temperature, "dropout": dropout, "stem_channels": stem_channels,
              "head_channels": head_channels}
    for name, ok, rule in rules:
        if not ok:
            raise ValueError(f"superkernel: {name}={values[name]!r}; rule: {rule}")
    stem = int(stem_channels or block_channels[0])
    head = 4 * block_channels[-1] if head_channels is None else int(head_channels)
    return SuperkernelNet(num_classes, in_channels, image_size, block_channels, block_strides,
                          stem, stem_stride, head, int(layers_per_block), ks, es, cost,
                          float(temperature), float(threshold_init), float(dropout))


# ---------------------------------------------------------------------------------------------
# the plain child net
# ---------------------------------------------------------------------------------------------


class MBConv(nn.Module):
    """A plain MBConv / inverted residual (MobileNetV2): 1×1 expand, k×k depthwise, 1×1
    project, residual when stride 1 and channels match."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, expansion: int,
                 stride: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.expand = _conv_bn(in_channels, hidden, 1)
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = _conv_bn(hidden, out_channels, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(self.depthwise(self.expand(x)))
        return x + h if self.residual else h


class MBConvNet(nn.Module):
    """The plain net an architecture string describes (skipped layers removed)."""

    def __init__(self, num_classes: int, in_channels: int, spec: ArchSpec,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.spec = spec
        self.stem = _conv_bn(in_channels, spec.stem_channels, 3, spec.stem_stride)
        layers, ch = [], spec.stem_channels
        for layer in spec.layers:
            if layer.skipped:
                if layer.out_channels != ch:
                    raise ValueError(f"mbconv_net: a skipped layer needs {ch} = "
                                     f"{layer.out_channels} channels; rule: skip keeps shapes")
                continue
            layers.append(MBConv(ch, layer.out_channels, layer.kernel, layer.expansion,
                                 layer.stride))
            ch = layer.out_channels
        self.layers = nn.Sequential(*layers)
        self.head = (_conv_bn(ch, spec.head_channels, 1) if spec.head_channels
                     else nn.Identity())
        self.pool, self.dropout = nn.AdaptiveAvgPool2d(1), nn.Dropout(dropout)
        self.classifier = nn.Linear(spec.head_channels or ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.layers(self.stem(x)))).flatten(1)
        return self.classifier(self.dropout(x))

    def arch_string(self) -> str:
        return format_arch(self.spec)


DEFAULT_CHILD_ARCH = format_arch(ArchSpec(
    16, 1, tuple(LayerSpec(3, 6, c, s if i == 0 else 1)
                 for c, s in zip(MOBILENET_CHANNELS, (1, 1, 2, 2, 1, 2, 1)) for i in range(2)),
    1280))


@register_model("mbconv_net")
def mbconv_net(num_classes: int, in_channels: int, image_size: int,
               arch: str = DEFAULT_CHILD_ARCH, dropout: float = 0.0) -> MBConvNet:
    """A plain MBConv net from an architecture string (e.g. a superkernel search's result,
    ``SuperkernelNet.arch_string()``); the default is MobileNetV2-like with 3×3 kernels."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"mbconv_net: dropout={dropout}; rule: 0 <= dropout < 1")
    return MBConvNet(num_classes, in_channels, parse_arch(arch), dropout)


def _copy_conv_bn(dst: nn.Sequential, src_conv: nn.Conv2d, src_bn: nn.BatchNorm2d,
                  out_slice: slice, in_slice: slice = slice(None), crop: slice = slice(None)
                  ) -> None:
    dst_conv, dst_bn = dst[0], dst[1]
    dst_conv.weight.copy_(src_conv.weight[out_slice, in_slice, crop, crop])
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst_bn, name).copy_(getattr(src_bn, name)[out_slice])
    dst_bn.num_batches_tracked.copy_(src_bn.num_batches_tracked)
    dst_bn.eps, dst_bn.momentum = src_bn.eps, src_bn.momentum


@torch.no_grad()
def extract_child(supernet: SuperkernelNet, dropout: float | None = None) -> MBConvNet:
    """The plain net of ``supernet``'s current decisions with its trained weights: centred
    kernel crops, leading expansion channels, BatchNorm statistics. In eval mode it computes
    what the supernet computes (the supernet's dropped choices contribute exactly 0)."""
    spec = supernet.arch_spec()
    p = supernet.dropout.p if dropout is None else dropout
    child = MBConvNet(supernet.num_classes, supernet.in_channels, spec, p)
    child.to(next(supernet.parameters()).device)
    _copy_conv_bn(child.stem, supernet.stem[0], supernet.stem[1], slice(None))
    kept = [layer for layer, ls in zip(supernet.layers, spec.layers) if not ls.skipped]
    specs = [ls for ls in spec.layers if not ls.skipped]
    for src, dst, ls in zip(kept, child.layers, specs):
        hidden = slice(0, src.in_channels * ls.expansion)
        lo = (src.kernel_sizes[-1] - ls.kernel) // 2
        _copy_conv_bn(dst.expand, src.expand[0], src.expand[1], hidden)
        _copy_conv_bn(dst.depthwise, src.depthwise, src.dw_bn, hidden,
                      crop=slice(lo, lo + ls.kernel))
        _copy_conv_bn(dst.project, src.project[0], src.project[1], slice(None), hidden)
    if spec.head_channels:
        _copy_conv_bn(child.head, supernet.head[0], supernet.head[1], slice(None))
    child.classifier.load_state_dict(supernet.classifier.state_dict())
    child.train(supernet.training)
    return child
