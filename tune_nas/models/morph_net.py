"""A morphable network (:class:`MorphNet`, the model ``morph_net``) and function-preserving
transforms of it (:func:`apply_morph`): a child starts from its parent's trained weights and,
before it trains, computes exactly what its parent computes (in eval mode).

The family and the morph dicts are described in :mod:`tune_nas.spaces.morph_spec`: a chain of
conv → BN → ReLU (→ 2×2 max-pool) layers, ResNet-style skips through 1×1 projections added
before a layer's ReLU, global average pooling and a linear head. The transforms follow Net2Net
(Chen, Goodfellow & Shlens, "Net2Net: Accelerating Learning via Knowledge Transfer", ICLR 2016)
and AutoKeras's morphism operations (Jin, Song & Hu, KDD 2019):

* **widen** (Net2WiderNet): the new output channels of layer ``l`` copy randomly chosen old
  ones (``numpy.random.RandomState(seed)``): conv rows, BN weight/bias/running mean/running
  variance, and the rows of every skip projection *into* ``l``. Every consumer of ``l``'s
  output — layer ``l + 1``'s conv, the skip projections *from* ``l``, the linear head when
  ``l`` is last — splits a replicated channel's input weights among its replicas: each gets
  ``1 / count`` (``split="equal"``, the paper's) or a random positive share, the shares
  summing to 1 (``split="random"``, which breaks the replicas' symmetry). Max-pooling and
  average pooling act per channel, so replicas stay replicas up to the consumer.
* **widen_all**: the widen of each layer that grows, in layer order (each exact, so is the chain).
* **deepen** (Net2DeeperNet): the inserted layer's conv is the identity (Dirac), its BN the
  identity in eval mode (running mean 0, running variance 1, weight ``sqrt(1 + eps)``, bias 0),
  and its ReLU the identity on its input, which is a ReLU output (maybe max-pooled), >= 0.
* **skip**: the new projection is zero.
* **kernel**: the conv weight is zero-padded to the larger kernel (same padding keeps the
  result).

State-dict keys are plain and stable: ``layers.<l>.conv.weight``, ``layers.<l>.bn.*``,
``skips.<i>_<j>.weight``, ``head.weight``, ``head.bias``; a parent's checkpoint loads into
``MorphNet(parent_spec, ...)`` with ``strict=True``, and :func:`apply_morphs` replays a
child's transforms on it deterministically.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tune_nas.models.registry import register_model
from tune_nas.spaces.morph_spec import MorphSpec, apply_to_spec, default_pools, layer_widens, max_pools, small_spec

BN_KEYS = ("weight", "bias", "running_mean", "running_var")


class MorphLayer(nn.Module):
    """One layer's parameters: k×k conv (same padding, no bias) and BatchNorm (ReLU and pool
    carry none)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)


def _skip_key(i: int, j: int) -> str:
    return f"{i}_{j}"


class MorphNet(nn.Module):
    """The network of a :class:`~tune_nas.spaces.morph_spec.MorphSpec` for ``in_channels``-channel
    images and ``num_classes`` classes. Given ``image_size``, a spec with more pools than the
    image has halvings (a pool of a 1 px map) is refused. Skip projections start at zero."""

    def __init__(self, spec: MorphSpec, num_classes: int, in_channels: int, image_size: int | None = None) -> None:
        super().__init__()
        if image_size is not None and spec.num_pools > max_pools(image_size):
            raise ValueError(f"morph_net: arch with {spec.num_pools} pools for image_size={image_size}; rule: at most "
                             f"{max_pools(image_size)} 2x2 pools (then the map is 1 px)")
        self.spec, self.num_classes, self.in_channels, self.image_size = spec, num_classes, in_channels, image_size
        channels = [in_channels] + [layer.channels for layer in spec.layers]
        self.layers = nn.ModuleList(MorphLayer(channels[index], layer.channels, layer.kernel)
                                    for index, layer in enumerate(spec.layers))
        self.skips = nn.ModuleDict({_skip_key(i, j): nn.Conv2d(channels[i + 1], channels[j + 1], 1, bias=False)
                                    for i, j in spec.skips})
        for projection in self.skips.values():
            nn.init.zeros_(projection.weight)
        self.head = nn.Linear(channels[-1], num_classes)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self._into = [[i for i, j in spec.skips if j == index] for index in range(spec.num_layers)]
        self._kept = {i for i, _ in spec.skips}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: dict[int, torch.Tensor] = {}
        for index, (layer, layer_spec) in enumerate(zip(self.layers, self.spec.layers)):
            z = layer.bn(layer.conv(x))
            for i in self._into[index]:
                z = z + self.skips[_skip_key(i, index)](outputs[i])
            x = F.relu(z)
            if index in self._kept:
                outputs[index] = x
            if layer_spec.pool:
                x = self.pool(x)
        return self.head(x.mean((2, 3)))

    def arch_string(self) -> str:
        """The spec as compact JSON: reported as ``arch``, the argument that rebuilds this net."""
        return self.spec.to_json()


@register_model("morph_net")
def morph_net(num_classes: int, in_channels: int, image_size: int, arch: str | Mapping[str, Any] | None = None,
              width: int = 16, depth: int = 3) -> MorphNet:
    """A :class:`MorphNet` from ``arch`` (a MorphSpec as JSON text or a dict, e.g. a trial's
    reported ``arch``); without it the seed ``small_spec(width, depth)`` whose first layers pool
    while the map stays >= 2 px (never the last). Any image size and channel count (a spec's
    pools must fit the image)."""
    if arch is None:
        for name, value in (("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"morph_net: {name}={value!r}; rule: an integer >= 1")
        spec = small_spec(width, depth, default_pools(image_size, depth))
    elif isinstance(arch, MorphSpec):
        spec = arch
    elif isinstance(arch, str):
        spec = MorphSpec.from_json(arch)
    else:
        spec = MorphSpec.from_dict(arch)
    return MorphNet(spec, num_classes, in_channels, image_size)


# ----- function-preserving transforms -----
def _widen(spec: MorphSpec, old: dict[str, torch.Tensor], new: dict[str, torch.Tensor], morph: Mapping[str, Any]) -> None:
    """Net2WiderNet on the state dicts (``new`` already holds every unchanged tensor)."""
    index, channels = morph["layer"], morph["channels"]
    before = spec.layers[index].channels
    rs = np.random.RandomState(morph["seed"])
    mapping = np.concatenate([np.arange(before), rs.randint(0, before, size=channels - before)])
    counts = np.bincount(mapping, minlength=before)
    if morph.get("split", "equal") == "random":
        shares = np.empty(channels)
        for channel in range(before):
            replicas = np.flatnonzero(mapping == channel)
            shares[replicas] = rs.dirichlet(np.ones(len(replicas))) if len(replicas) > 1 else 1.0
    else:
        shares = 1.0 / counts[mapping]
    rows = torch.as_tensor(mapping)
    prefix = f"layers.{index}."
    new[prefix + "conv.weight"] = old[prefix + "conv.weight"][rows]
    for key in BN_KEYS:
        new[prefix + "bn." + key] = old[prefix + "bn." + key][rows]
    for i, j in spec.skips:
        if j == index:  # a projection into the widened layer: its output rows are copied
            key = f"skips.{_skip_key(i, j)}.weight"
            new[key] = old[key][rows]

    def split(key: str) -> None:  # a consumer: replicated input columns share the old weight
        weight = old[key]
        share = torch.as_tensor(shares, dtype=weight.dtype, device=weight.device)
        new[key] = weight[:, rows] * share.view(1, -1, *([1] * (weight.dim() - 2)))

    if index + 1 < spec.num_layers:
        split(f"layers.{index + 1}.conv.weight")
    else:
        split("head.weight")
    for i, j in spec.skips:
        if i == index:
            split(f"skips.{_skip_key(i, j)}.weight")


def _deepen(spec: MorphSpec, old: dict[str, torch.Tensor], new: dict[str, torch.Tensor], morph: Mapping[str, Any],
            child: MorphNet) -> None:
    """Net2DeeperNet: renumber the layers after ``after`` and make the inserted one the identity."""
    after = morph["after"]
    shift = lambda m: m + 1 if m > after else m
    for key, value in old.items():
        parts = key.split(".")
        if parts[0] == "layers":
            parts[1] = str(shift(int(parts[1])))
        elif parts[0] == "skips":
            i, j = map(int, parts[1].split("_"))
            parts[1] = _skip_key(shift(i), shift(j))
        new[".".join(parts)] = value
    inserted = f"layers.{after + 1}."
    nn.init.dirac_(new[inserted + "conv.weight"])
    eps = child.layers[after + 1].bn.eps
    new[inserted + "bn.weight"].fill_(math.sqrt(1.0 + eps))
    new[inserted + "bn.bias"].zero_()
    new[inserted + "bn.running_mean"].zero_()
    new[inserted + "bn.running_var"].fill_(1.0)
    new[inserted + "bn.num_batches_tracked"].zero_()


def _grow_kernel(spec: MorphSpec, old: dict[str, torch.Tensor], new: dict[str, torch.Tensor],
                 morph: Mapping[str, Any]) -> None:
    key = f"layers.{morph['layer']}.conv.weight"
    pad = (morph["kernel"] - spec.layers[morph["layer"]].kernel) // 2
    new[key] = F.pad(old[key], (pad, pad, pad, pad))


@torch.no_grad()
def apply_morph(model: MorphNet, morph: Mapping[str, Any]) -> MorphNet:
    """A new :class:`MorphNet` of ``apply_to_spec(model.spec, morph)`` (ValueError if the morph
    does not apply) that computes what ``model`` computes in eval mode; same device, dtype and
    train/eval mode; ``model`` is left unchanged."""
    if not isinstance(model, MorphNet):
        raise ValueError(f"apply_morph: model {type(model).__name__}; rule: a MorphNet (model morph_net)")
    spec = apply_to_spec(model.spec, morph)
    if morph["op"] == "widen_all":  # its layers' widens, one after another
        return apply_morphs(model, layer_widens(model.spec, morph))
    reference = next(model.parameters())
    child = MorphNet(spec, model.num_classes, model.in_channels, model.image_size)
    child.to(device=reference.device, dtype=reference.dtype)
    old = model.state_dict()
    new = {key: value.clone() for key, value in child.state_dict().items()}
    op = morph["op"]
    if op == "deepen":
        _deepen(model.spec, old, new, morph, child)
    else:
        new.update({key: value for key, value in old.items() if key in new})
        if op == "widen":
            _widen(model.spec, old, new, morph)
        elif op == "kernel":
            _grow_kernel(model.spec, old, new, morph)
        else:  # skip: the new projection stays zero
            nn.init.zeros_(new[f"skips.{_skip_key(morph['from'], morph['to'])}.weight"])
    child.load_state_dict(new, strict=True)
    return child.train(model.training)


def apply_morphs(model: MorphNet, morphs: Iterable[Mapping[str, Any]]) -> MorphNet:
    """:func:`apply_morph` for each morph in order (``model`` itself when there are none)."""
    for morph in morphs:
        model = apply_morph(model, morph)
    return model

