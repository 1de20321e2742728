"""The global search space: its genotype (flat parameters, arch strings) and ``global_net``."""

import random

import pytest
import torch

from tune_nas.models import architecture_args, create_model
from tune_nas.spaces.global_spec import OPS, SKIPS, GlobalSpec, param_choices


def test_every_flat_encoding_builds_a_network_whose_arch_string_round_trips():
    choices = param_choices(stages=3, slots=3)
    assert sorted(choices) == sorted([f"op_{i}" for i in range(9)] + [f"skip_{i}" for i in range(9)])
    rng = random.Random(0)
    x = torch.randn(2, 1, 28, 28)
    for _ in range(12):
        params = {k: rng.choice(v) for k, v in choices.items()}
        model = create_model("global_net", 10, 1, 28, width=8, **params)
        assert model(x).shape == (2, 10)
        spec = GlobalSpec.parse(model.arch_string())
        assert spec == model.spec == GlobalSpec.from_params(params, 3, 3)
        assert [op for _, _, op, _ in spec.slots()] == [params[f"op_{i}"] for i in range(9)]


def test_a_skip_across_stages_is_pooled_to_the_slots_size_and_projected_to_its_channels():
    # slot 3 (stage 1's first, 14 px, 2w channels) adds node 1 (slot 0's output: 28 px, w channels)
    spec = GlobalSpec.parse("conv3,none,none/none+3,none/none")
    model = create_model("global_net", 10, 1, 28, width=4, arch=spec.to_string())
    merge = model.merges["3"]
    assert (merge.size_in, merge.size_out) == (28, 14)
    assert merge.project[0].weight.shape == (8, 4, 1, 1)
    model.eval()
    with torch.no_grad():
        x = torch.randn(1, 1, 28, 28)
        slot0 = model.ops[0](model.stem(x))
        entry = model.entries[0](torch.nn.functional.max_pool2d(slot0, 2))  # slots 1, 2 are none
        expected = entry + merge.project(torch.nn.functional.avg_pool2d(slot0, 2))
        # stage 1's slot 4 and stage 2 pass it on: compare at the head's input
        stage2 = model.entries[1](torch.nn.functional.max_pool2d(expected, 2))
        assert torch.allclose(model(x), model.head(stage2), atol=1e-5)


def test_same_shape_skips_need_no_parameters_and_none_slots_change_nothing():
    plain = create_model("global_net", 10, 1, 28, width=8, arch="conv3,none/conv3,none")
    skipped = create_model("global_net", 10, 1, 28, width=8, arch="conv3,none+2/conv3,none")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(plain) == count(skipped)  # slot 1 adds node 0 (stem): 28 px, 8 channels
    deeper = create_model("global_net", 10, 1, 28, width=8, arch="conv3,conv3/conv3,none")
    assert count(deeper) - count(plain) == 8 * 8 * 9 + 2 * 8  # one conv3 and its BN


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "conv3,conv7"}, "op 'conv7' in stage 0; rule: one of"),
    ({"arch": "conv3+1"}, "skip 1 in stage 0; rule: one of (0, 2, 3)"),
    ({"arch": "conv3+x"}, "slot 'conv3+x'"),
    ({"width": 0}, "width=0; rule: an integer >= 1"),
    ({"pool": "median"}, "pool='median'; rule: one of ('max', 'avg')"),
    ({"dropout": 1.0}, "dropout=1.0; rule: 0 <= dropout < 1"),
    ({"op_0": "conv3"}, "op_1 not given; rule: 3 stages × 3 slots need"),
    ({"stages": 1, "slots": 1, "op_0": "conv3", "skip_0": 0, "op_1": "conv3"}, "op_1 given; rule: 1 stages"),
    ({"arch": "conv3", "op_0": "conv3", "skip_0": 0}, "not both"),
    ({"stages": 4, "slots": 4, "op_0": "conv3", "skip_0": 0}, "stages × slots = 16; rule: <= 15"),
])
def test_bad_architectures_are_refused_naming_the_value_and_the_rule(kwargs, message):
    with pytest.raises(ValueError, match="global_net") as info:
        create_model("global_net", 10, 1, 28, **kwargs)
    assert message in str(info.value)


def test_the_registry_lists_the_flat_encoding_and_the_shape_arguments():
    args = architecture_args("global_net")
    assert {"width", "pool", "dropout", "stages", "slots", "arch", "op_0", "skip_14"} <= set(args)
    assert args["op_0"] is None and args["width"] == 32
    assert set(param_choices()["op_0"]) == set(OPS) and set(param_choices()["skip_0"]) == set(SKIPS)
