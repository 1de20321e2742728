"""The Single-Path NAS superkernel: decisions from hand-set weights, the cost term, the child."""

import math

import pytest
import torch
import torch.nn.functional as F

from tune_nas.config.space_file import load_space
from tune_nas.models import architecture_args, create_model
from tune_nas.models.superkernel import (
    ArchSpec,
    LayerSpec,
    SuperkernelMBConv,
    depthwise_conv,
    extract_child,
    format_arch,
    parse_arch,
)
from tune_nas.trial.cost import count_parameters, flops_per_image
from tune_nas.trial.module import TrainingConfig

SUPERKERNEL_SPACES = ["superkernel_digits", "superkernel_mnist", "superkernel_cifar10"]


def layer_with(kernel_sizes=(3, 5), expansions=(1, 2), channels=2, stride=1, size=4,
               core=1.0, rings=(), groups=()) -> SuperkernelMBConv:
    """A layer whose depthwise weights are ``core`` inside the smallest kernel, ``rings[i]``
    in ring i+1, and whose channel group j+1 (j >= 0) is scaled by ``groups[j]``."""
    layer = SuperkernelMBConv(channels, channels, stride, kernel_sizes, expansions, size)
    kmax = kernel_sizes[-1]
    w = torch.zeros(kmax, kmax)
    for i, value in enumerate((core, *rings)):
        w += value * layer.rings[i]
    weight = w.expand(layer.hidden, 1, kmax, kmax).clone()
    bounds = layer.group_bounds
    for j, scale in enumerate(groups):
        weight[bounds[j]:bounds[j + 1]] *= scale
    with torch.no_grad():
        layer.depthwise.weight.copy_(weight)
    return layer


def set_thresholds(layer, kernel=None, expansion=None, skip=None) -> None:
    with torch.no_grad():
        if kernel is not None:
            layer.kernel_thresholds.copy_(torch.tensor(kernel, dtype=torch.float))
        if expansion is not None:
            layer.expansion_thresholds.copy_(torch.tensor(expansion, dtype=torch.float))
        if skip is not None:
            layer.skip_threshold.fill_(skip)


# ---- the superkernel math --------------------------------------------------------------------


def test_rings_partition_the_largest_kernel_into_centred_squares():
    layer = layer_with(kernel_sizes=(3, 5, 7), expansions=(1,))
    assert layer.rings.sum(0).eq(1).all()  # every tap in exactly one ring
    assert [int(r.sum()) for r in layer.rings] == [9, 25 - 9, 49 - 25]
    assert layer.rings[0][2:5, 2:5].eq(1).all() and layer.rings[1][1, 1:6].eq(1).all()


def test_a_ring_is_used_iff_its_mean_squared_weight_exceeds_the_threshold():
    # ring power = mean of 0.5² over the 16 ring taps = 0.25
    layer = layer_with(rings=(0.5,))
    set_thresholds(layer, kernel=[0.25 - 1e-4])
    assert layer.choice() == (5, 2)
    set_thresholds(layer, kernel=[0.25 + 1e-4])
    assert layer.choice() == (3, 2)
    mask = layer.gates().kernel_mask
    assert mask.sum() == 9 and mask[1:4, 1:4].eq(1).all()


def test_kernel_decisions_nest_an_outer_ring_needs_the_inner_one():
    # ring 5\3 is weak (0.01 < 0.5) while ring 7\5 is strong (4 > 0.5): the kernel stays 3
    layer = layer_with(kernel_sizes=(3, 5, 7), expansions=(1,), rings=(0.1, 2.0))
    set_thresholds(layer, kernel=[0.5, 0.5])
    assert layer.choice()[0] == 3
    assert [g.item() for g in layer.gates().kernel] == [0.0, 0.0]
    set_thresholds(layer, kernel=[0.005, 5.0])  # inner ring in, outer ring out
    assert layer.choice()[0] == 5
    set_thresholds(layer, kernel=[0.005, 3.9])
    assert layer.choice()[0] == 7


def test_expansion_groups_nest_and_are_judged_on_the_chosen_kernel():
    # kernel 3 is chosen (ring power ≈ 30 < threshold 100); group powers over the 3×3 core:
    # group 1 (channels 2-3) 0.1² = 0.01, group 2 (channels 4-5) 3² = 9
    layer = layer_with(expansions=(1, 2, 3), rings=(3.0,), groups=(1.0, 0.1, 3.0))
    set_thresholds(layer, kernel=[100.0], expansion=[0.5, 0.5])
    assert layer.choice() == (3, 1)  # the strong outer group cannot be used without group 1
    assert layer.gates().channel_mask.tolist() == [1, 1, 0, 0, 0, 0]
    set_thresholds(layer, expansion=[0.01 - 1e-4, 0.5])
    assert layer.choice() == (3, 3)
    set_thresholds(layer, expansion=[0.01 - 1e-4, 9.0 + 1e-3])
    assert layer.choice() == (3, 2)
    assert layer.gates().channel_mask.tolist() == [1, 1, 1, 1, 0, 0]
    # with kernel 5 the groups' power is the mean over 5×5: (9 + 16 × 9) / 25 = 6.12 for scale 1
    set_thresholds(layer, kernel=[0.0], expansion=[0.0, 0.0], skip=6.12 - 1e-3)
    assert layer.choice() == (5, 3)
    set_thresholds(layer, skip=6.12 + 1e-3)
    assert layer.choice() == (5, 0)


def test_a_skipped_layer_is_exactly_the_identity():
    torch.manual_seed(0)
    layer = layer_with(expansions=(1, 2), rings=(1.0,), groups=(0.1, 1.0))
    set_thresholds(layer, skip=0.5)  # group 0 power 0.01 < 0.5
    assert layer.choice()[1] == 0
    x = torch.randn(3, 2, 4, 4)
    layer.train()
    assert torch.equal(layer(x), x)


def test_only_residual_layers_can_be_skipped():
    downsample = SuperkernelMBConv(2, 4, 2, (3, 5), (1, 2), 8)
    assert downsample.skip_threshold is None
    with torch.no_grad():
        downsample.depthwise.weight.mul_(1e-3)  # every power far below any threshold
        downsample.expansion_thresholds.fill_(1.0)
        downsample.kernel_thresholds.fill_(1.0)
    assert downsample.choice() == (3, 1)
    same = SuperkernelMBConv(4, 4, 1, (3, 5), (1, 2), 8)
    assert same.skip_threshold is not None and len(same.arch_parameters()) == 3


def test_indicators_are_hard_forward_and_sigmoid_backward():
    layer = layer_with(rings=(0.5,))  # ring power 0.25
    set_thresholds(layer, kernel=[0.1])
    gate = layer.gates().kernel[0]
    assert gate.item() == 1.0
    gate.backward()
    s = torch.sigmoid(torch.tensor(0.25 - 0.1))  # temperature 1
    assert layer.kernel_thresholds.grad.item() == pytest.approx(-(s * (1 - s)).item(), rel=1e-5)


def test_the_loss_gradient_reaches_every_threshold():
    torch.manual_seed(0)
    model = create_model("superkernel", 3, 1, 6, channels="4,4", kernel_sizes="3,5",
                         expansions="1,2", head_channels=0)
    F.cross_entropy(model(torch.randn(4, 1, 6, 6)), torch.tensor([0, 1, 2, 0])).backward()
    grads = [p.grad for p in model.arch_parameters()]
    assert len(grads) == 4 * 3  # 4 residual layers: kernel, expansion and skip thresholds
    assert all(g is not None and g.abs().min() > 0 for g in grads)


# ---- the cost term ---------------------------------------------------------------------------


def tiny_net(cost="flops"):
    """1 grey 4×4 image → stem 4 ch → one layer (k 3/5, e 1/2, 4 → 4 ch) → linear to 3."""
    torch.manual_seed(0)
    return create_model("superkernel", 3, 1, 4, channels="4", channel_divisor=1,
                        layers_per_block=1, kernel_sizes="3,5", expansions="1,2",
                        head_channels=0, cost=cost)


# FLOPs = 2 × MACs: stem 16 px · 1 · 4 · 9; layer 16 px · (4·E + E·(k² + 4)); linear 4 · 3
STEM, LINEAR = 2 * 16 * 4 * 9, 2 * 4 * 3
FULL_FLOPS = STEM + 2 * 16 * (4 * 8 + 8 * (25 + 4)) + LINEAR  # E = 8, k = 5


def test_full_cost_is_the_hand_counted_flops_and_params():
    assert tiny_net().full_cost() == FULL_FLOPS == 9624
    # params: stem 36 + BN 8; layer 4·8 + 16 + 8·25 + 16 + 8·4 + 8; linear 12 + 3
    assert tiny_net("params").full_cost() == 44 + (32 + 16 + 200 + 16 + 32 + 8) + 15


def test_expected_cost_is_the_chosen_nets_fraction_of_the_full_cost():
    model = tiny_net()
    assert model.expected_cost().item() == pytest.approx(1.0)
    layer = model.layers[0]
    set_thresholds(layer, kernel=[1e3], expansion=[1e3])  # kernel 3, expansion 1 (E = 4)
    chosen = STEM + 2 * 16 * (4 * 4 + 4 * (9 + 4)) + LINEAR
    assert model.expected_cost().item() == pytest.approx(chosen / FULL_FLOPS)
    set_thresholds(layer, skip=1e3)
    assert model.expected_cost().item() == pytest.approx((STEM + LINEAR) / FULL_FLOPS)
    assert model.decisions()["arch/cost"] == pytest.approx((STEM + LINEAR) / FULL_FLOPS)


def test_the_cost_gradient_of_a_threshold_is_the_sigmoid_slope_times_the_flops_it_saves():
    model = tiny_net()
    layer = model.layers[0]
    # expansion and skip indicators far from their thresholds: their sigmoid slopes are 0, so
    # the kernel threshold reaches the cost only through the kernel area
    set_thresholds(layer, kernel=[0.3], expansion=[-1e3], skip=-1e3)
    power = (layer.depthwise.weight.squeeze(1).pow(2) * layer.rings[1]).sum() / (8 * 16)
    model.expected_cost().backward()
    s = torch.sigmoid(power - 0.3).item()
    ring_flops = 2 * 16 * 8 * (25 - 9)  # the 5×5 ring on 8 channels over 16 px
    assert layer.kernel_thresholds.grad.item() == pytest.approx(
        -s * (1 - s) * ring_flops / FULL_FLOPS, rel=1e-5)


@pytest.mark.parametrize("cost", ["flops", "params"])
def test_expected_cost_matches_the_measured_cost_of_the_child(cost):
    torch.manual_seed(1)
    model = create_model("superkernel", 10, 1, 8, preset="mobilenet", channels="8,8,16,16",
                         kernel_sizes="3,5,7", expansions="2,4", cost=cost, channel_divisor=4)
    thresholds = torch.rand(sum(p.numel() for p in model.arch_parameters())) * 2.0
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(thresholds, model.arch_parameters())
    child = extract_child(model)
    measured = (flops_per_image(child, 1, 8) if cost == "flops" else count_parameters(child))
    assert model.expected_cost().item() * model.full_cost() == pytest.approx(measured, rel=1e-6)
    assert len(child.layers) < len(model.layers) or "k3" in model.arch_string()


def test_the_cost_term_alone_shrinks_the_net():
    model = tiny_net()
    opt = torch.optim.Adam(model.arch_parameters(), lr=0.1)
    for _ in range(60):
        opt.zero_grad()
        model.expected_cost().backward()
        opt.step()
    assert model.expected_cost().item() == pytest.approx((STEM + LINEAR) / FULL_FLOPS)
    assert model.arch_string() == "stem-c4s1|skip|head-c0"


# ---- decisions, strings, the child ------------------------------------------------------------


def test_decisions_are_flat_floats_per_layer():
    model = create_model("superkernel", 10, 1, 8, channels="8,8,16", channel_divisor=8)
    set_thresholds(model.layers[1], skip=1e3)
    d = model.decisions()
    assert d["arch/b1.0/kernel"] == 9.0 and d["arch/b1.0/expansion"] == 9.0
    assert d["arch/b1.1/expansion"] == 0.0
    assert set(d) == {f"arch/b{b}.{i}/{k}" for b in (1, 2, 3) for i in (0, 1)
                      for k in ("kernel", "expansion")} | {"arch/cost"}
    assert all(isinstance(v, float) for v in d.values())
    assert model.arch_string().split("|")[2] == "skip"


def test_arch_strings_round_trip():
    text = "stem-c16s2|k9e6c16s1|skip|k5e3c24s2|k3e9c24s1|head-c0"
    spec = parse_arch(text)
    assert spec == ArchSpec(16, 2, (LayerSpec(9, 6, 16, 1), LayerSpec(0, 0, 16, 1),
                                    LayerSpec(5, 3, 24, 2), LayerSpec(3, 9, 24, 1)), 0)
    assert format_arch(spec) == text
    model = create_model("superkernel", 10, 3, 16, channels="8,16", kernel_sizes="3,5",
                         expansions="3,6", preset="mobilenet")
    set_thresholds(model.layers[1], kernel=[1e3], skip=1e3)
    set_thresholds(model.layers[2], kernel=[1e3], expansion=[1e3])
    text = model.arch_string()
    assert text == "stem-c8s1|k5e6c8s1|skip|k3e3c16s1|k5e6c16s1|head-c64"
    child = create_model("mbconv_net", 10, 3, 16, arch=text)
    assert child.arch_string() == text and len(child.layers) == 3


@pytest.mark.parametrize("bad", ["k9e6c16s1", "stem-c8s1|k4e6c8s1|head-c0",
                                 "stem-c8s1|k9x6c8s1|head-c0", "stem-c8s1|k9e6c8s1"])
def test_bad_arch_strings_are_refused_naming_the_token(bad):
    with pytest.raises(ValueError, match="rule"):
        parse_arch(bad)


@pytest.mark.parametrize("preset, size", [("full_res", 8), ("mobilenet", 16)])
def test_the_child_computes_the_supernets_function(preset, size):
    torch.manual_seed(0)
    model = create_model("superkernel", 10, 3, size, preset=preset, channels="4,4,8,8",
                         channel_divisor=4, kernel_sizes="3,5,7,9", expansions="3,6,9",
                         dropout=0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):  # BN statistics and weights that are not the initial ones
        opt.zero_grad()
        F.cross_entropy(model(torch.randn(8, 3, size, size)), torch.arange(8)).backward()
        opt.step()
    thresholds = torch.rand(sum(p.numel() for p in model.arch_parameters())) * 2.0
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(thresholds, model.arch_parameters())
    decisions = model.decisions()
    kernels = {v for k, v in decisions.items() if k.endswith("kernel")}
    expansions = {v for k, v in decisions.items() if k.endswith("expansion")}
    assert len(kernels) > 1 and len(expansions) > 1  # a real mix of choices
    child = extract_child(model)
    model.eval(), child.eval()
    x = torch.randn(5, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(child(x), model(x), atol=1e-4, rtol=1e-4)
    assert count_parameters(child) < count_parameters(model)


@pytest.mark.parametrize("size, kernel, stride", [(8, 9, 1), (8, 9, 2), (3, 5, 1), (5, 3, 2)])
def test_dense_depthwise_conv_equals_the_conv(size, kernel, stride):
    torch.manual_seed(0)
    x, w = torch.randn(2, 6, size, size), torch.randn(6, 1, kernel, kernel)
    expected = F.conv2d(x, w, None, stride, kernel // 2, groups=6)
    assert torch.allclose(depthwise_conv(x, w, stride, {}), expected, atol=1e-5)


# ---- factory, presets, search spaces -----------------------------------------------------------


def test_presets_set_strides_and_arguments_are_validated():
    full = create_model("superkernel", 10, 3, 32, channels="8,8,8,8,8,8,8")
    mobile = create_model("superkernel", 10, 3, 32, channels="8,8,8,8,8,8,8", preset="mobilenet")
    assert [layer.stride for layer in full.layers] == [1] * 14
    assert [layer.stride for layer in mobile.layers[::2]] == [1, 1, 2, 2, 1, 2, 1]
    large = create_model("superkernel", 10, 3, 96, channels="8,8,8,8,8,8,8", preset="mobilenet")
    assert large.stem_stride == 2 and large.layers[2].stride == 2
    assert [layer.out_channels for layer in create_model(
        "superkernel", 10, 1, 8, width_mult=0.5, channels=(16, 32)).layers] == [8, 8, 16, 16]
    for bad, rule in [({"preset": "tiny"}, "preset"), ({"kernel_sizes": "5,3"}, "kernel_sizes"),
                      ({"kernel_sizes": "3,4"}, "kernel_sizes"), ({"cost": "energy"}, "cost"),
                      ({"strides": "1,2"}, "strides"), ({"expansions": "a,b"}, "expansions")]:
        with pytest.raises(ValueError, match=rule):
            create_model("superkernel", 10, 1, 8, **bad)


@pytest.mark.parametrize("space", SUPERKERNEL_SPACES)
def test_every_superkernel_space_builds_a_net_that_trains(space):
    loaded = load_space(space)
    channels = {"digits": 1, "mnist": 1, "cifar10": 3}[loaded.spec.dataset]
    shape = (channels, 8)  # tiny inputs: the preset's net, on 8×8 images
    training, arch = TrainingConfig.split(loaded.sample(seed=0))
    assert set(arch) <= set(architecture_args("superkernel"))
    assert training.cost_weight > 0
    torch.manual_seed(0)
    model = create_model("superkernel", 10, *shape, **arch)
    x = torch.randn(2, shape[0], shape[1], shape[1])
    loss = F.cross_entropy(model(x), torch.tensor([1, 2])) + training.cost_weight * (
        model.expected_cost())
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.expected_cost().item() == pytest.approx(1.0)  # thresholds start at 0: all in
    assert model.arch_string().count("k9e9") == len(model.layers)


def test_latency_cost_uses_the_measured_table_of_the_chosen_op():
    from tune_nas.models import create_model

    torch.manual_seed(0)
    net = create_model("superkernel", 10, 1, 8, channels="4,4", layers_per_block=1,
                       head_channels=0, cost="latency")
    for layer in net.layers:  # measured on this machine: positive for every candidate op
        assert layer.latency_table.shape == (4, 3) and bool((layer.latency_table > 0).all())
        layer.latency_table = torch.arange(1.0, 13.0).view(4, 3)  # hand-set: L[i, j] = 3i + j + 1
    # every threshold at its initial 0: the full op (k9, e9) everywhere -> cost 1
    assert float(net.expected_cost().detach()) == pytest.approx(1.0)
    # thresholds the kernel rings cannot pass: 3x3 kernels, expansion still 9 -> L[0, 2] = 3
    for layer in net.layers:
        with torch.no_grad():
            layer.kernel_thresholds.fill_(1e6)
    expected = sum(3.0 for _ in net.layers) / sum(12.0 for _ in net.layers)
    assert float(net.expected_cost().detach()) == pytest.approx(expected)
    net.expected_cost().backward()  # straight-through: the thresholds get a gradient
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.arch_parameters())
