"""Multi-objective search on NAS-Bench-201: accuracy against model size, every searcher that takes two objectives.

    python benchmarks/multiobjective.py [--searchers tpe,nsga2,evolution,random]
        [--dataset cifar10|cifar100|imagenet16] [--repetitions 50] [--evaluations 100]
        [--startup-trials 8] [--seed 0] [--out DIR] [--plot PATH]

The sibling of ``benchmarks/strategies.py``, with its conventions: each repetition is a plain
Optuna ask/tell loop (no Ray) over the 6 categorical parameters ``edge0..edge5``; an evaluation
returns ONE training seed's results of the cell, drawn at random (the search sees the training
noise), with the same noise stream and sampler seed per repetition as there. The study has two
objectives, as the launcher's tabular mode reports them: ``val/acc`` (max, percent) and
``model/params`` (min, the table's ``model_size`` in MB x 1e6), and the searcher comes from
``tune_nas.search.create_sampler`` with both objectives.

Scoring (noise-free, on the table): a cell's accuracy is its MEAN validation accuracy over the
table's seeds and its size its MEDIAN ``model_size`` over seeds (the table lists the size per
seed; it differs between seeds for 204 cells, none of them near the front; the median is a size
the cell actually has, and it avoids the rounding of a mean, which puts a 14th cell, 230122,
beside its twin 302122 of equal size). These definitions reproduce the issue's figures on
CIFAR-10: a true Pareto front of 13 cells and best accuracies 88.65 / 90.72 / 91.42 % under
0.2 / 0.4 / 0.8 MB.

* **Found front**: the cells on the Pareto front of what the search SAW (its observed values,
  ``study.best_trials``' rule), scored by their mean accuracy and median size: the front a user
  would be handed. Its hypervolume is reported as a share of the true front's, with the
  reference point (accuracy 0 %, the largest cell's size) printed; a dominated point (a lucky
  seed) adds nothing.
* **Evaluated**: the hypervolume of every cell the search evaluated, by the same table values:
  what an oracle choosing among them would get (it separates the search from the noise).
* **Size caps** (0.2 / 0.4 / 0.8 MB): the evaluated cell with the best OBSERVED accuracy among
  those whose observed size keeps the cap, scored by its mean accuracy, against the table's best
  under the cap. A repetition that found no cell under a cap is left out of that mean and
  counted.

Prints the true front, the table's best under each cap, and one row per searcher (mean ± std
over repetitions); writes ``multiobjective.json`` into ``--out`` when given, and with ``--plot``
a figure of the true front and each searcher's found fronts.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tune_nas.objectives import Objective, hypervolume, pareto_front  # noqa: E402
from tune_nas.search import create_sampler, list_searchers  # noqa: E402
from tune_nas.search.registry import MULTI_OBJECTIVE, SearcherSettings  # noqa: E402
from tune_nas.tabular.nasbench201 import DATASETS, EDGE_KEYS, EDGES, OPS, NB201Table, arch_string  # noqa: E402

#: What the study optimises, as the launcher's tabular mode reports it.
OBJECTIVES = (Objective("val/acc", "max"), Objective("model/params", "min"))
#: What the table's points are scored in: mean val acc (percent) and median size (MB).
SCORED = (Objective("mean val acc", "max"), Objective("size MB", "min"))
PARAMS_PER_MB = 1e6
CAPS_MB = (0.2, 0.4, 0.8)


def repetition_seed(seed: int, repetition: int) -> int:
    """The sampler's seed in one repetition, as in ``benchmarks/strategies.py``."""
    return seed * 100_003 + repetition


def training_noise(seed: int, repetition: int) -> np.random.Generator:
    """The stream that draws each evaluation's training seed: the same for every searcher, as
    in ``benchmarks/strategies.py``."""
    return np.random.default_rng([seed, repetition])


@dataclass(frozen=True)
class CellTable:
    """Every cell's scored point: mean val acc (percent) and median model size (MB), in the
    order of ``itertools.product(OPS, repeat=6)``, i.e. the table key read in base 5."""

    cells: tuple[tuple[str, ...], ...]
    accuracy: np.ndarray
    size_mb: np.ndarray

    @classmethod
    def of(cls, table: NB201Table) -> CellTable:
        cells = tuple(itertools.product(OPS, repeat=len(EDGES)))
        accuracy = np.array([table.mean_val_acc(ops) for ops in cells])
        # the table has no public per-cell size: its per-seed row is read directly
        size = np.array([float(np.median(table._row(ops)["model_size"])) for ops in cells])
        return cls(cells, accuracy, size)

    def index(self, ops: tuple[str, ...]) -> int:
        return int("".join(str(OPS.index(op)) for op in ops), len(OPS))

    def points(self, indices) -> list[tuple[float, float]]:
        return [(float(self.accuracy[i]), float(self.size_mb[i])) for i in indices]

    @functools.cached_property
    def true_front(self) -> tuple[int, ...]:
        """The true Pareto front's cells, smallest first. A cell below the best accuracy of its
        own size is dominated, so only those best ones (a few hundred) go through
        :func:`~tune_nas.objectives.pareto_front` (quadratic: all 15,625 would take minutes)."""
        best_of_size: dict[float, float] = {}
        for accuracy, size in zip(self.accuracy, self.size_mb):
            best_of_size[size] = max(accuracy, best_of_size.get(size, -math.inf))
        candidates = [i for i, (a, s) in enumerate(zip(self.accuracy, self.size_mb)) if a == best_of_size[s]]
        front = [candidates[k] for k in pareto_front(self.points(candidates), SCORED)]
        return tuple(sorted(front, key=lambda i: (self.size_mb[i], -self.accuracy[i])))

    def reference(self, tight: bool = False) -> tuple[float, float]:
        """The hypervolume's reference point. Plain: accuracy 0 %, the largest cell's size; most
        of the volume is then the rectangle under the smallest cells, which any search finds, so
        shares are close to 1. Tight: the true front's nadir (its lowest accuracy, its largest
        size) moved out by 10 % of the front's range in each objective, a common choice that
        weighs the front itself."""
        if not tight:
            return (0.0, float(self.size_mb.max()))
        accuracy, size = self.accuracy[list(self.true_front)], self.size_mb[list(self.true_front)]
        return (float(accuracy.min() - 0.1 * np.ptp(accuracy)), float(size.max() + 0.1 * np.ptp(size)))

    def volume(self, indices, tight: bool = False) -> float:
        return hypervolume(self.points(indices), SCORED, self.reference(tight))

    def share(self, indices, tight: bool = False) -> float:
        """The hypervolume of ``indices`` as a share of the true front's."""
        return self.volume(indices, tight) / self.volume(self.true_front, tight)

    def best_under(self, cap_mb: float) -> float:
        return float(self.accuracy[self.size_mb <= cap_mb].max())


@dataclass
class Repetition:
    """What one search found: the cells on its observed front, every cell it evaluated, and the
    chosen cell (table index) under each size cap (None: nothing evaluated kept it)."""

    front: list[int]
    evaluated: list[int]
    under_cap: dict[float, int | None]


def run_once(searcher: str, table: NB201Table, cells: CellTable, repetition: int, evaluations: int,
             seed: int, startup_trials: int, options: dict | None = None) -> Repetition:
    """One two-objective search of ``evaluations`` asks and tells."""
    import optuna

    settings = SearcherSettings(seed=repetition_seed(seed, repetition), objectives=OBJECTIVES,
                                n_startup_trials=startup_trials, options=options or {})
    study = optuna.create_study(directions=[o.optuna_direction for o in OBJECTIVES],
                                sampler=create_sampler(searcher, settings))
    noise = training_noise(seed, repetition)
    seen: list[tuple[float, float]] = []
    evaluated: list[int] = []
    for _ in range(evaluations):
        trial = study.ask()
        ops = tuple(trial.suggest_categorical(key, OPS) for key in EDGE_KEYS)
        result = table.lookup(ops, noise)
        study.tell(trial, [result["val_acc"], result["model_size"] * PARAMS_PER_MB])
        seen.append((result["val_acc"], result["model_size"]))
        evaluated.append(cells.index(ops))
    front = sorted({evaluated[k] for k in pareto_front(seen, SCORED)})
    under_cap: dict[float, int | None] = {}
    for cap in CAPS_MB:
        kept = [k for k, (_, size) in enumerate(seen) if size <= cap]
        under_cap[cap] = evaluated[max(kept, key=lambda k: seen[k][0])] if kept else None
    return Repetition(front, sorted(set(evaluated)), under_cap)


def summarise(name: str, runs: list[Repetition], cells: CellTable, seconds: float) -> dict:
    found = np.array([cells.share(r.front) for r in runs])
    tight = np.array([cells.share(r.front, tight=True) for r in runs])
    evaluated = np.array([cells.share(r.evaluated) for r in runs])
    caps = {}
    for cap in CAPS_MB:
        chosen = np.array([cells.accuracy[r.under_cap[cap]] for r in runs if r.under_cap[cap] is not None])
        caps[f"{cap:g}"] = {"mean": float(np.mean(chosen)) if len(chosen) else math.nan,
                            "std": float(np.std(chosen)) if len(chosen) else math.nan,
                            "repetitions_without": len(runs) - len(chosen),
                            "table_best": cells.best_under(cap)}
    return {
        "searcher": name,
        "repetitions": len(runs),
        "hypervolume_share_mean": float(np.mean(found)),
        "hypervolume_share_std": float(np.std(found)),
        "hypervolume_share_min": float(np.min(found)),
        "repetitions_reaching_95": int(np.sum(found >= 0.95)),
        "tight_hypervolume_share_mean": float(np.mean(tight)),
        "tight_hypervolume_share_std": float(np.std(tight)),
        "evaluated_hypervolume_share_mean": float(np.mean(evaluated)),
        "evaluated_hypervolume_share_std": float(np.std(evaluated)),
        "front_cells_mean": float(np.mean([len(r.front) for r in runs])),
        "true_front_cells_found_mean": float(np.mean([len(set(r.front) & set(cells.true_front)) for r in runs])),
        "size_caps": caps,
        "seconds": round(seconds, 1),
    }


def median_run(runs: list[Repetition], cells: CellTable) -> Repetition:
    """The repetition whose found front has the median hypervolume (the plot's example)."""
    volumes = [cells.volume(r.front) for r in runs]
    return runs[int(np.argsort(volumes)[len(volumes) // 2])]


def plot(found: dict[str, list[Repetition]], cells: CellTable, dataset: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def staircase(indices: list[int]) -> tuple[list[float], list[float]]:
        """The front of ``indices`` by table values, as a step line from the smallest cell."""
        front = [indices[k] for k in pareto_front(cells.points(indices), SCORED)]
        points = sorted(cells.points(front), key=lambda p: p[1])
        xs, ys = [], []
        for accuracy, size in points:
            if xs:
                xs.append(size)
                ys.append(ys[-1])
            xs.append(size)
            ys.append(accuracy)
        return xs, ys

    names = list(found)
    columns = min(2, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.5 * rows), squeeze=False, sharex=True,
                             sharey=True)
    true_front = list(cells.true_front)
    low = float(min(cells.accuracy[true_front])) - 2.0
    for ax, name in zip(axes.flat, names):
        counts: dict[int, int] = {}
        for run in found[name]:
            for i in run.front:
                counts[i] = counts.get(i, 0) + 1
        shown = [i for i in counts if cells.accuracy[i] >= low]
        ax.scatter(cells.size_mb[shown], cells.accuracy[shown], s=[8 + 60 * counts[i] / len(found[name]) for i in shown],
                   alpha=0.35, label="cells on found fronts (size: how often)")
        ax.plot(*staircase(true_front), color="black", linewidth=1.2, label=f"true front ({len(true_front)} cells)")
        ax.plot(*staircase(median_run(found[name], cells).front), color="tab:red", linewidth=1.2,
                label="median repetition's found front")
        for cap in CAPS_MB:
            ax.axvline(cap, color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(f"{name}: {len(found[name])} repetitions")
        ax.set_xlabel("model size (MB, median over seeds)")
        ax.set_ylabel("val acc (%, mean over seeds)")
        ax.set_ylim(low, float(cells.accuracy.max()) + 0.5)
        ax.legend(loc="lower right", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"NAS-Bench-201 {dataset}: accuracy against size, fronts found from one seed's values")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [s for s in ("tpe", "nsga2", "evolution", "random") if s in list_searchers()]
    parser.add_argument("--searchers", default=",".join(default),
                        help=f"comma-separated searchers that take several objectives (default: {','.join(default)})")
    parser.add_argument("--dataset", default="cifar10", choices=DATASETS)
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--evaluations", type=int, default=100)
    parser.add_argument("--startup-trials", type=int, default=SearcherSettings.n_startup_trials,
                        help="random trials before a model-based searcher (tpe) models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for multiobjective.json")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the true and the found fronts")
    args = parser.parse_args(argv)
    args.searchers = [s for s in args.searchers.split(",") if s]
    for name in args.searchers:
        if name not in list_searchers():
            parser.error(f"--searchers {name!r}: rule: one of {', '.join(list_searchers())}")
        if name not in MULTI_OBJECTIVE:
            parser.error(f"--searchers {name!r}: rule: a searcher that takes several objectives, one of "
                         f"{', '.join(MULTI_OBJECTIVE)}")
    for flag in ("repetitions", "evaluations"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} {getattr(args, flag)}: rule: an integer >= 1")
    if args.startup_trials < 0:
        parser.error(f"--startup-trials {args.startup_trials}: rule: an integer >= 0")
    return args


def describe_table(cells: CellTable) -> list[str]:
    plain, tight = cells.reference(), cells.reference(tight=True)
    lines = [f"true Pareto front: {len(cells.true_front)} cells (val acc: mean over seeds; size: median over seeds)",
             "   size MB  val acc %  key     arch"]
    for i in cells.true_front:
        key = "".join(str(OPS.index(op)) for op in cells.cells[i])
        lines.append(f"  {cells.size_mb[i]:8.4f}  {cells.accuracy[i]:9.3f}  {key}  {arch_string(cells.cells[i])}")
    lines.append(f"hypervolume reference points (val acc %, size MB): plain ({plain[0]:g}, {plain[1]:.4f}) = accuracy 0, "
                 f"the largest cell; true front's volume {cells.volume(cells.true_front):.4f}; tight ({tight[0]:.3f}, "
                 f"{tight[1]:.4f}) = the front's nadir moved out by 10 % of its range; volume "
                 f"{cells.volume(cells.true_front, tight=True):.4f}")
    lines.append("table's best val acc under size caps: " + ", ".join(
        f"<= {cap:g} MB {cells.best_under(cap):.3f}" for cap in CAPS_MB))
    return lines


#: (header, width) of the printed table's columns after the searcher's name.
COLUMNS = (("HV share", 15), (">=95%", 7), ("tight share", 15), ("evaluated", 15), ("front", 5), ("true", 5),
           *((f"<= {cap:g} MB", 12) for cap in CAPS_MB), ("s", 5))


def _spread(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f}±{std:.{digits}f}"


def table_header() -> str:
    return f"{'searcher':10s} " + " ".join(f"{name:>{width}s}" for name, width in COLUMNS)


def table_row(row: dict) -> str:
    cells = [_spread(row["hypervolume_share_mean"], row["hypervolume_share_std"], 4),
             f"{row['repetitions_reaching_95']}/{row['repetitions']}",
             _spread(row["tight_hypervolume_share_mean"], row["tight_hypervolume_share_std"], 4),
             _spread(row["evaluated_hypervolume_share_mean"], row["evaluated_hypervolume_share_std"], 4),
             f"{row['front_cells_mean']:.1f}", f"{row['true_front_cells_found_mean']:.1f}"]
    cells += [_spread(c["mean"], c["std"], 2) + (f"/{c['repetitions_without']}!" if c["repetitions_without"] else "")
              for c in row["size_caps"].values()]
    cells.append(f"{row['seconds']:.0f}")
    return f"{row['searcher']:10s} " + " ".join(f"{text:>{width}s}" for text, (_, width) in zip(cells, COLUMNS))


def table_footer(cells: CellTable) -> str:
    texts = ["", "", "", "", "", "", *(f"{cells.best_under(cap):.2f}" for cap in CAPS_MB), ""]
    return f"{'table best':10s} " + " ".join(f"{text:>{width}s}" for text, (_, width) in zip(texts, COLUMNS))


LEGEND = ("HV share: the found front's hypervolume (its cells by table values) / the true front's, plain reference; "
          ">=95%: repetitions reaching 0.95; tight share: the same with the tight reference; evaluated: every cell "
          "evaluated, plain reference; front: cells on the found front, true: of them on the true front; "
          "<= cap: mean val acc of the cell chosen under the cap (/n!: n repetitions found none); s: seconds")


def main(argv: list[str] | None = None) -> int:
    import optuna

    args = parse(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.perf_counter()
    table = NB201Table(args.dataset)
    cells = CellTable.of(table)
    print(f"NAS-Bench-201 {args.dataset}: {OBJECTIVES[0].describe()} against {OBJECTIVES[1].describe()}; "
          f"{args.repetitions} repetitions x {args.evaluations} evaluations, startup trials {args.startup_trials}, "
          f"seed {args.seed}")
    for line in describe_table(cells):
        print(line)
    print(LEGEND)
    print(table_header(), flush=True)
    rows, found = [], {}
    for name in args.searchers:
        clock = time.perf_counter()
        found[name] = [run_once(name, table, cells, r, args.evaluations, args.seed, args.startup_trials)
                       for r in range(args.repetitions)]
        rows.append(summarise(name, found[name], cells, time.perf_counter() - clock))
        print(table_row(rows[-1]), flush=True)
    print(table_footer(cells))
    seconds = round(time.perf_counter() - started, 1)
    if args.out is not None:
        report = {
            "dataset": args.dataset, "repetitions": args.repetitions, "evaluations": args.evaluations,
            "startup_trials": args.startup_trials, "seed": args.seed,
            "objectives": [o.as_dict() for o in OBJECTIVES],
            "scoring": {"accuracy": "mean val acc over seeds (%)", "size": "median model_size over seeds (MB)"},
            "reference_point": {"val_acc": cells.reference()[0], "size_mb": cells.reference()[1]},
            "true_front": [{"arch": arch_string(cells.cells[i]), "val_acc": float(cells.accuracy[i]),
                            "size_mb": float(cells.size_mb[i])} for i in cells.true_front],
            "true_front_hypervolume": cells.volume(cells.true_front),
            "tight_reference_point": {"val_acc": cells.reference(True)[0], "size_mb": cells.reference(True)[1]},
            "true_front_tight_hypervolume": cells.volume(cells.true_front, tight=True),
            "table_best_under_cap": {f"{cap:g}": cells.best_under(cap) for cap in CAPS_MB},
            "searchers": rows,
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "python": platform.python_version(), "optuna": optuna.__version__},
            "seconds": seconds,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "multiobjective.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out / 'multiobjective.json'}")
    if args.plot is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(found, cells, args.dataset, args.plot)
        print(f"wrote {args.plot}")
    print(f"took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
