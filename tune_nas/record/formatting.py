"""How values are written for people (and rounded for JSON): one rule per kind of value.

Shared by the terminal (:mod:`tune_nas.record.console`, the launcher's report) and the
read-only reports (``python -m tune_nas.study``, ``replay``, ``compare``, the fidelity
analysis), so that a value reads the same wherever it appears. It lives in ``record/``, the
lower layer: the analysis already depends on the record (it reads the bookkeeper's files
through the bookkeeper), while the driver's console must never import the analysis.

* :func:`number` — a metric value with fixed decimals (``0.9930``);
* :func:`significant` — a configuration value to 3 significant digits (``0.00316``);
* :func:`count` — a count with a unit suffix (``12.3k`` parameters, ``6.70M`` FLOPs);
* :func:`percent` — a share as a percentage (``88.79 %``);
* :func:`short_config` — a trial's hyperparameters as ``k=v`` pairs;
* :func:`rounded` — a float for JSON (``None`` for a missing or non-finite value);
* :func:`first_line` — an exception as the one line an error message quotes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tune_nas.record.bookkeeper import hyperparameters

#: What a missing (None, NaN, infinite) value is written as.
MISSING = "-"


def _finite_float(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def number(value: Any, digits: int = 4, missing: str = MISSING) -> str:
    """A metric value with ``digits`` decimals; one so small that those decimals would show
    only zeros in scientific notation (``3.2e-05``); ints and strings as they are; None, NaN
    and infinities as ``missing``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, float):
        tiny = value != 0 and abs(value) < 0.5 * 10.0 ** -digits
        return f"{value:.1e}" if tiny else f"{value:.{digits}f}"
    return str(value)


def significant(value: Any, digits: int = 3) -> str:
    """A configuration value: a float to ``digits`` significant digits (below 1e-3 in
    scientific notation, ``1.0e-05``); anything else as it is."""
    if _finite_float(value):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return str(value)


def count(value: Any, missing: str = MISSING) -> str:
    """A count (parameters, FLOPs, images per second) with a unit suffix from 1000 on:
    ``950``, ``12.3k``, ``6.70M``, ``1.20G``."""
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    n = float(value)
    for scale, unit, places in ((1e9, "G", 2), (1e6, "M", 2), (1e3, "k", 1)):
        if abs(n) >= scale:
            return f"{n / scale:.{places}f}{unit}"
    return f"{n:.0f}"


def percent(value: Any, missing: str = MISSING) -> str:
    """A share in [0, 1] as a percentage with two decimals: ``0.8879`` → ``88.79 %``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return f"{100 * value:.2f} %"


def short_config(config: Mapping[str, Any]) -> str:
    """A trial's hyperparameters (bookkeeping keys left out) as ``k=v`` pairs sorted by name,
    floats to 3 significant digits: ``depth=2 lr=0.00316 width=16``. A NAS-Bench-101 cell's
    flat encoding (``edge_*``, ``op_node_*``) shows as one ``cell=<canonical hash>``."""
    params = hyperparameters(dict(config))
    cell = _cell_key(params)
    if cell is not None:
        params = {k: v for k, v in params.items() if not k.startswith(("edge_", "op_node_"))} | {"cell": cell}
    return " ".join(f"{k}={significant(v)}" for k, v in sorted(params.items()))


def _cell_key(params: Mapping[str, Any]) -> str | None:
    """The canonical key of the cell encoded among ``params``; None when there is none (or it
    is no valid cell)."""
    if not any(isinstance(k, str) and k.startswith("op_node_") for k in params):
        return None
    from tune_nas.spaces.nasbench101 import canonical_hash, cell_from_params

    try:
        return canonical_hash(cell_from_params(params))
    except ValueError:
        return None


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s root cause (libraries such as SQLAlchemy and Optuna wrap
    the useful message), at most ``limit`` characters; its type's name when it says nothing."""
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).strip().splitlines()
    return (text[0] if text else type(root).__name__)[:limit]


def rounded(value: Any, places: int = 6) -> float | None:
    """A number for JSON: rounded to ``places`` decimals; None when missing or not finite
    (JSON has no NaN)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return round(float(value), places) if math.isfinite(value) else None
