"""Data-parallel trials: one trial trained by ``workers_per_trial`` processes on one node.

The process that runs the trial (a Ray Tune actor, or a test) is rank 0: it starts ranks
1..N-1 as subprocesses of its own (``python -m tune_nas.trial.data_parallel``), each given
the trial's config, the data (written once to a temporary directory and memory-mapped by
every worker) and the checkpoint to resume from. Every rank then runs the same
:func:`tune_nas.trial.run.run_trial`, joined by Lightning's ``DDPStrategy`` (gloo on CPUs,
NCCL on GPUs, one GPU per rank) with a cluster environment that says the processes exist
already: Lightning launches nothing. Only rank 0 reports to Tune and writes checkpoints; the
others report to no one.

Why not Ray Train's ``TorchTrainer`` inside the Tune trial: in Ray 2.60 (Train v2) its
workers are scheduled in a placement group of their own, outside the trial's; results reach
Tune through a queue and checkpoints through Train's storage, so Tune's checkpoints (pause,
resume, retry) and the trial's resources would all change. Here the trial's placement group
holds every worker's CPUs and GPUs in one bundle (so on one node), and Tune sees the same
trial as with one worker. The price: a trial cannot span nodes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tune_nas.data.sources import ArraySplits

#: Seconds rank 0 waits for the other ranks to start (import torch and Lightning, read the
#: data, build the model) before it gives up on them.
START_TIMEOUT_S = 600.0
#: Seconds rank 0 waits for the other ranks to exit after its own fit has ended.
EXIT_TIMEOUT_S = 60.0
_ARRAYS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
_LOG_TAIL_LINES = 20
#: How long rank 0, its collective broken by a peer, waits for that peer's exit to name it
PEER_EXIT_GRACE_S = 10.0
#: What rank 0's error says when a peer's end broke a collective (gloo, NCCL)
_PEER_LOST = ("closed by peer", "connection reset", "broken pipe", "nccl")


class WorkerError(RuntimeError):
    """A data-parallel worker of a trial did not start or ended with an error."""


@dataclass
class TrialGroup:
    """One process's place in a data-parallel trial: its rank among ``world_size`` processes
    that meet at ``127.0.0.1:port``. Rank 0 also holds the other ranks' processes."""

    rank: int
    world_size: int
    port: int
    ready_dir: str
    address: str = "127.0.0.1"
    workers: WorkerProcesses | None = field(default=None, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def environment(self):
        """Lightning's cluster environment for this process (the processes exist already)."""
        from lightning.fabric.plugins.environments import ClusterEnvironment
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        group = self

        class TrialGroupEnvironment(ClusterEnvironment):
            @property
            def creates_processes_externally(self) -> bool:
                return True

            @property
            def main_address(self) -> str:
                return group.address

            @property
            def main_port(self) -> int:
                return group.port

            @staticmethod
            def detect() -> bool:
                return True

            def world_size(self) -> int:
                return group.world_size

            def set_world_size(self, size: int) -> None:
                if size != group.world_size:
                    raise WorkerError(f"Lightning asks for {size} processes; the trial has {group.world_size}")

            def global_rank(self) -> int:
                return group.rank

            def set_global_rank(self, rank: int) -> None:
                rank_zero_only.rank = rank

            def local_rank(self) -> int:
                return group.rank

            def node_rank(self) -> int:
                return 0

        return TrialGroupEnvironment()

    def strategy(self, device_type: str):
        """Lightning's DDP over this group: gloo on CPUs, NCCL on GPUs. Unused parameters are
        looked for in every step: cell and superkernel models may leave some out of the
        forward pass (e.g. a ``none`` edge, a frozen threshold), which plain DDP refuses."""
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(cluster_environment=self.environment(), find_unused_parameters=True,
                           process_group_backend="nccl" if device_type == "cuda" else "gloo")

    def rendezvous(self) -> None:
        """Before the fit: a worker says it is ready; rank 0 waits until every worker is (or
        raises :class:`WorkerError` with the worker's last output when one died first)."""
        if self.rank:
            Path(self.ready_dir, f"ready.{self.rank}").touch()
        elif self.workers is not None:
            self.workers.wait_ready()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _package_root() -> str:
    """The directory holding the ``tune_nas`` this process runs: the workers import the same."""
    import tune_nas

    return str(Path(tune_nas.__file__).resolve().parent.parent)


class WorkerProcesses:
    """Ranks 1..N-1 of one trial, started by rank 0; their output goes to ``worker.<rank>.log``
    in the trial's temporary directory (its tail is in the error when one fails)."""

    def __init__(self, workdir: Path, world_size: int, threads: float = 1) -> None:
        self.workdir, self.world_size = workdir, world_size
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
        # each worker's own threads (Ray sets the actor's to all of the trial's CPUs)
        env["OMP_NUM_THREADS"] = str(max(1, int(threads)))
        self.procs: dict[int, subprocess.Popen] = {}
        for rank in range(1, world_size):
            with open(workdir / f"worker.{rank}.log", "wb") as log:
                self.procs[rank] = subprocess.Popen(
                    [sys.executable, "-m", "tune_nas.trial.data_parallel", str(workdir), str(rank)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def failed(self) -> tuple[int, int] | None:
        """(rank, exit code) of a worker that ended with an error, if any."""
        for rank, proc in self.procs.items():
            code = proc.poll()
            if code not in (None, 0):
                return rank, code
        return None

    def describe_failure(self, rank: int, code: int) -> str:
        try:
            lines = (self.workdir / f"worker.{rank}.log").read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        tail = " | ".join(ln.strip() for ln in lines[-_LOG_TAIL_LINES:] if ln.strip())
        return f"data-parallel worker rank {rank} of {self.world_size} exited with code {code}: {tail[-2000:]}"

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if all((self.workdir / f"ready.{rank}").exists() for rank in self.procs):
                return
            failure = self.failed()
            if failure is None and any(p.poll() == 0 for p in self.procs.values()):
                failure = next((r, 0) for r, p in self.procs.items() if p.poll() == 0
                               and not (self.workdir / f"ready.{r}").exists())
            if failure is not None:
                raise WorkerError(self.describe_failure(*failure))
            if time.monotonic() > deadline:
                raise WorkerError(f"data-parallel workers of the trial not ready after {timeout_s:g} s")
            time.sleep(0.02)

    def failure_after(self, error: BaseException, grace_s: float = PEER_EXIT_GRACE_S) -> tuple[int, int] | None:
        """The worker that failed, when rank 0 ended with ``error``: a worker's end breaks rank
        0's collective (gloo: "connection closed by peer") while the worker's process may still
        be exiting, so for such an error wait up to ``grace_s`` for its exit code."""
        failure = self.failed()
        if failure is not None or not any(word in str(error).lower() for word in _PEER_LOST):
            return failure
        deadline = time.monotonic() + grace_s
        while failure is None and time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.02)
            failure = self.failed()
        return failure

    def wait_exit(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """End every worker still running, at once: SIGKILL. Rank 0 wrote every checkpoint, so
        nothing of theirs is lost, and a worker waiting in a collective would not run a SIGTERM
        handler (Lightning installs one) until the collective's timeout. Ray Tune gives a
        stopped trial's thread 2 s to end before it gives up reusing the actor."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait()


def _write_inputs(workdir: Path, config: dict[str, Any], splits: ArraySplits, setup: Any,
                  resume_dir: str | None, port: int) -> None:
    """What every worker reads: the arrays (``.npy``, memory-mapped by the workers) and the rest
    (pickled: the trial's own config and settings, written by this process for its children)."""
    for name in _ARRAYS:
        np.save(workdir / f"{name}.npy", np.ascontiguousarray(getattr(splits, name)))
    rest = {f.name: getattr(splits, f.name) for f in dataclasses.fields(splits) if f.name not in _ARRAYS}
    meta = {"config": config, "setup": setup, "resume_dir": resume_dir, "port": port, "parent": os.getpid(),
            "splits_type": type(splits), "splits": rest}  # images or regression arrays
    (workdir / "trial.pkl").write_bytes(pickle.dumps(meta))


@contextlib.contextmanager
def launch_workers(config: dict[str, Any], splits: ArraySplits, setup: Any,
                   resume_dir: str | None) -> Iterator[TrialGroup]:
    """Start ranks 1..N-1 of a trial (N = ``setup.workers_per_trial``) and yield rank 0's
    :class:`TrialGroup`. On the way out every worker has ended (waited for after a fit that
    ended well, stopped otherwise: a trial stopped by the scheduler, an error) and the
    temporary files are gone. An error of rank 0 that a failed worker caused names the
    worker and its last output."""
    world_size = int(setup.workers_per_trial)
    workdir = Path(tempfile.mkdtemp(prefix="tune_nas-ddp-"))
    workers = None
    try:
        port = free_port()
        _write_inputs(workdir, config, splits, setup, resume_dir, port)
        workers = WorkerProcesses(workdir, world_size, setup.cpus_per_trial)
        group = TrialGroup(0, world_size, port, str(workdir), workers=workers)
        try:
            yield group
        except Exception as exc:
            failure = workers.failure_after(exc)
            if failure is not None and not isinstance(exc, WorkerError):
                raise WorkerError(workers.describe_failure(*failure)) from exc
            raise
        workers.wait_exit(EXIT_TIMEOUT_S)
        failure = workers.failed()
        if failure is not None:
            raise WorkerError(workers.describe_failure(*failure))
    finally:
        if workers is not None:
            workers.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def end_process_group() -> None:
    """Leave the trial's process group (the actor may run another trial next)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


class _NoReports:
    """A worker other than rank 0 reports to no one."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        pass


def _die_with_parent() -> None:
    """Linux: this worker gets SIGKILL when the process that started it ends (an actor killed
    by Ray leaves no worker behind waiting in a collective)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def worker_main(workdir: str, rank: int) -> None:
    """Rank ``rank`` of the trial whose inputs are in ``workdir``."""
    _die_with_parent()
    root = Path(workdir)
    meta = pickle.loads((root / "trial.pkl").read_bytes())
    if os.getppid() != meta["parent"]:  # the trial's process ended before prctl took effect
        return
    arrays = {name: np.load(root / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    splits = meta["splits_type"](**meta["splits"], **arrays)
    setup = meta["setup"]
    group = TrialGroup(rank, int(setup.workers_per_trial), int(meta["port"]), str(root))
    from tune_nas.trial.run import run_trial

    run_trial(meta["config"], splits, setup, _NoReports(), resume_dir=meta["resume_dir"], group=group)


if __name__ == "__main__":
    worker_main(sys.argv[1], int(sys.argv[2]))
