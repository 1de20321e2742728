"""torchvision's ResNet50, adapted to small images as CIFAR-style ResNets are."""

from __future__ import annotations

from torch import nn

from tune_nas.models.registry import register_model

SMALL_IMAGE_PX = 64


@register_model("resnet50")
def resnet50(num_classes: int, in_channels: int, image_size: int, width_per_group: int = 64,
             zero_init_residual: bool = True) -> nn.Module:
    """ResNet50 (He et al., 2016) from torchvision, randomly initialised.

    For images of at most 64 px the 7×7/2 stem and the max-pool would leave CIFAR's 32 px as
    8 px before the first block, so (as in the CIFAR ResNets) the stem becomes a 3×3/1
    convolution and the max-pool is removed. ``in_channels`` adapts the stem to grey images.
    """
    import torchvision  # imported here: torchvision.models costs ~1.5 s to import

    model = torchvision.models.resnet50(weights=None, num_classes=num_classes,
                                        width_per_group=width_per_group,
                                        zero_init_residual=zero_init_residual)
    if image_size <= SMALL_IMAGE_PX:
        model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return model
