"""Learning curves of an experiment and how well early epochs predict the end.

Low-fidelity evaluation: ASHA stops a trial at its first rung (``grace_period`` epochs) on
the strength of a partial curve. That is only sound when the ranking of trials
after a few epochs agrees with their ranking at ``max_epochs``. This module measures that
agreement on the trials that trained their full budget:

* per epoch, Spearman's ρ and Kendall's τ between the metric at that epoch and the final
  metric, with the number of trials behind each figure and a percentile-bootstrap
  confidence interval (trials resampled with replacement);
* the smallest epoch whose ρ reaches :data:`SUGGEST_RHO` (0.9), as the suggested grace
  period; warnings when ASHA's rungs rank trials poorly, or when fewer than
  :data:`MIN_FULL_TRIALS` trials reached the end (too few to say anything);
* plots: every trial's curve coloured by its final state with the rungs marked
  (``curves.png``), and the rank correlation against the epoch (``fidelity.png``).

Selection bias: under ASHA the trials that reached the end are the survivors of every rung,
a narrower range than all trials, which pulls correlations down. A search without early
stopping (``scheduler: "none"``) measures fidelity without that bias.

:func:`aligned_rank_correlation` and :func:`top_k_overlap` measure the second stage of
low-fidelity evaluation: how well the search-time metric of the top-k configurations ranks
them once they are retrained at full fidelity (the launcher's final stage).

The metric and its direction are the experiment's :class:`~tune_nas.objectives.Objective`
(a loss is minimised: its best trials are those with the lowest values). Spearman's ρ and
Kendall's τ between the metric at an epoch and at the end do not depend on the direction
(both sides flip together); which trials are "the top k" does.

Pure: pandas, numpy, scipy and matplotlib (Agg); no Ray. Reads the experiment through
:func:`tune_nas.analysis.experiment.load_experiment`; writes only when asked
(``fidelity.json``, ``fidelity.txt``, ``curves.png``, ``fidelity.png``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tune_nas.analysis.experiment import Experiment, ExperimentError, load_experiment
from tune_nas.layout import CURVE_KEY_COLUMNS, CURVES_FILE
from tune_nas.objectives import Objective
from tune_nas.record import formatting
from tune_nas.states import TrialState

#: Fewer trials than this at the full budget: no suggestion, only a warning.
MIN_FULL_TRIALS = 5
#: The suggested grace period is the first epoch whose Spearman ρ reaches this.
SUGGEST_RHO = 0.9
#: A rung whose Spearman ρ is below this ranks trials barely better than chance: warn.
WEAK_RHO = 0.5
#: Correlations need at least this many pairs (fewer: reported as NaN).
MIN_PAIRS = 3

STATE_COLOURS = {TrialState.COMPLETE: "tab:green", TrialState.PRUNED: "tab:orange",
                 TrialState.FAIL: "tab:red", TrialState.RUNNING: "tab:gray"}


# --------------------------------------------------------------------------- curves


def metric_matrix(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The metric as a trials × epochs table (index: trial number; NaN where not reached);
    ``curves`` as :func:`~tune_nas.analysis.experiment.load_experiment` reads them."""
    if metric not in curves.columns:
        metrics = [c for c in curves.columns if c not in CURVE_KEY_COLUMNS]
        raise ExperimentError(f"metric {metric!r} is not in {CURVES_FILE}; rule: one of "
                              f"{', '.join(metrics)}")
    table = curves.pivot_table(index="trial_number", columns="epoch", values=metric,
                               aggfunc="last", dropna=False)
    return table.sort_index(axis=0).sort_index(axis=1)


def trial_states(curves: pd.DataFrame) -> pd.Series:
    """Each trial's final state (index: trial number)."""
    return curves.groupby("trial_number")["state"].last()


def asha_rungs(grace_period: int | None, reduction_factor: float | None,
               max_epochs: int) -> list[int]:
    """ASHA's rung epochs ``grace·rf^k`` up to ``max_epochs`` (Ray's milestones, rounded).

    >>> asha_rungs(1, 3, 9)
    [1, 3, 9]
    """
    if not grace_period or not reduction_factor or reduction_factor <= 1 or grace_period <= 0:
        return []
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1 + 1e-9)
    rungs = [grace_period * reduction_factor ** k for k in range(max(count, 0))]
    return sorted({round(r) for r in rungs if r <= max_epochs + 1e-9})


# --------------------------------------------------------------------------- correlations


@dataclass(frozen=True)
class RankCorrelation:
    """Rank agreement of two paired samples (NaN where it cannot be computed)."""

    n: int
    spearman: float
    kendall: float
    spearman_ci: tuple[float, float]
    kendall_p: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "spearman": formatting.rounded(self.spearman),
                "kendall": formatting.rounded(self.kendall),
                "kendall_p": formatting.rounded(self.kendall_p),
                "spearman_ci": [formatting.rounded(v) for v in self.spearman_ci]}


def _rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's ρ of every row pair of ``a`` and ``b`` (shape: samples × n); NaN for ties-only."""
    from scipy.stats import rankdata

    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (ra * rb).sum(axis=1) / denominator, np.nan)


def rank_correlation(a: Sequence[float], b: Sequence[float], *, n_boot: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> RankCorrelation:
    """Spearman's ρ and Kendall's τ (scipy) of paired values, with a bootstrap CI for ρ.

    Pairs with a NaN on either side are dropped; ``n`` is the number of pairs used. With
    fewer than :data:`MIN_PAIRS` pairs, or a constant side, the figures are NaN. The CI is
    the percentile interval of ρ over ``n_boot`` resamples of the pairs (resamples whose ρ is
    undefined, e.g. all one value, are skipped).
    """
    from scipy.stats import kendalltau, spearmanr

    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: rule: 0 < confidence < 1")
    if n_boot < 0:
        raise ValueError(f"n_boot={n_boot}: rule: n_boot >= 0")
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"rank_correlation needs two 1-d samples of one length; got shapes "
                         f"{x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan_ci = (math.nan, math.nan)
    if n < MIN_PAIRS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return RankCorrelation(n, math.nan, math.nan, nan_ci)
    rho = float(spearmanr(x, y).statistic)
    tau_result = kendalltau(x, y)
    ci = nan_ci
    if n_boot:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        boots = _rowwise_spearman(x[idx], y[idx])
        boots = boots[np.isfinite(boots)]
        if boots.size:
            tail = (1 - confidence) / 2 * 100
            lo, hi = np.percentile(boots, [tail, 100 - tail])
            ci = (float(lo), float(hi))
    return RankCorrelation(n, rho, float(tau_result.statistic), ci, float(tau_result.pvalue))


def aligned_rank_correlation(search: Mapping[Any, float], full: Mapping[Any, float],
                             **kwargs: Any) -> RankCorrelation:
    """:func:`rank_correlation` of two scores keyed by configuration (e.g. trial number).

    For the second stage of low-fidelity evaluation: ``search`` holds each top-k
    configuration's metric from the search, ``full`` the same configuration retrained at
    full fidelity. Only keys present in both count (``n`` says how many).
    """
    keys = [k for k in search if k in full]
    return rank_correlation([search[k] for k in keys], [full[k] for k in keys], **kwargs)


def top_k_overlap(search: Mapping[Any, float], full: Mapping[Any, float], k: int,
                  objective: Objective) -> float:
    """Fraction of the full-fidelity top ``k`` that the search's top ``k`` also holds; the top
    is the best by ``objective`` (the lowest values for a loss). Keys without a finite value
    on either side do not count (NaN when none is left)."""
    if k <= 0:
        raise ValueError(f"k={k}: rule: k >= 1")
    keys = [key for key in search if key in full]
    top_search = set(objective.ranked(keys, search.get)[:k])
    top_full = set(objective.ranked(keys, full.get)[:k])
    return len(top_search & top_full) / len(top_full) if top_full else math.nan


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class EpochFidelity:
    """How well the metric at ``epoch`` ranks the full-budget trials by their final metric."""

    epoch: int
    correlation: RankCorrelation

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, **self.correlation.as_dict()}


@dataclass
class FidelityReport:
    """Fidelity analysis of one experiment (see the module doc)."""

    experiment: str
    objective: Objective
    max_epochs: int
    rungs: list[int]
    trials: int
    states: dict[str, int]
    full_trials: int
    epochs: list[EpochFidelity]
    suggested_grace_period: int | None
    warnings: list[str]
    grace_period: int | None = None
    reduction_factor: float | None = None
    files: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.objective.metric

    def at(self, epoch: int) -> EpochFidelity | None:
        return next((e for e in self.epochs if e.epoch == epoch), None)

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "metric": self.objective.metric,
                "mode": self.objective.direction,
                "max_epochs": self.max_epochs, "grace_period": self.grace_period,
                "reduction_factor": self.reduction_factor, "rungs": self.rungs,
                "trials": self.trials, "states": self.states, "full_trials": self.full_trials,
                "min_full_trials": MIN_FULL_TRIALS, "suggest_rho": SUGGEST_RHO,
                "suggested_grace_period": self.suggested_grace_period,
                "warnings": self.warnings, "epochs": [e.as_dict() for e in self.epochs],
                "files": self.files}

    def text(self) -> str:
        states = ", ".join(f"{n} {s}" for s, n in self.states.items())
        lines = [(f"Fidelity of {self.objective.describe()} in {self.experiment}: {self.trials} "
                 f"trials ({states}); {self.full_trials} reached max_epochs={self.max_epochs}."),
                 (f"Rank correlation of each epoch's {self.metric} with the final one "
                 "(full-budget trials only):"),
                 f"  {'epoch':>5} {'n':>3} {'spearman':>9} {'95% CI':>15} {'kendall':>8}  rung"]
        for item in self.epochs:
            c = item.correlation
            ci = f"[{_correlation(c.spearman_ci[0])}, {_correlation(c.spearman_ci[1])}]"
            rung = "*" if item.epoch in self.rungs else ""
            lines.append(f"  {item.epoch:>5} {c.n:>3} {_correlation(c.spearman):>9} {ci:>15} "
                         f"{_correlation(c.kendall):>8}  {rung}")
        if self.rungs:
            lines.append(f"  (* ASHA rung: grace_period={self.grace_period}, "
                         f"reduction_factor={self.reduction_factor:g})")
        if self.suggested_grace_period is not None:
            lines.append(f"Suggested grace period: {self.suggested_grace_period} epoch(s) "
                         f"(first epoch with Spearman ρ ≥ {SUGGEST_RHO}).")
        else:
            lines.append("Suggested grace period: none (see the warnings).")
        lines.extend(f"Warning: {w}" for w in self.warnings)
        return "\n".join(lines) + "\n"


def _correlation(value: float) -> str:
    return formatting.number(value, 3, missing="nan")


def analyse_fidelity(curves: pd.DataFrame, objective: Objective, max_epochs: int, *,
                     grace_period: int | None = None, reduction_factor: float | None = None,
                     scheduler: str | None = "asha", experiment: str = "",
                     n_boot: int = 1000, seed: int = 0) -> FidelityReport:
    """The fidelity analysis of ``curves`` (as :func:`~tune_nas.analysis.experiment.load_experiment`
    reads them) on ``objective``'s metric, nothing written. ASHA's rungs are marked when
    ``scheduler`` is ASHA."""
    metric = objective.metric
    table = metric_matrix(curves, metric)
    states = trial_states(curves)
    rungs = asha_rungs(grace_period, reduction_factor, max_epochs) if scheduler == "asha" else []
    final = table[max_epochs] if max_epochs in table.columns else pd.Series(np.nan, table.index)
    full = table[final.notna()]
    epochs = [EpochFidelity(int(e), rank_correlation(full[e].to_numpy(), full[max_epochs].to_numpy(),
                                                     n_boot=n_boot, seed=seed + int(e)))
              for e in table.columns if 1 <= e <= max_epochs] if len(full) else []
    counts = {str(s): int(n) for s, n in states.value_counts().sort_index().items()}
    warnings: list[str] = []
    suggested: int | None = None
    if len(full) < MIN_FULL_TRIALS:
        warnings.append(f"only {len(full)} trial(s) reached max_epochs={max_epochs}; at least "
                        f"{MIN_FULL_TRIALS} are needed to judge how early epochs predict the "
                        "end (run more trials, or a search with scheduler 'none')")
    else:
        suggested = next((e.epoch for e in epochs if e.epoch < max_epochs
                          and math.isfinite(e.correlation.spearman)
                          and e.correlation.spearman >= SUGGEST_RHO), None)
        if suggested is None:
            warnings.append(f"no epoch before {max_epochs} ranks trials like the end does "
                            f"(Spearman ρ < {SUGGEST_RHO} throughout): early stopping on "
                            f"{metric} may discard the eventual best trials")
        for rung in rungs:
            item = next((e for e in epochs if e.epoch == rung), None)
            if rung < max_epochs and item is not None and math.isfinite(item.correlation.spearman) \
                    and item.correlation.spearman < WEAK_RHO:
                warnings.append(f"ASHA rung at epoch {rung}: Spearman ρ={item.correlation.spearman:.2f}"
                                f" (< {WEAK_RHO}) with the final {metric}: its stopping decisions "
                                "are close to chance")
        if rungs and counts.get(TrialState.PRUNED):
            warnings.append("trials that reached the end survived ASHA's rungs: their narrower "
                            "range biases these correlations downward")
    return FidelityReport(experiment=experiment, objective=objective, max_epochs=max_epochs,
                          rungs=rungs, trials=len(states), states=counts,
                          full_trials=len(full), epochs=epochs,
                          suggested_grace_period=suggested, warnings=warnings,
                          grace_period=grace_period if rungs else None,
                          reduction_factor=reduction_factor if rungs else None)


def fidelity_report(experiment: Experiment | str | Path, write: bool = True, *, n_boot: int = 1000,
                    seed: int = 0) -> FidelityReport:
    """Fidelity analysis of an experiment (a directory, or one already loaded).

    With ``write`` it writes ``fidelity.json``, ``fidelity.txt``, ``curves.png`` and
    ``fidelity.png`` into the directory (never while ``write`` is False). The objective,
    ``max_epochs`` and the scheduler's settings are the experiment's. Raises
    :class:`~tune_nas.analysis.experiment.ExperimentError` when it is not an experiment or no
    trial has reported an epoch yet.
    """
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    curves, spec, layout = experiment.curves, experiment.spec, experiment.layout
    if curves is None or curves.empty:
        raise ExperimentError(f"{layout.curves}: no trial has reported an epoch yet; rule: the "
                              "fidelity analysis needs recorded learning curves")
    report = analyse_fidelity(
        curves, experiment.objective, spec.max_epochs, grace_period=spec.grace_period,
        reduction_factor=spec.reduction_factor, scheduler=spec.scheduler,
        experiment=experiment.name, n_boot=n_boot, seed=seed)
    if write:
        written = (layout.fidelity_json, layout.fidelity_text, layout.curves_png, layout.fidelity_png)
        report.files = [path.name for path in written]
        plot_curves(curves, report, layout.curves_png)
        plot_fidelity(report, layout.fidelity_png)
        _atomic_write(layout.fidelity_text, report.text())
        _atomic_write(layout.fidelity_json, json.dumps(report.as_dict(), indent=2) + "\n")
    return report


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(curves: pd.DataFrame, report: FidelityReport, path: Path) -> Path:
    """Every trial's learning curve, coloured by its final state; ASHA rungs as dashed lines."""
    plt = _pyplot()
    table = metric_matrix(curves, report.metric)
    states = trial_states(curves)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for number, row in table.iterrows():
        row = row.dropna()
        state = str(states.get(number, TrialState.RUNNING))
        colour = STATE_COLOURS.get(state, "tab:gray")
        ax.plot(row.index, row.to_numpy(), color=colour, alpha=0.75, lw=1.3,
                marker="o", ms=2.5, zorder=3 if state == TrialState.COMPLETE else 2)
    for rung in report.rungs:
        ax.axvline(rung, color="black", ls="--", lw=0.8, alpha=0.6)
        ax.text(rung, 1.0, f" rung {rung}", transform=ax.get_xaxis_transform(), va="bottom",
                fontsize=8)
    handles = [plt.Line2D([], [], color=c, lw=2, label=f"{s} ({report.states.get(s, 0)})")
               for s, c in STATE_COLOURS.items() if report.states.get(s)]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel(report.objective.describe())
    ax.set_xlim(0.5, report.max_epochs + 0.5)
    ax.set_title(f"{report.experiment}: learning curves ({report.trials} trials)", pad=14)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_fidelity(report: FidelityReport, path: Path) -> Path:
    """Spearman ρ (with its bootstrap CI) and Kendall τ against the epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    epochs = [e.epoch for e in report.epochs]
    rho = np.array([e.correlation.spearman for e in report.epochs], dtype=float)
    tau = np.array([e.correlation.kendall for e in report.epochs], dtype=float)
    lo = np.array([e.correlation.spearman_ci[0] for e in report.epochs], dtype=float)
    hi = np.array([e.correlation.spearman_ci[1] for e in report.epochs], dtype=float)
    if epochs:
        ax.fill_between(epochs, lo, hi, color="tab:blue", alpha=0.15, label="ρ 95% bootstrap CI")
        ax.plot(epochs, rho, "o-", color="tab:blue", label="Spearman ρ")
        ax.plot(epochs, tau, "s--", color="tab:purple", ms=4, label="Kendall τ")
        for item in report.epochs:
            ax.annotate(f"n={item.correlation.n}", (item.epoch, -1.0), fontsize=7, ha="center",
                        va="bottom", color="gray")
    ax.axhline(SUGGEST_RHO, color="tab:green", lw=0.8, ls=":", label=f"ρ = {SUGGEST_RHO}")
    for rung in report.rungs:
        ax.axvline(rung, color="black", ls="--", lw=0.8, alpha=0.6)
    if report.suggested_grace_period is not None:
        ax.axvline(report.suggested_grace_period, color="tab:green", lw=2, alpha=0.5,
                   label=f"suggested grace = {report.suggested_grace_period}")
    if report.full_trials < MIN_FULL_TRIALS:
        ax.text(0.5, 0.5, f"only {report.full_trials} full-budget trial(s)\n"
                f"(≥ {MIN_FULL_TRIALS} needed)", transform=ax.transAxes, ha="center",
                va="center", color="tab:red", fontsize=12, alpha=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlim(0.5, report.max_epochs + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"rank correlation with final {report.metric}")
    ax.set_title(f"{report.experiment}: does epoch e predict epoch {report.max_epochs}? "
                 f"({report.full_trials} full-budget trials)")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.07), fontsize=8)  # above the n= row
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
