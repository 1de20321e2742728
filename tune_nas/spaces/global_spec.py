"""A global search space's genotype (torch-free): what ``global_net`` builds, as flat
parameters every searcher handles and ``evolution`` mutates one at a time.

The network (:mod:`tune_nas.models.global_net`) is a chain over ``stages`` resolutions: a
stem, then per stage ``slots`` searchable slots, a 2×2 pooling (``pool``: max or avg) and an
entry conv to double the channels between stages, global average pooling, dropout and a
linear head. Channels are fixed per stage (width × 2^stage): on limited resources fixing the
channels is better than searching them (the research's lesson), and it keeps every merge cheap.

Each slot ``i`` (numbered along the whole chain) has two parameters:

* ``op_i`` (:data:`OPS`): ``none`` (the slot passes its input on: the depth varies),
  ``conv3``/``conv5`` (k×k conv → BN → ReLU), ``sep5`` (a depthwise 5×5 and a pointwise conv →
  BN → ReLU), ``res3`` (a ResNet basic block: two 3×3 convs with an identity skip).
* ``skip_i`` (:data:`SKIPS`): 0, or k: the slot's output is summed pixel-wise with the output
  of the node k steps back along the chain (node 0 is the stem, node j the output of slot
  j - 1), a skip connection that may cross stages. A source with a larger feature map is
  brought to the slot's size by area interpolation (average pooling), one with other channels
  by a 1×1 conv and BN: the dimension handling the research found to matter when arbitrary
  architectures are merged.

``arch`` strings round-trip (:meth:`GlobalSpec.to_string`, :meth:`GlobalSpec.parse`): slots
separated by ``,``, stages by ``/``, a skip as ``+k``: ``conv3,res3+2,none/conv5,...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OPS = ("none", "conv3", "conv5", "sep5", "res3")
SKIPS = (0, 2, 3)
POOLS = ("max", "avg")
#: The most slots a flat encoding may name (stages × slots per stage): the model's signature.
MAX_SLOTS = 15
OP_PARAM, SKIP_PARAM = "op_{}", "skip_{}"


def param_names(num_slots: int) -> tuple[list[str], list[str]]:
    """The flat encoding's names: ``op_0 .. op_{n-1}`` and ``skip_0 .. skip_{n-1}``."""
    return [OP_PARAM.format(i) for i in range(num_slots)], [SKIP_PARAM.format(i) for i in range(num_slots)]


def param_choices(stages: int = 3, slots: int = 3, ops: tuple[str, ...] = OPS,
                  skips: tuple[int, ...] = SKIPS) -> dict[str, list]:
    """Each flat parameter's choices, for a space file (``tune.choice`` of each)."""
    _check_shape(stages, slots)
    unknown = sorted(set(ops) - set(OPS)) + sorted(str(k) for k in set(skips) - set(SKIPS))
    if unknown:
        raise ValueError(f"global space: unknown op or skip {unknown}; rule: ops from {OPS}, skips from {SKIPS}")
    names_ops, names_skips = param_names(stages * slots)
    return {**{n: list(ops) for n in names_ops}, **{n: list(skips) for n in names_skips}}


def _check_shape(stages: int, slots: int) -> None:
    for name, value in (("stages", stages), ("slots", slots)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"global space: {name}={value!r}; rule: an integer >= 1")
    if stages * slots > MAX_SLOTS:
        raise ValueError(f"global space: stages × slots = {stages * slots}; rule: <= {MAX_SLOTS}")


@dataclass(frozen=True)
class GlobalSpec:
    """One network of the space: ``stages`` groups of slots, each slot an op and a skip."""

    ops: tuple[tuple[str, ...], ...]
    skips: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not self.ops or len(self.ops) != len(self.skips):
            raise ValueError(f"global space: {len(self.ops)} stages of ops, {len(self.skips)} of skips; "
                             "rule: the same number, >= 1")
        for s, (ops, skips) in enumerate(zip(self.ops, self.skips)):
            if not ops or len(ops) != len(skips):
                raise ValueError(f"global space: stage {s} has {len(ops)} ops and {len(skips)} skips; "
                                 "rule: one skip per op, >= 1 slot")
            for op in ops:
                if op not in OPS:
                    raise ValueError(f"global space: op {op!r} in stage {s}; rule: one of {OPS}")
            for k in skips:
                if isinstance(k, bool) or k not in SKIPS:
                    raise ValueError(f"global space: skip {k!r} in stage {s}; rule: one of {SKIPS}")

    @property
    def stages(self) -> int:
        return len(self.ops)

    def slots(self) -> list[tuple[int, int, str, int]]:
        """(stage, slot index along the chain, op, skip) of every slot, in order."""
        out, i = [], 0
        for s, (ops, skips) in enumerate(zip(self.ops, self.skips)):
            for op, k in zip(ops, skips):
                out.append((s, i, op, k))
                i += 1
        return out

    def to_string(self) -> str:
        return "/".join(",".join(op + (f"+{k}" if k else "") for op, k in zip(ops, skips))
                        for ops, skips in zip(self.ops, self.skips))

    @classmethod
    def parse(cls, text: str) -> GlobalSpec:
        """The spec an arch string describes; ValueError naming the part and the rule."""
        ops, skips = [], []
        for stage in str(text).split("/"):
            stage_ops, stage_skips = [], []
            for slot in stage.split(","):
                op, _, k = slot.strip().partition("+")
                if k and not k.isdigit():
                    raise ValueError(f"global space: slot {slot!r} of arch {text!r}; rule: op or op+k, k in {SKIPS[1:]}")
                stage_ops.append(op)
                stage_skips.append(int(k) if k else 0)
            ops.append(tuple(stage_ops))
            skips.append(tuple(stage_skips))
        return cls(tuple(ops), tuple(skips))

    @classmethod
    def from_params(cls, params: Mapping[str, object], stages: int, slots: int) -> GlobalSpec:
        """The spec of a flat encoding (``op_i``/``skip_i``); ValueError naming a missing one."""
        _check_shape(stages, slots)
        names_ops, names_skips = param_names(stages * slots)
        missing = [n for n in (*names_ops, *names_skips) if params.get(n) is None]
        if missing:
            raise ValueError(f"global space: {missing[0]} not given; rule: {stages} stages × {slots} slots "
                             f"need op_0 .. op_{stages * slots - 1} and skip_0 .. skip_{stages * slots - 1}")
        extra = [n for n in param_names(MAX_SLOTS)[0][stages * slots:] + param_names(MAX_SLOTS)[1][stages * slots:]
                 if params.get(n) is not None]
        if extra:
            raise ValueError(f"global space: {extra[0]} given; rule: {stages} stages × {slots} slots "
                             f"name slots 0 .. {stages * slots - 1} only")
        ops = [str(params[n]) for n in names_ops]
        skips = [int(params[n]) if isinstance(params[n], str) and params[n].isdigit() else params[n]
                 for n in names_skips]  # a number, or its digits (an arch read from JSON)
        return cls(tuple(tuple(ops[s * slots:(s + 1) * slots]) for s in range(stages)),
                   tuple(tuple(skips[s * slots:(s + 1) * slots]) for s in range(stages)))
