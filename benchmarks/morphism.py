"""Network morphism against regularized evolution at an equal number of training epochs (issue 18).

    python benchmarks/morphism.py --trials-dir /tmp/morphism --out /tmp/morphism/morphism.json \\
        [--datasets digits,fashion] [--seeds 0,1,2] [--num-samples N] [--max-epochs N] \\
        [--fashion PATH] [--train-fraction 0.05] [--fashion-augment] \\
        [--seed-widths 8,16 --seed-depths 3,4] [--ops widen,widen_all,...] [--tag NAME] [--reuse] \\
        [--child-epochs N] [--child-lr-scale X] [--tournament N] \\
        [--plot docs/morphism-lineage-digits.png]

For every data set and seed, two real searches (``python -m tune_nas.launch``, Ray, the
preset's 1 CPU per trial):

* **morphism**: the preset ``morphism_digits`` as it is (for Fashion-MNIST with the data set
  and ``train_fraction`` overridden; with ``--fashion-augment`` both methods also train with
  random crops and horizontal flips): seed trials from scratch for ``max_epochs``, then children
  warm-started from their parents for ``child_epochs``;
* **evolution**: the same preset text with ``searcher: evolution`` (``population_size`` = the
  morphism's ``seed_trials``, ``sample_size`` = its tournament size), ``scheduler: none`` and
  ``morph_net``'s own architecture arguments searched: ``width`` (4 .. the morphism's
  ``max_channels``, steps ×1.5/×2) and ``depth`` (1 .. its ``max_layers``). Every trial trains
  from scratch for the same ``max_epochs`` as a morphism seed, with the same training
  hyperparameters (they come from the same preset text). ``morph_net(width, depth)`` is the
  family's seed constructor, so evolution searches the same model family, without per-layer
  widths, kernels or skips (which only a morph can reach) and with the default pools (one per
  layer but the last while the map stays >= 2 px; a morph never adds a pool).

Equal budget: the morphism's ``num_samples`` defaults to the smallest count >= the preset's
whose total (``seed_trials × max_epochs + children × child_epochs``) is a multiple of
``max_epochs``; after the morphism run, evolution gets ``ceil(total / max_epochs)`` trials, the
total measured as the sum of ``epochs`` over the morphism run's summary.json trials. Both
totals are printed.

Reported per run: trials, total epochs, best validation accuracy (summary.json's best), the
test accuracy of that trial, wall time, the epochs a run spent (cumulative, in trial-number
order) until its first trial at least as good as evolution's best of the same seed ("to evo
best": for evolution its own best), and for morphism the epochs saved against evolution and
their share. The warm-start check: the largest ``|warm_start_val_acc - parent's val_acc|``
over every child and how many exceed ``--tolerance`` (0.002). ``--out`` writes all of it as
JSON (settings, machine, date); ``--plot`` draws the lineage of the first seed's digits runs
(validation accuracy against cumulative epochs, parent → child edges, evolution beside it) and
every child's accuracy against its parent's. ``--reuse`` reads runs whose summary.json exists
in ``--trials-dir`` instead of running them again (same names: ``<tag>-<dataset>-s<seed>-<method>``).
``--child-epochs``, ``--child-lr-scale`` and ``--tournament`` (the parent tournament's size)
replace the preset's morphism options (evolution keeps the preset's tournament); with
``--max-epochs 2 --child-epochs 1 --tournament 6`` the benchmark runs the README's
"short trials" comparison.
``--seed-widths``/``--seed-depths`` replace the preset's seed choices (the morphism's starting
networks; evolution's widths then start at the smallest of them): see the README's "Network
morphism" for why the preset's own seeds hold the morphism back.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tune_nas.config.space_file import load_space  # noqa: E402
from tune_nas.objectives import Objective  # noqa: E402
from tune_nas.spaces.morph_spec import MORPH_KEYS  # noqa: E402

PRESET = "morphism_digits"
PRESET_FILE = REPO / "search_spaces" / f"{PRESET}.py"
DEFAULT_FASHION = REPO.parent / "shared" / "data" / "fashion-mnist-png.tar.gz"
METHODS = ("morphism", "evolution")
MORPHISM_DEFAULTS = {"seed_trials": 4, "sample_size": 3, "child_epochs": 2, "max_layers": 8, "max_channels": 128}


# ----- the experiments -----
def morphism_settings(options: Mapping[str, Any]) -> dict[str, int]:
    """The preset's morphism options that fix the budget and the family (the searcher's defaults
    where the preset leaves one out)."""
    return {name: int(options.get(name, default)) for name, default in MORPHISM_DEFAULTS.items()}


def morphism_epochs(num_samples: int, seed_trials: int, max_epochs: int, child_epochs: int) -> int:
    """The total training epochs of a morphism run that makes every trial after the seeds a child."""
    seeds = min(num_samples, seed_trials)
    return seeds * max_epochs + (num_samples - seeds) * child_epochs


def equal_budget_samples(at_least: int, seed_trials: int, max_epochs: int, child_epochs: int) -> int:
    """The smallest morphism trial count >= ``at_least`` whose total is a multiple of
    ``max_epochs`` (so that a whole number of evolution trials spends exactly as many epochs)."""
    n = at_least
    while morphism_epochs(n, seed_trials, max_epochs, child_epochs) % max_epochs:
        n += 1
    return n


def evolution_widths(smallest: int, largest: int) -> list[int]:
    """``smallest`` × 2^k and × 1.5 × 2^k up to ``largest`` (the widths a widen morph reaches in
    one or two steps of ×1.5/×2), e.g. 4 .. 64 → 4, 6, 8, 12, 16, 24, 32, 48, 64."""
    widths, base = set(), smallest
    while base <= largest:
        widths.update(w for w in (base, int(base * 1.5 + 0.5)) if w <= largest)
        base *= 2
    return sorted(widths | {largest})


#: ``--fashion-augment``: Fashion-MNIST's usual augmentation (training settings), for both methods.
FASHION_AUGMENT = {"crop_pad": 2, "flip": True}


def dataset_overrides(dataset: str, fashion: Path, train_fraction: float) -> dict[str, Any]:
    if dataset == "digits":
        return {"dataset": "digits"}
    return {"dataset": f"imagefolder:{fashion}", "train_fraction": train_fraction}


def space_text(method: str, overrides: Mapping[str, Any], widths: Sequence[int], depths: Sequence[int],
               population: int, sample_size: int, seed_space: Mapping[str, Sequence[int]] | None = None,
               training: Mapping[str, Any] | None = None, morph_options: Mapping[str, Any] | None = None) -> str:
    """The preset's text with the benchmark's overrides appended (the training settings stay the
    preset's, plus ``training``, the same for both methods: e.g. augmentation). ``seed_space``:
    choices that replace the preset's seed ``width``/``depth`` (morphism); ``morph_options``:
    searcher options that replace the preset's (morphism: ``ops``, ``child_epochs``,
    ``child_lr_scale``, ``sample_size``)."""
    lines = [PRESET_FILE.read_text(), "", f"# ----- benchmarks/morphism.py: {method} -----",
             "from ray import tune  # noqa: E402", f"EXPERIMENT = {{**EXPERIMENT, **{dict(overrides)!r}}}"]
    if training:
        lines.append(f"PARAM_SPACE = {{**PARAM_SPACE, **{dict(training)!r}}}")
    if method == "morphism" and seed_space:
        choices = ", ".join(f"{key!r}: tune.choice({list(values)!r})" for key, values in seed_space.items())
        lines.append(f"PARAM_SPACE = {{**PARAM_SPACE, {choices}}}")
    if method == "morphism" and morph_options:
        lines.append(f"EXPERIMENT = {{**EXPERIMENT, 'searcher_options': {{**EXPERIMENT['searcher_options'], "
                     f"**{dict(morph_options)!r}}}}}")
    if method == "evolution":
        lines += ["EXPERIMENT = {**EXPERIMENT, 'searcher': 'evolution', 'scheduler': 'none', 'searcher_options': "
                  f"{{'population_size': {population}, 'sample_size': {sample_size}}}}}",
                  f"PARAM_SPACE = {{**PARAM_SPACE, 'width': tune.choice({list(widths)!r}), "
                  f"'depth': tune.choice({list(depths)!r})}}"]
    return "\n".join(lines) + "\n"


def launch(space: Path, root: Path, name: str, seed: int, num_samples: int, max_epochs: int | None) -> float:
    """Run one search; its wall time in seconds (the launcher's whole process: Ray start included)."""
    command = [sys.executable, "-m", "tune_nas.launch", "--space", str(space), "--seed", str(seed),
               "--num-samples", str(num_samples), "--name", name, "--trials-dir", str(root)]
    if max_epochs is not None:
        command += ["--max-epochs", str(max_epochs)]
    print("  $ " + " ".join(command), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return time.perf_counter() - start


# ----- the numbers -----
def total_epochs(summary: Mapping[str, Any]) -> int:
    return sum(int(t["epochs"] or 0) for t in summary["trials"])


def epochs_to_reach(summary: Mapping[str, Any], target: float, objective: Objective) -> int | None:
    """Epochs spent, in trial-number order, until (and including) the first trial whose final
    value is at least as good as ``target``; None if none is."""
    spent = 0
    for trial in sorted(summary["trials"], key=lambda t: t["number"]):
        spent += int(trial["epochs"] or 0)
        value = trial.get(objective.column)
        if trial["state"] == "COMPLETE" and value is not None and not objective.better(target, value):
            return spent
    return None


def warm_start_check(summary: Mapping[str, Any], tolerance: float) -> dict[str, Any]:
    """Every child's ``warm_start_val_acc`` against its parent's final ``val_acc``."""
    by_number = {t["number"]: t for t in summary["trials"]}
    gaps, missing = [], []
    for trial in summary["trials"]:
        parent = trial.get("parent")
        if parent is None:
            continue
        warm, final = trial.get("warm_start_val_acc"), by_number.get(parent, {}).get("val_acc")
        if warm is None or final is None:
            missing.append(trial["number"])
        else:
            gaps.append((abs(warm - final), trial["number"]))
    worst = max(gaps, default=(None, None))
    return {"children": len(gaps) + len(missing), "max_gap": worst[0], "max_gap_trial": worst[1],
            "over_tolerance": [n for gap, n in gaps if gap > tolerance], "missing": missing}


def run_row(summary: Mapping[str, Any], wall_s: float | None) -> dict[str, Any]:
    best = summary.get("best") or {}
    return {"trials": len(summary["trials"]), "states": summary["counts"], "epochs": total_epochs(summary),
            "best_number": best.get("number"), "best_val_acc": best.get("val_acc"), "best_test_acc": best.get("test_acc"),
            "best_epochs": best.get("epochs"), "best_arch": best.get("arch"), "search_wall_s": summary.get("wall_time_s"),
            "process_wall_s": wall_s}


def compare(morph: Mapping[str, Any], evo: Mapping[str, Any], objective: Objective) -> dict[str, Any]:
    """Morphism against evolution of the same data set and seed: who is better, and the epochs
    each spent until evolution's best."""
    target = evo["best"]["val_acc"]
    evo_to_best = epochs_to_reach(evo, target, objective)
    morph_to_target = epochs_to_reach(morph, target, objective)
    saved = None if morph_to_target is None else evo_to_best - morph_to_target
    return {"evolution_best_val_acc": target, "evolution_epochs_to_best": evo_to_best,
            "morphism_epochs_to_evolution_best": morph_to_target,
            "morphism_at_least_evolution": not objective.better(target, morph["best"]["val_acc"]),
            "epochs_saved": saved, "share_saved": None if saved is None else saved / evo_to_best,
            "share_of_budget": None if morph_to_target is None else morph_to_target / total_epochs(evo)}


def fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(results: Sequence[Mapping[str, Any]]) -> str:
    head = ("| data set | seed | method | trials | epochs | best val acc | its test acc | epochs to evo best "
            "| saved vs evo | wall s |\n|---|---|---|---|---|---|---|---|---|---|")
    rows = [head]
    for r in results:
        c = r["comparison"]
        for method in METHODS:
            row = r[method]
            if method == "morphism":
                reach = fmt(c["morphism_epochs_to_evolution_best"], "d") if c["morphism_epochs_to_evolution_best"] \
                    is not None else "not reached"
                saved = "-" if c["epochs_saved"] is None else f"{c['epochs_saved']} ({c['share_saved']:.0%})"
            else:
                reach, saved = fmt(c["evolution_epochs_to_best"], "d"), ""
            rows.append(f"| {r['dataset']} | {r['seed']} | {method} | {row['trials']} | {row['epochs']} "
                        f"| {fmt(row['best_val_acc'])} | {fmt(row['best_test_acc'])} | {reach} | {saved} "
                        f"| {fmt(row['search_wall_s'], '.0f')} |")
    return "\n".join(rows)


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per data set: means over seeds, how often morphism reached evolution's best, the warm-start check."""
    out: dict[str, Any] = {}
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rs = [r for r in results if r["dataset"] == dataset]
        mean = lambda values: sum(values) / len(values) if values else None  # noqa: E731
        shares = [r["comparison"]["share_saved"] for r in rs if r["comparison"]["share_saved"] is not None]
        warm = [r["warm_start"] for r in rs]
        gaps = [w["max_gap"] for w in warm if w["max_gap"] is not None]
        out[dataset] = {
            "seeds": [r["seed"] for r in rs],
            **{f"{m}_mean_best_val_acc": mean([r[m]["best_val_acc"] for r in rs]) for m in METHODS},
            **{f"{m}_mean_test_acc": mean([r[m]["best_test_acc"] for r in rs]) for m in METHODS},
            **{f"{m}_mean_wall_s": mean([r[m]["search_wall_s"] for r in rs]) for m in METHODS},
            "morphism_at_least_evolution": sum(r["comparison"]["morphism_at_least_evolution"] for r in rs),
            "mean_share_saved": mean(shares), "reached": len(shares),
            "children": sum(w["children"] for w in warm), "warm_start_max_gap": max(gaps, default=None),
            "warm_start_over_tolerance": sum(len(w["over_tolerance"]) for w in warm),
            "warm_start_missing": sum(len(w["missing"]) for w in warm)}
    return out


# ----- the plot -----
def cumulative(summary: Mapping[str, Any]) -> dict[int, int]:
    """Each trial's number -> the epochs spent through it, in trial-number order."""
    spent, out = 0, {}
    for trial in sorted(summary["trials"], key=lambda t: t["number"]):
        spent += int(trial["epochs"] or 0)
        out[trial["number"]] = spent
    return out


def plot(path: Path, pairs: Sequence[tuple[int, Mapping[str, Any], Mapping[str, Any]]], dataset: str) -> None:
    """Left: the first seed's search over the budget (each trial at the cumulative epochs after
    it, a line from parent to child, evolution's trials beside it). Right: every seed's children
    against their parents (above y = x: the child beat its parent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.5, 1]})
    seed, morph, evo = pairs[0]
    at, by_number = cumulative(morph), {t["number"]: t for t in morph["trials"]}
    for trial in morph["trials"]:
        parent = trial.get("parent")
        if parent is not None and trial["val_acc"] is not None:
            left.plot([at[parent], at[trial["number"]]], [by_number[parent]["val_acc"], trial["val_acc"]],
                      color="tab:blue", alpha=0.35, linewidth=0.9)
    seeds = [t for t in morph["trials"] if t.get("parent") is None and t["val_acc"] is not None]
    children = [t for t in morph["trials"] if t.get("parent") is not None and t["val_acc"] is not None]
    left.scatter([at[t["number"]] for t in seeds], [t["val_acc"] for t in seeds], marker="s", s=40, color="tab:blue",
                 edgecolor="black", label="morphism: seed trial (from scratch)", zorder=3)
    left.scatter([at[t["number"]] for t in children], [t["val_acc"] for t in children], s=22, color="tab:blue",
                 label="morphism: child (warm-started), line from its parent", zorder=3)
    evo_at = cumulative(evo)
    done = [t for t in evo["trials"] if t["val_acc"] is not None]
    left.scatter([evo_at[t["number"]] for t in done], [t["val_acc"] for t in done], marker="x", s=40, color="tab:orange",
                 label="evolution: trial (from scratch)", zorder=3)
    for summary, color, name in ((morph, "tab:blue", "morphism"), (evo, "tab:orange", "evolution")):
        spent = cumulative(summary)
        xs, ys, best = [], [], None
        for t in sorted(summary["trials"], key=lambda t: t["number"]):
            if t["val_acc"] is not None and (best is None or t["val_acc"] > best):
                best = t["val_acc"]
            if best is not None:
                xs.append(spent[t["number"]])
                ys.append(best)
        left.step(xs, ys, where="post", color=color, linewidth=1.6, alpha=0.8, label=f"{name}: best so far")
    left.set_xlabel("training epochs spent (cumulative, trial-number order)")
    left.set_ylabel("validation accuracy")
    left.set_title(f"{dataset}, seed {seed}: {total_epochs(morph)} epochs each")
    left.legend(fontsize=7.5, loc="lower right")
    points = []
    for _, summary, _ in pairs:
        numbers = {t["number"]: t for t in summary["trials"]}
        points += [(numbers[t["parent"]]["val_acc"], t["val_acc"], t["number"]) for t in summary["trials"]
                   if t.get("parent") is not None and t["val_acc"] is not None]
    if points:
        shown = right.scatter([p for p, _, _ in points], [c for _, c, _ in points], c=[n for _, _, n in points],
                              cmap="viridis", s=24, edgecolor="black", linewidth=0.3)
        fig.colorbar(shown, ax=right, label="child's trial number")
        low = min(min(p, c) for p, c, _ in points)
        right.plot([low, 1], [low, 1], color="gray", linestyle="--", linewidth=1, label="y = x (child = parent)")
    better = sum(c > p for p, c, _ in points)
    right.set_xlabel("parent's final validation accuracy")
    right.set_ylabel("child's final validation accuracy")
    right.set_title(f"{len(points)} children ({len(pairs)} seed{'s' if len(pairs) > 1 else ''}): {better} beat their parent")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cpus, "platform": platform.platform(), "python": platform.python_version()}


# ----- the command -----
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-dir", type=Path, required=True, help="where the experiments go (and the space files)")
    parser.add_argument("--out", type=Path, help="the JSON with every number")
    parser.add_argument("--datasets", default="digits,fashion", help="comma-separated: digits, fashion")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (one morphism and one evolution run each)")
    parser.add_argument("--num-samples", type=int, help="morphism trials (default: the smallest >= the preset's "
                        "whose epochs a whole number of evolution trials matches)")
    parser.add_argument("--max-epochs", type=int, help="override the preset's max_epochs (seeds and evolution trials)")
    parser.add_argument("--fashion", type=Path, default=DEFAULT_FASHION, help="Fashion-MNIST as an image-folder .tar.gz")
    parser.add_argument("--train-fraction", type=float, default=0.05, help="Fashion-MNIST: share of training images")
    parser.add_argument("--fashion-augment", action="store_true",
                        help="Fashion-MNIST: train both methods with random crops (pad 2) and horizontal flips")
    parser.add_argument("--tolerance", type=float, default=0.002, help="warm-start check: largest allowed gap")
    parser.add_argument("--reuse", action="store_true", help="read runs whose summary.json exists instead of rerunning")
    parser.add_argument("--seed-widths", help="comma-separated widths replacing the preset's seed choices (morphism)")
    parser.add_argument("--seed-depths", help="comma-separated depths replacing the preset's seed choices (morphism)")
    parser.add_argument("--ops", help="comma-separated transforms the morphism draws (its searcher option ops; "
                        "e.g. widen,widen_all,deepen,skip,kernel)")
    parser.add_argument("--child-epochs", type=int, help="override the preset's child_epochs (searcher option)")
    parser.add_argument("--child-lr-scale", type=float, help="override the preset's child_lr_scale (searcher option)")
    parser.add_argument("--seed-trials", type=int, help="override the preset's seed_trials (searcher option: trials "
                        "trained from scratch before the first child; evolution's population size follows it)")
    parser.add_argument("--tournament", type=int, help="override the morphism's tournament size (searcher option "
                        "sample_size; evolution keeps the preset's)")
    parser.add_argument("--tag", default="preset", help="prefix of the experiment names: <tag>-<dataset>-s<seed>-<method>")
    parser.add_argument("--plot", type=Path, help="the lineage plot (first data set, all seeds)")
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    if not datasets or set(datasets) - {"digits", "fashion"}:
        parser.error(f"--datasets {args.datasets}: rule: a comma-separated list of digits, fashion")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.error(f"--seeds {args.seeds}: rule: comma-separated integers")
    if "fashion" in datasets and not args.fashion.is_file():
        parser.error(f"--fashion {args.fashion}: no such file; rule: Fashion-MNIST as an image-folder .tar.gz")
    if not 0 < args.train_fraction <= 1:
        parser.error(f"--train-fraction {args.train_fraction}: rule: 0 < fraction <= 1")
    seed_space: dict[str, list[int]] = {}
    for key, text in (("width", args.seed_widths), ("depth", args.seed_depths)):
        if text is None:
            continue
        try:
            seed_space[key] = [int(v) for v in text.split(",") if v]
        except ValueError:
            seed_space[key] = []
        if not seed_space[key] or min(seed_space[key]) < 1:
            parser.error(f"--seed-{key}s {text}: rule: comma-separated integers >= 1")

    ops = [op for op in args.ops.split(",") if op] if args.ops is not None else None
    if ops is not None and (not ops or set(ops) - set(MORPH_KEYS)):
        parser.error(f"--ops {args.ops}: rule: a comma-separated list of {', '.join(MORPH_KEYS)}")
    if args.child_epochs is not None and args.child_epochs < 1:
        parser.error(f"--child-epochs {args.child_epochs}: rule: an integer >= 1")
    if args.child_lr_scale is not None and not 0 < args.child_lr_scale <= 1:
        parser.error(f"--child-lr-scale {args.child_lr_scale}: rule: 0 < scale <= 1")
    if args.tournament is not None and args.tournament < 1:
        parser.error(f"--tournament {args.tournament}: rule: an integer >= 1")
    if args.seed_trials is not None and args.seed_trials < 1:
        parser.error(f"--seed-trials {args.seed_trials}: rule: an integer >= 1")
    morph_options: dict[str, Any] = {}
    if ops is not None:
        morph_options["ops"] = ops
    if args.child_epochs is not None:
        morph_options["child_epochs"] = args.child_epochs
    if args.child_lr_scale is not None:
        morph_options["child_lr_scale"] = args.child_lr_scale
    if args.tournament is not None:
        morph_options["sample_size"] = args.tournament
    if args.seed_trials is not None:
        morph_options["seed_trials"] = args.seed_trials
    preset = load_space(PRESET)
    settings = morphism_settings({**preset.spec.searcher_options, **morph_options})
    evolution_tournament = morphism_settings(preset.spec.searcher_options)["sample_size"]
    max_epochs = args.max_epochs or preset.spec.max_epochs
    objective = Objective(preset.spec.metric, preset.spec.mode)
    num_samples = args.num_samples or equal_budget_samples(preset.spec.num_samples, settings["seed_trials"], max_epochs,
                                                           settings["child_epochs"])
    seed_widths = seed_space.get("width") or list(preset.param_space["width"].categories)
    widths = evolution_widths(min(seed_widths), settings["max_channels"])
    depths = list(range(1, settings["max_layers"] + 1))
    planned = morphism_epochs(num_samples, settings["seed_trials"], max_epochs, settings["child_epochs"])
    print(f"morphism: {num_samples} trials ({settings['seed_trials']} seeds × {max_epochs} epochs + children × "
          f"{settings['child_epochs']}) = {planned} epochs planned; evolution: width {widths}, depth {depths}, "
          f"{max_epochs} epochs a trial", flush=True)

    args.trials_dir.mkdir(parents=True, exist_ok=True)
    spaces = args.trials_dir / "spaces"
    spaces.mkdir(exist_ok=True)
    results, started = [], time.perf_counter()
    for dataset in datasets:
        overrides = dataset_overrides(dataset, args.fashion.resolve(), args.train_fraction)
        files = {}
        training = FASHION_AUGMENT if dataset == "fashion" and args.fashion_augment else None
        for method in METHODS:
            files[method] = spaces / f"{method}_{dataset}.py"
            files[method].write_text(space_text(method, overrides, widths, depths, settings["seed_trials"],
                                                evolution_tournament, seed_space, training, morph_options))
        for seed in seeds:
            summaries, walls = {}, {}
            for method in METHODS:
                name = f"{args.tag}-{dataset}-s{seed}-{method}"
                path = args.trials_dir / name / "summary.json"
                if not (args.reuse and path.is_file()):
                    if method == "morphism":
                        trials = num_samples
                    else:
                        trials = math.ceil(total_epochs(summaries["morphism"]) / max_epochs)
                    walls[method] = launch(files[method], args.trials_dir, name, seed, trials, args.max_epochs)
                else:
                    walls[method] = None
                summaries[method] = json.loads(path.read_text())
            result = {"dataset": dataset, "seed": seed, **{m: run_row(summaries[m], walls[m]) for m in METHODS},
                      "comparison": compare(summaries["morphism"], summaries["evolution"], objective),
                      "warm_start": warm_start_check(summaries["morphism"], args.tolerance)}
            results.append(result)
            m, e, c, w = result["morphism"], result["evolution"], result["comparison"], result["warm_start"]
            print(f"{dataset} seed {seed}: epochs morphism {m['epochs']} / evolution {e['epochs']}; best val acc "
                  f"{fmt(m['best_val_acc'])} / {fmt(e['best_val_acc'])}; morphism reached evolution's best after "
                  f"{c['morphism_epochs_to_evolution_best']} epochs (evolution: {c['evolution_epochs_to_best']}); "
                  f"warm start: {w['children']} children, max gap {fmt(w['max_gap'], '.5f')}, "
                  f"{len(w['over_tolerance'])} over {args.tolerance}", flush=True)
            if args.plot and dataset == datasets[0]:
                result["_summaries"] = summaries
    table = markdown(results)
    print()
    print(table)
    totals = aggregate(results)
    for dataset, a in totals.items():
        print(f"\n{dataset}: mean best val acc morphism {fmt(a['morphism_mean_best_val_acc'])} vs evolution "
              f"{fmt(a['evolution_mean_best_val_acc'])} (test {fmt(a['morphism_mean_test_acc'])} vs "
              f"{fmt(a['evolution_mean_test_acc'])}); morphism >= evolution in {a['morphism_at_least_evolution']}/"
              f"{len(a['seeds'])} seeds; reached evolution's best in {a['reached']}/{len(a['seeds'])}, mean share of "
              f"evolution's epochs saved {fmt(a['mean_share_saved'], '.0%')}; warm start: {a['children']} children, max "
              f"gap {fmt(a['warm_start_max_gap'], '.5f')}, {a['warm_start_over_tolerance']} over {args.tolerance}, "
              f"{a['warm_start_missing']} without a value")
    if args.plot:
        pairs = [(r["seed"], r["_summaries"]["morphism"], r["_summaries"]["evolution"])
                 for r in results if "_summaries" in r]
        plot(args.plot, pairs, datasets[0])
    for r in results:
        r.pop("_summaries", None)
    elapsed = time.perf_counter() - started
    print(f"\nbenchmark wall time: {elapsed:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "settings": {"preset": PRESET, "tag": args.tag, "seed_space": seed_space or "the preset's",
                         "ops": ops or "the preset's", "child_lr_scale": morph_options.get("child_lr_scale", "the preset's"),
                         "num_samples": num_samples, "max_epochs": max_epochs, **settings,
                         "evolution_widths": widths, "evolution_depths": depths, "seeds": seeds, "datasets": datasets,
                         "train_fraction_fashion": args.train_fraction,
                         "fashion_augment": FASHION_AUGMENT if args.fashion_augment else None, "tolerance": args.tolerance},
            "results": results, "per_dataset": totals, "table": table, "wall_s": elapsed}, indent=1))
        print(f"json: {args.out}")


if __name__ == "__main__":
    main()
