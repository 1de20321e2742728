"""Morphable networks as pure genotypes: :class:`MorphSpec`, its JSON codec, and the transforms
(*morphs*) that grow it while a network keeps computing the same function.

A :class:`MorphSpec` is a chain of layers and a set of skips (built by
:class:`tune_nas.models.morph_net.MorphNet`):

* layer ``l`` is a k×k convolution (same padding, no bias) → BatchNorm → ReLU, then, when
  ``pool``, a 2×2 max-pool (stride 2, ``ceil_mode``: a 7 px map becomes 4 px);
* skip ``(i, j)`` (``i < j``) takes layer ``i``'s output after its ReLU and *before* its pool
  through a 1×1 convolution projection and adds it to layer ``j``'s BatchNorm output, *before*
  layer ``j``'s ReLU (ResNet-style). So every layer's output is >= 0, which is what makes a
  layer inserted anywhere (an identity conv → BN → ReLU) exact. A skip is valid only if no layer
  ``i .. j-1`` pools (the two maps have the same size);
* a head: global average pooling and a linear layer.

A *morph* is a small JSON-able dict; applying it is deterministic (a warm-started child replays
its parent's morphs). :func:`apply_to_spec` gives the grown spec and
:func:`tune_nas.models.morph_net.apply_morph` the network with function-preserving weights:

* ``{"op": "widen", "layer": l, "channels": c, "seed": s}`` — layer ``l`` gets ``c`` (> current)
  channels; the new ones copy existing ones chosen by ``numpy.random.RandomState(s)``
  (Net2WiderNet, Chen, Goodfellow & Shlens, "Net2Net: Accelerating Learning via Knowledge
  Transfer", ICLR 2016). Optional ``"split"``: ``"equal"`` (the default, the paper's: every
  consumer divides a replicated channel's weights by its replication count) or ``"random"``
  (random positive shares that sum to 1, drawn from the same seed; exactly as function
  preserving, and the replicas then get different gradients: with equal shares and no
  dropout or noise, replicas receive identical gradients and stay copies forever).
  :func:`possible_morphs` proposes ``"random"``.
* ``{"op": "widen_all", "channels": [c0, c1, ...], "seed": s}`` — every layer ``l`` gets ``c_l``
  (>= current, at least one >) channels: the widens of the layers that grow, layer by layer,
  layer ``l``'s seeded ``s + l`` (mod 2**32); optional ``"split"`` as for ``widen``. The
  experiment of Net2Net's Section 4.2 (a thinner teacher widened at every layer); it grows a
  network in one step where single-layer widens need one generation a layer.
* ``{"op": "deepen", "after": l}`` — a layer with layer ``l``'s channels, kernel 3 and no pool is
  inserted at index ``l + 1``. Layer ``l`` keeps its pool, so the new layer comes *after* that
  pool and sees ``pool(relu(...)) >= 0``; initialised as the identity (Dirac conv, a BatchNorm
  that is the identity in eval mode, ReLU of a non-negative input) it is exact (Net2DeeperNet).
  Skip indices after ``l`` shift by one.
* ``{"op": "skip", "from": i, "to": j}`` — a new skip, its projection zero-initialised.
* ``{"op": "kernel", "layer": l, "kernel": k}`` — layer ``l``'s kernel grows to ``k`` (odd, >
  current); the weights are zero-padded around the old ones.

These are the morphism operations of AutoKeras (Jin, Song & Hu, KDD 2019: ``to_wider_layer``,
``to_deeper_layer``, ``to_add_skip_model``) on a simpler, always-valid family. Torch-free: the
``morphism`` searcher imports this module.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The morph operations and the keys each one requires (``widen`` and ``widen_all`` may also
#: have ``split``).
MORPH_KEYS: dict[str, tuple[str, ...]] = {
    "widen": ("layer", "channels", "seed"),
    "widen_all": ("channels", "seed"),
    "deepen": ("after",),
    "skip": ("from", "to"),
    "kernel": ("layer", "kernel"),
}
#: The operations :func:`possible_morphs` proposes unless told otherwise (``MorphLimits.ops``):
#: ``widen_all`` is opt-in (measured in the README's "Network morphism": it grew the networks,
#: and moved the best accuracy by -0.35 to +0.8 points, within the runs' noise).
DEFAULT_OPS: tuple[str, ...] = ("widen", "deepen", "skip", "kernel")
#: The operations that copy channels: they carry a ``seed`` and may have a ``split``.
WIDENING_OPS: tuple[str, ...] = ("widen", "widen_all")
SPLITS = ("equal", "random")
MAX_SEED = 2**32 - 1  # numpy.random.RandomState's seed range


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Layer:
    """One conv (``kernel``×``kernel``, same padding) → BN → ReLU layer of ``channels`` outputs,
    followed by a 2×2 max-pool when ``pool``."""

    channels: int
    kernel: int = 3
    pool: bool = False

    def check(self, where: str) -> None:
        """ValueError (one line, naming ``where`` and the field) unless the layer is valid."""
        if not _is_int(self.channels) or self.channels < 1:
            raise ValueError(f"morph_spec: {where}.channels={self.channels!r}; rule: an integer >= 1")
        if not _is_int(self.kernel) or self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"morph_spec: {where}.kernel={self.kernel!r}; rule: an odd integer >= 1 "
                             "(same padding keeps the map's size)")
        if not isinstance(self.pool, bool):
            raise ValueError(f"morph_spec: {where}.pool={self.pool!r}; rule: true or false")


@dataclass(frozen=True)
class MorphSpec:
    """A chain of :class:`Layer` and skips ``(i, j)``, ``i < j`` (see the module docstring).
    Validated on construction; skips are kept sorted, so equal networks have equal specs."""

    layers: tuple[Layer, ...]
    skips: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.layers, tuple) or not self.layers:
            raise ValueError(f"morph_spec: layers={self.layers!r}; rule: a non-empty tuple of Layer")
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"morph_spec: layers[{index}]={layer!r}; rule: a Layer")
            layer.check(f"layers[{index}]")
        if not isinstance(self.skips, (tuple, list)):
            raise ValueError(f"morph_spec: skips={self.skips!r}; rule: a tuple of (i, j) pairs")
        skips = tuple(tuple(s) if isinstance(s, (tuple, list)) else s for s in self.skips)
        for skip in skips:
            self._check_skip(skip)
        skips = tuple(sorted(skips))
        for a, b in zip(skips, skips[1:]):
            if a == b:
                raise ValueError(f"morph_spec: skips has {a} twice; rule: each skip at most once")
        object.__setattr__(self, "skips", skips)

    def _check_skip(self, skip: object) -> None:
        n = len(self.layers)
        if not (isinstance(skip, tuple) and len(skip) == 2 and all(_is_int(v) for v in skip)):
            raise ValueError(f"morph_spec: skip {skip!r}; rule: a pair of layer indices (i, j)")
        i, j = skip
        if not 0 <= i < j < n:
            raise ValueError(f"morph_spec: skip {skip}; rule: 0 <= i < j < {n} (the number of layers)")
        pooling = [m for m in range(i, j) if self.layers[m].pool]
        if pooling:
            raise ValueError(f"morph_spec: skip {skip}; rule: no layer {i}..{j - 1} may pool (layer {pooling[0]} "
                             "does), so both maps have the same size")

    # ----- questions -----
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_pools(self) -> int:
        return sum(layer.pool for layer in self.layers)

    def can_skip(self, i: int, j: int) -> bool:
        """Whether a skip ``(i, j)`` would be valid (it may already exist)."""
        return 0 <= i < j < len(self.layers) and not any(layer.pool for layer in self.layers[i:j])

    # ----- codec -----
    def as_dict(self) -> dict[str, list]:
        """``{"layers": [[channels, kernel, pool], ...], "skips": [[i, j], ...]}``."""
        return {"layers": [[layer.channels, layer.kernel, layer.pool] for layer in self.layers],
                "skips": [list(skip) for skip in self.skips]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MorphSpec:
        """The inverse of :meth:`as_dict`; a layer may also be ``{"channels", "kernel", "pool"}``
        (kernel 3 and no pool by default). ValueError naming the key or the broken rule."""
        if not isinstance(data, Mapping) or "layers" not in data or set(data) - {"layers", "skips"}:
            raise ValueError(f"morph_spec: {data!r}; rule: a dict with 'layers' and optionally 'skips'")
        if not isinstance(data["layers"], (list, tuple)):
            raise ValueError(f"morph_spec: layers={data['layers']!r}; rule: a list of [channels, kernel, pool]")
        layers = []
        for index, raw in enumerate(data["layers"]):
            if isinstance(raw, Mapping) and set(raw) <= {"channels", "kernel", "pool"} and "channels" in raw:
                layers.append(Layer(raw["channels"], raw.get("kernel", 3), raw.get("pool", False)))
            elif isinstance(raw, (list, tuple)) and len(raw) == 3:
                layers.append(Layer(*raw))
            else:
                raise ValueError(f"morph_spec: layers[{index}]={raw!r}; rule: [channels, kernel, pool] or a dict "
                                 "with channels, kernel, pool")
        skips = data.get("skips", [])
        if not isinstance(skips, (list, tuple)):
            raise ValueError(f"morph_spec: skips={skips!r}; rule: a list of [i, j] pairs")
        return cls(tuple(layers), tuple(tuple(s) if isinstance(s, (list, tuple)) else s for s in skips))

    def to_json(self) -> str:
        """Compact JSON of :meth:`as_dict`: the ``arch`` a trial reports."""
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> MorphSpec:
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"morph_spec: {text!r}; rule: JSON of {{\"layers\": [...], \"skips\": [...]}} "
                             f"({error})") from None
        return cls.from_dict(data)


def small_spec(width: int = 16, depth: int = 3, pools: int = 2, kernel: int = 3) -> MorphSpec:
    """A seed architecture: ``depth`` layers of ``width`` channels, the first ``pools`` of them
    pooling, no skips."""
    if not _is_int(depth) or depth < 1:
        raise ValueError(f"morph_spec: depth={depth!r}; rule: an integer >= 1")
    if not _is_int(pools) or not 0 <= pools <= depth:
        raise ValueError(f"morph_spec: pools={pools!r}; rule: an integer 0..depth ({depth})")
    return MorphSpec(tuple(Layer(width, kernel, index < pools) for index in range(depth)))


def max_pools(image_size: int) -> int:
    """How many 2×2 ``ceil_mode`` pools an ``image_size`` px map takes before it is 1 px (a
    further pool would change nothing): 8 px → 3 (4, 2, 1), 7 px → 3 (4, 2, 1), 1 px → 0."""
    count = 0
    while image_size > 1:
        image_size, count = (image_size + 1) // 2, count + 1
    return count


def default_pools(image_size: int, depth: int) -> int:
    """The pools of a default seed: one per layer but the last, while the map stays >= 2 px."""
    return max(0, min(depth - 1, max_pools(image_size) - 1))


def param_count(spec: MorphSpec, in_channels: int, num_classes: int) -> int:
    """The number of trainable parameters of ``MorphNet(spec, num_classes, in_channels)``."""
    total, c_in = 0, in_channels
    for layer in spec.layers:
        total += c_in * layer.channels * layer.kernel**2 + 2 * layer.channels  # conv, BN weight and bias
        c_in = layer.channels
    total += sum(spec.layers[i].channels * spec.layers[j].channels for i, j in spec.skips)
    return total + c_in * num_classes + num_classes


# ----- morphs -----
def _refuse(morph: object, key: str, value: object, rule: str) -> None:
    raise ValueError(f"morph {morph!r}: {key}={value!r}; rule: {rule}")


def _index(morph: Mapping[str, Any], key: str, n: int) -> int:
    value = morph[key]
    if not _is_int(value) or not 0 <= value < n:
        _refuse(dict(morph), key, value, f"a layer index 0..{n - 1}")
    return value


def check_morph(spec: MorphSpec, morph: Mapping[str, Any]) -> None:
    """ValueError (one line naming the key, its value and the rule) unless ``morph`` is a
    well-formed morph that applies to ``spec``."""
    if not isinstance(morph, Mapping) or morph.get("op") not in MORPH_KEYS:
        op = morph.get("op") if isinstance(morph, Mapping) else None
        _refuse(morph, "op", op, f"one of {', '.join(MORPH_KEYS)}")
    op = morph["op"]
    required = MORPH_KEYS[op]
    widening = op in WIDENING_OPS
    allowed = {"op", *required, *(("split",) if widening else ())}
    missing, unknown = [k for k in required if k not in morph], sorted(set(morph) - allowed)
    if missing or unknown:
        _refuse(dict(morph), "keys", sorted(morph), f"a {op} morph has exactly op, {', '.join(required)}"
                + (" and optionally split" if widening else ""))
    n = spec.num_layers
    if widening:
        if not _is_int(morph["seed"]) or not 0 <= morph["seed"] <= MAX_SEED:
            _refuse(dict(morph), "seed", morph["seed"], f"an integer 0..{MAX_SEED}")
        if morph.get("split", "equal") not in SPLITS:
            _refuse(dict(morph), "split", morph["split"], f"one of {', '.join(SPLITS)}")
    if op == "widen":
        layer = spec.layers[_index(morph, "layer", n)]
        if not _is_int(morph["channels"]) or morph["channels"] <= layer.channels:
            _refuse(dict(morph), "channels", morph["channels"], f"an integer > the layer's {layer.channels}")
    elif op == "widen_all":
        channels, now = morph["channels"], [layer.channels for layer in spec.layers]
        if (not isinstance(channels, (list, tuple)) or len(channels) != n or not all(map(_is_int, channels))
                or any(c < old for c, old in zip(channels, now)) or list(channels) == now):
            _refuse(dict(morph), "channels", channels, f"a list of {n} integers, each >= the layer's "
                    f"channels {now}, at least one larger")
    elif op == "deepen":
        _index(morph, "after", n)
    elif op == "skip":
        i, j = _index(morph, "from", n), _index(morph, "to", n)
        if not spec.can_skip(i, j):
            _refuse(dict(morph), "from/to", (i, j), "i < j and no layer i..j-1 pools")
        if (i, j) in spec.skips:
            _refuse(dict(morph), "from/to", (i, j), "a skip that does not exist yet")
    else:
        layer = spec.layers[_index(morph, "layer", n)]
        k = morph["kernel"]
        if not _is_int(k) or k <= layer.kernel or k % 2 == 0:
            _refuse(dict(morph), "kernel", k, f"an odd integer > the layer's {layer.kernel}")


def layer_widens(spec: MorphSpec, morph: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The single-layer ``widen`` morphs a ``widen_all`` morph of ``spec`` consists of, in layer
    order (layer ``l`` seeded ``seed + l``); ValueError if it does not apply."""
    check_morph(spec, morph)
    split = {"split": morph["split"]} if "split" in morph else {}
    return [{"op": "widen", "layer": index, "channels": channels, "seed": (morph["seed"] + index) % (MAX_SEED + 1),
             **split}
            for index, (channels, layer) in enumerate(zip(morph["channels"], spec.layers))
            if channels > layer.channels]


def apply_to_spec(spec: MorphSpec, morph: Mapping[str, Any]) -> MorphSpec:
    """The spec ``morph`` turns ``spec`` into (ValueError if it does not apply)."""
    check_morph(spec, morph)
    layers, op = list(spec.layers), morph["op"]
    if op == "widen_all":
        return MorphSpec(tuple(Layer(c, layer.kernel, layer.pool) for c, layer in zip(morph["channels"], layers)),
                         spec.skips)
    if op == "widen":
        layer = layers[morph["layer"]]
        layers[morph["layer"]] = Layer(morph["channels"], layer.kernel, layer.pool)
        return MorphSpec(tuple(layers), spec.skips)
    if op == "deepen":
        after = morph["after"]
        layers.insert(after + 1, Layer(layers[after].channels, 3, False))
        shift = lambda m: m + 1 if m > after else m
        return MorphSpec(tuple(layers), tuple((shift(i), shift(j)) for i, j in spec.skips))
    if op == "skip":
        return MorphSpec(spec.layers, (*spec.skips, (morph["from"], morph["to"])))
    layer = layers[morph["layer"]]
    layers[morph["layer"]] = Layer(layer.channels, morph["kernel"], layer.pool)
    return MorphSpec(tuple(layers), spec.skips)


def describe(morph: Mapping[str, Any]) -> str:
    """A morph in words: ``"widen layer 2 to 24"``, ``"deepen after layer 1"``, ``"skip 0 -> 2"``,
    ``"kernel of layer 1 to 5"``."""
    op = morph.get("op")
    if op == "widen":
        return f"widen layer {morph['layer']} to {morph['channels']}"
    if op == "widen_all":
        return f"widen every layer to {list(morph['channels'])}"
    if op == "deepen":
        return f"deepen after layer {morph['after']}"
    if op == "skip":
        return f"skip {morph['from']} -> {morph['to']}"
    if op == "kernel":
        return f"kernel of layer {morph['layer']} to {morph['kernel']}"
    return f"unknown morph {dict(morph)!r}"


#: What :func:`valid_ops` accepts, as a refusal states it.
OPS_RULE = f"a non-empty list of {', '.join(MORPH_KEYS)}"


def valid_ops(ops: Any) -> bool:
    """Whether ``ops`` names operations to draw: a non-empty list (or tuple) of :data:`MORPH_KEYS`
    (a set would not survive the experiment's JSON files)."""
    return (isinstance(ops, (list, tuple)) and bool(ops) and all(isinstance(op, str) for op in ops)
            and not set(ops) - set(MORPH_KEYS))


@dataclass(frozen=True)
class MorphLimits:
    """How far :func:`possible_morphs` grows a spec, and how: at most ``max_layers`` layers,
    ``max_channels`` channels a layer, kernels up to ``max_kernel``; a layer is widened by each
    of ``widen_factors`` (rounded, capped at ``max_channels``); only the operations in ``ops``."""

    max_layers: int = 8
    max_channels: int = 128
    max_kernel: int = 7
    widen_factors: tuple[float, ...] = (1.5, 2.0)
    ops: tuple[str, ...] = DEFAULT_OPS

    def __post_init__(self) -> None:
        for name in ("max_layers", "max_channels", "max_kernel"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"morph limits: {name}={value!r}; rule: an integer >= 1")
        if self.max_kernel % 2 == 0:
            raise ValueError(f"morph limits: max_kernel={self.max_kernel}; rule: an odd integer")
        if not self.widen_factors or any(not isinstance(f, (int, float)) or f <= 1 for f in self.widen_factors):
            raise ValueError(f"morph limits: widen_factors={self.widen_factors!r}; rule: numbers > 1")
        if not valid_ops(self.ops):
            raise ValueError(f"morph limits: ops={self.ops!r}; rule: {OPS_RULE}")


def possible_morphs(spec: MorphSpec, limits: MorphLimits | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Every morph of ``spec`` within ``limits`` (of its ``ops``), in a fixed order (widen,
    widen_all, deepen, skip, kernel); widen morphs carry ``seed`` and ``"split": "random"`` (see
    the module docstring). ``widen_all`` scales every layer by one of ``widen_factors`` (each
    capped)."""
    limits = limits or MorphLimits()
    return [m for m in _all_morphs(spec, limits, seed) if m["op"] in limits.ops]


def _all_morphs(spec: MorphSpec, limits: MorphLimits, seed: int) -> list[dict[str, Any]]:
    morphs: list[dict[str, Any]] = []

    def widened(channels: int, factor: float) -> int:
        return max(channels, min(limits.max_channels, int(channels * factor + 0.5)))

    for index, layer in enumerate(spec.layers):
        targets = sorted({widened(layer.channels, f) for f in limits.widen_factors})
        morphs += [{"op": "widen", "layer": index, "channels": c, "seed": seed, "split": "random"}
                   for c in targets if c > layer.channels]
    now = [layer.channels for layer in spec.layers]
    scaled = {tuple(widened(c, f) for c in now) for f in sorted(limits.widen_factors)}
    morphs += [{"op": "widen_all", "channels": list(c), "seed": seed, "split": "random"}
               for c in sorted(scaled) if list(c) != now]
    if spec.num_layers < limits.max_layers:
        morphs += [{"op": "deepen", "after": index} for index in range(spec.num_layers)]
    morphs += [{"op": "skip", "from": i, "to": j} for j in range(spec.num_layers) for i in range(j)
               if spec.can_skip(i, j) and (i, j) not in spec.skips]
    for index, layer in enumerate(spec.layers):
        morphs += [{"op": "kernel", "layer": index, "kernel": k} for k in range(layer.kernel + 2, limits.max_kernel + 1, 2)]
    return morphs


def _draw(rng: Any, n: int) -> int:
    """A uniform integer 0..n-1 from a ``random.Random``, ``numpy.random.RandomState`` or ``Generator``."""
    if isinstance(rng, random.Random):
        return rng.randrange(n)
    if hasattr(rng, "integers"):
        return int(rng.integers(n))
    return int(rng.randint(n))


def random_morph(spec: MorphSpec, rng: Any, limits: MorphLimits | None = None) -> dict[str, Any] | None:
    """One morph of :func:`possible_morphs` at random: first an operation uniformly among those
    with a proposal (so the many possible skips do not crowd out the rest), then one of its
    proposals; a widen gets a fresh seed from ``rng``. None when nothing can grow within
    ``limits``. ``rng``: ``random.Random``, ``numpy.random.RandomState`` or ``numpy.random.Generator``."""
    by_op: dict[str, list[dict[str, Any]]] = {}
    for morph in possible_morphs(spec, limits):
        by_op.setdefault(morph["op"], []).append(morph)
    if not by_op:
        return None
    ops: Sequence[str] = sorted(by_op)
    candidates = by_op[ops[_draw(rng, len(ops))]]
    morph = dict(candidates[_draw(rng, len(candidates))])
    if morph["op"] in WIDENING_OPS:
        morph["seed"] = _draw(rng, 2**31)
    return morph
