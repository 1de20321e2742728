"""--trials-dir on object storage: a real S3 protocol server (moto) on 127.0.0.1, pyarrow's
S3 filesystem, Ray writing trials and checkpoints there, the driver mirroring its files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tune_nas.storage.trials_dir import RemoteTrialsDir, TrialsDirError, is_uri

moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extras")

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
BUCKET = "tune-nas-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    """An S3 server on 127.0.0.1 holding one empty bucket; yields ``host:port``."""
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    import pyarrow.fs

    fs, _ = pyarrow.fs.FileSystem.from_uri(
        f"s3://{BUCKET}?endpoint_override={endpoint}&scheme=http&allow_bucket_creation=true")
    fs.create_dir(BUCKET)
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def uri(endpoint: str, prefix: str, bucket: str = BUCKET) -> str:
    return f"s3://{bucket}/{prefix}?endpoint_override={endpoint}&scheme=http"


def remote_files(endpoint: str, prefix: str) -> dict[str, int]:
    from pyarrow.fs import FileSelector, FileType

    remote = RemoteTrialsDir.parse(uri(endpoint, prefix))
    infos = remote.filesystem.get_file_info(FileSelector(remote.path, recursive=True,
                                                         allow_not_found=True))
    return {i.path[len(remote.path) + 1:]: i.size for i in infos if i.type == FileType.File}


def test_uris_are_told_from_paths():
    assert is_uri("s3://b/p") and is_uri("gs://b") and is_uri("hdfs://nn:8020/x")
    assert not is_uri("trials") and not is_uri("/mnt/nfs/trials") and not is_uri("./s3:x")


@pytest.mark.parametrize("text, needle", [
    ("s3://AKIAXXXX:secret@bucket/trials", "holds credentials"),
    ("ftp://host/trials", "not a filesystem URI pyarrow can open"),
    ("s3://", "no bucket or directory"),
])
def test_unusable_uris_are_refused_in_one_line(text, needle):
    with pytest.raises(TrialsDirError) as info:
        RemoteTrialsDir.parse(text)
    message = str(info.value)
    assert needle in message and "\n" not in message and "rule:" in message
    assert "secret" not in message


def test_a_missing_bucket_is_refused(s3_endpoint):
    remote = RemoteTrialsDir.parse(uri(s3_endpoint, "trials", bucket="no-such-bucket"))
    with pytest.raises(TrialsDirError, match="bucket 'no-such-bucket' does not exist"):
        remote.check()
    RemoteTrialsDir.parse(uri(s3_endpoint, "trials")).check()  # the real one answers


def test_the_mirror_carries_the_drivers_files_and_never_rays(tmp_path, s3_endpoint):
    local = tmp_path / "exp"
    driver_files = {"experiment.json": b"{}", "optuna.db": b"sqlite" * 1000,
                    "tensorboard/000_run/events.out.tfevents.1": b"\x00\x01ev",
                    "final/curves.csv": b"trial_id,epoch\n"}
    ray_files = {"trial_000_ab12/checkpoint_000002/trial.ckpt": b"weights",
                 "tuner.pkl": b"p", "experiment_state-2026-01-01_00-00-00.json": b"{}",
                 "searcher-state-2026-01-01_00-00-00.pkl": b"s",
                 "final/trial_001_cd34/result.json": b"{}"}
    for rel, data in {**driver_files, **ray_files}.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    remote = RemoteTrialsDir.parse(uri(s3_endpoint, "mirror"))
    assert not remote.exists("exp")
    assert remote.upload(local, "exp") == len(driver_files)
    assert remote.exists("exp")
    assert remote_files(s3_endpoint, "mirror") == {f"exp/{k}": len(v) for k, v in driver_files.items()}
    back = tmp_path / "elsewhere" / "exp"
    assert remote.download("exp", back) == len(driver_files)
    got = {str(p.relative_to(back)): p.read_bytes() for p in back.rglob("*") if p.is_file()}
    assert got == driver_files
    assert remote.display("exp") == f"s3://{BUCKET}/mirror/exp"  # no endpoint in reports
    # later uploads send only what changed since (a long search's event files are not resent)
    assert remote.upload(local, "exp") == 0
    (local / "optuna.db").write_bytes(b"sqlite, one more trial")
    assert remote.upload(local, "exp") == 1
    assert remote_files(s3_endpoint, "mirror")["exp/optuna.db"] == len(b"sqlite, one more trial")
    import pickle

    assert pickle.loads(pickle.dumps(remote)).uploaded == {}  # another process uploads all once


def test_bad_trials_dir_uris_exit_2_before_anything_runs(tmp_path, s3_endpoint):
    from conftest import run_launch

    for trials_dir, needle in [
        (uri(s3_endpoint, "t", bucket="absent-bucket"), "bucket 'absent-bucket' does not exist"),
        ("s3://key:secret@bucket/t", "holds credentials"),
        ("ftp://host/t", "not a filesystem URI"),
    ]:
        proc = run_launch("--name", "x", "--trials-dir", trials_dir, cwd=tmp_path, timeout=120)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
        assert "secret" not in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the local mirror


@pytest.mark.slow
def test_a_search_on_object_storage_survives_a_killed_driver_and_a_lost_mirror(tmp_path, s3_endpoint):
    from test_faults import assert_nothing_lost, kill_ray_of, launch, launch_cmd, write_space

    num_samples, prefix = 6, "runs"
    trials_dir = uri(s3_endpoint, prefix)
    env = _ray_env()
    try:
        space = write_space(tmp_path / "s3_space.py", num_samples=num_samples, max_epochs=3,
                            scheduler="asha", step_seconds=0.02)
        exp = tmp_path / "trials" / "s3run"
        driver = subprocess.Popen(launch_cmd("--space", str(space), "--name", "s3run",
                                             "--trials-dir", trials_dir),
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()

        def finished() -> int:
            listed = remote_files(s3_endpoint, prefix)
            return len({k.split("/")[1] for k in listed if k.startswith("s3run/trial_")})

        while finished() < 2 and driver.poll() is None and time.monotonic() - started < 300:
            time.sleep(0.2)
        assert driver.poll() is None, "the search ended before the kill:\n" + driver.stdout.read()
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        kill_ray_of(env["RAY_TMPDIR"])
        # the same machine resumes: Ray's state comes from the bucket, the study from the mirror
        proc = launch("--name", "s3run", "--trials-dir", trials_dir, "--resume", env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        summary = assert_nothing_lost(exp, num_samples, allow_orphans=True)
        listed = remote_files(s3_endpoint, prefix)
        for record in summary["trials"]:
            checkpoint = record["checkpoint"]
            assert checkpoint.startswith(f"s3://{BUCKET}/{prefix}/s3run/trial_"), checkpoint
            key = checkpoint[len(f"s3://{BUCKET}/{prefix}/"):]
            assert any(k.startswith(key + "/") for k in listed), (key, sorted(listed))
        for name in ("experiment.json", "optuna.db", "curves.csv", "trials.json", "summary.json"):
            assert f"s3run/{name}" in listed, name
        assert not any(k.startswith("trial_") for k in os.listdir(exp))  # trials live in the bucket
        # the mirror is lost (a new head node, another working directory): --resume fetches it
        # there, opens the study there (not at the path Ray's saved searcher was created
        # with, which is gone) and finds nothing to redo
        first = json.loads((exp / "summary.json").read_text())
        shutil.rmtree(tmp_path / "trials")
        new_head = tmp_path / "new_head"
        new_head.mkdir()
        proc = launch("--name", "s3run", "--trials-dir", trials_dir, "--resume", env=env, cwd=new_head)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        exp = new_head / "trials" / "s3run"
        again = assert_nothing_lost(exp, num_samples, allow_orphans=True)
        assert not (tmp_path / "trials").exists()  # nothing recreated at the old place
        assert again["counts"] == first["counts"]
        assert {t["trial_id"] for t in again["trials"]} == {t["trial_id"] for t in first["trials"]}
        # and a new search elsewhere (no local mirror there) may not take the name
        other = tmp_path / "other"
        other.mkdir()
        proc = launch("--name", "s3run", "--trials-dir", trials_dir, env=env, cwd=other)
        assert proc.returncode == 2, proc.stderr
        assert f"s3://{BUCKET}/{prefix}/s3run already exists" in proc.stderr
        assert not (other / "trials").exists()
    finally:
        left = kill_ray_of(env["RAY_TMPDIR"])
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert not left


def _ray_env() -> dict[str, str]:
    import tempfile

    env = {**os.environ, **S3_ENV, "RAY_TMPDIR": tempfile.mkdtemp(prefix="tns-", dir="/tmp"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return env
