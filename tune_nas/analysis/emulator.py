"""How good and how fast an emulator is: the best trained regressor against its simulator.

At the end of a regression experiment the launcher calls :func:`measure_emulator` on the
trial it reports as best (the final stage's, when there is one):

* **accuracy** on the held-out test split, in the data's own units: R² per output and
  averaged (scikit-learn's ``r2_score``), the worst output's R², the RMSE and the largest
  absolute error;
* **the emulator's time per sample**: one full batch of ``batch_size`` held-out inputs (the
  test split, repeated when it is smaller) predicted on one CPU thread, inputs standardised
  and outputs turned back into the data's units inside the timed region (what a user's call
  costs), the median of ``repeats`` passes divided by the number of samples;
* **the simulator's time per sample**: for a built-in simulator (``sim:`` data), ``runs``
  test inputs simulated again, one at a time in this process (their outputs must equal the
  stored ones: a check that the data set is the simulator's), the median wall time; for an
  ``.npz`` that records ``seconds_per_sample``, that figure (marked ``recorded``);
* **the speed-up**: the simulator's seconds per sample over the emulator's.

Everything is measured on the machine that runs the launcher, one thread each, so the ratio
compares like with like.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from tune_nas.data.arrays import RegressionSplits


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch on ``n`` threads for the block, then as it was."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_trained_model(model_name: str, config: dict[str, Any], checkpoint: str, splits):
    """The trial's network with the weights of its checkpoint directory ``checkpoint``, in eval mode."""
    from tune_nas.config.training import split_config
    from tune_nas.models import create_model_for
    from tune_nas.trial.warm_start import model_state, read_checkpoint

    _, arch = split_config(config)
    model = create_model_for(model_name, splits, **arch)
    model.load_state_dict(model_state(read_checkpoint(checkpoint)))
    return model.eval()


def predict(model, splits: RegressionSplits, inputs: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The model's outputs, in the data's units, for ``inputs`` in the data's units."""
    import torch

    x = ((np.asarray(inputs, dtype=np.float64) - splits.x_mean) / splits.x_std).astype(np.float32)
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(model(torch.from_numpy(x[start:start + batch_size])).numpy())
    return splits.original_outputs(np.concatenate(out)) if out else np.empty((0, splits.num_outputs))


def time_per_sample(model, splits: RegressionSplits, inputs: np.ndarray, batch_size: int = 4096,
                    repeats: int = 7) -> float:
    """Median seconds per sample of predicting ``inputs`` (data units in and out) on one thread."""
    with _threads(1):
        predict(model, splits, inputs[:batch_size], batch_size)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            predict(model, splits, inputs, batch_size)
            times.append(time.perf_counter() - started)
    return statistics.median(times) / len(inputs)


def simulator_time(splits: RegressionSplits, inputs: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """The built-in simulator run again on ``inputs`` (data units), one at a time: its median
    seconds per sample and the largest difference from the stored ``expected`` outputs."""
    from tune_nas.simulators import simulator_named

    module = simulator_named(splits.simulator)
    seconds, outputs = [], []
    for row in inputs:
        started = time.perf_counter()
        outputs.append(np.asarray(module.simulate(row), dtype=np.float64).reshape(-1))
        seconds.append(time.perf_counter() - started)
    difference = float(np.max(np.abs(np.stack(outputs) - expected))) if outputs else math.nan
    return {"seconds_per_sample": statistics.median(seconds), "runs": len(seconds), "source": "measured",
            "max_abs_difference_from_data": difference}


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """R² (per output, mean, worst), RMSE and the largest absolute error, in the data's units."""
    from sklearn.metrics import r2_score

    per_output = np.atleast_1d(r2_score(truth, predicted, multioutput="raw_values"))
    return {"r2": float(per_output.mean()), "r2_min": float(per_output.min()),
            "r2_per_output": [round(float(v), 6) for v in per_output],
            "rmse": float(np.sqrt(np.mean((truth - predicted) ** 2))),
            "max_abs_error": float(np.max(np.abs(truth - predicted)))}


def measure_emulator(model, splits: RegressionSplits, runs: int = 20, batch_size: int = 4096,
                     repeats: int = 7) -> dict[str, Any]:
    """The trained ``model``'s accuracy on the test split and its speed against the simulator."""
    inputs = splits.original_inputs(splits.test_x)
    truth = splits.original_outputs(splits.test_y)
    out: dict[str, Any] = {"test_samples": len(inputs), **accuracy(truth, predict(model, splits, inputs, batch_size))}
    batch = np.resize(inputs, (max(batch_size, len(inputs)), inputs.shape[1]))  # the test split, repeated
    emulator_s = time_per_sample(model, splits, batch, batch_size, repeats)
    out["emulator_seconds_per_sample"] = emulator_s
    out["emulator_batch_size"] = min(batch_size, len(batch))
    simulator: dict[str, Any] | None = None
    if splits.simulator:
        simulator = simulator_time(splits, inputs[:runs], truth[:runs])
        simulator["name"] = splits.simulator
    elif math.isfinite(splits.seconds_per_sample):
        simulator = {"seconds_per_sample": splits.seconds_per_sample, "source": "recorded"}
    out["simulator"] = simulator
    out["speedup"] = simulator["seconds_per_sample"] / emulator_s if simulator and emulator_s > 0 else None
    out["threads"] = 1
    return out


def describe(result: dict[str, Any]) -> str:
    """One line for the terminal report."""
    text = (f"emulator: test R² {result['r2']:.4f} (worst output {result['r2_min']:.4f}, RMSE "
            f"{result['rmse']:.3g}) over {result['test_samples']} held-out samples; "
            f"{result['emulator_seconds_per_sample'] * 1e6:.2f} µs per sample")
    sim = result.get("simulator")
    if sim:
        text += (f" vs the simulator's {sim['seconds_per_sample'] * 1e3:.2f} ms ({sim['source']}): "
                 f"{result['speedup']:,.0f}× faster (one thread each)")
    else:
        text += " (no simulator time known: no speed-up)"
    return text
