"""Where the driver's memory goes per ended trial: the launcher in this process, with its
holders' sizes measured at two numbers of ended trials.

Runs ``tune_nas.launch`` (any arguments; by default NAS-Bench-201 in tabular mode, where the
driver is all the work) with a hook on :class:`tune_nas.ray_tune.callbacks.TrialEvents`: when
``--marks`` A and B trials have ended it collects garbage and measures, each object counted
once, in this order: Ray's JSON snapshot of every trial (what its controller keeps for the
experiment state), Ray's Trial objects, the Optuna storage (its cache of frozen trials), the
Optuna searcher (its trials not told yet, the ids of those told), tune_nas's bookkeeper, the
rest of Ray's controller. Prints each holder's bytes per trial between A and B next to the
driver's RSS growth (which also counts the allocator's overhead and what no holder reaches).

    python benchmarks/driver_memory.py --marks 300,1300 -- --num-samples 1350 --trials-dir /tmp/memory
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import types
from typing import Any

_NOT_DATA = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType,
             types.MethodType, types.FrameType)


def deep_size(root: Any, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it reaches that ``seen`` does not hold yet (added to it);
    classes, modules and functions are not counted."""
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _NOT_DATA):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj, 0)
        stack.extend(gc.get_referents(obj))
    return total


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def holders(events: Any, trials: list[Any]) -> dict[str, int]:
    """Bytes per holder, each object counted once (in the order of the module's docstring)."""
    controller = next((o for o in gc.get_objects() if type(o).__name__ == "TuneController"), None)
    searcher = events.searcher
    seen: set[int] = {id(events)}
    sizes = {}
    snapshot = getattr(controller, "_trial_metadata", {})
    sizes["Ray: snapshot JSON of each trial"] = deep_size(snapshot, seen)
    sizes["Ray: Trial objects"] = deep_size(list(trials), seen)
    study = getattr(searcher, "_ot_study", None)
    sizes["Optuna: storage (frozen trials)"] = deep_size(study._storage, seen) if study else 0
    seen.add(id(study))
    sizes["searcher: Optuna trials not told"] = deep_size(searcher._ot_trials, seen)
    sizes["searcher: the rest (ids of told trials)"] = deep_size(searcher, seen)
    sizes["tune_nas: bookkeeper"] = deep_size(events.bookkeeper, seen)
    sizes["Ray: the rest of the controller"] = deep_size(controller, seen) if controller else 0
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marks", default="300,1300", help="A,B: ended trials at the two measures")
    parser.add_argument("launch", nargs="*", help="the launcher's arguments (after --)")
    args = parser.parse_args()
    first, second = (int(m) for m in args.marks.split(","))
    launch_args = args.launch or ["--num-samples", str(second + 50)]
    if "--space" not in launch_args:
        launch_args = ["--space", "nasbench201_tabular", "--searcher", "random", *launch_args]
    if "--trials-dir" not in launch_args:
        launch_args += ["--trials-dir", "/tmp/tune_nas_driver_memory"]
    if "--name" not in launch_args:
        launch_args += ["--name", f"memory-{time.strftime('%Y%m%d-%H%M%S')}"]

    from tune_nas import launch
    from tune_nas.ray_tune import callbacks

    measured: dict[int, tuple[float, dict[str, int]]] = {}
    ended = 0
    on_trial_complete = callbacks.TrialEvents.on_trial_complete

    def counting(self, iteration, trials, trial, **info) -> None:
        nonlocal ended
        on_trial_complete(self, iteration, trials, trial, **info)
        ended += 1
        if ended in (first, second):
            gc.collect()
            measured[ended] = (rss_mib(), holders(self, trials))
            print(f"[driver_memory] {ended} trials ended: RSS {measured[ended][0]:.0f} MiB", flush=True)

    callbacks.TrialEvents.on_trial_complete = counting
    code = launch.main(launch_args)
    if len(measured) == 2:
        (rss_a, a), (rss_b, b) = measured[first], measured[second]
        span = second - first
        print(f"\nper ended trial, between {first} and {second} ended trials:")
        print("| holder | bytes per trial |\n| --- | ---: |")
        for name in b:
            print(f"| {name} | {(b[name] - a[name]) / span:,.0f} |")
        print(f"| sum of the holders | {(sum(b.values()) - sum(a.values())) / span:,.0f} |")
        print(f"| driver RSS | {(rss_b - rss_a) * 2**20 / span:,.0f} |")
    launch.exit_now(code)


if __name__ == "__main__":
    main()
