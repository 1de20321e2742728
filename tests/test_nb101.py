"""The nb101 model: NAS-Bench-101's network around one cell (a DAG of at most 7 vertices)."""

from __future__ import annotations

import json

import pytest
import torch

from tune_nas.models import create_model
from tune_nas.models.nb101 import DEFAULT_MATRIX, DEFAULT_OPS, compute_vertex_channels
from tune_nas.spaces.nasbench101 import canonical_hash
from tune_nas.trial.run import architecture_metrics

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"

CHAIN = ([[0, 1, 0, 0, 0, 0, 0],
          [0, 0, 1, 0, 0, 0, 0],
          [0, 0, 0, 1, 0, 0, 0],
          [0, 0, 0, 0, 1, 0, 0],
          [0, 0, 0, 0, 0, 1, 0],
          [0, 0, 0, 0, 0, 0, 1],
          [0, 0, 0, 0, 0, 0, 0]], ["input", C3, C1, MP, C3, C1, "output"])
WIDE = ([[0, 1, 1, 1, 1, 0],
         [0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 0]], ["input", C3, C1, MP, C3, "output"])
INPUT_TO_OUTPUT = ([[0, 1, 0, 1],
                    [0, 0, 1, 0],
                    [0, 0, 0, 1],
                    [0, 0, 0, 0]], ["input", C3, MP, "output"])
ONLY_INPUT_TO_OUTPUT = ([[0, 1], [0, 0]], ["input", "output"])
# vertex 3 feeds nothing and vertex 4 is fed by nothing: pruning leaves input → 1 → 2 → output
DANGLING = ([[0, 1, 0, 0, 0, 0],
             [0, 0, 1, 1, 0, 0],
             [0, 0, 0, 0, 0, 1],
             [0, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 0, 1],
             [0, 0, 0, 0, 0, 0]], ["input", C3, C1, MP, C3, "output"])
DANGLING_PRUNED = ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", C3, C1, "output"])
# with 8 output channels vertices 1, 2, 3 get 3, 3, 2: vertex 1 (3) feeds vertex 3 (2), cut to 2
TRUNCATED = ([[0, 1, 1, 0, 0],
              [0, 0, 0, 1, 1],
              [0, 0, 0, 0, 1],
              [0, 0, 0, 0, 1],
              [0, 0, 0, 0, 0]], ["input", C1, C3, C3, "output"])

# Two cells with their `trainable_parameters` from the benchmark's table (CIFAR-10, stem 128,
# 3 stacks of 3 cells): the README's Inception-like cell as the table stores it (canonical
# vertex order) and the cell of the API's get_metrics_from_hash example.
INCEPTION_CANONICAL = ([[0, 1, 1, 1, 1, 0, 0],
                        [0, 0, 0, 0, 0, 0, 1],
                        [0, 0, 0, 0, 0, 0, 1],
                        [0, 0, 0, 0, 0, 0, 1],
                        [0, 0, 0, 0, 0, 1, 0],
                        [0, 0, 0, 0, 0, 0, 1],
                        [0, 0, 0, 0, 0, 0, 0]], ["input", C3, C1, MP, C3, C3, "output"])
HASH_EXAMPLE = ([[0, 1, 0, 0, 1, 1, 0],
                 [0, 0, 1, 0, 0, 0, 0],
                 [0, 0, 0, 1, 0, 0, 1],
                 [0, 0, 0, 0, 0, 1, 0],
                 [0, 0, 0, 0, 0, 1, 0],
                 [0, 0, 0, 0, 0, 0, 1],
                 [0, 0, 0, 0, 0, 0, 0]], ["input", C3, MP, C3, C3, C1, "output"])


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _model(cell, in_channels=3, size=32, **kwargs):
    matrix, ops = cell
    kwargs = {"stem_channels": 8, "cells_per_stack": 1, **kwargs}
    return create_model("nb101", num_classes=7, in_channels=in_channels, image_size=size, matrix=matrix, ops=ops,
                        **kwargs)


@pytest.mark.parametrize("cell", [CHAIN, WIDE, INPUT_TO_OUTPUT, ONLY_INPUT_TO_OUTPUT, DANGLING, TRUNCATED],
                         ids=["chain", "wide", "input_to_output", "only_input_to_output", "dangling", "truncated"])
@pytest.mark.parametrize("in_channels, size", [(1, 8), (3, 32), (2, 9)])
def test_forward_and_backward_for_several_cells_and_shapes(cell, in_channels, size):
    torch.manual_seed(0)
    model = _model(cell, in_channels, size)
    out = model(torch.randn(3, in_channels, size, size))
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():  # pruning leaves no unused parameter
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.head[2].weight.grad.abs().sum() > 0 and model.stem[0].weight.grad.abs().sum() > 0


def test_the_input_feeding_the_output_adds_its_projection_to_the_concatenation():
    """INPUT_TO_OUTPUT: the cell's output is vertex 2 (the only inner vertex feeding it, all
    the channels) plus the cell input projected to the cell's width."""
    torch.manual_seed(0)
    model = _model(INPUT_TO_OUTPUT).eval()
    cell = model.cells[0]
    assert cell.channels == [8, 8, 8, 8] and set(cell.input_projections) == {"1"}
    x = torch.randn(2, 8, 6, 6)
    expected = cell.vertex_ops[1](cell.vertex_ops[0](cell.input_projections["1"](x))) + cell.output_projection(x)
    assert torch.allclose(cell(x), expected)
    assert _model(CHAIN).cells[0].output_projection is None


def test_pruning_drops_dangling_vertices():
    """The dangling cell is the pruned cell: same parameters, same outputs, same arch string."""
    torch.manual_seed(0)
    dangling = _model(DANGLING).eval()
    torch.manual_seed(0)
    pruned = _model(DANGLING_PRUNED).eval()
    assert _params(dangling) == _params(pruned)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(dangling(x), pruned(x))
    assert json.loads(dangling.arch_string()) == {"matrix": DANGLING_PRUNED[0], "ops": DANGLING_PRUNED[1]}


def test_vertex_channels_split_the_output_evenly_and_propagate_backwards():
    assert compute_vertex_channels(64, 128, [list(row) for row in DEFAULT_MATRIX]) == [64, 32, 32, 32, 32, 32, 128]
    assert compute_vertex_channels(4, 8, TRUNCATED[0]) == [4, 3, 3, 2, 8]
    assert compute_vertex_channels(5, 128, CHAIN[0]) == [5, 128, 128, 128, 128, 128, 128]
    # vertices 1, 4, 5 feed the output (43 + 43 + 42); 2 feeds 4 and 5 (the wider: 43), 3 feeds 5 (42)
    matrix = [[0, 1, 1, 1, 0, 0, 0],
              [0, 0, 0, 0, 0, 0, 1],
              [0, 0, 0, 0, 1, 1, 0],
              [0, 0, 0, 0, 0, 1, 0],
              [0, 0, 0, 0, 0, 0, 1],
              [0, 0, 0, 0, 0, 0, 1],
              [0, 0, 0, 0, 0, 0, 0]]
    assert compute_vertex_channels(16, 128, matrix) == [16, 43, 43, 42, 43, 42, 128]


@pytest.mark.parametrize("cell, expected", [((list(DEFAULT_MATRIX), list(DEFAULT_OPS)), 2_694_282),
                                            (INCEPTION_CANONICAL, 2_694_282), (HASH_EXAMPLE, 8_555_530)])
def test_parameter_counts_are_the_benchmarks_trainable_parameters(cell, expected):
    """The paper's network (stem 128, 3 stacks of 3 cells) on CIFAR-10: the table's
    ``trainable_parameters`` to the parameter (BN's scale and shift count, as in TensorFlow)."""
    model = create_model("nb101", 10, 3, 32, matrix=cell[0], ops=cell[1])
    assert _params(model) == expected
    assert _params(create_model("nb101", 10, 3, 32)) == 2_694_282  # the default is the README's cell


def test_arch_string_is_compact_json_that_round_trips():
    model = _model(HASH_EXAMPLE)
    arch = model.arch_string()
    assert " " not in arch and arch.startswith('{"matrix":[[0,1,0,0,1,1,0],')
    cell = json.loads(arch)
    assert cell == {"matrix": HASH_EXAMPLE[0], "ops": HASH_EXAMPLE[1]}
    assert _model((cell["matrix"], cell["ops"])).arch_string() == arch
    assert architecture_metrics(model) == {"arch": arch, "arch_hash": canonical_hash(model.cell)}


CHAIN_OF_8 = ([[int(j == i + 1) for j in range(8)] for i in range(8)], ["input", *[C3] * 6, "output"])


@pytest.mark.parametrize("kwargs, message", [
    ({"matrix": [[0, 1, 0], [1, 0, 1], [0, 0, 0]], "ops": ["input", C3, "output"]}, "strictly upper-triangular"),
    ({"matrix": [[1, 1], [0, 0]], "ops": ["input", "output"]}, "strictly upper-triangular"),
    ({"matrix": [[0, 1, 0], [0, 0, 0], [0, 0, 0]], "ops": ["input", C3, "output"]}, "input must reach the output"),
    ({"matrix": [[0, 2], [0, 0]], "ops": ["input", "output"]}, "entries must be 0 or 1"),
    ({"matrix": CHAIN_OF_8[0], "ops": CHAIN_OF_8[1]}, "at most 7 vertices and 9 edges after pruning (has 8 and 7)"),
    ({"matrix": [[0, 1, 1], [0, 0, 1]], "ops": ["input", C3, "output"]}, "must be 3x3"),
    ({"matrix": CHAIN[0], "ops": ["input", C3, "conv5x5", MP, C3, C1, "output"]}, "inner ops must be one of"),
    ({"matrix": CHAIN[0], "ops": CHAIN[1][:-1]}, "one row and column per op"),
    ({"matrix": [[0] + [1] * 6] + [[0] * 6 + [1] for _ in range(5)] + [[0] * 7]}, "(has 7 and 11)"),
    ({"stacks": 0}, "stacks=0; rule: an integer >= 1"),
    ({"stem_channels": 3}, "stem_channels=3; rule: >= the 4 vertices feeding"),
])
def test_invalid_cells_and_arguments_are_refused_in_one_line(kwargs, message):
    args = {"matrix": list(DEFAULT_MATRIX), "ops": list(DEFAULT_OPS), **kwargs}
    with pytest.raises(ValueError) as refused:
        create_model("nb101", 10, 3, 32, **args)
    text = str(refused.value)
    assert message in text and "\n" not in text and text.startswith("nb101: ")


def test_images_smaller_than_8_px_are_refused():
    with pytest.raises(ValueError, match="image_size=7; rule: >= 8 px"):
        create_model("nb101", 10, 1, 7)
