"""Parameters, FLOPs and latency of any model."""

import pytest
import torch
from torch import nn

from tune_nas.trial.cost import count_parameters, flops_per_image, latency_ms


def conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))


def test_count_parameters_counts_only_trainable_elements():
    model = conv_net()
    assert count_parameters(model) == (2 * 3 * 9 + 3) + (3 + 3) + (3 * 4 + 4)
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 3 + 6 + 16


def test_flops_per_image_is_two_per_multiply_add_of_convs_and_linears():
    model = conv_net()
    # conv: 5×5 outputs × 3 out × 2 in × 9 taps MACs; linear: 3 × 4 MACs
    assert flops_per_image(model, 2, 5) == 2 * (25 * 3 * 2 * 9) + 2 * 3 * 4
    assert flops_per_image(model, 2, 10) == 2 * (100 * 3 * 2 * 9) + 2 * 3 * 4


def test_flops_leave_the_model_as_it_was():
    model = conv_net().train()
    before = model[1].running_mean.clone()
    flops_per_image(model, 2, 5)
    assert model.training and torch.equal(model[1].running_mean, before)
    assert all(p.grad is None for p in model.parameters())


def test_latency_is_positive_and_leaves_mode_and_device():
    model = conv_net().train()
    ms = latency_ms(model, 2, 5, batch_size=4, device="cpu", warmup=1, repeats=3)
    assert 0 < ms < 10_000
    assert model.training and next(model.parameters()).device.type == "cpu"


def test_latency_grows_with_the_work():
    small = nn.Conv2d(8, 8, 1)
    big = nn.Sequential(*[nn.Conv2d(64, 64, 3, padding=1) for _ in range(4)])
    fast = latency_ms(small, 8, 8, batch_size=1, warmup=1, repeats=5)
    slow = latency_ms(nn.Sequential(nn.Conv2d(8, 64, 1), big), 8, 64, batch_size=8, warmup=1,
                      repeats=5)
    assert slow > 5 * fast


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"repeats": 0}, {"warmup": -1}])
def test_latency_refuses_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="rule"):
        latency_ms(conv_net(), 2, 5, **kwargs)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="rule"):
        flops_per_image(conv_net(), 0, 5)
