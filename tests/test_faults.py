"""Faults injected into real processes; each test asserts that nothing was lost.

The Ray tests (``slow``) run ``python -m tune_nas.launch`` in a subprocess on a tiny search
(digits, a linear model from ``fault_plugins/fault_models.py``, a few trials of a few
epochs) whose space file gives chosen Optuna trial numbers a fault: the worker kills itself
with SIGKILL mid-epoch, the loss turns NaN, ``torch.OutOfMemoryError`` is raised. Others kill
the driver, or remove a node of a two-node cluster, while trials run.

Every Ray process of a test carries a private ``RAY_TMPDIR``: no test connects to another
Ray instance on the machine, and the cleanup kills exactly the processes whose environment
holds that directory (never ``ray stop``, which would stop everybody's Ray).
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from tune_nas.layout import ExperimentLayout

REPO = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "fault_plugins"
FAULT_MODELS = PLUGINS / "fault_models.py"
BATCH_SIZE = 64


def batches_per_epoch() -> int:
    from tune_nas.data.sources import load_splits

    return len(load_splits("digits").train_x) // BATCH_SIZE  # drop_last=True


# --------------------------------------------------------------------------- helpers


SPACE_TEMPLATE = '''"""Fault test space (written by tests/test_faults.py)."""

EXPERIMENT = {{
    "dataset": "digits", "model": "fault_linear", "metric": "val/acc", "mode": "max",
    "max_epochs": {max_epochs}, "scheduler": "{scheduler}", "grace_period": 1,
    "reduction_factor": 2, "num_samples": {num_samples}, "cpus_per_trial": 1,
    "max_concurrent_trials": {max_concurrent}, "checkpoint_every": {checkpoint_every},
    "max_failures": 2, "seed": 1, "n_startup_trials": 3,
    "plugins": [{plugin!r}],
}}

# Optuna trial number -> (fault, training step at which it fires)
FAULTS = {faults!r}
MARKER_DIR = {marker_dir!r}


def define_by_run(trial):
    trial.suggest_float("lr", 0.01, 0.05, log=True)
    fault, step = FAULTS.get(trial.number, ("none", 0))
    return {{"batch_size": {batch_size}, "fault": fault, "fault_step": step,
             "marker": f"{{MARKER_DIR}}/killed-{{trial.number}}" if fault == "sigkill" else "",
             "step_seconds": {step_seconds}, "tag": trial.number,
             "started_dir": {started_dir!r}, "hog_gb": {hog_gb}}}
'''


def write_space(path: Path, *, num_samples: int, max_epochs: int, scheduler: str = "none",
                faults: dict[int, tuple[str, int]] | None = None, checkpoint_every: int = 1,
                step_seconds: float = 0.0, started_dir: str = "",
                max_concurrent: int = 0, hog_gb: float = 0.0) -> Path:
    marker_dir = path.parent / "markers"
    marker_dir.mkdir(exist_ok=True)
    path.write_text(SPACE_TEMPLATE.format(
        max_epochs=max_epochs, scheduler=scheduler, num_samples=num_samples,
        max_concurrent=max_concurrent, checkpoint_every=checkpoint_every,
        plugin=str(FAULT_MODELS), faults=faults or {}, marker_dir=str(marker_dir),
        batch_size=BATCH_SIZE, step_seconds=step_seconds, started_dir=started_dir, hog_gb=hog_gb))
    return path


def _pids_with_env(entry: bytes) -> list[int]:
    me = {os.getpid(), os.getppid()}
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in me:
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if entry in environ.split(b"\0"):
            pids.append(int(proc.name))
    return pids


def kill_ray_of(ray_tmpdir: str, timeout: float = 30) -> list[int]:
    """SIGKILL every process whose environment holds ``RAY_TMPDIR=ray_tmpdir`` (this test's
    driver, GCS, raylets, workers); returns those still alive after ``timeout``."""
    entry = f"RAY_TMPDIR={ray_tmpdir}".encode()
    deadline = time.monotonic() + timeout
    while (pids := _pids_with_env(entry)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    return _pids_with_env(entry)


@contextlib.contextmanager
def killed_when_done(driver: subprocess.Popen, ray_env: dict[str, str]):
    """The block watches ``driver`` until the moment to kill it; when it ends, the driver is
    killed (SIGKILL, as a crash would) and so is every Ray process of the test, whatever the
    block raised."""
    try:
        yield
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
        assert not kill_ray_of(ray_env["RAY_TMPDIR"]), "Ray processes survived the cleanup"


@pytest.fixture
def ray_env():
    """Environment for a test's Ray processes: a private, short RAY_TMPDIR (Unix socket
    paths must stay under 108 bytes); every process left with it is killed afterwards."""
    tmpdir = tempfile.mkdtemp(prefix="tnf-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": tmpdir, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    yield env
    left = kill_ray_of(tmpdir)
    shutil.rmtree(tmpdir, ignore_errors=True)
    assert not left, f"processes of this test survived SIGKILL: {left}"


def launch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tune_nas.launch", *args]


def launch(*args: str, env: dict, cwd: Path, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run(launch_cmd(*args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def explain(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


def load_study(exp: Path):
    import optuna

    name = json.loads((exp / "experiment.json").read_text())["name"]  # the name it began with
    return optuna.load_study(study_name=name, storage=f"sqlite:///{exp / 'optuna.db'}")


def curve_epochs(exp: Path) -> dict[int, list[int]]:
    """Optuna number -> the epochs of its rows in curves.csv, in file order."""
    with (exp / "curves.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(int(row["trial_number"]), []).append(int(row["epoch"]))
    return out


def trials_json(exp: Path) -> dict[int, dict]:
    return {t["number"]: t for t in json.loads((exp / "trials.json").read_text())}


def assert_nothing_lost(exp: Path, num_samples: int, allow_orphans: bool = False) -> dict:
    """The invariants every faulty run must keep: num_samples Optuna trials, none RUNNING,
    unique Ray ids, summary/trials.json/study in agreement, one curve row per epoch run.

    With ``allow_orphans`` (a killed driver), Optuna trials proposed after Ray's last snapshot
    may exist besides them, recorded as FAIL with an "orphaned" reason and never trained."""
    study = load_study(exp)
    everything = study.get_trials(deepcopy=False)
    assert "RUNNING" not in {t.state.name for t in everything}
    orphans = [t for t in everything if t.state.name == "FAIL"
               and str(t.user_attrs.get("error", "")).startswith("orphaned")]
    if not allow_orphans:
        assert not orphans
    trials = [t for t in everything if t not in orphans]
    states = {t.number: t.state.name for t in trials}
    assert len(trials) == num_samples, states
    assert sorted(states) == sorted(t.number for t in trials)
    assert "RUNNING" not in states.values() and "WAITING" not in states.values(), states
    ray_ids = [t.user_attrs.get("ray_trial_id") for t in trials]
    assert None not in ray_ids and len(set(ray_ids)) == num_samples, ray_ids
    summary = json.loads((exp / "summary.json").read_text())
    assert sum(summary["counts"].values()) == num_samples, summary["counts"]
    by_number = {t["number"]: t for t in summary["trials"]}
    assert len(summary["trials"]) == num_samples and sorted(by_number) == sorted(states)
    assert {n: t["state"] for n, t in by_number.items()} == states
    assert {t.user_attrs["ray_trial_id"] for t in trials} == {t["trial_id"] for t in summary["trials"]}
    records = trials_json(exp)
    assert {n: r["state"] for n, r in records.items()} == states
    curves = curve_epochs(exp)
    for t in trials:
        epochs = by_number[t.number]["epochs"]
        assert curves.get(t.number, []) == list(range(1, epochs + 1)), (t.number, curves)
        assert t.user_attrs["epochs"] == epochs
    return summary


# ------------------------------------------- 1 + 4: SIGKILLed worker, NaN loss, out of memory

FAULTY = {"num_samples": 5, "max_epochs": 4, "checkpoint_every": 2}
SIGKILLED, NAN, OOM = 1, 2, 3


@pytest.fixture(scope="module")
def faulty_search(tmp_path_factory):
    """One search of 5 trials × 4 epochs (checkpoints at epochs 2 and 4, no early stopping):
    trial 1's worker SIGKILLs itself at the 5th batch of epoch 4 (first attempt only), trial
    2's loss turns NaN in epoch 2, trial 3 raises OutOfMemoryError in epoch 2."""
    root = tmp_path_factory.mktemp("faulty")
    n = batches_per_epoch()
    faults = {SIGKILLED: ("sigkill", 3 * n + 5), NAN: ("nan", n + 3), OOM: ("oom", n + 3)}
    space = write_space(root / "faulty_space.py", faults=faults, **FAULTY)
    tmpdir = tempfile.mkdtemp(prefix="tnf-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": tmpdir, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    try:
        proc = launch("--space", str(space), "--name", "faulty", "--trials-dir",
                      str(root / "trials"), env=env, cwd=root)
    finally:
        kill_ray_of(tmpdir)
        shutil.rmtree(tmpdir, ignore_errors=True)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, explain(proc)
    print(f"\nfaulty search: {seconds:.1f} s")
    return {"exp": root / "trials" / "faulty", "proc": proc, "markers": root / "markers",
            "batches": n}


@pytest.mark.slow
def test_sigkilled_worker_is_retried_from_its_checkpoint_and_no_epoch_is_lost(faulty_search):
    exp, n = faulty_search["exp"], faulty_search["batches"]
    marker = faulty_search["markers"] / f"killed-{SIGKILLED}"
    assert marker.is_file(), "the fault never fired"
    killed_pid = int(marker.read_text())
    # two processes trained trial 1: the killed one from step 1, the retry from the epoch-2
    # checkpoint (step 2n + 1): epochs 1-2 were not trained again, epoch 3 was.
    attempts = [tuple(map(int, line.split()))
                for line in Path(f"{marker}.log").read_text().splitlines()]
    assert attempts[0] == (killed_pid, 1)
    assert len(attempts) == 2 and attempts[1][0] != killed_pid, attempts
    assert attempts[1][1] == 2 * n + 1, "the retry did not start from the epoch-2 checkpoint"
    summary = assert_nothing_lost(exp, FAULTY["num_samples"])
    record = trials_json(exp)[SIGKILLED]
    assert record["state"] == "COMPLETE" and record["epochs"] == 4
    assert record["retries"] == 1 and record["reason"] is None
    # epoch 3 was reported by both attempts; curves.csv holds it once (checked above: 1..4)
    study_trial = load_study(exp).trials[SIGKILLED]
    assert study_trial.state.name == "COMPLETE"
    assert study_trial.user_attrs["retries"] == 1
    assert sorted(study_trial.intermediate_values) == [1, 2, 3, 4]
    assert study_trial.value == pytest.approx(study_trial.intermediate_values[4])
    assert summary["counts"] == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 2}
    assert re.search(rf"trial {SIGKILLED} failed .*retrying from its last checkpoint",
                     faulty_search["proc"].stdout)


@pytest.mark.slow
def test_nan_loss_fails_the_trial_at_once_with_its_reason_and_no_retry(faulty_search):
    exp = faulty_search["exp"]
    record = trials_json(exp)[NAN]
    assert record["state"] == "FAIL" and record["retries"] == 0
    assert record["reason"] == "train/loss is nan at epoch 2"
    assert record["epochs"] == 1  # the NaN epoch is not a trained epoch
    trial = load_study(exp).trials[NAN]
    assert trial.state.name == "FAIL" and trial.user_attrs["error"] == record["reason"]
    assert trial.user_attrs["retries"] == 0
    assert curve_epochs(exp)[NAN] == [1]
    assert not (faulty_search["markers"] / f"killed-{NAN}").exists()


@pytest.mark.slow
def test_out_of_memory_fails_that_trial_alone_with_its_reason(faulty_search):
    exp = faulty_search["exp"]
    records = trials_json(exp)
    record = records[OOM]
    assert record["state"] == "FAIL" and record["retries"] == 0 and record["epochs"] == 1
    assert record["reason"].startswith("out of memory: CUDA out of memory")
    trial = load_study(exp).trials[OOM]
    assert trial.state.name == "FAIL" and trial.user_attrs["error"] == record["reason"]
    # the others finished their full budget
    assert {n: r["state"] for n, r in records.items() if n not in (NAN, OOM)} == {
        0: "COMPLETE", SIGKILLED: "COMPLETE", 4: "COMPLETE"}
    assert all(records[n]["epochs"] == 4 for n in (0, SIGKILLED, 4))


@pytest.mark.slow
def test_a_trial_rays_memory_monitor_kills_fails_alone_with_its_reason(tmp_path, ray_env):
    """Ray 2.60's Tune ended the whole search ("RuntimeError: Caught unexpected exception")
    when its memory monitor killed a trial's worker while a task of the trial was pending."""
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
    total, available = (int(meminfo[key].split()[0]) * 1024 for key in ("MemTotal", "MemAvailable"))
    hog_gb = 4.0
    # the monitor's threshold: what is in use now, plus room for Ray and a trial, below the hog
    threshold = (total - available + 2.5 * 2**30) / total
    if threshold + hog_gb * 2**30 / total > 0.9:
        pytest.skip(f"{available / 2**30:.1f} GB available: too little for a {hog_gb:g} GB hog")
    env = {**ray_env, "RAY_memory_usage_threshold": f"{threshold:.4f}", "RAY_memory_monitor_refresh_ms": "100"}
    space = write_space(tmp_path / "space.py", num_samples=3, max_epochs=2, faults={1: ("hog", 3)},
                        hog_gb=hog_gb, max_concurrent=1)
    proc = launch("--space", str(space), "--name", "hog", "--trials-dir", str(tmp_path / "trials"),
                  env=env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "Caught unexpected exception" not in proc.stderr
    records = trials_json(tmp_path / "trials" / "hog")
    hog = records[1]
    assert hog["state"] == "FAIL" and hog["retries"] == 2, hog
    assert hog["reason"].startswith("out of memory: Ray's memory monitor killed the trial's worker ("), hog
    assert "low on memory" in hog["reason"] and "\n" not in hog["reason"]
    assert {n: (r["state"], r["epochs"]) for n, r in records.items() if n != 1} == {0: ("COMPLETE", 2), 2: ("COMPLETE", 2)}
    assert load_study(tmp_path / "trials" / "hog").trials[1].user_attrs["error"] == hog["reason"]


# ------------------------------------------------------------------- 2: the driver is killed


def ended_records(exp: Path) -> list[dict]:
    """The ended trials' records as any reader sees them mid-search: trials.json (written whole
    at the search's end) merged with trials.journal.jsonl (each trial appended as it ends)."""
    import dataclasses

    from tune_nas.objectives import Objective
    from tune_nas.record.bookkeeper import Bookkeeper

    keeper = Bookkeeper(exp, Objective(), 1)
    try:
        keeper.load_existing()
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [dataclasses.asdict(r) for r in keeper.trials.values()]


def _finished(exp: Path) -> int:
    return sum(r["state"] != "RUNNING" for r in ended_records(exp))


def search_until_two_trials_end(exp: Path, space: Path, cwd: Path, env: dict, stderr) -> subprocess.Popen:
    """Start the search of ``space`` into ``exp`` and return its running driver once two of
    its trials have ended."""
    started = time.monotonic()
    driver = subprocess.Popen(launch_cmd("--space", str(space), "--name", exp.name,
                                         "--trials-dir", str(exp.parent)),
                              cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    while _finished(exp) < 2 and driver.poll() is None and time.monotonic() - started < 300:
        time.sleep(0.1)
    if driver.poll() is not None:
        raise AssertionError("the search ended before the test could stop it:\n" + driver.stdout.read())
    return driver


@pytest.mark.slow
def test_killed_driver_resumes_the_same_experiment_and_study(tmp_path, ray_env):
    num_samples = 6
    space = write_space(tmp_path / "resume_space.py", num_samples=num_samples, max_epochs=3,
                        scheduler="asha", step_seconds=0.02)
    exp = tmp_path / "trials" / "killed"
    started = time.monotonic()
    driver = search_until_two_trials_end(exp, space, tmp_path, ray_env, stderr=subprocess.STDOUT)
    with killed_when_done(driver, ray_env):
        finished_before = _finished(exp)
        assert 2 <= finished_before < num_samples
    first_log = driver.stdout.read()
    killed_at = time.monotonic() - started
    assert not (exp / "summary.json").exists()

    proc = launch("--name", "killed", "--trials-dir", str(tmp_path / "trials"), "--resume",
                  env=ray_env, cwd=tmp_path)
    total = time.monotonic() - started
    assert proc.returncode == 0, first_log[-3000:] + explain(proc)
    assert "resuming killed" in proc.stdout
    print(f"\ndriver killed after {killed_at:.1f} s ({finished_before} trials finished); "
          f"resumed, total {total:.1f} s")

    summary = assert_nothing_lost(exp, num_samples, allow_orphans=True)
    study = load_study(exp)
    # the restored searcher is ours: every trained trial carries the attributes that only
    # RecordingOptunaSearch sets, and early-stopped trials are PRUNED, not COMPLETE; a trial
    # Optuna proposed just before the kill (after Ray's last snapshot) is FAIL, "orphaned"
    trained = {t["number"] for t in summary["trials"]}
    for t in study.trials:
        if t.number not in trained:
            assert t.state.name == "FAIL" and t.user_attrs["error"].startswith("orphaned")
            continue
        assert t.user_attrs["tensorboard_run"].startswith(f"{t.number:03d}_"), t.number
    assert summary["counts"]["COMPLETE"] >= 1
    assert summary["study"]["name"] == "killed"
    # ... and so is the searcher that the resumed Tuner saved
    from tune_nas.config.space_file import load_space
    from tune_nas.ray_tune.optuna_bridge import CheckedSearchGenerator, RecordingOptunaSearch

    load_space(str(space))  # the define-by-run function's module (named after the file) ...
    load_space(str(exp / "space.py"), base_dir=space.parent)  # ... and after the saved copy
    with (exp / "tuner.pkl").open("rb") as f:
        tuner_state = pickle.load(f)
    generator = tuner_state["_tune_config"].search_alg
    assert type(generator) is CheckedSearchGenerator
    assert type(generator.searcher) is RecordingOptunaSearch
    states = sorted(glob.glob(str(exp / "searcher-state-*.pkl")))
    assert states
    with open(states[-1], "rb") as f:
        searcher_state = pickle.load(f)
    import optuna

    assert isinstance(searcher_state["_sampler"], optuna.samplers.TPESampler)
    assert searcher_state["_study_name"] == "killed"
    assert len(searcher_state["_completed_trials"]) == num_samples


@pytest.mark.slow
def test_a_driver_killed_while_ray_rewrote_its_snapshot_still_trains_every_trial(tmp_path, ray_env):
    """Ray 2.60 rewrites its experiment snapshot in place: a driver killed right then leaves
    it empty, and Ray restarts the experiment from tuner.pkl holding no trial and counting
    num_samples as 1. The resumed search still ends with num_samples trials trained, those
    that ended before kept as they were."""
    num_samples = 6
    space = write_space(tmp_path / "empty_snapshot_space.py", num_samples=num_samples, max_epochs=3,
                        scheduler="asha", step_seconds=0.02)
    exp = tmp_path / "trials" / "emptied"
    driver = search_until_two_trials_end(exp, space, tmp_path, ray_env, stderr=subprocess.STDOUT)
    with killed_when_done(driver, ray_env):
        pass
    before = {r["number"]: r for r in ended_records(exp)}
    emptied = glob.glob(str(exp / "experiment_state-*.json")) + glob.glob(str(exp / "searcher-state-*.pkl"))
    assert emptied
    for path in emptied:
        open(path, "w").close()

    proc = launch("--name", "emptied", "--trials-dir", str(tmp_path / "trials"), "--resume",
                  env=ray_env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    summary = assert_nothing_lost(exp, num_samples, allow_orphans=True)
    after = {t["number"]: t for t in summary["trials"]}
    assert sum(r["state"] != "RUNNING" for r in before.values()) >= 2
    for number, record in before.items():  # what ended before the kill stands
        if record["state"] != "RUNNING":
            assert after[number]["state"] == record["state"]
            assert after[number]["epochs"] == record["epochs"]


@pytest.mark.slow
def test_a_killed_experiment_renamed_before_its_resume_trains_every_trial_in_its_new_directory(tmp_path, ray_env):
    """``mv trials/old trials/new`` then ``--resume --name new``: Ray moves the trials it
    restores, not the experiment its search generator saved, so every trial created after the
    resume was written to the old directory and failed; the study kept its first name and was
    looked up under the new one (refused). Now: every trial trains, in the new directory."""
    num_samples = 6
    space = write_space(tmp_path / "renamed_space.py", num_samples=num_samples, max_epochs=3, step_seconds=0.02)
    exp = tmp_path / "trials" / "before"
    driver = search_until_two_trials_end(exp, space, tmp_path, ray_env, stderr=subprocess.STDOUT)
    with killed_when_done(driver, ray_env):
        assert _finished(exp) < num_samples
    moved = exp.rename(tmp_path / "trials" / "after")

    proc = launch("--name", "after", "--trials-dir", str(tmp_path / "trials"), "--resume", env=ray_env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    summary = assert_nothing_lost(moved, num_samples, allow_orphans=True)
    assert summary["counts"] == {"COMPLETE": num_samples, "PRUNED": 0, "FAIL": 0}, summary["trials"]
    assert summary["study"]["name"] == "before"  # the study keeps the name it began with
    assert not exp.exists(), sorted(p.name for p in exp.rglob("*"))  # nothing written where it was


def _snapshot_checkpoint_indices(exp: Path) -> dict[str, tuple[str, str, int]]:
    """Ray's newest experiment snapshot: {trial id: (status, trial directory, the checkpoint
    index its storage context saved)}; empty while the file is being written."""
    states = sorted(glob.glob(str(exp / "experiment_state-*.json")))
    try:
        snapshot = json.loads(Path(states[-1]).read_text()) if states else {}
    except (OSError, ValueError):
        return {}
    out = {}
    for trial_json, _ in snapshot.get("trial_data", []):
        trial = json.loads(trial_json)
        storage = pickle.loads(bytes.fromhex(trial["storage"]["value"]))
        out[trial["trial_id"]] = (trial["status"], storage.trial_dir_name, storage.current_checkpoint_index)
    return out


@pytest.mark.slow
def test_a_trial_past_its_snapshots_checkpoint_keeps_its_last_checkpoint(tmp_path, ray_env):
    """The driver is killed one epoch before a trial's end, when the trial has a newer
    checkpoint than Ray's last snapshot names (the snapshot's is deleted: Ray keeps one).
    Resumed from the newer one, the trial's last checkpoint must get a new name: under the
    restored one's name (the snapshot's index + 1), Ray would delete it as "the previous
    checkpoint" and the trial would end with its recorded checkpoint gone."""
    max_epochs = 6
    space = write_space(tmp_path / "ahead_space.py", num_samples=1, max_epochs=max_epochs, step_seconds=0.3)
    exp = tmp_path / "trials" / "ahead"
    driver = subprocess.Popen(launch_cmd("--space", str(space), "--name", "ahead", "--trials-dir",
                                         str(exp.parent)), cwd=tmp_path, env=ray_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started, trial_dir = time.monotonic(), None
    with killed_when_done(driver, ray_env):  # one epoch before the end, once a snapshot names a checkpoint
        while trial_dir is None and driver.poll() is None and time.monotonic() - started < 300:
            time.sleep(0.05)
            for status, name, index in _snapshot_checkpoint_indices(exp).values():
                newest = sorted((exp / name).glob("checkpoint_*"))
                if status == "RUNNING" and index >= 0 and newest and newest[-1].name == f"checkpoint_{max_epochs - 2:06d}":
                    trial_dir = exp / name
        assert trial_dir is not None, "the trial ended before the test could stop it:\n" + driver.stdout.read()
    (_, _, index), = _snapshot_checkpoint_indices(exp).values()
    kept = sorted(trial_dir.glob("checkpoint_*"))
    assert kept[-1].name == f"checkpoint_{max_epochs - 2:06d}", kept  # the epoch before the last
    for older in kept[:-1]:  # killed between saving the newest and deleting the one before
        shutil.rmtree(older)
    ahead = trial_dir / f"checkpoint_{index + 1:06d}"  # the snapshot names checkpoint index; the trial is past it
    if kept[-1] != ahead:
        kept[-1].rename(ahead)
    # killed before the checkpoint's report reached the driver (as it happens, or not, by timing):
    # the epoch it holds has no curve row, and is recorded from the checkpoint
    journal = ExperimentLayout(exp).curves_journal
    rows = [line for line in journal.read_text().splitlines(keepends=True)
            if json.loads(line)["epoch"] < max_epochs - 1]
    journal.write_text("".join(rows))

    proc = launch("--name", "ahead", "--trials-dir", str(exp.parent), "--resume", env=ray_env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "the checkpoint the saved experiment names is gone" in proc.stdout, proc.stdout
    assert f"(epoch {max_epochs - 1} recorded from it" in proc.stdout, proc.stdout
    summary = assert_nothing_lost(exp, 1, allow_orphans=True)
    (record,) = summary["trials"]
    assert (record["state"], record["epochs"]) == ("COMPLETE", max_epochs), record
    assert Path(record["checkpoint"]).is_dir(), (record["checkpoint"], sorted(p.name for p in trial_dir.iterdir()))


@pytest.mark.slow
def test_a_second_driver_on_a_running_experiment_is_refused_and_the_first_goes_on(tmp_path, ray_env):
    """``--resume`` of an experiment whose driver still runs (another terminal, a job started
    twice) would interleave two drivers' records and snapshots: it is refused in one line
    naming the running driver, before any Ray work, and the first driver ends as it would have."""
    num_samples = 6
    space = write_space(tmp_path / "busy_space.py", num_samples=num_samples, max_epochs=3, step_seconds=0.2)
    exp = tmp_path / "trials" / "busy"
    driver = search_until_two_trials_end(exp, space, tmp_path, ray_env, stderr=subprocess.STDOUT)
    try:
        second = launch("--name", "busy", "--trials-dir", str(tmp_path / "trials"), "--resume",
                        env=ray_env, cwd=tmp_path)
        assert driver.poll() is None, "the first driver ended before the second tried"
    finally:
        first_log = driver.communicate(timeout=400)[0]
    assert second.returncode == 2, explain(second)
    assert second.stdout == "" and len(second.stderr.strip().splitlines()) == 1, explain(second)
    assert f"a driver (pid {driver.pid} on " in second.stderr and "one driver per experiment" in second.stderr
    assert driver.returncode == 0, first_log[-3000:]
    assert_nothing_lost(exp, num_samples)
    assert json.loads((exp / "driver.lock").read_text())["pid"] == driver.pid  # who held it last


@pytest.mark.slow
def test_ctrl_c_says_how_to_continue_and_the_moved_experiment_resumes_where_it_is(tmp_path, ray_env):
    """Ray Tune catches Ctrl-C, saves the experiment and returns from ``fit`` as if the search
    were done: the launcher must not report it finished but say how to continue (exit 130).
    The trials directory is then moved (a renamed folder, another disk) and resumed there."""
    num_samples = 6
    space = write_space(tmp_path / "interrupt_space.py", num_samples=num_samples, max_epochs=3,
                        scheduler="asha", step_seconds=0.02)
    first = tmp_path / "first"
    exp = first / "trials" / "stopped"
    driver = search_until_two_trials_end(exp, space, tmp_path, ray_env, stderr=subprocess.PIPE)
    try:
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, out[-3000:] + err[-3000:]
    assert "Interrupted. Continue with: python -m tune_nas.launch --name stopped" in err
    assert "Best trial" not in out and not (exp / "summary.json").exists()
    assert _finished(exp) < num_samples

    moved = tmp_path / "moved"
    first.rename(moved)
    proc = launch("--name", "stopped", "--trials-dir", str(moved / "trials"), "--resume",
                  env=ray_env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert not first.exists(), "the resumed run wrote to the experiment's old place"
    summary = assert_nothing_lost(moved / "trials" / "stopped", num_samples, allow_orphans=True)
    for t in summary["trials"]:
        if t["checkpoint"]:
            assert t["checkpoint"].startswith(str(moved)), t["checkpoint"]


def saved_scheduler(exp: Path):
    """The scheduler adapter as Ray's newest experiment snapshot keeps it (TrialEvents' state),
    or None before the first snapshot that holds it."""
    import ray.cloudpickle as cloudpickle

    from tune_nas.objectives import Objective
    from tune_nas.ray_tune.scheduler_adapter import PolicyScheduler
    from tune_nas.schedulers.asha_promotion import AshaPromotionPolicy

    # the newest session's: its start time is in the name (the files of a killed session and of
    # the resumed one may be copied into the trials directory within the same microsecond)
    files = sorted(exp.glob("callback-states-*.pkl"), key=lambda p: p.name)
    if not files:
        return None
    try:
        states = cloudpickle.loads(files[-1].read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError):
        return None
    for state in states.values():
        if state and state.get("scheduler"):
            adapter = PolicyScheduler(AshaPromotionPolicy("max", 1), Objective())
            adapter.load_state(state["scheduler"])
            return adapter
    return None


@pytest.mark.slow
def test_killed_driver_with_asha_promotion_keeps_its_paused_trials_paused(tmp_path, ray_env):
    """Ray 2.60 saves no scheduler state and re-queues every unfinished trial as PENDING: the
    adapter's state travels in the callbacks' snapshot, and the trials paused at the kill come
    back paused, then are promoted or ended at their rung; no epoch is trained twice."""
    num_samples = 8
    space = write_space(tmp_path / "promo_space.py", num_samples=num_samples, max_epochs=4,
                        scheduler="asha_promotion", step_seconds=0.02)
    exp = tmp_path / "trials" / "promo"
    driver = subprocess.Popen(launch_cmd("--space", str(space), "--name", exp.name,
                                         "--trials-dir", str(exp.parent)),
                              cwd=tmp_path, env=ray_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    started, before = time.monotonic(), None
    with killed_when_done(driver, ray_env):
        while driver.poll() is None and time.monotonic() - started < 300:
            before = saved_scheduler(exp)
            if before is not None and len(before.paused) >= 3:
                break
            time.sleep(0.2)
        assert driver.poll() is None, "the search ended before the test could stop it:\n" + driver.stdout.read()
    paused_at_kill = {number_of(exp, trial_id): epoch for trial_id, epoch in before.paused.items()}

    proc = launch("--name", exp.name, "--trials-dir", str(exp.parent), "--resume", env=ray_env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    summary = assert_nothing_lost(exp, num_samples, allow_orphans=True)
    trials = {t["number"]: t for t in summary["trials"]}
    for number, epoch in paused_at_kill.items():  # promoted from where it waited, or ended there
        t = trials[number]
        assert (t["state"], t["epochs"]) == ("PRUNED", epoch) or epoch in t.get("resumed_after", []), t
    after = saved_scheduler(exp)
    lowest = after.policy.rungs[-1]  # every trial recorded once at the first rung, across both runs
    assert len(lowest.recorded) == len(trials) and after.paused == {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for t in trials.values():  # every epoch trained once
        acc = EventAccumulator(str(exp / "tensorboard" / t["run"]))
        acc.Reload()
        assert [e.step for e in acc.Scalars("val/acc")] == list(range(1, t["epochs"] + 1)), t["number"]


def number_of(exp: Path, trial_id: str) -> int:
    """The Optuna number of Ray trial ``trial_id`` (its directory's name)."""
    [path] = exp.glob(f"trial_*_{trial_id}")
    return int(path.name.split("_")[1])


def test_trials_running_when_the_time_budget_ends_are_recorded_as_pruned(tmp_path, ray_env):
    """Ray stops the search at its time budget and leaves the trials that were running
    unfinished; they are told to the study as PRUNED with the reason, not left RUNNING."""
    space = write_space(tmp_path / "budget_space.py", num_samples=8, max_epochs=50,
                        step_seconds=0.02)
    exp = tmp_path / "trials" / "budget"
    proc = launch("--space", str(space), "--name", "budget", "--trials-dir",
                  str(tmp_path / "trials"), "--time-budget-s", "20", env=ray_env, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    summary = json.loads((exp / "summary.json").read_text())
    assert "RUNNING" not in summary["counts"], summary["counts"]
    stopped = [t for t in summary["trials"] if "time budget" in (t.get("reason") or "")]
    assert stopped, summary["trials"]
    study = {t.number: t for t in load_study(exp).trials}
    for t in stopped:
        # 0 epochs: it had started but not yet reported when the budget ran out (a loaded
        # machine makes that likely); it is PRUNED all the same, never left RUNNING
        assert t["state"] == "PRUNED" and 0 <= t["epochs"] < 50
        assert study[t["number"]].state.name == "PRUNED"
    assert "RUNNING" not in {t.state.name for t in study.values()}
    recorded = {t["number"] for t in summary["trials"]}
    for number, t in study.items():  # proposed for a trial Ray never started
        if number not in recorded:
            assert t.state.name == "FAIL" and t.user_attrs["error"].startswith("never started")


# ----------------------------------------------------------- 3: a worker node is removed


@pytest.mark.slow
def test_removed_node_trials_are_rescheduled_on_the_remaining_node(tmp_path, ray_env):
    num_samples, max_epochs = 4, 3
    started_dir = tmp_path / "started"
    started_dir.mkdir()
    space = write_space(tmp_path / "cluster_space.py", num_samples=num_samples,
                        max_epochs=max_epochs, step_seconds=0.04, started_dir=str(started_dir))
    started = time.monotonic()
    cluster = subprocess.Popen([sys.executable, str(PLUGINS / "two_node_cluster.py")],
                               cwd=tmp_path, env=ray_env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    driver = None
    try:
        info = json.loads(cluster.stdout.readline() or "{}")
        assert info.get("address"), "the two-node cluster did not start"
        driver = subprocess.Popen(
            launch_cmd("--space", str(space), "--name", "cluster", "--trials-dir",
                       str(tmp_path / "trials"), "--address", info["address"]),
            cwd=tmp_path, env=ray_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        worker = info["worker_node_id"]

        def on_worker() -> list[int]:
            return sorted(int(p.name.split("-")[0]) for p in started_dir.glob(f"*-{worker}"))

        while not on_worker() and driver.poll() is None and time.monotonic() - started < 120:
            time.sleep(0.1)
        victims = on_worker()
        assert victims, "no trial ever ran on the second node"
        time.sleep(0.5)  # mid-epoch 1 of that trial (an epoch takes > 0.6 s)
        cluster.stdin.write("remove\n")
        cluster.stdin.flush()
        assert cluster.stdout.readline().strip() == "removed"
        out, _ = driver.communicate(timeout=300)
    finally:
        for proc in (driver, cluster):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.stdin and proc.stdin.close()
        if driver is not None and driver.poll() is None:
            driver.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            cluster.wait(timeout=60)
    total = time.monotonic() - started
    assert driver.returncode == 0, out[-5000:]
    print(f"\nnode removed while trial(s) {victims} ran on it; total {total:.1f} s")
    exp = tmp_path / "trials" / "cluster"
    assert_nothing_lost(exp, num_samples)
    records = trials_json(exp)
    assert all(r["state"] == "COMPLETE" and r["epochs"] == max_epochs for r in records.values())
    victim = victims[-1]
    assert records[victim]["retries"] >= 1, records[victim]
    # after the removal, the victim was built again on the head node
    head = info["head_node_id"]
    assert list(started_dir.glob(f"{victim}-*-{head}")), sorted(p.name for p in started_dir.iterdir())
    assert not list(started_dir.glob(f"*-{worker}")) or set(on_worker()) == set(victims)


# ----------------------------------------------- 5: GPU memory is released between trials


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_memory_is_released_after_each_trial():
    from tune_nas.data.sources import load_splits
    from tune_nas.trial.run import TrialSetup, run_trial

    class Quiet:
        def report(self, metrics, checkpoint_dir):
            pass

    splits = load_splits("digits")
    config = {"lr": 3e-3, "width": 32, "depth": 2, "batch_size": 64, "trial_number": 0}
    setup = TrialSetup("small_cnn", max_epochs=2, gpus_per_trial=1)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for number in range(3):
        run_trial({**config, "trial_number": number}, splits, setup, Quiet())
        torch.cuda.synchronize()
        leaked = torch.cuda.memory_allocated() - before
        assert leaked <= 1 << 20, f"trial {number} left {leaked} bytes allocated on the GPU"


# ------------------------------------------------- 6: corrupt or truncated files are refused


class _Recorder:
    def __init__(self, keep=None):
        self.results, self.keep = [], keep

    def report(self, metrics, checkpoint_dir):
        self.results.append(dict(metrics))
        if checkpoint_dir and self.keep is not None:
            shutil.copytree(checkpoint_dir, self.keep / f"epoch{metrics['epoch']}")


@pytest.fixture(scope="module")
def digits():
    from tune_nas.data.sources import load_splits

    return load_splits("digits")


@pytest.fixture(scope="module")
def good_checkpoint(digits, tmp_path_factory) -> Path:
    from tune_nas.trial.run import TrialSetup, run_trial

    keep = tmp_path_factory.mktemp("ckpt")
    run_trial(TINY, digits, TrialSetup("small_cnn", max_epochs=1), _Recorder(keep))
    return keep / "epoch1"


TINY = {"lr": 3e-3, "width": 8, "depth": 1, "batch_size": 128, "trial_number": 0}


def _resume_from(ckpt_dir: Path, digits):
    from tune_nas.trial.run import TrialSetup, run_trial

    run_trial(TINY, digits, TrialSetup("small_cnn", max_epochs=2), _Recorder(),
              resume_dir=str(ckpt_dir))


def _assert_one_line_naming(exc: BaseException, path: Path) -> None:
    text = str(exc).strip()
    assert len(text.splitlines()) == 1 and str(path) in text, text[:500]


def test_truncated_checkpoint_is_refused_with_a_clear_error(good_checkpoint, digits, tmp_path):
    from tune_nas.trial.run import CHECKPOINT_FILE

    bad = tmp_path / "truncated"
    shutil.copytree(good_checkpoint, bad)
    data = (bad / CHECKPOINT_FILE).read_bytes()
    (bad / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception) as info:
        _resume_from(bad, digits)
    _assert_one_line_naming(info.value, bad / CHECKPOINT_FILE)


def test_garbage_checkpoint_is_refused_with_a_clear_error(good_checkpoint, digits, tmp_path):
    from tune_nas.trial.run import CHECKPOINT_FILE

    bad = tmp_path / "garbage"
    bad.mkdir()
    (bad / CHECKPOINT_FILE).write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(Exception) as info:
        _resume_from(bad, digits)
    _assert_one_line_naming(info.value, bad / CHECKPOINT_FILE)


class Payload:
    """An object a malicious checkpoint smuggles in: unpickling it would run code."""

    def __reduce__(self):
        return (Path.touch, (Path(os.environ.get("TNF_PWNED", "/nonexistent/pwned")),))


def test_checkpoint_with_a_pickled_object_is_refused(good_checkpoint, digits, tmp_path,
                                                     monkeypatch):
    from tune_nas.trial.run import CHECKPOINT_FILE

    pwned = tmp_path / "pwned"
    monkeypatch.setenv("TNF_PWNED", str(pwned))
    bad = tmp_path / "evil"
    shutil.copytree(good_checkpoint, bad)
    state = torch.load(bad / CHECKPOINT_FILE, weights_only=True)
    state["payload"] = Payload()
    torch.save(state, bad / CHECKPOINT_FILE)
    with pytest.raises(Exception) as info:
        _resume_from(bad, digits)
    assert "weights_only" in str(info.value) or "Unsupported global" in str(info.value), info.value
    assert not pwned.exists(), "the checkpoint's pickled object was executed"


def _started_experiment(root: Path, name: str = "exp") -> Path:
    """An experiment directory as a first run leaves it before Ray starts (no Ray here)."""
    from tune_nas.config.space_file import load_space
    from tune_nas.launch import _overrides, build_parser, write_experiment_files

    args = build_parser().parse_args(["--num-samples", "2", "--max-epochs", "1"])
    space = load_space("default").with_overrides(**_overrides(args))
    exp = root / "trials" / name
    write_experiment_files(space, name, exp, args)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name=name, storage=f"sqlite:///{exp / 'optuna.db'}")
    return exp


def _resume_args(exp: Path):
    from tune_nas.launch import build_parser

    return build_parser().parse_args(["--name", exp.name, "--trials-dir", str(exp.parent),
                                      "--resume"])


CORRUPTIONS = {
    "experiment.json truncated": ("experiment.json", lambda b: b[: len(b) // 2]),
    "experiment.json not an object": ("experiment.json", lambda b: b"[1, 2]\n"),
    "experiment.json wrong types": ("experiment.json",
                                    lambda b: b'{"space_file": 3, "overrides": []}'),
    "optuna.db garbage": ("optuna.db", lambda b: b"not a database" * 100),
    "optuna.db truncated": ("optuna.db", lambda b: b[:100]),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_resume_of_a_corrupt_experiment_fails_in_one_line_before_ray(corruption, tmp_path,
                                                                      capsys):
    from tune_nas.bad_input import EXIT_BAD_INPUT
    from tune_nas.launch import prepare

    exp = _started_experiment(tmp_path)
    name, corrupt = CORRUPTIONS[corruption]
    (exp / name).write_bytes(corrupt((exp / name).read_bytes()))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        prepare(_resume_args(exp))
    assert info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "rule:" in err, err


def test_resume_with_corrupt_study_exits_2_without_traceback(tmp_path):
    exp = _started_experiment(tmp_path)
    (exp / "optuna.db").write_bytes(b"\0garbage" * 64)
    proc = subprocess.run(launch_cmd("--name", exp.name, "--trials-dir", str(exp.parent),
                                     "--resume"), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "RAY_ADDRESS": "127.0.0.1:1"})
    assert proc.returncode == 2, explain(proc)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "optuna.db" in proc.stderr
