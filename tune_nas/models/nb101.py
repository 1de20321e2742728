"""NAS-Bench-101's network (Ying et al., ICML 2019) around one cell: the model ``nb101``.

A cell is a DAG of at most 7 vertices given as an upper-triangular 0/1 adjacency ``matrix``
(``matrix[i][j] = 1``: vertex ``i`` feeds vertex ``j``) and an ``ops`` list: ``input``, inner
vertices from :data:`~tune_nas.spaces.nasbench101.OPS`, ``output``; at most 9 edges. Vertices
that are not on an input→output path are pruned first, as the benchmark does; a cell whose
input does not reach its output is refused.

The skeleton, as the benchmark's ``model_builder``: a 3×3 conv-BN-ReLU stem
(``stem_channels``), ``stacks`` stacks of ``cells_per_stack`` cells with a 2×2 max-pool and
doubled channels before every stack but the first, global average pooling and a linear layer.
Inside a cell of ``C`` output channels: the output vertex concatenates the vertices feeding it,
which share ``C`` evenly (:func:`compute_vertex_channels`); the cell's input reaches each vertex
it feeds through its own 1×1 conv-BN-ReLU projection to that vertex's width, and the output
through one to ``C``, added to the concatenation; a vertex sums its inputs (wider ones cut to
its width) and applies its op. With the defaults (stem 128, 3 stacks of 3 cells) on CIFAR-10
the parameter counts are the benchmark's ``trainable_parameters`` to the parameter (see
``tests/test_nb101.py``).

One deviation for odd feature maps: the 2×2 max-pool uses ``ceil_mode`` (TensorFlow's ``same``
padding, which the benchmark uses), so a 7 px map becomes 4 px; even sizes are unaffected.
BatchNorm keeps PyTorch's defaults (the benchmark's TF momentum 0.997 suits its 108 epochs, not
a short search).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from torch import nn

from tune_nas.models.registry import register_model, with_flat_parameters
from tune_nas.spaces.nasbench101 import (
    INPUT,
    MAX_EDGES,
    MAX_VERTICES,
    OPS,
    OUTPUT,
    PARAM_MAX_VERTICES,
    Cell,
    canonical_hash,
    cell_from_params,
    param_names,
)

CONV3X3, CONV1X1, MAXPOOL3X3 = OPS

# The Inception-like cell of the benchmark's README (a 5×5 conv as two 3×3 convs), the
# default: 2,694,282 parameters on CIFAR-10, validation accuracy 93.8 %, test 93.1 % after
# 108 epochs in the table (one of its three runs, as the README's example query prints).
DEFAULT_MATRIX = ((0, 1, 1, 1, 0, 1, 0),
                  (0, 0, 0, 0, 0, 0, 1),
                  (0, 0, 0, 0, 0, 0, 1),
                  (0, 0, 0, 0, 1, 0, 0),
                  (0, 0, 0, 0, 0, 0, 1),
                  (0, 0, 0, 0, 0, 0, 1),
                  (0, 0, 0, 0, 0, 0, 0))
DEFAULT_OPS = (INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT)


def _refuse(name: str, value: object, rule: str) -> None:
    raise ValueError(f"nb101: {name}={value!r}; rule: {rule}")


def pruned_cell(matrix: Sequence[Sequence[int]], ops: Sequence[str], max_vertices: int = MAX_VERTICES,
                max_edges: int = MAX_EDGES) -> Cell:
    """The cell checked against the benchmark's rules (:class:`~tune_nas.spaces.nasbench101.Cell`)
    and pruned to the vertices on an input→output path; a ValueError of one line naming the
    broken rule otherwise."""
    try:
        cell = Cell.from_lists(matrix, ops)
    except ValueError as error:
        raise ValueError(f"nb101: {error}") from None
    pruned = cell.pruned()
    if pruned is None:
        _refuse("cell", cell.as_dict(), "the input must reach the output along the edges")
    if pruned.num_vertices > max_vertices or pruned.num_edges > max_edges:
        _refuse("cell", cell.as_dict(), f"at most {max_vertices} vertices and {max_edges} edges after pruning "
                f"(has {pruned.num_vertices} and {pruned.num_edges})")
    return pruned


def compute_vertex_channels(input_channels: int, output_channels: int, matrix: Sequence[Sequence[int]]) -> list[int]:
    """Each vertex's width in a cell of ``output_channels``: the vertices feeding the output
    share its channels evenly (the first ones one more each while a remainder lasts), every
    other inner vertex takes the widest of its successors; the input keeps ``input_channels``.
    So a vertex is never narrower than one it feeds (a wider input is cut), and the output's
    concatenation is exactly ``output_channels`` wide."""
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[-1] = input_channels, output_channels
    feeds_output = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    if not feeds_output:  # input → output only
        return channels
    share, remainder = divmod(output_channels, len(feeds_output))
    for rank, v in enumerate(feeds_output):
        channels[v] = share + (1 if rank < remainder else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[dst] for dst in range(v + 1, n - 1) if matrix[v][dst])
    return channels


class ConvBNReLU(nn.Sequential):
    """k×k convolution (no bias, same size), BN, ReLU: the benchmark's conv ops and projections."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def _vertex_op(name: str, channels: int) -> nn.Module:
    if name == CONV3X3:
        return ConvBNReLU(channels, channels, 3)
    if name == CONV1X1:
        return ConvBNReLU(channels, channels, 1)
    return nn.MaxPool2d(3, stride=1, padding=1)


class NB101Cell(nn.Module):
    """One cell (the benchmark's "module") of a pruned :class:`Cell`, from ``c_in`` to ``c_out``
    channels at the same spatial size."""

    def __init__(self, cell: Cell, c_in: int, c_out: int) -> None:
        super().__init__()
        self.matrix = matrix = cell.matrix
        self.channels = compute_vertex_channels(c_in, c_out, matrix)
        n = len(matrix)
        self.input_projections = nn.ModuleDict({str(v): ConvBNReLU(c_in, self.channels[v], 1)
                                                for v in range(1, n - 1) if matrix[0][v]})
        self.vertex_ops = nn.ModuleList(_vertex_op(cell.ops[v], self.channels[v]) for v in range(1, n - 1))
        self.output_projection = ConvBNReLU(c_in, c_out, 1) if matrix[0][n - 1] else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.matrix)
        values = [x]
        for v in range(1, n - 1):
            inputs = [values[src][:, :self.channels[v]] for src in range(1, v) if self.matrix[src][v]]
            if self.matrix[0][v]:
                inputs.append(self.input_projections[str(v)](x))
            values.append(self.vertex_ops[v - 1](sum(inputs[1:], inputs[0])))
        concatenated = [values[v] for v in range(1, n - 1) if self.matrix[v][n - 1]]
        out = torch.cat(concatenated, dim=1) if concatenated else None
        if self.output_projection is not None:
            projected = self.output_projection(x)
            out = projected if out is None else out + projected
        return out


class NB101Network(nn.Module):
    """Stem, ``stacks`` stacks of ``cells_per_stack`` cells (max-pool and doubled channels
    between stacks), global average pooling, linear."""

    def __init__(self, cell: Cell, num_classes: int, in_channels: int, stem_channels: int, stacks: int,
                 cells_per_stack: int) -> None:
        super().__init__()
        self.cell = cell
        self.stem = ConvBNReLU(in_channels, stem_channels, 3)
        layers: list[nn.Module] = []
        channels = stem_channels
        for stack in range(stacks):
            c_in = channels
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                channels *= 2
            for _ in range(cells_per_stack):
                layers.append(NB101Cell(cell, c_in, channels))
                c_in = channels
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))

    def arch_string(self) -> str:
        """The pruned cell as compact JSON ``{"matrix": [[...]], "ops": [...]}``: reported as
        ``arch`` every epoch."""
        return json.dumps(self.cell.as_dict(), separators=(",", ":"))

    def arch_hash(self) -> str:
        """The cell's exact isomorphism-invariant key (:func:`~tune_nas.spaces.nasbench101.canonical_hash`):
        reported as ``arch_hash``; two trials with equal keys trained the same network."""
        return canonical_hash(self.cell)


def _nb101(num_classes: int, in_channels: int, image_size: int, matrix: Sequence[Sequence[int]] | None = None,
           ops: Sequence[str] | None = None, stem_channels: int = 128, stacks: int = 3, cells_per_stack: int = 3,
           max_vertices: int = MAX_VERTICES, max_edges: int = MAX_EDGES, **cell_params: object) -> nn.Module:
    """The NAS-Bench-101 network for one cell, given EITHER as ``matrix`` and ``ops`` OR as the flat
    encoding a search space samples (``edge_0`` .. and ``op_node_0`` .., see
    :func:`~tune_nas.spaces.nasbench101.cell_from_params`); neither: the Inception-like
    :data:`DEFAULT_MATRIX` / :data:`DEFAULT_OPS`. The cell is pruned as the benchmark prunes and
    must then have at most ``max_vertices`` vertices and ``max_edges`` edges. ``stem_channels``
    is the first stack's width (128 in the paper), doubled per stack. Any image of at least 8 px
    and any channel count."""
    if cell_params:
        if matrix is not None or ops is not None:
            _refuse("matrix/ops", "given", "a cell is matrix and ops OR edge_*/op_node_* parameters, not both")
        try:
            cell = cell_from_params(cell_params)
        except ValueError as error:
            raise ValueError(f"nb101: {error}") from None
        matrix, ops = cell.matrix, cell.ops
    for name, value in (("max_vertices", max_vertices), ("max_edges", max_edges)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            _refuse(name, value, "an integer >= 2")
    cell = pruned_cell(DEFAULT_MATRIX if matrix is None else matrix, DEFAULT_OPS if ops is None else ops,
                       max_vertices, max_edges)
    rules = [("stem_channels", stem_channels, isinstance(stem_channels, int) and stem_channels >= 1, "an integer >= 1"),
             ("stacks", stacks, isinstance(stacks, int) and stacks >= 1, "an integer >= 1"),
             ("cells_per_stack", cells_per_stack, isinstance(cells_per_stack, int) and cells_per_stack >= 1,
              "an integer >= 1"),
             ("image_size", image_size, image_size >= 8, ">= 8 px")]
    for name, value, ok, rule in rules:
        if not ok:
            _refuse(name, value, rule)
    feeders = sum(row[-1] for row in cell.matrix[1:])
    if stem_channels < feeders:
        _refuse("stem_channels", stem_channels, f">= the {feeders} vertices feeding the cell's output (one channel each)")
    return NB101Network(cell, num_classes, in_channels, stem_channels, stacks, cells_per_stack)


nb101 = register_model("nb101")(with_flat_parameters(_nb101, sum(param_names(PARAM_MAX_VERTICES), [])))
