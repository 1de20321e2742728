"""One driver per experiment: a second ``--resume`` of a running search is refused.

Two drivers on one experiment directory would both append to its journals, tell its study
and rewrite Ray's snapshot: the records would interleave and the snapshot of one would
overwrite the other's. The driver holds an exclusive ``flock`` on ``driver.lock`` in the
experiment directory (on object storage: in the local mirror) for as long as it runs; the
kernel releases it when the process ends, however it ends (SIGKILL included), so a crashed
driver never leaves a stale lock. The file says who holds it (pid, host, since when). On a
file system without ``flock`` (some network mounts) the search runs without the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime
from pathlib import Path

from tune_nas.layout import ExperimentLayout

_held: dict[Path, int] = {}  # experiment directory -> the open descriptor holding its lock


class ExperimentBusy(RuntimeError):
    """Another process holds the experiment's lock; the message names it."""


def hold_driver_lock(experiment_dir: Path) -> None:
    """Take the experiment's lock for the rest of this process, or raise :class:`ExperimentBusy`
    naming the driver that holds it. Taking it again in the same process is a no-op."""
    experiment_dir = Path(experiment_dir).resolve()
    if experiment_dir in _held:
        return
    path = ExperimentLayout(experiment_dir).driver_lock
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return  # a directory this process cannot write a file into: no lock, as before locks
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ExperimentBusy(f"a driver ({holder}) is running this experiment") from None
    except OSError:  # a file system without flock (some network mounts): the search runs unlocked
        os.close(fd)
        return
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": datetime.now().isoformat(timespec="seconds")}).encode())
    _held[experiment_dir] = fd


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def release_driver_locks() -> None:
    """Let go of every lock this process holds (the driver is done with its experiments)."""
    while _held:
        _, fd = _held.popitem()
        os.close(fd)  # closing the last descriptor of the open file releases its flock
