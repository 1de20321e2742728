"""How long a search still runs, estimated from what its trials did so far (driver side).

A trial costs its epochs; how many epochs a trial gets is the scheduler's decision (ASHA stops
most trials at a rung, ``none`` stops none). Nothing here knows the scheduler: the share of
epochs it let trials run is read off the trials themselves, as a survival curve over epochs
(Kaplan-Meier: a trial still running counts as a survivor of its epochs, not as stopped).

* ``S[e]`` — the probability that a trial trains epoch ``e`` (``S[0] = 1``);
  ``S[e + 1] = S[e] * (1 - stopped_after[e] / reached[e])`` where ``reached[e]`` counts the
  trials with at least ``e`` epochs, ended or running, and ``stopped_after[e]`` the ended
  trials with exactly ``e`` (a trial that reached ``max_epochs`` is not "stopped"). A running
  trial counts as continued after its last epoch: Ray asks the scheduler about a result
  before the driver's callbacks hear of it, and a stopped trial ends at once. An epoch no
  trial got past yet counts as never stopped.
* a trial not started yet runs ``sum(S[1..N])`` epochs, a running one at epoch ``k``
  ``sum(S[k+1..N]) / S[k+1]`` more (``N = max_epochs``; it continued after ``k``); the
  upper bound is ``N`` and ``N - k`` (the scheduler stops no trial).
* epochs become seconds at the median epoch time, and ``slots`` trials run at once: the
  search takes ``epoch_s * max(all epochs left / slots, the longest single trial's)``.

No Ray, no torch: a pure function of the trials' epochs, tested with made-up numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TimeLeft:
    """Seconds a search still runs: ``expected_s`` from the observed share of epochs the
    scheduler let trials run, ``at_most_s`` if it stops no trial early (same epoch time);
    ``observed_stops`` says whether any trial ended yet (else the two are equal for lack of
    evidence, not because the scheduler stops nothing)."""

    expected_s: float
    at_most_s: float
    observed_stops: bool


def epoch_survival(ended_epochs: Sequence[int], running_epochs: Sequence[int],
                   max_epochs: int) -> list[float]:
    """``S[e]`` for ``e = 0..max_epochs``: the probability that a trial trains epoch ``e``,
    from the epochs ended trials trained and running trials have trained so far (see the
    module's docstring). Epoch counts beyond ``max_epochs`` count as ``max_epochs``."""
    if max_epochs < 1:
        raise ValueError(f"max_epochs={max_epochs}: rule: at least 1")
    n = max_epochs
    ended_at = [0] * (n + 1)
    for epochs in ended_epochs:
        ended_at[min(max(int(epochs), 0), n)] += 1
    running_at = [0] * (n + 1)
    for epochs in running_epochs:
        running_at[min(max(int(epochs), 0), n)] += 1
    survival = [1.0] * (n + 1)
    reached = len(ended_epochs) + len(running_epochs)  # trials with at least e epochs
    for e in range(n):
        hazard = ended_at[e] / reached if reached else 0.0
        survival[e + 1] = survival[e] * (1.0 - hazard)
        reached -= ended_at[e] + running_at[e]
    return survival


def time_left(running_epochs: Sequence[int], ended_epochs: Sequence[int], unstarted: int,
              max_epochs: int, epoch_s: float, slots: int) -> TimeLeft:
    """The time a search still runs (see the module's docstring for the rule):
    ``running_epochs`` the epochs each running trial has trained, ``ended_epochs`` those of
    every ended trial, ``unstarted`` the trials not started yet, ``epoch_s`` the typical
    epoch time and ``slots`` how many trials run at once."""
    if unstarted < 0 or epoch_s < 0:
        raise ValueError(f"unstarted={unstarted}, epoch_s={epoch_s}: rule: not negative")
    n = max_epochs
    survival = epoch_survival(ended_epochs, running_epochs, n)
    tail = [0.0] * (n + 2)  # tail[e] = S[e] + ... + S[n]
    for e in range(n, -1, -1):
        tail[e] = tail[e + 1] + survival[e]
    fresh = tail[1]  # expected epochs of a trial not started yet

    expected = [fresh] * unstarted
    at_most = [float(n)] * unstarted
    for epochs in running_epochs:
        k = min(max(int(epochs), 0), n)
        continued = survival[k + 1] if k < n else 0.0  # > 0: it is among those that went on
        expected.append(tail[k + 1] / continued if continued > 0 else float(n - k))
        at_most.append(float(n - k))
    slots = max(int(slots), 1)

    def seconds(epochs: list[float]) -> float:
        return epoch_s * max(sum(epochs) / slots, max(epochs, default=0.0))

    return TimeLeft(seconds(expected), seconds(at_most), observed_stops=bool(ended_epochs))
