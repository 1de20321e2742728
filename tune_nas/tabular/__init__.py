"""Tabular benchmarks: recorded results looked up instead of trained (numpy only, no torch, no Ray)."""

from tune_nas.tabular.nasbench201 import (
    DATASETS,
    DEFAULT_ARCH,
    EDGE_KEYS,
    EDGES,
    OPS,
    NB201Table,
    TableData,
    TabularError,
    arch_string,
    cell_ops,
    parse_arch,
)

__all__ = ["DATASETS", "DEFAULT_ARCH", "EDGE_KEYS", "EDGES", "OPS", "NB201Table", "TableData", "TabularError",
           "arch_string", "cell_ops", "parse_arch"]
