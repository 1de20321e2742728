"""A small convolutional net for small images: the default search's model."""

from __future__ import annotations

from torch import nn

from tune_nas.models.registry import register_model


@register_model("small_cnn")
def small_cnn(num_classes: int, in_channels: int, image_size: int, width: int = 32,
              depth: int = 2, dropout: float = 0.0) -> nn.Module:
    """``depth`` stages of 3×3 conv + BN + ReLU, channels doubling from ``width`` per stage,
    2×2 max-pooling after a stage while the feature map is at least 4 px, global average
    pooling, dropout and a linear classifier."""
    if width < 1 or depth < 1:
        raise ValueError(f"small_cnn: width={width}, depth={depth}; rule: both must be >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"small_cnn: dropout={dropout}; rule: 0 <= dropout < 1")
    layers: list[nn.Module] = []
    channels, size = in_channels, image_size
    for stage in range(depth):
        out = width * 2**stage
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                   nn.ReLU(inplace=True)]
        if size >= 4:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
               nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
