"""Data sets made by a built-in simulator (:mod:`tune_nas.simulators`): ``sim:NAME[:SAMPLES]``.

The inputs are drawn from the simulator's distribution with a fixed seed, every input is
simulated (in parallel, one process per core), and the result is cached as an ``.npz`` under
the data directory (``<data_dir>/sim-<name>-v<version>-n<samples>.npz``; where that cannot be
written, ``$TUNE_NAS_CACHE`` or ``~/.cache/tune_nas``), so the simulations run once. The cache
keeps the median wall time of one simulation on the machine that made it
(``seconds_per_sample``); the launcher measures the simulator again at the end of an
experiment, beside the emulator.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tune_nas.data.arrays import MIN_ROWS, RegressionSplits, split_arrays
from tune_nas.data.sources import DataError
from tune_nas.paths import expand_user
from tune_nas.simulators import SIMULATORS, SimulatorError, simulator_named

PREFIX = "sim:"
INPUT_SEED = 20_240_601  #: the data set's inputs never depend on the search seed
MAX_SAMPLES = 1_000_000


def parse_simulated(dataset: str) -> tuple[str, int]:
    """``sim:burgers`` → (``"burgers"``, its default size); ``sim:burgers:2000`` → 2000 samples.
    Raises :class:`DataError` naming the value and the rule."""
    rule = (f"sim:NAME or sim:NAME:SAMPLES, NAME one of {', '.join(SIMULATORS)}, SAMPLES an integer "
            f"from {MIN_ROWS} to {MAX_SAMPLES:,}")
    parts = dataset[len(PREFIX):].split(":")
    if len(parts) > 2:
        raise DataError(f"--dataset {dataset!r}: rule: {rule}")
    try:
        module = simulator_named(parts[0])
    except SimulatorError as exc:
        raise DataError(f"--dataset {dataset!r}: {exc}") from None
    if len(parts) == 1:
        return parts[0], int(module.DEFAULT_SAMPLES)
    try:
        samples = int(parts[1])
    except ValueError:
        samples = -1
    if not MIN_ROWS <= samples <= MAX_SAMPLES:
        raise DataError(f"--dataset {dataset!r}: samples {parts[1]!r}; rule: {rule}")
    return parts[0], samples


def _simulate_chunk(args: tuple[str, np.ndarray]) -> tuple[np.ndarray, list[float]]:
    name, inputs = args
    module = simulator_named(name)
    outputs, seconds = [], []
    for row in inputs:
        started = time.perf_counter()
        outputs.append(module.simulate(row))
        seconds.append(time.perf_counter() - started)
    return np.stack(outputs), seconds


def simulate_many(name: str, inputs: np.ndarray, workers: int | None = None) -> tuple[np.ndarray, float]:
    """Every row of ``inputs`` simulated (in ``workers`` processes); returns the outputs and the
    median wall time of one simulation."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(inputs)))
    chunks = [c for c in np.array_split(inputs, workers * 4) if len(c)]
    if workers == 1:
        results = [_simulate_chunk((name, c)) for c in chunks]
    else:
        import multiprocessing

        # fork: the workers run NumPy and SciPy only, and a script without a __main__ guard
        # (which spawn would import again) works too
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            results = list(pool.map(_simulate_chunk, [(name, c) for c in chunks]))
    outputs = np.concatenate([r[0] for r in results])
    return outputs, float(np.median([s for r in results for s in r[1]]))


def _cache_paths(name: str, version: int, samples: int, data_dir: str | os.PathLike) -> list[Path]:
    file = f"sim-{name}-v{version}-n{samples}.npz"
    home = Path(os.environ.get("TUNE_NAS_CACHE", Path.home() / ".cache" / "tune_nas"))
    return [expand_user(data_dir, "data_dir") / file, home / file]


def load_simulated(dataset: str, data_dir: str | os.PathLike = "data") -> RegressionSplits:
    """The data set ``sim:NAME[:SAMPLES]``: read from its cache, or simulated and cached."""
    name, samples = parse_simulated(dataset)
    module = simulator_named(name)
    paths = _cache_paths(name, module.VERSION, samples, data_dir)
    for path in paths:
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as cached:
                    x, y, seconds = cached["x"], cached["y"], float(cached["seconds_per_sample"])
                break
            except (OSError, ValueError, KeyError, EOFError):
                continue  # cut short (a killed run): simulated again below
    else:
        x = module.sample_inputs(samples, np.random.default_rng(INPUT_SEED))
        y, seconds = simulate_many(name, x)
        for path in paths:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
                np.savez(tmp, x=x, y=y, seconds_per_sample=seconds)
                os.replace(tmp, path)
                break
            except OSError:
                continue  # a cache we cannot write only costs time next run
    return split_arrays(dataset, x, y, input_names=module.INPUT_NAMES, output_names=module.OUTPUT_NAMES,
                        output_shape=tuple(module.OUTPUT_SHAPE), simulator=name, seconds_per_sample=seconds)
