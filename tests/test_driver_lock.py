"""One driver per experiment: the lock a running driver holds, and that a killed one leaves none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tune_nas.storage.driver_lock import ExperimentBusy, hold_driver_lock, release_driver_locks

HOLD = """
import sys, time
from tune_nas.storage.driver_lock import hold_driver_lock
hold_driver_lock(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_process_is_refused_naming_the_holder_until_the_holder_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ExperimentBusy, match=rf"a driver \(pid {holder.pid} on .+, since 20"):
            hold_driver_lock(tmp_path)
        assert json.loads((tmp_path / "driver.lock").read_text())["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    hold_driver_lock(tmp_path)  # a killed driver leaves no lock behind
    try:
        assert json.loads((tmp_path / "driver.lock").read_text())["pid"] == os.getpid()
        hold_driver_lock(tmp_path)  # again in the same process: already held
        other = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", ""), str(tmp_path)],
                               capture_output=True, text=True, timeout=60)
        assert other.returncode != 0 and "ExperimentBusy" in other.stderr
    finally:
        release_driver_locks()
    released = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", ""), str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
    assert released.returncode == 0, released.stderr  # released: another process takes it


def test_a_file_system_without_flock_runs_the_search_unlocked(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    hold_driver_lock(tmp_path)  # no error: the driver goes on without the lock
    release_driver_locks()
