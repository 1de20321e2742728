"""Regression (emulators): metrics against scikit-learn, array data sets, the emulator models,
the Burgers simulator against its exact solution, and the emulator's measurement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from tune_nas.data.arrays import load_array_file, split_arrays
from tune_nas.data.simulated import load_simulated, parse_simulated, simulate_many
from tune_nas.data.sources import DataError, load_splits, reduce_fidelity
from tune_nas.models import create_model, create_model_for, list_models, model_task
from tune_nas.simulators import burgers
from tune_nas.tasks import task_named, task_of_dataset
from tune_nas.tasks.regression import RegressionTotals

# ------------------------------------------------------------------ metrics


@pytest.mark.parametrize("outputs", [1, 3, 17])
def test_regression_totals_over_batches_equal_scikit_learn(outputs):
    rng = np.random.default_rng(outputs)
    y = rng.normal(size=(500, outputs)) * rng.uniform(0.5, 3, size=outputs)
    pred = y + rng.normal(scale=0.4, size=y.shape)
    totals = RegressionTotals()
    task = task_named("regression")
    for start in range(0, 500, 64):  # uneven last batch
        p, t = torch.tensor(pred[start:start + 64], dtype=torch.float32), torch.tensor(y[start:start + 64],
                                                                                     dtype=torch.float32)
        totals.update(task.loss(p, t), p, t)
    loss, mse, mae, r2 = totals.compute().tolist()
    assert r2 == pytest.approx(r2_score(y, pred), abs=1e-5)
    assert mse == pytest.approx(mean_squared_error(y, pred), rel=1e-5)
    assert mae == pytest.approx(mean_absolute_error(y, pred), rel=1e-5)
    assert loss == pytest.approx(mse, rel=1e-5)  # the loss is the MSE, weighted by batch size
    per = totals.per_output()
    np.testing.assert_allclose(per["r2"].numpy(), r2_score(y, pred, multioutput="raw_values"), atol=1e-5)


def test_a_constant_output_scores_like_scikit_learn():
    y = np.column_stack([np.arange(10.0), np.full(10, 2.0)])
    exact, off = y.copy(), y.copy()
    off[:, 1] += 0.5
    for pred in (exact, off):
        totals = RegressionTotals()
        t, p = torch.tensor(y), torch.tensor(pred)
        totals.update(torch.tensor(0.0), p, t)
        assert totals.compute()[3].item() == pytest.approx(r2_score(y, pred), abs=1e-6)


def test_a_nan_prediction_makes_the_metrics_nan():
    totals = RegressionTotals()
    totals.update(torch.tensor(float("nan")), torch.tensor([[float("nan")], [1.0]]), torch.tensor([[0.0], [1.0]]))
    assert all(math.isnan(v) for v in totals.compute().tolist())


# ------------------------------------------------------------------ data


def test_arrays_split_deterministically_and_standardise_with_the_training_split_only():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(200, 3))
    y = np.column_stack([x @ [1.0, -2.0, 0.5], np.full(200, 7.0)])  # the second output is constant
    a, b = split_arrays("t", x, y), split_arrays("t", x, y)
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (144, 16, 40)
    np.testing.assert_array_equal(a.test_x, b.test_x)
    np.testing.assert_allclose(a.train_x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(a.train_x.std(0), 1, atol=1e-5)
    assert abs(a.test_x.mean()) > 1e-3  # the test split is not standardised with its own statistics
    np.testing.assert_allclose(a.train_y[:, 1], 0.0)  # centred, not divided by zero
    restored = a.original_outputs(a.test_y)
    assert np.allclose(restored[:, 1], 7.0)
    assert a.shape_args == {"num_inputs": 3, "output_shape": (2,)}
    half = reduce_fidelity(a, 0.5)
    assert len(half.train_x) == 72 and len(half.test_x) == 40
    np.testing.assert_array_equal(half.x_mean, a.x_mean)


def test_npz_and_csv_files_load_with_names(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(50, 4, 8))  # a field output
    np.savez(tmp_path / "d.npz", x=x, y=y, input_names=np.array(["p", "q"]), seconds_per_sample=0.25)
    splits = load_array_file(tmp_path / "d.npz")
    assert splits.output_shape == (4, 8) and splits.input_names == ("p", "q")
    assert splits.seconds_per_sample == 0.25 and splits.task == "regression"
    rows = ["a,b,out,note"] + [f"{i},{i * 2},{i * 3 + 1},{i % 2}" for i in range(30)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    csv = load_splits(f"arrays:{tmp_path / 'd.csv'}", inputs=("a", "b"), outputs=("out",))
    assert csv.input_names == ("a", "b") and csv.output_names == ("out",)
    everything_else = load_splits(f"arrays:{tmp_path / 'd.csv'}", outputs=("out",))
    assert everything_else.input_names == ("a", "b", "note")
    with pytest.raises(DataError, match="which columns are outputs"):
        load_splits(f"arrays:{tmp_path / 'd.csv'}")


def test_csv_files_from_spreadsheets_load_alike(tmp_path):
    """A byte-order mark, semicolons with decimal commas, tabs, CRLF line ends and blank lines
    give the same splits as a plain comma-separated file."""
    values = [(i / 4, (i * 7) % 11 - 0.5, i * 0.75 + 1) for i in range(30)]
    plain = ["a,b,out"] + [f"{a},{b},{o}" for a, b, o in values]
    variants = {
        "plain.csv": "\n".join(plain) + "\n",
        "bom.csv": "\ufeff" + "\n".join(plain) + "\n",
        "semicolons.csv": "\n".join(["a;b;out"] + [f"{a};{b};{o}".replace(".", ",") for a, b, o in values]),
        "tabs.csv": "\r\n".join(line.replace(",", "\t") for line in plain) + "\r\n",
        "blank.csv": "\n".join(plain[:10] + ["", " "] + plain[10:]) + "\n\n",
    }
    loaded = {}
    for file, text in variants.items():
        (tmp_path / file).write_text(text, encoding="utf-8", newline="")
        loaded[file] = load_array_file(tmp_path / file, outputs=("out",))
    for file, splits in loaded.items():
        assert splits.input_names == ("a", "b"), file
        np.testing.assert_array_equal(splits.train_x, loaded["plain.csv"].train_x, err_msg=file)
        np.testing.assert_array_equal(splits.test_y, loaded["plain.csv"].test_y, err_msg=file)


def test_outputs_that_never_vary_are_refused():
    x = np.arange(60, dtype=float).reshape(30, 2)
    with pytest.raises(DataError, match=r"every output is the same in every row \(y0 = 3, y1 = -1\); rule: an output that"):
        split_arrays("arrays:flat.npz", x, np.tile([3.0, -1.0], (30, 1)))
    one_varies = np.stack([np.full(30, 3.0), np.arange(30.0)], axis=1)  # a fixed boundary beside a field: kept
    assert split_arrays("arrays:ok.npz", x, one_varies).output_names == ("y0", "y1")


def test_a_header_holding_a_unicode_line_separator_is_one_line_as_pandas_reads_it(tmp_path):
    """CSV ends lines at \\n and \\r only; str.splitlines also at U+2028, which cut this header
    into ['a', 'b'] and lost the output column (names are stripped of white space, U+2028 too)."""
    import pandas as pd

    path = tmp_path / "uni.csv"
    path.write_text("a,b\u2028,out\n" + "".join(f"{i % 5},{i % 7},{i}\n" for i in range(30)), encoding="utf-8")
    splits = load_array_file(path, outputs=("out",))
    assert len(pd.read_csv(path).columns) == 3
    assert splits.input_names == ("a", "b")
    assert len(splits.train_y) + len(splits.val_y) + len(splits.test_y) == 30


@pytest.mark.parametrize("text, message", [
    ("a,a,out\n" + "1,2,3\n" * 12, "column 'a' appears 2 times"),
    ("a,b,out\n" + "1,2,3\n" * 5 + "\n1,x,3\n" + "1,2,3\n" * 6, "line 8, column 'b': 'x'"),
    ("a,b,out\n" + "1,2,3\n" * 5 + "1,\"2,5\",3\n" + "1,2,3\n" * 6, "'2,5' is no number"),  # commas split
])
def test_bad_csv_files_are_refused_naming_the_line_or_column(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_array_file(tmp_path / "bad.csv", outputs=("out",))


def test_csv_files_written_by_numpy_and_pandas_load_by_their_column_names(tmp_path):
    """numpy's savetxt writes its header as a comment (``# a,b,out``), other tools put comment
    lines before the header: both read as the plain file; pandas' to_csv writes its index as
    a column without a name, refused as an input by default (taken when the inputs are listed)."""
    import pandas as pd

    values = np.array([(i / 4, (i * 7) % 11 - 0.5, i * 0.75 + 1) for i in range(30)])
    np.savetxt(tmp_path / "plain.csv", values, delimiter=",", header="a,b,out", comments="")
    np.savetxt(tmp_path / "savetxt.csv", values, delimiter=",", header="a,b,out")
    (tmp_path / "commented.csv").write_text("# made by a simulator\n#   run 7\n"
                                            + (tmp_path / "plain.csv").read_text())
    plain = load_array_file(tmp_path / "plain.csv", outputs=("out",))
    for file in ("savetxt.csv", "commented.csv"):
        splits = load_array_file(tmp_path / file, outputs=("out",))
        assert splits.input_names == ("a", "b"), file
        np.testing.assert_array_equal(splits.train_x, plain.train_x, err_msg=file)
        np.testing.assert_array_equal(splits.test_y, plain.test_y, err_msg=file)
    lines = (tmp_path / "commented.csv").read_text().splitlines()
    lines[9] = "1,x,3"  # the file's line 10
    (tmp_path / "commented.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 10, column 'b': 'x' is no number"):
        load_array_file(tmp_path / "commented.csv", outputs=("out",))

    pd.DataFrame(values, columns=["a", "b", "out"]).to_csv(tmp_path / "indexed.csv")  # index=True
    with pytest.raises(DataError, match=r"indexed.csv: column 1 of the header has no name \(pandas' to_csv"):
        load_array_file(tmp_path / "indexed.csv", outputs=("out",))
    trailing = "".join(line + ",\n" for line in (tmp_path / "plain.csv").read_text().splitlines())
    (tmp_path / "trailing.csv").write_text(trailing)
    with pytest.raises(DataError, match=r"column 4 of the header has no name \(a separator at the end of every line"):
        load_array_file(tmp_path / "trailing.csv", outputs=("out",))
    listed = load_array_file(tmp_path / "indexed.csv", inputs=("a", "b"), outputs=("out",))
    np.testing.assert_array_equal(listed.train_x, plain.train_x)
    np.savetxt(tmp_path / "headless.csv", values, delimiter=",")
    with pytest.raises(DataError, match=r"headless.csv: line 1 holds numbers \(0.00+e\+00, .*not column names"):
        load_array_file(tmp_path / "headless.csv", outputs=("out",))


def test_a_parquet_files_pandas_index_is_no_input(tmp_path):
    """pandas stores a DataFrame's index in Parquet as a column (``__index_level_0__``): it
    labels the rows, it is no input (as pandas.read_parquet makes it the index again)."""
    import pandas as pd

    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=30), "out": rng.normal(size=30)}, index=rng.permutation(30) * 10)
    frame.to_parquet(tmp_path / "indexed.parquet")
    frame.to_parquet(tmp_path / "plain.parquet", index=False)
    indexed = load_array_file(tmp_path / "indexed.parquet", outputs=("out",))
    assert indexed.input_names == ("a",)
    np.testing.assert_array_equal(indexed.train_x, load_array_file(tmp_path / "plain.parquet", outputs=("out",)).train_x)
    named = load_array_file(tmp_path / "indexed.parquet", inputs=("a", "__index_level_0__"), outputs=("out",))
    assert named.input_names == ("a", "__index_level_0__")  # asked for: taken


_CELLS = ["1", "-2.5", "1e3", "0.1", "7", "3.25", "-0", "007", "+4", ".5", "1.", "1E-5"]
_ODD_CELLS = [" 3 ", "", "nan", "inf", "NA", "null", "x", "1_0", "0x1", "True", "1e400", "-", "1,5",
              "123456789012345678901"]  # an integer beyond 64 bits: pandas leaves it text


def _random_csv(rng: np.random.Generator) -> str:
    """A comma-separated file of 14 rows that is mostly numbers, now and then an odd cell, a
    row with a field too many or too few, a blank or whitespace line, an unused text column."""
    note = rng.random() < 0.3
    lines = ["a,b,out" + (",note" if note else "")]
    for _ in range(14):
        cells = [str(rng.choice(_ODD_CELLS if rng.random() < 0.006 else _CELLS)) for _ in range(3)]
        if note:
            cells.append(str(rng.choice(["", "run 1", "x", "2"])))
        shape = rng.random()
        if shape < 0.004:
            cells.append("9")
        elif shape < 0.008:
            cells.pop()
        elif shape < 0.02:
            lines.append(str(rng.choice(["", "  ", ",,"])))
        lines.append(",".join(cells))
    return "\n".join(lines) + ("\n" if rng.random() < 0.8 else "")


def _outcome(path):
    try:
        splits = load_array_file(path, inputs=("a", "b"), outputs=("out",))  # a note column is not read
    except DataError as exc:
        return str(exc)
    return [getattr(splits, k).tolist() for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")]


def test_a_csv_read_at_once_is_read_as_row_by_row(tmp_path, monkeypatch):
    """Comma-separated files read by pandas' C reader give what the row-by-row reader gives
    (the same arrays, or the same refusal): pandas is used only where it cannot differ."""
    import tune_nas.data.arrays as arrays

    rng = np.random.default_rng(0)
    files = []
    for i in range(300):
        files.append(tmp_path / f"f{i}.csv")
        files[-1].write_text(_random_csv(rng))
    accepted = []
    whole = arrays._whole_columns
    monkeypatch.setattr(arrays, "_whole_columns", lambda *a: accepted.append(whole(*a)) or accepted[-1])
    at_once = [_outcome(f) for f in files]
    monkeypatch.setattr(arrays, "_whole_columns", lambda *a: None)
    row_by_row = [_outcome(f) for f in files]
    for file, a, b in zip(files, at_once, row_by_row):
        assert a == b, (file.read_text(), a, b)
    read_at_once = sum(c is not None for c in accepted)
    refused = sum(isinstance(o, str) for o in row_by_row)
    assert read_at_once > 180 and refused > 40, (read_at_once, refused)  # both kinds seen


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((20, 2)), np.zeros((21, 1)), "x has 20 rows but y has 21"),
    (np.zeros((20, 2, 2, 2)), np.zeros((20, 1)), "N × inputs"),
    (np.full((20, 2), np.inf), np.zeros((20, 1)), r"x\[0, 0\] is inf"),
    (np.zeros((20, 2)), np.array(["a"] * 20), "numbers"),
    (np.zeros((3, 2)), np.zeros((3, 1)), "at least 20"),
])
def test_bad_arrays_are_refused_naming_what_is_wrong(x, y, message):
    with pytest.raises(DataError, match=message):
        split_arrays("bad", x, y)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.ones((20, 2)), "y": np.ones(20), "input_names": np.array(["a", "a"])},
     "the column name 'a' appears 2 times among the input and output names"),
    ({"x": np.ones((20, 2)), "y": np.ones(20), "seconds_per_sample": -1.0}, "seconds_per_sample is -1.0; rule: one number"),
    ({"x": np.ones((20, 2)), "y": np.ones(20), "seconds_per_sample": "fast"}, "seconds_per_sample is 'fast'"),
    ({"x": np.arange(40.0).reshape(20, 2) * 1e299, "y": np.ones(20)},
     "x column 'x0' holds values up to 3.8e\\+300, too large to standardise"),
    ({"x": np.ones((20, 2)), "y": np.arange(120.0).reshape(20, 2, 3) * 1e298},
     "y value 0 of the flattened field holds values up to 1.14e\\+300"),
])
def test_bad_npz_files_are_refused_naming_what_is_wrong(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_array_file(tmp_path / "bad.npz")


def test_a_parquet_file_loads_as_the_same_table_written_as_csv(tmp_path):
    """Simulation outputs are often Parquet: its columns are picked as a CSV's, integers and
    flags read as numbers, and the splits equal those of the same table as a CSV."""
    import pandas as pd

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=40), "n": rng.integers(0, 9, 40), "on": rng.random(40) > 0.5,
                          "note": [f"run {i}" for i in range(40)], "out": rng.normal(size=40)})
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    inputs, outputs = ("a", "n", "on"), ("out",)
    parquet = load_array_file(tmp_path / "t.parquet", inputs, outputs)
    csv_ = load_array_file(tmp_path / "t.csv", ("a", "n"), outputs)  # a CSV flag is text ("True")
    assert parquet.input_names == inputs and parquet.output_names == outputs
    np.testing.assert_array_equal(parquet.train_x[:, :2], csv_.train_x)
    np.testing.assert_array_equal(parquet.test_y, csv_.test_y)
    flags = parquet.original_inputs(parquet.train_x)[:, 2]  # standardised in float32, undone
    assert np.allclose(flags, np.round(flags), atol=1e-6) and set(np.round(flags)) == {0.0, 1.0}


@pytest.mark.parametrize("frame, inputs, message", [
    ({"a": ["x"] * 20, "out": [1.0] * 20}, ("a",), "column 'a' holds (string|large_string); rule: numbers"),
    ({"a": [1.0] * 19 + [None], "out": [1.0] * 20}, ("a",), "column 'a' has 1 missing values"),
    ({"a": [1.0] * 20, "out": [1.0] * 20}, ("b",), "no column 'b'"),
])
def test_bad_parquet_files_are_refused_naming_the_column(tmp_path, frame, inputs, message):
    import pandas as pd

    pd.DataFrame(frame).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=message):
        load_array_file(tmp_path / "bad.parquet", inputs, ("out",))
    (tmp_path / "text.parquet").write_text("a,out\n1,2\n")
    with pytest.raises(DataError, match="text.parquet: not a readable Parquet file"):
        load_array_file(tmp_path / "text.parquet", inputs, ("out",))


def test_a_file_that_is_no_npz_archive_is_named_so(tmp_path):
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"text.npz: not an .npz archive \(an .npz is a zip of .npy arrays\)"):
        load_array_file(tmp_path / "text.npz")


def test_the_task_follows_the_data_set():
    assert task_of_dataset("sim:burgers") == task_of_dataset("arrays:x.npz") == "regression"
    assert task_of_dataset("digits") == task_of_dataset("imagefolder:x") == "classification"
    assert parse_simulated("sim:burgers") == ("burgers", burgers.DEFAULT_SAMPLES)
    assert parse_simulated("sim:burgers:300") == ("burgers", 300)
    for bad in ("sim:nope", "sim:burgers:3", "sim:burgers:x", "sim:burgers:1:2"):
        with pytest.raises(DataError):
            parse_simulated(bad)


# ------------------------------------------------------------------ models


@pytest.mark.parametrize("name", list_models("regression"))
@pytest.mark.parametrize("output_shape", [(6,), (2, 16)])
def test_every_regression_model_runs_forward_and_backward(name, output_shape):
    torch.manual_seed(0)
    model = create_model(name, num_inputs=5, output_shape=output_shape)
    out = model(torch.randn(3, 5))
    assert out.shape == (3, math.prod(output_shape))
    out.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model_task(name) == "regression"


def test_emulator_model_arguments_change_the_net_and_bad_ones_are_refused():
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(create_model("mlp", 5, (8,), depth=4, width=64)) > n(create_model("mlp", 5, (8,), depth=2, width=64))
    residual = create_model("mlp", 5, (8,), depth=3, residual=True)
    plain = create_model("mlp", 5, (8,), depth=3, residual=False)
    assert n(residual) == n(plain)
    for bad in ({"depth": 0}, {"activation": "swish"}, {"dropout": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            create_model("mlp", 5, (8,), **bad)
    with pytest.raises(ValueError, match="upsamples"):
        create_model("conv1d", 5, (2, 12), upsamples=3)  # 12 points are not divisible by 8
    with pytest.raises(ValueError, match="kernel_size"):
        create_model("conv1d", 5, (2, 16), kernel_size=4)


def test_a_model_of_the_wrong_task_is_refused_for_the_data():
    splits = split_arrays("t", np.zeros((20, 2)), np.arange(20.0).reshape(20, 1))
    with pytest.raises(ValueError, match="small_cnn.*classification model"):
        create_model_for("small_cnn", splits)
    assert create_model_for("mlp", splits, width=4)(torch.zeros(1, 2)).shape == (1, 1)


# ------------------------------------------------------------------ the simulator


def _cole_hopf(points: int, nu: float, eps: float, t: float) -> np.ndarray:
    """The exact solution u = 2νε e^{-νt} sin x / (1 + ε e^{-νt} cos x) of Burgers' equation."""
    x = burgers.grid(points)
    e = eps * math.exp(-nu * t)
    return 2 * nu * e * np.sin(x) / (1 + e * np.cos(x))


def test_burgers_matches_the_exact_cole_hopf_solution_with_second_order_convergence():
    nu, eps = 0.1, 0.5
    errors = []
    for points in (32, 64, 128):
        u = burgers.solve(_cole_hopf(points, nu, eps, 0.0), nu, times=(1.0,), rtol=1e-9, atol=1e-11)[0]
        errors.append(np.abs(u - _cole_hopf(points, nu, eps, 1.0)).max())
    assert errors[-1] < 1e-5 * 10  # amplitude ~0.1
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.0 < coarse / fine < 5.0  # halving dx quarters the error: second order


def test_burgers_conserves_mass_and_returns_the_documented_shape():
    inputs = burgers.sample_inputs(3, np.random.default_rng(0))
    for row in inputs:
        nu, a1, b1, a2, b2 = row
        u0 = burgers.initial_field(a1, b1, a2, b2)
        u = burgers.solve(u0, nu)
        np.testing.assert_allclose(u.sum(axis=1), u0.sum(), atol=1e-6)  # Σu dx is conserved
        assert burgers.simulate(row).shape == burgers.OUTPUT_SHAPE
    assert (inputs[:, 0] >= burgers.NU_RANGE[0]).all() and (inputs[:, 0] <= burgers.NU_RANGE[1]).all()


def test_a_simulated_data_set_is_cached_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_NAS_CACHE", str(tmp_path / "cache"))
    first = load_simulated("sim:burgers:24", tmp_path / "data")
    assert (tmp_path / "data" / f"sim-burgers-v{burgers.VERSION}-n24.npz").is_file()
    assert first.output_shape == (2, 64) and first.simulator == "burgers" and first.seconds_per_sample > 0

    def no_simulation(*a, **k):
        raise AssertionError("simulated again instead of read from the cache")

    monkeypatch.setattr("tune_nas.data.simulated.simulate_many", no_simulation)
    again = load_simulated("sim:burgers:24", tmp_path / "data")
    np.testing.assert_array_equal(first.test_y, again.test_y)
    outputs, seconds = simulate_many("burgers", burgers.sample_inputs(2, np.random.default_rng(3)), workers=1)
    assert outputs.shape == (2, 2, 64) and seconds > 0


# ------------------------------------------------------------------ the emulator's measurement


def test_the_emulator_is_measured_against_the_simulator(tmp_path):
    from tune_nas.analysis.emulator import measure_emulator

    splits = load_simulated("sim:burgers:30", tmp_path)
    torch.manual_seed(0)
    model = create_model_for("mlp", splits, width=16, depth=2).eval()
    result = measure_emulator(model, splits, runs=2, repeats=2)
    assert result["test_samples"] == len(splits.test_x)
    assert result["simulator"]["runs"] == 2 and result["simulator"]["source"] == "measured"
    assert result["simulator"]["max_abs_difference_from_data"] < 1e-6  # the data are the simulator's
    assert result["speedup"] == pytest.approx(result["simulator"]["seconds_per_sample"]
                                              / result["emulator_seconds_per_sample"])
    assert result["r2"] < 0.5  # untrained: the measurement does not flatter it
    truth = splits.original_outputs(splits.test_y)
    assert result["r2"] == pytest.approx(r2_score(truth, _predict(model, splits)), abs=1e-6)


def _predict(model, splits):
    with torch.no_grad():
        return splits.original_outputs(model(torch.from_numpy(splits.test_x)).numpy())


class _TwoWorkers:
    """A Lightning strategy's reduce over two workers, this one and ``other`` (its totals, as
    they are when the strategy is made: both reduce at once in a real run)."""

    world_size, root_device = 2, torch.device("cpu")

    def __init__(self, other) -> None:
        self.theirs = other.state()

    def reduce(self, tensor, reduce_op):
        theirs = self.theirs
        if len(tensor) == 1 and reduce_op == "max":  # the size step
            return torch.maximum(tensor, torch.tensor([0.0 if theirs is None else float(len(theirs))],
                                                      dtype=torch.float64))
        return tensor + (theirs if theirs is not None else torch.zeros_like(tensor))


@pytest.mark.parametrize("task_name", ["classification", "regression"])
@pytest.mark.parametrize("second_is_empty", [False, True])
def test_totals_over_data_parallel_workers_equal_the_whole_split(task_name, second_is_empty):
    task = task_named(task_name)
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(5):
        out = torch.randn(8, 3, generator=g)
        y = torch.randint(0, 3, (8,), generator=g) if task_name == "classification" else torch.randn(8, 3, generator=g)
        batches.append((task.loss(out, y), out, y))
    whole, first, second = task.eval_totals(), task.eval_totals(), task.eval_totals()
    for i, batch in enumerate(batches):
        whole.update(*batch)
        (first if second_is_empty or i % 2 == 0 else second).update(*batch)
    expected = whole.compute()
    to_first, to_second = _TwoWorkers(second), _TwoWorkers(first)
    assert torch.allclose(first.compute_over(to_first), expected, atol=1e-6)
    # the other worker (with nothing seen, it learns the size first) gets the same numbers
    assert torch.allclose(second.compute_over(to_second), expected, atol=1e-6)
    assert torch.allclose(task.eval_totals().compute_over(None).nan_to_num(-1),
                          torch.full_like(expected, -1.0))  # one process: its own (nothing seen)


def test_a_space_files_data_set_replaced_by_a_flag_need_not_exist(tmp_path):
    """A space file names its own data file; --dataset (or a resumed experiment's saved flags)
    replaces it: the replaced file may be gone, the one used must exist."""
    from tune_nas.config.space_file import SpaceError, load_space

    rows = ["a,b,out"] + [f"{i},{i % 3},{i * 2}" for i in range(30)]
    (tmp_path / "now.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "space.py").write_text(
        'EXPERIMENT = {"dataset": "arrays:%s", "outputs": ["out"], "model": "mlp"}\n'
        'PARAM_SPACE = {"width": 8}\n' % (tmp_path / "then.csv"))
    space = load_space(str(tmp_path / "space.py"))  # then.csv is gone: only the data set used counts
    assert space.with_overrides(dataset=f"arrays:{tmp_path / 'now.csv'}").spec.dataset.endswith("now.csv")
    with pytest.raises(SpaceError, match="gone.csv: no such file"):
        space.with_overrides(dataset=f"arrays:{tmp_path / 'gone.csv'}")


@pytest.mark.parametrize("suffix, ok", [(".csv", True), (".parquet", True), (".pq", True), (".PARQUET", True),
                                        (".npz", False)])
def test_outputs_name_the_columns_of_any_table(suffix, ok):
    """``outputs`` with a Parquet file is what its loader asks for (it was refused as "a CSV's
    only", so no Parquet file could reach a trial)."""
    from tune_nas.config.experiment import ExperimentSpec, SpaceError

    spec = ExperimentSpec(dataset=f"arrays:/data/table{suffix}", outputs=("y",))
    if ok:
        spec.check("space.py", data_files=False)
    else:
        with pytest.raises(SpaceError, match=r"outputs=\('y',\): rule: inputs/outputs name the columns of a table"):
            spec.check("space.py", data_files=False)


def test_a_column_in_si_units_is_standardised_like_any_other():
    """Picofarads in farads (5e-12 ± 1e-13) and a target in femtocoulombs vary by far less than
    1e-12: they are columns like any other, not constants left unscaled (which trained a model
    that learned nothing, R² 0, with no word)."""
    rng = np.random.default_rng(0)
    c = 5e-12 + 1e-13 * rng.standard_normal(400)
    r = rng.uniform(1e3, 1e4, 400)
    q = c * 1e-3
    splits = split_arrays("si", np.stack([c, r], 1), q[:, None])
    for a in (splits.train_x, splits.train_y):
        assert np.allclose(a.mean(0), 0, atol=1e-5) and np.allclose(a.std(0), 1, atol=1e-5)
    back = splits.original_outputs(splits.test_y)[:, 0]  # in coulombs again, each a test row's own value
    assert np.abs(back[:, None] - q[None]).min(axis=1).max() < 1e-6 * q.std()
    constant = split_arrays("flat", np.stack([np.full(400, 3e-15), r], 1), q[:, None])
    assert constant.x_std[0] == 1.0 and np.abs(constant.train_x[:, 0]).max() < 1e-20  # a true constant stays ~0


@pytest.mark.parametrize("head, sep", [("Temperatur, °C;Druck;y", ";"), ("sep=;\na;b;y", ";"),
                                       ('"a; in m",b,y', ","), ("a\tb\ty", "\t")])
def test_the_csv_separator_is_the_one_header_and_rows_agree_on(tmp_path, head, sep):
    """pandas' ``to_csv(sep=";", decimal=",")`` leaves a comma inside a column name unquoted, and
    Excel may name its separator on a first line: the header's first comma no longer decides."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 10, (2, 30))
    comma = sep == ";"  # decimal commas with semicolons
    cell = (lambda v: f"{v:.3f}".replace(".", ",")) if comma else (lambda v: f"{v:.3f}")
    (tmp_path / "t.csv").write_text(head + "\n" + "\n".join(sep.join(map(cell, (p, q, p + q))) for p, q in zip(a, b)))
    splits = load_array_file(tmp_path / "t.csv", outputs=("y",))
    assert len(splits.input_names) == 2 and splits.output_names == ("y",)
    assert np.allclose(splits.original_inputs(splits.test_x).sum(1), splits.original_outputs(splits.test_y)[:, 0],
                       atol=2e-3)


def test_nineteen_rows_are_too_few_for_two_validation_rows():
    with pytest.raises(DataError, match=r"19 rows; rule: at least 20"):
        split_arrays("few", np.arange(38.0).reshape(19, 2), np.arange(19.0))
    assert len(split_arrays("enough", np.arange(40.0).reshape(20, 2), np.arange(20.0)).val_y) == 2
