"""Training-step time of the superkernel supernet on digits-sized input vs small_cnn.

Interleaves the models step by step (one thread, batch 64, 8×8 grey images) so that a busy
machine slows them alike, and prints median milliseconds per forward + backward step:

* ``superkernel``: the digits preset's supernet (``search_spaces/superkernel_digits.py``),
  whose 9×9 depthwise convs on 8×8 maps run as dense per-channel matmuls
  (``tune_nas.models.superkernel.depthwise_conv``);
* ``superkernel (F.conv2d)``: the same net with PyTorch's depthwise conv instead (before);
* ``small_cnn``: the default search's model (width 32, depth 2).

    python benchmarks/superkernel_step.py --steps 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tune_nas.models import create_model, superkernel
from tune_nas.trial.cost import flops_per_image

DIGITS_SUPERNET = {"preset": "full_res", "channels": "8,8,16,16,24,24,32", "channel_divisor": 4}


def conv2d_depthwise(x, weight, stride, cache=None):
    return F.conv2d(x, weight, None, stride, weight.shape[-1] // 2, groups=weight.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dense = superkernel.depthwise_conv
    models = {"superkernel": create_model("superkernel", 10, 1, 8, **DIGITS_SUPERNET),
              "superkernel (F.conv2d)": create_model("superkernel", 10, 1, 8, **DIGITS_SUPERNET),
              "small_cnn": create_model("small_cnn", 10, 1, 8, width=32, depth=2)}
    x = torch.randn(args.batch_size, 1, 8, 8)
    y = torch.randint(0, 10, (args.batch_size,))
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.steps + 1):  # the first step of each is warm-up
        for name, model in models.items():
            superkernel.depthwise_conv = conv2d_depthwise if "conv2d" in name else dense
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            if hasattr(model, "expected_cost"):
                loss = loss + 0.1 * model.expected_cost()
            loss.backward()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["small_cnn"][1:])
    for name, model in models.items():
        ms = statistics.median(times[name][1:]) * 1000
        superkernel.depthwise_conv = conv2d_depthwise if "conv2d" in name else dense
        print(f"{name:24s} {ms:8.1f} ms/step  ({ms / 1000 / base:5.1f}× small_cnn)  "
              f"{flops_per_image(model, 1, 8) / 1e6:7.2f} MFLOPs/image (as counted)")
    superkernel.depthwise_conv = dense


if __name__ == "__main__":
    main()
