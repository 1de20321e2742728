"""Thousands of trials: does the driver slow down or grow as trials accumulate?

Runs the launcher on NAS-Bench-201 in tabular mode (a trial is a table lookup, so the driver
— sampler, Ray's bookkeeping, tune_nas's files — is all the work) for ``--trials`` trials and
watches it from outside: the trials ended so far (the lines of ``trials.journal.jsonl``, then
``trials.json``) and the driver's resident memory (``/proc/<pid>/status``), sampled every
``--every`` seconds. Prints, at each of ``--marks`` ended trials, the elapsed time, the
trials per second since the previous mark and the driver's RSS.

    python benchmarks/many_trials.py --trials 2000 --searcher random --trials-dir /tmp/many
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ended_trials(exp: Path) -> int:
    journal, whole = exp / "trials.journal.jsonl", exp / "trials.json"
    count = 0
    if whole.exists():
        try:
            count = len(json.loads(whole.read_text()))
        except ValueError:
            pass
    if journal.exists():
        with journal.open("rb") as f:
            count += sum(1 for _ in f)
    return count


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--searcher", default="random")
    parser.add_argument("--marks", default="100,1000,2000")
    parser.add_argument("--trials-dir", default="/tmp/tune_nas_many_trials")
    parser.add_argument("--name", default=f"many-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--every", type=float, default=0.5)
    args = parser.parse_args()
    marks = sorted(int(m) for m in args.marks.split(",") if int(m) <= args.trials)
    exp = Path(args.trials_dir) / args.name
    cmd = [sys.executable, "-m", "tune_nas.launch", "--space", "nasbench201_tabular", "--num-samples",
           str(args.trials), "--searcher", args.searcher, "--name", args.name, "--trials-dir", args.trials_dir]
    print(" ".join(cmd), flush=True)
    started = time.monotonic()
    Path(args.trials_dir).mkdir(parents=True, exist_ok=True)
    log = (Path(args.trials_dir) / f"{args.name}.log").open("w")
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    rows, last_mark, last_time, peak = [], 0, None, 0.0
    running = True
    while running:
        time.sleep(args.every)
        running = driver.poll() is None  # one more look at the files after the driver exits
        memory = rss_mib(driver.pid) if running else None
        peak = max(peak, memory or 0.0)
        done = ended_trials(exp)
        if last_time is None and done:
            last_time = time.monotonic()  # the first trial ended: Ray is up
        while marks and done >= marks[0]:
            now = time.monotonic()
            rate = (marks[0] - last_mark) / max(now - (last_time or started), 1e-9)
            rows.append((marks[0], now - started, rate, memory))
            shown = f"{memory:.0f} MiB" if memory is not None else "n/a (exited)"
            print(f"  {marks[0]:>5} trials ended at {now - started:7.1f} s: {rate:6.2f} trials/s since "
                  f"{last_mark or 'the first'}, driver RSS {shown}", flush=True)
            last_mark, last_time = marks.pop(0), now
    total = time.monotonic() - started
    print(f"exit {driver.returncode} after {total:.1f} s; peak driver RSS {peak:.0f} MiB; log {log.name}")
    print("| trials ended | elapsed s | trials/s since previous mark | driver RSS MiB |")
    print("| ---: | ---: | ---: | ---: |")
    for n, elapsed, rate, memory in rows:
        print(f"| {n} | {elapsed:.0f} | {rate:.2f} | {'n/a' if memory is None else f'{memory:.0f}'} |")


if __name__ == "__main__":
    main()
