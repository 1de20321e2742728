"""How a trial hands its results to whoever runs it, and its seed: shared by trained and
tabular trials. Torch-free, so a tabular trial's worker never imports torch or Lightning (and
the driver reads a checkpoint's reports without either)."""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

#: Beside a checkpoint's weights: the trial's report of every epoch up to it, a JSON list. A
#: driver killed before it received the last reports (their checkpoints were written all the
#: same) records them from the checkpoint the resumed trial continues from.
REPORTS_FILE = "reports.json"


class Reporter(Protocol):
    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Hand one epoch's metrics (and optionally a checkpoint directory) to the tuner."""


def trial_seed(experiment_seed: int, trial_number: int) -> int:
    """The seed of one trial: its initialisation and batch order, or the table seed it draws."""
    return (experiment_seed * 1_000_003 + trial_number) % (2**31 - 1)


def _plain(value: Any) -> Any:
    """A report's value as JSON keeps it (a non-finite float as None), or None when it is not
    a number, a string or a flag."""
    if isinstance(value, (int, str)):  # a flag too
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:  # a numpy or torch scalar
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def reports_json(reports: list[dict[str, Any]]) -> str:
    """The text of :data:`REPORTS_FILE` for ``reports`` (one dict per epoch): strict JSON, a
    value that is not a finite number, a string or a flag left out."""
    plain = [{k: v for k, v in ((k, _plain(v)) for k, v in report.items()) if v is not None}
             for report in reports]
    return json.dumps(plain, allow_nan=False)


def parse_reports(text: str | bytes, where: str) -> list[dict[str, Any]]:
    """The reports :func:`reports_json` wrote, ascending by epoch (one per epoch, the later
    kept). Raises ValueError naming ``where`` when the text is not such a list."""
    try:
        reports = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON ({exc}); rule: a list of reports written by tune_nas") from None
    if not isinstance(reports, list) or not all(
            isinstance(r, dict) and isinstance(r.get("epoch"), int) and not isinstance(r["epoch"], bool)
            and r["epoch"] >= 1 for r in reports):
        raise ValueError(f"{where}: not a list of reports with an epoch (an integer >= 1) each; "
                         "rule: a list of reports written by tune_nas")
    return sorted({r["epoch"]: r for r in reports}.values(), key=lambda r: r["epoch"])
