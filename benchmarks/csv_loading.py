"""How long an ``arrays:PATH.csv`` data set takes to load (once per launch, in the driver).

Writes one table of random numbers three ways and loads each with
:func:`tune_nas.data.arrays.load_array_file` ``--repeats`` times, printing the best time of
each, the ratios to the first, and whether all gave the same arrays:

* comma-separated, plain numbers: read at once by pandas' C reader;
* the same with every cell quoted (as some exporters write): quotes may hide commas and line
  ends, so the csv module reads the rows and each column is converted at once;
* semicolon-separated with decimal commas (a spreadsheet in a locale whose decimal mark is the
  comma): ``float`` refuses ``0,5``, so every cell is read on its own.

    python benchmarks/csv_loading.py --rows 200000 --columns 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from tune_nas.data.arrays import load_array_file


def best_seconds(path: Path, outputs: tuple[str, ...], repeats: int):
    best, splits = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        splits = load_array_file(path, outputs=outputs)
        best = min(best, time.perf_counter() - started)
    return best, splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=10, help="of which the last is the output")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = np.random.default_rng(0).normal(size=(args.rows, args.columns))
    header = [f"c{j}" for j in range(args.columns)]
    cells = [[repr(float(v)) for v in row] for row in table]
    files = {
        "comma-separated (pandas)": (",", lambda c: c),
        "every cell quoted (csv module, columns at once)": (",", lambda c: f'"{c}"'),
        "semicolons, decimal commas (cell by cell)": (";", lambda c: c.replace(".", ",")),
    }
    times, loaded = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, (sep, cell)) in enumerate(files.items()):
            path = Path(tmp) / f"{i}.csv"
            path.write_text("\n".join([sep.join(header), *(sep.join(map(cell, row)) for row in cells)]) + "\n")
            times[label], loaded[label] = best_seconds(path, (header[-1],), args.repeats)
    first = next(iter(loaded.values()))
    same = all(np.array_equal(getattr(s, k), getattr(first, k)) for s in loaded.values()
               for k in ("train_x", "train_y", "val_x", "test_x", "test_y"))
    fastest = next(iter(times.values()))
    print(f"{args.rows} rows x {args.columns} columns, best of {args.repeats}")
    for label, seconds in times.items():
        print(f"  {label:<50} {seconds:7.3f} s  ({seconds / fastest:.1f}x)")
    print(f"  same arrays: {same}")


if __name__ == "__main__":
    main()
