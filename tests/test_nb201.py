"""The nb201 model: NAS-Bench-201's network around one cell."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tune_nas.models import create_model
from tune_nas.tabular import DEFAULT_ARCH, NB201Table, arch_string, parse_arch

BEST_BY_VAL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
WITH_NONE = "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
DEAD = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|none~2|"
POOLS = "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", [DEFAULT_ARCH, WITH_NONE, DEAD, POOLS])
@pytest.mark.parametrize("in_channels, size", [(1, 28), (1, 8), (3, 32), (2, 9)])
def test_forward_and_backward_for_several_cells_and_shapes(arch, in_channels, size):
    torch.manual_seed(0)
    model = create_model("nb201", num_classes=7, in_channels=in_channels, image_size=size, arch=arch, C=4, N=1)
    out = model(torch.randn(3, in_channels, size, size))
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert grads["head.4.bias"] is not None and grads["head.4.bias"].abs().sum() > 0
    if arch != DEAD:  # a dead cell feeds the classifier zeros (see below)
        assert grads["head.4.weight"] is not None and grads["head.4.weight"].abs().sum() > 0
    assert model.arch_string() == arch


def test_a_dead_cell_predicts_a_constant_with_finite_gradients():
    """All edges into node 3 are ``none``: every cell outputs zeros, so the net predicts the
    classifier's bias whatever the image (chance: the table's ~10 % on CIFAR-10), yet the
    forward and backward passes stay finite and only the bias gets a gradient."""
    torch.manual_seed(0)
    model = create_model("nb201", 10, 3, 16, arch=DEAD, C=4, N=2)
    out = model(torch.randn(4, 3, 16, 16))
    assert torch.isfinite(out).all()
    assert torch.allclose(out, model.head[4].bias.expand(4, 10))
    out.logsumexp(1).sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert grads["head.4.bias"].abs().sum() > 0
    assert all(g is None or not g.any() for name, g in grads.items() if name != "head.4.bias")
    alive = create_model("nb201", 10, 3, 16, arch=WITH_NONE, C=4, N=2)
    alive(torch.randn(4, 3, 16, 16)).logsumexp(1).sum().backward()
    assert alive.cells[2].conv_b[1].weight.grad.abs().sum() > 0  # the same net with a live cell: gradients flow


@pytest.mark.parametrize("arch", [DEFAULT_ARCH, BEST_BY_VAL, WITH_NONE, DEAD])
def test_parameter_counts_are_the_tables_model_size(arch):
    """C=16, N=5, 10 classes: the table's ``model_size`` (million parameters) to the parameter."""
    expected = NB201Table("cifar10").lookup(parse_arch(arch), np.random.default_rng(0))["model_size"]
    assert _params(create_model("nb201", 10, 3, 32, arch=arch)) == round(expected * 1e6)
    if arch == BEST_BY_VAL:  # the paper's optimum: ~1.07 M parameters
        assert expected == pytest.approx(1.07, abs=0.01)


def test_edges_are_an_alternative_to_the_arch_string():
    ops = parse_arch(WITH_NONE)
    by_edges = create_model("nb201", 10, 1, 8, C=4, N=1, **{f"edge{i}": op for i, op in enumerate(ops)})
    assert by_edges.arch_string() == WITH_NONE == arch_string(ops)
    assert create_model("nb201", 10, 1, 8, C=4, N=1).arch_string() == DEFAULT_ARCH
    with pytest.raises(ValueError, match="rule: choose the cell by one of them"):
        create_model("nb201", 10, 1, 8, arch=WITH_NONE, edge0="none")
    with pytest.raises(ValueError, match="rule: all six edges"):
        create_model("nb201", 10, 1, 8, edge0="none", edge3="skip_connect")
    with pytest.raises(ValueError, match="rule: '\\|op~0\\|"):
        create_model("nb201", 10, 1, 8, arch="|conv~0|")
    with pytest.raises(ValueError, match=r"nb201: image_size=6; rule: >= 8 px"):
        create_model("nb201", 10, 1, 6)
    with pytest.raises(ValueError, match=r"nb201: C=0; rule"):
        create_model("nb201", 10, 1, 8, C=0)
