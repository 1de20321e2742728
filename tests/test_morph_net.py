"""The morphable network family (morph_net) and its function-preserving transforms (Net2Net).

Every preservation check runs in float32 on a network whose weights AND BatchNorm running
statistics are random (as after training), in eval mode: max |child(x) - parent(x)| <= 1e-5.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from tune_nas.models import create_model
from tune_nas.models.morph_net import MorphNet, apply_morph, apply_morphs
from tune_nas.spaces.morph_spec import (
    Layer,
    MorphLimits,
    MorphSpec,
    apply_to_spec,
    default_pools,
    describe,
    max_pools,
    param_count,
    possible_morphs,
    random_morph,
    small_spec,
)

TOLERANCE = 1e-5
OPS = ("widen", "widen_all", "deepen", "skip", "kernel")
LIMITS = MorphLimits(max_layers=8, max_channels=12, max_kernel=5, ops=OPS)
SHAPES = [(3, 7), (1, 28), (2, 9)]  # (in_channels, image_size): odd sizes pool with ceil_mode


def random_spec(rng: random.Random, image_size: int) -> MorphSpec:
    """1-5 layers of 1-6 channels, kernels 1/3/5, pools that fit the image, random valid skips."""
    depth = rng.randint(1, 5)
    pool_budget = max_pools(image_size)
    layers = []
    for _ in range(depth):
        pool = pool_budget > 0 and rng.random() < 0.4
        pool_budget -= pool
        layers.append(Layer(rng.randint(1, 6), rng.choice((1, 3, 5)), pool))
    spec = MorphSpec(tuple(layers))
    pairs = [(i, j) for j in range(depth) for i in range(j) if spec.can_skip(i, j)]
    return MorphSpec(spec.layers, tuple(p for p in pairs if rng.random() < 0.5))


@torch.no_grad()
def randomise(model: MorphNet, generator: torch.Generator) -> MorphNet:
    """Random weights of unit-ish scale (skip projections too), BN affine parameters and running
    statistics far from their defaults: what a trained parent looks like to a transform."""
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            value.uniform_(0.3, 3.0, generator=generator)
        elif key.endswith("bn.weight"):
            value.uniform_(0.5, 1.5, generator=generator)
        elif key.endswith(("bn.bias", "running_mean", "head.bias")):
            value.normal_(0.0, 0.5, generator=generator)
        else:
            value.normal_(0.0, 1.0 / value[0].numel() ** 0.5, generator=generator)
    return model.eval()


def max_difference(a: MorphNet, b: MorphNet, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (a.eval()(x) - b.eval()(x)).abs().max().item()


def parent_and_input(seed: int, in_channels: int, size: int) -> tuple[MorphNet, torch.Tensor, torch.Generator]:
    generator = torch.Generator().manual_seed(seed)
    spec = random_spec(random.Random(seed), size)
    model = randomise(MorphNet(spec, 5, in_channels, size), generator)
    return model, torch.randn(6, in_channels, size, size, generator=generator), generator


# ----- function preservation -----
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("in_channels, size", SHAPES)
def test_each_transform_preserves_the_function(op, seed, in_channels, size):
    parent, x, _ = parent_and_input(seed, in_channels, size)
    rng = random.Random(seed)
    if op == "skip":  # a skip needs two layers without a pool between them
        while not [m for m in possible_morphs(parent.spec, LIMITS) if m["op"] == "skip"]:
            parent = randomise(apply_morph(parent, {"op": "deepen", "after": parent.spec.num_layers - 1}),
                               torch.Generator().manual_seed(seed))
    proposals = [m for m in possible_morphs(parent.spec, LIMITS, seed=seed) if m["op"] == op]
    assert proposals, parent.spec
    for morph in rng.sample(proposals, min(3, len(proposals))):
        if op in ("widen", "widen_all") and seed % 2:  # the paper's equal split besides the proposals' random one
            morph = {**morph, "split": "equal"}
        child = apply_morph(parent, morph)
        assert child.spec == apply_to_spec(parent.spec, morph)
        assert max_difference(parent, child, x) <= TOLERANCE, (parent.spec, morph)


@pytest.mark.parametrize("seed", range(12))
def test_chains_of_random_morphs_preserve_the_function(seed):
    """3-6 morphs in a row: the end of the chain computes what the start computed, and so does
    every single step from a re-randomised (as if trained) network."""
    in_channels, size = SHAPES[seed % len(SHAPES)]
    start, x, generator = parent_and_input(100 + seed, in_channels, size)
    rng = np.random.RandomState(seed)
    morphs, net = [], start
    for _ in range(rng.randint(3, 7)):
        morph = random_morph(net.spec, rng, LIMITS)
        morphs.append(morph)
        net = apply_morph(net, morph)
        assert max_difference(start, net, x) <= TOLERANCE, morphs
    trained = start
    for morph in morphs:
        trained = randomise(trained, generator)
        child = apply_morph(trained, morph)
        assert max_difference(trained, child, x) <= TOLERANCE, morph
        trained = child
    assert apply_morphs(start, morphs).spec == net.spec


@pytest.mark.parametrize("split", ["equal", "random"])
def test_widening_every_layer_is_the_chain_of_its_layers_widens(split):
    spec = MorphSpec((Layer(3, 3, False), Layer(4, 1, True), Layer(2, 3, False), Layer(5, 3, False)),
                     ((0, 1), (2, 3)))
    parent = randomise(MorphNet(spec, 4, 3, 9), torch.Generator().manual_seed(2))
    morph = {"op": "widen_all", "channels": [6, 4, 3, 10], "seed": 2**32 - 2, "split": split}
    child = apply_morph(parent, morph)
    assert [layer.channels for layer in child.spec.layers] == [6, 4, 3, 10]  # layer 1 kept its 4
    chain = apply_morphs(parent, [{"op": "widen", "layer": 0, "channels": 6, "seed": 2**32 - 2, "split": split},
                                  {"op": "widen", "layer": 2, "channels": 3, "seed": 0, "split": split},
                                  {"op": "widen", "layer": 3, "channels": 10, "seed": 1, "split": split}])
    for key, value in chain.state_dict().items():
        assert torch.equal(child.state_dict()[key], value), key
    x = torch.randn(4, 3, 9, 9, generator=torch.Generator().manual_seed(3))
    assert max_difference(parent, child, x) <= TOLERANCE
    assert describe(morph) == "widen every layer to [6, 4, 3, 10]"


@pytest.mark.parametrize("split", ["equal", "random"])
def test_widening_a_layer_with_skips_into_and_from_it(split):
    # layer 2 receives skips from 0 and 1 and feeds a skip to 3 besides layer 3's conv
    spec = MorphSpec((Layer(3, 3, False), Layer(4, 1, False), Layer(2, 3, False), Layer(5, 3, True)),
                     ((0, 2), (1, 2), (2, 3), (0, 3)))
    parent = randomise(MorphNet(spec, 4, 3, 7), torch.Generator().manual_seed(1))
    x = torch.randn(5, 3, 7, 7)
    child = apply_morph(parent, {"op": "widen", "layer": 2, "channels": 7, "seed": 3, "split": split})
    assert child.skips["0_2"].weight.shape == (7, 3, 1, 1) and child.skips["2_3"].weight.shape == (5, 7, 1, 1)
    assert child.layers[3].conv.weight.shape == (5, 7, 3, 3)
    assert max_difference(parent, child, x) <= TOLERANCE


def test_widening_the_last_layer_splits_the_head_and_copies_bn_statistics():
    spec = MorphSpec((Layer(4, 3, True), Layer(3, 3, False)), ())
    parent = randomise(MorphNet(spec, 10, 1, 28), torch.Generator().manual_seed(2))
    child = apply_morph(parent, {"op": "widen", "layer": 1, "channels": 8, "seed": 0})
    mapping = np.concatenate([np.arange(3), np.random.RandomState(0).randint(0, 3, size=5)])
    counts = np.bincount(mapping)
    bn_old, bn_new = parent.layers[1].bn, child.layers[1].bn
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(bn_new, name), getattr(bn_old, name)[mapping])
    expected_head = parent.head.weight[:, mapping] / torch.as_tensor(counts[mapping], dtype=torch.float32)
    assert torch.allclose(child.head.weight, expected_head)
    assert torch.equal(child.head.bias, parent.head.bias)
    assert max_difference(parent, child, torch.randn(4, 1, 28, 28)) <= TOLERANCE


@pytest.mark.parametrize("after", range(4))
def test_deepening_before_and_after_a_pool(after):
    """The new layer comes after layer ``after`` *and* its pool (``after`` keeps the pool)."""
    spec = MorphSpec((Layer(3, 3, True), Layer(4, 5, False), Layer(4, 3, True), Layer(2, 1, False)), ((1, 2),))
    parent = randomise(MorphNet(spec, 3, 3, 9), torch.Generator().manual_seed(after))
    child = apply_morph(parent, {"op": "deepen", "after": after})
    layers = child.spec.layers
    assert layers[after] == spec.layers[after] and layers[after + 1] == Layer(spec.layers[after].channels, 3, False)
    assert child.spec.skips == (((1, 2),) if after >= 2 else ((2, 3),) if after == 0 else ((1, 3),))
    assert max_difference(parent, child, torch.randn(4, 3, 9, 9)) <= TOLERANCE


def test_growing_a_kernel_zero_pads_the_weights():
    parent = randomise(MorphNet(small_spec(3, 2, 1), 2, 1, 8), torch.Generator().manual_seed(0))
    child = apply_morph(parent, {"op": "kernel", "layer": 1, "kernel": 5})
    weight = child.layers[1].conv.weight
    assert weight.shape == (3, 3, 5, 5) and torch.equal(weight[:, :, 1:4, 1:4], parent.layers[1].conv.weight)
    assert weight.abs().sum() == parent.layers[1].conv.weight.abs().sum()
    assert max_difference(parent, child, torch.randn(3, 1, 8, 8)) <= TOLERANCE


def test_a_wrong_transform_is_caught_by_the_check():
    """The tolerance is tight enough to see a mistake: without the division by the replication
    count the outputs differ."""
    parent = randomise(MorphNet(small_spec(4, 2, 1), 3, 1, 8), torch.Generator().manual_seed(0))
    x = torch.randn(4, 1, 8, 8)
    child = apply_morph(parent, {"op": "widen", "layer": 0, "channels": 8, "seed": 1})
    with torch.no_grad():
        child.layers[1].conv.weight.copy_(parent.layers[1].conv.weight[:, np.concatenate(
            [np.arange(4), np.random.RandomState(1).randint(0, 4, size=4)])])
    assert max_difference(parent, child, x) > 1e-3


# ----- training a child -----
def test_a_child_trains():
    parent = randomise(create_model("morph_net", 10, 3, 7, width=4, depth=2), torch.Generator().manual_seed(0))
    child = apply_morphs(parent, [{"op": "deepen", "after": 1}, {"op": "skip", "from": 1, "to": 2},
                                  {"op": "widen", "layer": 2, "channels": 6, "seed": 5, "split": "random"}]).train()
    x, y = torch.randn(8, 3, 7, 7), torch.randint(0, 10, (8,))
    optimizer = torch.optim.SGD(child.parameters(), lr=0.1)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        out = child(x)
        assert out.shape == (8, 10)
        loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in child.parameters())
        assert child.skips["1_2"].weight.grad.abs().sum() > 0  # the zero skip learns
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("split, stay_copies", [("equal", True), ("random", False)])
def test_replicas_stay_copies_under_an_equal_split_only(split, stay_copies):
    """Equal shares give a replica and its original identical gradients (they never learn
    different features); random shares keep the function and break the tie."""
    parent = randomise(MorphNet(small_spec(3, 2, 0), 4, 1, 6), torch.Generator().manual_seed(0))
    morph = {"op": "widen", "layer": 0, "channels": 6, "seed": 2, "split": split}
    child = apply_morph(parent, morph).train()
    mapping = np.concatenate([np.arange(3), np.random.RandomState(2).randint(0, 3, size=3)])
    optimizer = torch.optim.SGD(child.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(child(torch.randn(16, 1, 6, 6)), torch.randint(0, 4, (16,))).backward()
        optimizer.step()
    weight = child.layers[0].conv.weight
    gap = max((weight[new] - weight[mapping[new]]).abs().max().item() for new in range(3, 6))
    assert (gap < 1e-6) if stay_copies else (gap > 1e-4)


# ----- specs, morphs, codec -----
@pytest.mark.parametrize("data, field", [
    ({"layers": []}, "layers"),
    ({"layers": [[0, 3, False]]}, r"layers\[0\]\.channels=0"),
    ({"layers": [[4, 3, False], [4, 4, False]]}, r"layers\[1\]\.kernel=4"),
    ({"layers": [[4, 3, 1]]}, r"layers\[0\]\.pool=1"),
    ({"layers": [[4, 3, True], [4, 3, False]], "skips": [[0, 1]]}, r"skip \(0, 1\).*layer 0"),
    ({"layers": [[4, 3, False], [4, 3, False]], "skips": [[1, 0]]}, r"skip \(1, 0\)"),
    ({"layers": [[4, 3, False], [4, 3, False]], "skips": [[0, 1], [0, 1]]}, r"skips has \(0, 1\) twice"),
    ({"layers": [[4, 3]]}, r"layers\[0\]"),
    ({"layers": [[4, 3, False]], "skip": []}, "'skip'"),
])
def test_a_bad_spec_is_refused_in_one_line_naming_the_field(data, field):
    with pytest.raises(ValueError, match=field) as error:
        MorphSpec.from_dict(data)
    assert "\n" not in str(error.value) and "rule" in str(error.value)


SPEC = MorphSpec((Layer(4, 3, True), Layer(4, 3, False), Layer(6, 5, False)), ((1, 2),))


@pytest.mark.parametrize("morph, key", [
    ({"op": "shrink", "layer": 0}, "op='shrink'"),
    ({"op": "widen", "layer": 0, "channels": 4, "seed": 0}, "channels=4"),
    ({"op": "widen", "layer": 3, "channels": 8, "seed": 0}, "layer=3"),
    ({"op": "widen", "layer": 0, "channels": 8}, "keys="),
    ({"op": "widen", "layer": 0, "channels": 8, "seed": -1}, "seed=-1"),
    ({"op": "widen", "layer": 0, "channels": 8, "seed": 0, "split": "odd"}, "split='odd'"),
    ({"op": "widen_all", "channels": [4, 4, 6], "seed": 0}, r"channels=\[4, 4, 6\].*at least one larger"),
    ({"op": "widen_all", "channels": [8, 8], "seed": 0}, r"a list of 3 integers"),
    ({"op": "widen_all", "channels": [8, 3, 6], "seed": 0}, r"each >= the layer's channels \[4, 4, 6\]"),
    ({"op": "widen_all", "channels": [8, 8, 8.5], "seed": 0}, r"channels="),
    ({"op": "widen_all", "channels": [8, 8, 8]}, "keys="),
    ({"op": "widen_all", "layer": 0, "channels": [8, 8, 8], "seed": 0}, "keys="),
    ({"op": "widen_all", "channels": [8, 8, 8], "seed": 2**32}, "seed="),
    ({"op": "deepen", "after": 0, "kernel": 3}, "keys="),
    ({"op": "skip", "from": 0, "to": 1}, r"from/to=\(0, 1\).*pools"),
    ({"op": "skip", "from": 1, "to": 2}, r"does not exist yet"),
    ({"op": "kernel", "layer": 2, "kernel": 6}, "kernel=6"),
    ({"op": "kernel", "layer": 2, "kernel": 3}, "kernel=3"),
])
def test_a_bad_morph_is_refused_in_one_line_naming_the_key(morph, key):
    with pytest.raises(ValueError, match=key) as error:
        apply_to_spec(SPEC, morph)
    assert "\n" not in str(error.value)


def test_possible_morphs_are_all_valid_within_the_limits_and_complete():
    limits = MorphLimits(max_layers=4, max_channels=8, max_kernel=5, ops=OPS)
    morphs = possible_morphs(SPEC, limits)
    assert [m for m in possible_morphs(SPEC, MorphLimits(max_layers=4, max_channels=8, max_kernel=5))
            if m["op"] == "widen_all"] == []  # opt-in
    by_op = {op: [m for m in morphs if m["op"] == op] for op in OPS}
    assert by_op["widen"] == [{"op": "widen", "layer": 0, "channels": 6, "seed": 0, "split": "random"},
                              {"op": "widen", "layer": 0, "channels": 8, "seed": 0, "split": "random"},
                              {"op": "widen", "layer": 1, "channels": 6, "seed": 0, "split": "random"},
                              {"op": "widen", "layer": 1, "channels": 8, "seed": 0, "split": "random"},
                              {"op": "widen", "layer": 2, "channels": 8, "seed": 0, "split": "random"}]
    # x1.5 and x2 of (4, 4, 6), each capped at 8
    assert by_op["widen_all"] == [{"op": "widen_all", "channels": [6, 6, 8], "seed": 0, "split": "random"},
                                  {"op": "widen_all", "channels": [8, 8, 8], "seed": 0, "split": "random"}]
    assert by_op["deepen"] == [{"op": "deepen", "after": a} for a in range(3)]
    assert by_op["skip"] == []  # (0, x) crosses layer 0's pool, (1, 2) exists
    assert by_op["kernel"] == [{"op": "kernel", "layer": 0, "kernel": 5}, {"op": "kernel", "layer": 1, "kernel": 5}]
    for spec in [random_spec(random.Random(seed), 16) for seed in range(30)]:
        for morph in possible_morphs(spec, LIMITS):
            grown = apply_to_spec(spec, morph)
            assert grown.num_layers <= LIMITS.max_layers
            assert all(layer.channels <= max(LIMITS.max_channels, old.channels) and layer.kernel <= 5
                       for layer, old in zip(grown.layers, spec.layers))
    full = MorphSpec((Layer(8, 5, False), Layer(8, 5, False)), ((0, 1),))
    assert possible_morphs(full, MorphLimits(max_layers=2, max_channels=8, max_kernel=5, ops=OPS)) == []
    assert random_morph(full, random.Random(0), MorphLimits(max_layers=2, max_channels=8, max_kernel=5, ops=OPS)) is None
    for ops in ((), ("widen", "shrink"), "widen"):
        with pytest.raises(ValueError, match="ops="):
            MorphLimits(ops=ops)


@pytest.mark.parametrize("rng_factory", [random.Random, np.random.RandomState, np.random.default_rng])
def test_random_morph_is_reproducible_from_its_generator(rng_factory):
    draws = [[random_morph(SPEC, rng, LIMITS) for _ in range(20)] for rng in (rng_factory(7), rng_factory(7))]
    assert draws[0] == draws[1]
    assert {m["op"] for m in draws[0]} == {"widen", "widen_all", "deepen", "kernel"}  # no skip in SPEC
    assert all(apply_to_spec(SPEC, m) for m in draws[0])


def test_json_round_trip_and_descriptions():
    for spec in [random_spec(random.Random(seed), 32) for seed in range(20)] + [SPEC]:
        assert MorphSpec.from_json(spec.to_json()) == spec
        assert MorphSpec.from_dict(json.loads(json.dumps(spec.as_dict()))) == spec
    assert SPEC.to_json() == '{"layers":[[4,3,true],[4,3,false],[6,5,false]],"skips":[[1,2]]}'
    assert MorphSpec.from_dict({"layers": [{"channels": 4, "pool": True}, {"channels": 4}, {"channels": 6, "kernel": 5}],
                                "skips": [[1, 2]]}) == SPEC
    assert MorphSpec((Layer(2), Layer(2), Layer(2)), ([1, 2], (0, 2))).skips == ((0, 2), (1, 2))  # kept sorted
    with pytest.raises(ValueError, match="morph_spec: 'nope'; rule: JSON"):
        MorphSpec.from_json("nope")
    assert [describe(m) for m in ({"op": "widen", "layer": 2, "channels": 24, "seed": 0}, {"op": "deepen", "after": 1},
                                  {"op": "skip", "from": 0, "to": 2}, {"op": "kernel", "layer": 1, "kernel": 5})] == [
        "widen layer 2 to 24", "deepen after layer 1", "skip 0 -> 2", "kernel of layer 1 to 5"]


def test_morphs_replay_deterministically_onto_a_reloaded_parent():
    """What a child trial does: rebuild the parent from its arch, load its state dict strictly,
    replay the recorded (JSON) morphs: the same child weights every time."""
    parent = randomise(create_model("morph_net", 10, 1, 8, width=4, depth=3), torch.Generator().manual_seed(3))
    morphs = json.loads(json.dumps([{"op": "widen", "layer": 1, "channels": 7, "seed": 9, "split": "random"},
                                    {"op": "deepen", "after": 2}, {"op": "skip", "from": 2, "to": 3},
                                    {"op": "kernel", "layer": 0, "kernel": 5}]))
    reloaded = create_model("morph_net", 10, 1, 8, arch=parent.arch_string())
    reloaded.load_state_dict(parent.state_dict(), strict=True)
    first, second = apply_morphs(parent, morphs), apply_morphs(reloaded.eval(), morphs)
    assert first.state_dict().keys() == second.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert sorted(first.state_dict()) == sorted(
        [f"layers.{i}.{k}" for i in range(4) for k in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                                         "bn.running_var", "bn.num_batches_tracked")]
        + ["skips.2_3.weight", "head.weight", "head.bias"])
    assert max_difference(parent, first, torch.randn(3, 1, 8, 8)) <= TOLERANCE


# ----- the registered model -----
def test_morph_net_through_the_registry():
    arch = '{"layers":[[5,3,true],[6,1,false],[6,3,false]],"skips":[[1,2]]}'
    model = create_model("morph_net", 10, 1, 8, arch=arch)
    assert model.arch_string() == arch and isinstance(model, MorphNet)
    assert create_model("morph_net", 10, 1, 8, arch=json.loads(arch)).spec == model.spec
    assert sum(p.numel() for p in model.parameters()) == param_count(model.spec, 1, 10)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    default = create_model("morph_net", 10, 3, 28, width=8, depth=4)
    assert default.spec == small_spec(8, 4, 3) and default_pools(28, 4) == 3
    assert create_model("morph_net", 10, 3, 4).spec == small_spec(16, 3, 1)  # 4 px -> 2 px, then no more pools
    assert sum(p.numel() for p in default.parameters()) == param_count(default.spec, 3, 10)


def test_morph_net_refuses_pools_beyond_a_1px_map_and_bad_arguments():
    assert max_pools(8) == 3 and max_pools(7) == 3 and max_pools(1) == 0 and max_pools(28) == 5
    with pytest.raises(ValueError, match=r"morph_net: arch with 3 pools for image_size=4; rule: at most 2"):
        create_model("morph_net", 10, 1, 4, arch=small_spec(4, 3, 3).to_json())
    with pytest.raises(ValueError, match=r"morph_net: width=0; rule"):
        create_model("morph_net", 10, 1, 8, width=0)
    with pytest.raises(ValueError, match=r"apply_morph: model Linear"):
        apply_morph(torch.nn.Linear(2, 2), {"op": "deepen", "after": 0})
