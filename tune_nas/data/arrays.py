"""Array data sets for regression: inputs and outputs as numbers, from files or simulators.

A :class:`RegressionSplits` holds float32 inputs (N × inputs) and outputs (N × outputs; a
field output of ``output_shape`` C × L is stored flattened) of a train, a validation and a
test split, **standardised** with the training split's mean and standard deviation per column
(fitted on the training split only; a constant column is centred, not scaled), and the
statistics to undo it (:meth:`RegressionSplits.original_outputs`).

Files (``arrays:PATH``):

* ``.npz`` with ``x`` (N × inputs, or N) and ``y`` (N × outputs, N, or N × C × L for a field);
  optional ``input_names``/``output_names`` (strings) and ``seconds_per_sample`` (what one
  run of the simulator that made it costs: the emulator's speed-up is measured against it);
* ``.csv`` with a header: the experiment's ``outputs`` name the output columns, ``inputs`` the
  input columns (default: every other column). Cells are split by commas, or by semicolons or
  tabs when the header has those and no comma (then ``0,5`` reads as 0.5, as spreadsheets in
  such locales write it); a byte-order mark is dropped; a column name may appear once;
* ``.parquet`` (or ``.pq``): columns picked as a CSV's, numbers (integers, floats, flags) with
  no missing value in the input and output columns.

The split is deterministic (seeded by :data:`~tune_nas.data.sources.SPLIT_SEED`, never by the
search seed): 20 % test, then 10 % of the rest validation. Bad files (missing keys, shapes
that disagree, NaNs or infinities, too few rows, text in a number column) are refused with
:class:`~tune_nas.data.sources.DataError` naming the file and the rule.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tune_nas.data.sources import SPLIT_SEED, VAL_FRACTION, DataError
from tune_nas.paths import expand_user

TEST_FRACTION = 0.2
MIN_ROWS = 20  #: fewer rows leave one validation row (its R² is no number) or fill no three splits


@dataclass(frozen=True)
class RegressionSplits:
    """Standardised float32 inputs and outputs of the three splits, and how to undo it."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    output_shape: tuple[int, ...] = ()
    #: the built-in simulator that made the data (``""``: a file), and one run's wall time
    simulator: str = ""
    seconds_per_sample: float = math.nan
    task = "regression"

    def __post_init__(self) -> None:
        if not self.output_shape:
            object.__setattr__(self, "output_shape", (self.num_outputs,))
        if math.prod(self.output_shape) != self.num_outputs:
            raise DataError(f"{self.name}: output_shape {self.output_shape} holds "
                            f"{math.prod(self.output_shape)} values, the data {self.num_outputs}")
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
                raise DataError(f"{self.name}: {split} inputs {x.shape} and outputs {y.shape}; rule: "
                                "N × inputs and N × outputs")

    @property
    def num_inputs(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def num_outputs(self) -> int:
        return int(self.train_y.shape[1])

    @property
    def shape_args(self) -> dict[str, object]:
        """What a regression model's factory takes first (:mod:`tune_nas.models.registry`)."""
        return {"num_inputs": self.num_inputs, "output_shape": tuple(self.output_shape)}

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's input shape (what FLOPs and latency are measured on)."""
        return (self.num_inputs,)

    def describe(self) -> str:
        shape = "×".join(str(s) for s in self.output_shape)
        return (f"{self.name}: {len(self.train_x)} train / {len(self.val_x)} val / "
                f"{len(self.test_x)} test, {self.num_inputs} inputs → {shape} outputs")

    def original_outputs(self, y: np.ndarray) -> np.ndarray:
        """Standardised outputs back in the data's units."""
        return np.asarray(y, dtype=np.float64) * self.y_std + self.y_mean

    def original_inputs(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) * self.x_std + self.x_mean

    def reduced(self, train_fraction: float, seed: int = SPLIT_SEED) -> RegressionSplits:
        """A seeded ``train_fraction`` of the training rows (validation and test whole); the
        standardisation stays the full training split's, so scores stay comparable."""
        if train_fraction >= 1:
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self.train_x))[
            : max(1, int(round(len(self.train_x) * train_fraction)))])
        return replace(self, name=f"{self.name} [{train_fraction:g} of train]",
                       train_x=self.train_x[keep], train_y=self.train_y[keep])


def _column_stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation (1 for a constant column). Constant is judged
    relative to the column's own magnitude, never against an absolute floor: a column in SI
    units (picofarads as 5e-12 F, femtocoulombs) varies by 1e-13 and is standardised like any."""
    a = np.asarray(a, np.float64)
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    return mean, np.where((std > 0) & (std > 1e-12 * np.abs(mean)), std, 1.0)


def split_arrays(name: str, x: np.ndarray, y: np.ndarray, *, input_names=None, output_names=None,
                 output_shape: tuple[int, ...] = (), simulator: str = "",
                 seconds_per_sample: float = math.nan) -> RegressionSplits:
    """Check ``x`` (N × inputs or N) and ``y`` (N × outputs, N or N × C × L), split them
    deterministically and standardise with the training split's statistics."""
    x, y = np.asarray(x), np.asarray(y)
    for what, a in (("x", x), ("y", y)):
        if a.dtype.kind not in "biuf":
            raise DataError(f"{name}: {what} has dtype {a.dtype}; rule: numbers")
        if a.ndim == 0 or a.size == 0:
            raise DataError(f"{name}: {what} has shape {a.shape}; rule: one row per sample")
    if x.ndim > 2:
        raise DataError(f"{name}: x has shape {x.shape}; rule: N × inputs (or N)")
    if y.ndim > 3:
        raise DataError(f"{name}: y has shape {y.shape}; rule: N × outputs, N, or N × channels × points")
    if len(x) != len(y):
        raise DataError(f"{name}: x has {len(x)} rows but y has {len(y)}; rule: one output row per input row")
    if len(x) < MIN_ROWS:
        raise DataError(f"{name}: {len(x)} rows; rule: at least {MIN_ROWS} (train, and two or more for "
                        "validation and for test)")
    if y.ndim == 3:
        output_shape = tuple(int(s) for s in y.shape[1:])
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.reshape(len(y), -1).astype(np.float64)
    for what, a in (("x", x), ("y", y)):
        bad = ~np.isfinite(a)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{name}: {what}[{row}, {col}] is {a[row, col]} ({int(bad.sum())} values not "
                            "finite); rule: finite numbers only")
    given = [str(n) for names in (input_names, output_names) if names is not None for n in names]
    twice = next((n for n in given if given.count(n) > 1), None)
    if twice is not None:
        raise DataError(f"{name}: the column name {twice!r} appears {given.count(twice)} times among the "
                        "input and output names; rule: each column named once")
    input_names = tuple(str(n) for n in input_names) if input_names is not None else \
        tuple(f"x{i}" for i in range(x.shape[1]))
    output_names = tuple(str(n) for n in output_names) if output_names is not None else \
        tuple(f"y{i}" for i in range(y.shape[1]))
    if len(input_names) != x.shape[1] or len(output_names) != y.shape[1]:
        raise DataError(f"{name}: {len(input_names)} input names for {x.shape[1]} inputs, "
                        f"{len(output_names)} output names for {y.shape[1]} outputs; rule: one name per column")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_test = max(1, int(round(len(x) * TEST_FRACTION)))
    n_val = max(1, int(round((len(x) - n_test) * VAL_FRACTION)))
    test, val, train = np.sort(order[:n_test]), np.sort(order[n_test:n_test + n_val]), np.sort(order[n_test + n_val:])
    with np.errstate(over="ignore"):  # an overflow shows as a statistic that is not finite
        x_mean, x_std = _column_stats(x[train])
        y_mean, y_std = _column_stats(y[train])
    for what, names_, mean, std, a in (("x", input_names, x_mean, x_std, x), ("y", output_names, y_mean, y_std, y)):
        bad = ~(np.isfinite(mean) & np.isfinite(std))
        if bad.any():
            col = int(np.argmax(bad))
            where = f"column {names_[col]!r}" if what == "x" or not output_shape else f"value {col} of the flattened field"
            raise DataError(f"{name}: {what} {where} holds values up to {np.abs(a[:, col]).max():g}, too large to "
                            "standardise (the squares overflow); rule: values below 1e150 in magnitude")

    if (y.max(axis=0) == y.min(axis=0)).all():  # nothing to learn, and R² (1 - error / variance) is no number
        shown = ", ".join(f"{n} = {v:g}" for n, v in zip(output_names[:3], y[0, :3]))
        raise DataError(f"{name}: every output is the same in every row ({shown}{', ...' if y.shape[1] > 3 else ''}); "
                        "rule: an output that varies across the samples")

    def standard(a, mean, std):
        return np.ascontiguousarray((a - mean) / std, dtype=np.float32)

    return RegressionSplits(
        name, standard(x[train], x_mean, x_std), standard(y[train], y_mean, y_std),
        standard(x[val], x_mean, x_std), standard(y[val], y_mean, y_std),
        standard(x[test], x_mean, x_std), standard(y[test], y_mean, y_std),
        input_names, output_names, x_mean, x_std, y_mean, y_std, tuple(output_shape), simulator,
        float(seconds_per_sample))


def _names(archive, key: str) -> tuple[str, ...] | None:
    if key not in archive:
        return None
    return tuple(str(v) for v in np.asarray(archive[key]).reshape(-1))


def _seconds_per_sample(archive, name: str) -> float:
    """An .npz's ``seconds_per_sample``: one number of seconds > 0."""
    value = np.asarray(archive["seconds_per_sample"])
    seconds = float(value.reshape(-1)[0]) if value.size == 1 and value.dtype.kind in "iuf" else math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        shown = value.reshape(-1)[0].item() if value.size == 1 else f"an array of shape {value.shape}"
        raise DataError(f"{name}: seconds_per_sample is {shown!r}; rule: one number of seconds > 0 (what "
                        "one run of the simulator that made the data costs)")
    return seconds


def load_npz(path: Path, name: str) -> RegressionSplits:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DataError(f"{name}: not an .npz archive (an .npz is a zip of .npy arrays); rule: "
                        "numpy.savez(path, x=..., y=...) without object arrays")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x", "y") if k not in archive]
            if missing:
                raise DataError(f"{name}: no {missing[0]!r} array (it holds {sorted(archive.files)}); "
                                "rule: an .npz with arrays x (N × inputs) and y (N × outputs)")
            seconds = _seconds_per_sample(archive, name) if "seconds_per_sample" in archive else math.nan
            return split_arrays(name, archive["x"], archive["y"], input_names=_names(archive, "input_names"),
                                output_names=_names(archive, "output_names"), seconds_per_sample=seconds)
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{name}: not a readable .npz ({type(exc).__name__}: {str(exc)[:200]}); rule: "
                        "numpy.savez(path, x=..., y=...) without object arrays") from None


def _number(cell: str, decimal_comma: bool) -> float:
    """A CSV cell as a float; with semicolons or tabs between cells, ``0,5`` is 0.5."""
    try:
        return float(cell)
    except ValueError:
        if decimal_comma and cell.count(",") == 1 and "." not in cell:
            return float(cell.replace(",", "."))
        raise


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _without_comment_lines(lines: list[str]) -> tuple[list[str], int]:
    """A CSV's lines without the ``#`` lines before its header (``lines`` itself when there are
    none), and the header's line in the file. numpy's ``savetxt(..., header="a,b,y")`` writes the header as the
    last of them (``# a,b,y``): when the first line after them holds numbers only, that
    comment, less its ``#``, is the header."""
    skip = next((k for k, line in enumerate(lines) if not line.lstrip().startswith("#")), len(lines))
    if not skip:
        return lines, 1
    rest = lines[skip:]
    if rest and all(_is_number(cell) for cell in re.split(r"[,;\t]", rest[0])):
        return [lines[skip - 1].lstrip().lstrip("#").strip(), *rest], skip
    return rest, skip + 1


#: Where ``str.splitlines`` ends a line besides ``\n`` and ``\r`` (pandas ends lines at those two only).
_OTHER_LINE_ENDS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _csv_lines(text: str) -> list[str]:
    """The lines of a CSV file's ``text``, ended as CSV ends them (``\n``, ``\r\n``, ``\r``) and not
    also at the :data:`_OTHER_LINE_ENDS` that ``str.splitlines`` breaks at (a header holding a
    U+2028 was cut there)."""
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _whole_columns(text: str, lines: list[str], header: list[str], used: list[str]) -> dict[str, np.ndarray] | None:
    """The ``used`` columns of a comma-separated ``text`` (``lines``: no quotes, lines ended by
    ``\n`` or ``\r``) read at once by pandas' C reader (benchmarks/csv_loading.py), or None
    wherever its reading could differ from :func:`_row_columns`' rules, which then read the
    file: a row whose fields are not the header's, an empty used cell, a used cell that is no
    plain number."""
    fields = len(header) - 1
    if any(line.count(",") != fields and line.replace(",", "").strip() for line in lines):
        return None  # a row the row-by-row reader refuses (rows of blank cells it skips)
    import pandas as pd

    # pandas 3 reads floats as float() does; older ones need the round-trip converter for it
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    try:
        frame = pd.read_csv(io.StringIO(text), sep=",", header=0, **exact)
    except ValueError:  # pandas' ParserError among them
        return None
    if frame.shape[1] != len(header):
        return None
    columns = {c: frame.iloc[:, header.index(c)] for c in used}
    if any(column.dtype.kind not in "iuf" or column.isna().any() for column in columns.values()):
        return None  # an empty cell, a row of blank cells pandas kept, or a cell that is no plain number
    return {c: column.to_numpy(dtype=float) for c, column in columns.items()}


def _row_columns(name: str, rows: list[list[str]], header: list[str], used: list[str],
                 decimal_comma: bool, header_line: int = 1) -> dict[str, np.ndarray]:
    """The ``used`` columns of the CSV ``rows`` (the header first, on the file's line
    ``header_line``; rows of blank cells skipped) as floats, refusing a row whose fields do not
    match the header or a cell that is no number, by its line; with ``decimal_comma``, ``0,5``
    is 0.5."""
    body = [r for r in rows[1:] if "".join(r).strip()]

    def line_of(k: int) -> int:
        """The file line of ``body[k]`` (asked only to name an error)."""
        return [line for line, r in enumerate(rows[1:], start=header_line + 1) if "".join(r).strip()][k]

    short = next((k for k, row in enumerate(body) if len(row) != len(header)), None)
    if short is not None:
        raise DataError(f"{name}: line {line_of(short)} has {len(body[short])} fields, the header "
                        f"{len(header)}; rule: one value per column")
    columns = {}
    for column in used:
        j = header.index(column)
        cells = [row[j] for row in body]
        try:  # the whole column at once
            columns[column] = np.fromiter(map(float, cells), dtype=float, count=len(cells))
            continue
        except ValueError:  # a decimal comma, or a cell that is no number: cell by cell
            pass
        columns[column] = values = np.empty(len(cells))
        for k, cell in enumerate(cells):
            try:
                values[k] = _number(cell, decimal_comma)
            except ValueError:
                raise DataError(f"{name}: line {line_of(k)}, column {column!r}: {cell!r} is no number; "
                                "rule: numbers in the input and output columns") from None
    return columns


def _pick_columns(name: str, header: list[str], inputs: tuple[str, ...],
                  outputs: tuple[str, ...], index: tuple[str, ...] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The input and output columns of a table whose columns are named ``header`` (a CSV's
    header, a Parquet file's columns): ``outputs`` as given, ``inputs`` as given or every other
    column but the ``index`` ones (a table's row labels, as pandas stores its index in Parquet);
    :class:`DataError` for a repeated name, no outputs, a name not in ``header``, a column without
    a name among the inputs by default (pandas' ``to_csv`` writes its index so), or no input."""
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise DataError(f"{name}: column {twice[0]!r} appears {header.count(twice[0])} times in the header; "
                        "rule: one name per column")
    if not outputs:
        raise DataError(f"{name}: which columns are outputs? rule: the space's EXPERIMENT names them: "
                        f"\"outputs\": [...] among the header's {header}")
    unknown = [c for c in (*outputs, *inputs) if c not in header]
    if unknown:
        raise DataError(f"{name}: no column {unknown[0]!r}; rule: inputs and outputs name columns of the "
                        f"header {header}")
    if not inputs and "" in header and "" not in outputs:
        position = header.index("") + 1
        why = (" (pandas' to_csv writes its index so; index=False leaves it out)" if position == 1 else
               " (a separator at the end of every line makes one)" if position == len(header) else "")
        raise DataError(f"{name}: column {position} of the header has no name{why}; rule: a name for every "
                        "column the inputs take by default, or the inputs listed in the space's EXPERIMENT: "
                        "\"inputs\": [...]")
    inputs = inputs or tuple(c for c in header if c not in outputs and c not in index)
    if not inputs or set(inputs) & set(outputs):
        raise DataError(f"{name}: inputs {list(inputs)} and outputs {list(outputs)}; rule: at least one "
                        "input column, none of them an output")
    return inputs, outputs


def _split_columns(name: str, columns: dict[str, np.ndarray], inputs: tuple[str, ...],
                   outputs: tuple[str, ...]) -> RegressionSplits:
    """:func:`split_arrays` of a table's picked columns (a CSV's, a Parquet file's)."""
    return split_arrays(name, np.column_stack([columns[c] for c in inputs]),
                        np.column_stack([columns[c] for c in outputs]), input_names=inputs, output_names=outputs)


def load_parquet(path: Path, name: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> RegressionSplits:
    """A Parquet file's columns, picked as a CSV's (its column names are the header): numbers
    (integers, floats or flags) in every row of the input and output columns."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:  # Ray brings pyarrow; a bare install may lack it
        raise DataError(f"{name}: reading Parquet needs pyarrow; rule: pip install pyarrow") from None
    try:
        table = pyarrow.parquet.read_table(path)
    except (OSError, pyarrow.ArrowException) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{name}: not a readable Parquet file ({reason[:200]}); rule: a Parquet table of "
                        "number columns (e.g. pandas' DataFrame.to_parquet)") from None
    pandas = table.schema.pandas_metadata or {}  # a DataFrame's index, stored as columns
    index = tuple(c for c in pandas.get("index_columns", []) if isinstance(c, str))
    inputs, outputs = _pick_columns(name, list(table.column_names), inputs, outputs, index)
    columns = {}
    for column in (*inputs, *outputs):
        values = table.column(column)
        kind = values.type
        if not (pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind) or pyarrow.types.is_boolean(kind)):
            raise DataError(f"{name}: column {column!r} holds {kind}; rule: numbers in the input and output columns")
        if values.null_count:
            raise DataError(f"{name}: column {column!r} has {values.null_count} missing values; rule: a number "
                            "in every row of the input and output columns")
        columns[column] = values.to_numpy().astype(np.float64)
    return _split_columns(name, columns, inputs, outputs)


def _delimiter(lines: list[str]) -> tuple[str, list[str]]:
    """(the field separator, the lines without Excel's ``sep=;`` line). Excel names it on a first
    line of its own; otherwise a comma, a semicolon (spreadsheets whose decimal mark is the comma)
    or a tab: the one that splits the header and the first row into the same number of fields,
    the most fields first, a comma among equals; a header name may hold another of them
    ("Temperatur, °C;Druck;y")."""
    import csv

    if lines and lines[0].rstrip("\r\n ").lower() in ("sep=,", "sep=;", "sep=\t"):
        return lines[0].rstrip("\r\n ")[4:], lines[1:]
    if not lines:
        return ",", lines

    def fields(line: str, d: str) -> int:
        return len(next(csv.reader([line], delimiter=d), []))

    row = lines[1] if len(lines) > 1 else lines[0]
    ranked = []
    for i, d in enumerate(",;\t"):
        n = fields(lines[0], d)
        ranked.append((n > 1 and n == fields(row, d), n, -i, d))
    return max(ranked)[3], lines


def load_csv(path: Path, name: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> RegressionSplits:
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a spreadsheet's byte-order mark dropped
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: cannot be read ({type(exc).__name__}: {exc}); rule: a text CSV file") from None
    lines = _csv_lines(text)
    cleaned, header_line = _without_comment_lines(lines)
    if cleaned is not lines:  # what pandas reads at once too
        lines, text = cleaned, "\n".join(cleaned) + "\n"
    delimiter, rest = _delimiter(lines)
    if rest is not lines:  # Excel's "sep=;" line dropped
        lines, text, header_line = rest, "\n".join(rest) + "\n", header_line + 1
    first = lines[0] if lines else ""
    quoted = '"' in text  # then a row may span lines: the csv module reads them all
    rows = list(csv.reader(lines, delimiter=delimiter)) if quoted else None
    if (len(rows) if quoted else len(lines)) < 2:
        raise DataError(f"{name}: {len(rows) if quoted else len(lines)} line(s); rule: a header and one row per sample")
    header = [h.strip() for h in (rows[0] if quoted else first.split(delimiter) if first else [])]
    if header and all(_is_number(h) for h in header):
        shown = ", ".join(header[:3]) + (", ..." if len(header) > 3 else "")
        raise DataError(f"{name}: line {header_line} holds numbers ({shown}), not column names; rule: a header "
                        "line naming the columns first (numpy: np.savetxt(path, data, delimiter=',', header='a,b,y'))")
    inputs, outputs = _pick_columns(name, header, inputs, outputs)
    used = [*inputs, *outputs]
    plain = delimiter == "," and not quoted and not any(end in text for end in _OTHER_LINE_ENDS)
    columns = _whole_columns(text, lines, header, used) if plain else None
    if columns is None:
        rows = rows if rows is not None else list(csv.reader(lines, delimiter=delimiter))
        columns = _row_columns(name, rows, header, used, decimal_comma=delimiter != ",", header_line=header_line)
    return _split_columns(name, columns, inputs, outputs)


def missing_array_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path; :class:`DataError` when it is no file."""
    source = expand_user(path, "arrays:")
    if not source.is_file():
        raise DataError(f"arrays:{path}: no such file; rule: arrays:PATH names an existing .npz, .csv or .parquet file")
    return source


def load_array_file(path: str | os.PathLike, inputs=(), outputs=()) -> RegressionSplits:
    """``arrays:PATH``: an .npz, a .csv or a .parquet (see the module's docstring)."""
    source = missing_array_file(path)
    name = f"arrays:{path}"
    suffix = source.suffix.lower()
    if suffix == ".npz":
        if outputs or inputs:
            raise DataError(f"{name}: inputs/outputs are set; rule: they pick CSV columns; an .npz holds x and y")
        return load_npz(source, name)
    if suffix == ".csv":
        return load_csv(source, name, tuple(inputs), tuple(outputs))
    if suffix in (".parquet", ".pq"):
        return load_parquet(source, name, tuple(inputs), tuple(outputs))
    raise DataError(f"{name}: suffix {suffix!r}; rule: arrays:PATH is an .npz, a .csv or a .parquet file")
