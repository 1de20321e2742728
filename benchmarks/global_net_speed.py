"""What a training step of ``global_net`` costs on this machine's CPU, by numerics and layout:
float32 against bf16 autocast (AMX on recent Xeons), contiguous against channels_last, on
the thread count a trial gets. Prints images/s per setting and the ratios, measured side by
side in one run.

    python benchmarks/global_net_speed.py [--threads 1] [--batch 128] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from tune_nas.models import create_model

ARCHS = {
    "default (ResNet-like)": "conv3,res3,none/res3,res3,none/res3,res3,none",
    "plain convs": "conv3,conv3,none/conv3,conv3,none/conv3,conv3,none",
    "sep5 + skips": "sep5,sep5+2,none/sep5+3,conv5,none/res3,sep5+2,none",
}


def images_per_second(model: nn.Module, batch: int, steps: int, bf16: bool, channels_last: bool) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, width {args.width}, "
          f"{args.steps} steps after 3 warm-up steps")
    print(f"{'network':24} {'params':>9} {'fp32':>8} {'fp32 CL':>8} {'bf16':>8} {'bf16 CL':>8}  bf16/fp32")
    for name, arch in ARCHS.items():
        torch.manual_seed(0)
        base = create_model("global_net", 10, 1, 28, width=args.width, arch=arch)
        params = sum(p.numel() for p in base.parameters())
        rates = {}
        for bf16 in (False, True):
            for cl in (False, True):
                model = create_model("global_net", 10, 1, 28, width=args.width, arch=arch)
                model.load_state_dict(base.state_dict())
                rates[(bf16, cl)] = images_per_second(model.train(), args.batch, args.steps, bf16, cl)
        best_bf16 = max(rates[(True, False)], rates[(True, True)])
        best_fp32 = max(rates[(False, False)], rates[(False, True)])
        print(f"{name:24} {params:9,d} " + " ".join(f"{rates[k]:8.0f}" for k in
              ((False, False), (False, True), (True, False), (True, True)))
              + f"  {best_bf16 / best_fp32:.2f}x  (images/s)")


if __name__ == "__main__":
    main()
