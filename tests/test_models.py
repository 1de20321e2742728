import pytest
import torch

from tune_nas.models import architecture_args, create_model, list_models

# tiny inputs each model must handle: (in_channels, image_size)
SHAPES = [(1, 8), (3, 16)]


@pytest.mark.parametrize("name", list_models("classification"))
@pytest.mark.parametrize("in_channels, size", SHAPES)
def test_every_registered_model_runs_forward_and_backward(name, in_channels, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_channels=in_channels, image_size=size)
    x = torch.randn(2, in_channels, size, size)
    out = model(x)
    assert out.shape == (2, 5)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_small_cnn_architecture_choices_change_the_net():
    small = create_model("small_cnn", 10, 1, 8, width=8, depth=1)
    big = create_model("small_cnn", 10, 1, 8, width=32, depth=3)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(big) > 10 * n(small)


def test_resnet50_uses_a_cifar_stem_on_small_images():
    model = create_model("resnet50", 10, 3, 32)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    large = create_model("resnet50", 10, 1, 96)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.in_channels == 1
    n = sum(p.numel() for p in model.parameters())
    assert 23_000_000 < n < 24_000_000  # ResNet50 with a 10-class head


def test_unknown_model_and_argument_are_refused_with_the_rule():
    with pytest.raises(ValueError, match="unknown model"):
        create_model("vgg", 10, 1, 8)
    with pytest.raises(ValueError, match=r"unknown architecture argument\(s\) \['widht'\]"):
        create_model("small_cnn", 10, 1, 8, widht=3)
    assert {"width", "depth", "dropout"} <= set(architecture_args("small_cnn"))
