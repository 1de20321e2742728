"""Bad input: one line naming the thing, the value and the rule; exit 2; nothing written."""

import pytest
from conftest import run_launch, run_python

from tune_nas.launch import main

CASES = [
    (["--max-epochs", "-1"], "--max-epochs"),
    (["--max-epochs", "zero"], "'zero' is not an integer"),
    (["--num-samples", "0"], "--num-samples must be > 0"),
    (["--gpus-per-trial", "-0.5"], "--gpus-per-trial must be >= 0"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (["--seed", "-3"], "--seed must be >= 0"),
    (["--dataset", "imagenet"], "unknown data set"),
    (["--dataset", "imagefolder:/no/such/place"], "/no/such/place"),
    (["--model", "vgg"], "model='vgg'"),
    (["--space", "no_such_space"], "no such file"),
    (["--grace-period", "20"], "grace_period <= max_epochs"),
    (["--resume"], "--resume needs --name"),
    (["--resume", "--name", "never_ran"], "no experiment at"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("args, needle", CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, needle):
    with pytest.raises(SystemExit) as info:
        main([*args, "--trials-dir", str(tmp_path / "trials")])
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert out == ""
    assert not (tmp_path / "trials").exists()


@pytest.mark.parametrize("args, needle", [(["--max-epochs", "0"], "--max-epochs must be > 0"),
                                          (["--model", "vgg"], "model='vgg'")])
def test_bad_input_in_a_real_process(tmp_path, args, needle):
    proc = run_launch(*args, "--trials-dir", str(tmp_path / "trials"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [
        ln for ln in proc.stderr.splitlines() if needle in ln]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "trials").exists()


def test_offline_missing_torchvision_data_names_the_directory(tmp_path, capsys, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(SystemExit) as info:
        main(["--dataset", "mnist", "--data-dir", str(tmp_path / "nodata"),
              "--trials-dir", str(tmp_path / "trials")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and str(tmp_path / "nodata") in err
    assert not (tmp_path / "trials").exists()


def test_existing_experiment_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "trials" / "x").mkdir(parents=True)
    with pytest.raises(SystemExit) as info:
        main(["--name", "x", "--trials-dir", str(tmp_path / "trials")])
    assert info.value.code == 2 and "already exists" in capsys.readouterr().err
    assert list((tmp_path / "trials" / "x").iterdir()) == []


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for flag in ("--space", "--dataset", "--data-dir", "--model", "--num-samples", "--max-epochs",
                 "--gpus-per-trial", "--cpus-per-trial", "--address", "--name", "--trials-dir",
                 "--seed", "--resume"):
        assert flag in out
    # defaults shown where there are some; a flag that falls back to the space file shows none
    assert "(default: trials)" in out
    assert "default: None" not in out and "default: False" not in out


def test_the_driver_validates_and_builds_trials_without_the_trial_libraries(tmp_path):
    """Lightning (with torchmetrics, torchvision, scipy), torchvision and scikit-learn cost the
    launcher ~6 s of imports; only Ray's workers need them, so the driver never imports them."""

    code = (
        "import sys\n"
        "from tune_nas import launch\n"
        "from tune_nas.ray_tune import run as tuner\n"
        f"args = launch.build_parser().parse_args(['--trials-dir', {str(tmp_path)!r}, '--name', 'x'])\n"
        "space, (splits, _), *_ = launch.prepare(args)\n"
        "tuner._trainable(space.spec, splits, space.spec.max_epochs)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'lightning', 'torchmetrics', 'torchvision', 'sklearn', 'scipy', 'matplotlib'})\n"
        "print(len(splits.train_x), heavy)\n")
    assert run_python(code).split() == ["1151", "[]"]


def test_the_report_is_made_while_ray_stops_and_its_errors_reach_the_caller():
    """``while_ray_stops`` runs the report beside Ray's shutdown (each waits for the other
    here, so run one after the other they would time out), returns its result, and re-raises
    its error after Ray has stopped."""
    import threading

    from tune_nas.launch import while_ray_stops

    report_started, stopped = threading.Event(), []

    def stop_ray():
        assert report_started.wait(10), "the report did not run during the shutdown"
        stopped.append(True)

    def report():
        report_started.set()
        return {"counts": {"COMPLETE": 3}}

    assert while_ray_stops(report, stop_ray) == {"counts": {"COMPLETE": 3}}
    assert stopped == [True]

    report_started.clear()

    def failing_report():
        report_started.set()
        raise OSError("disk full")

    stopped.clear()
    with pytest.raises(OSError, match="disk full"):
        while_ray_stops(failing_report, stop_ray)
    assert stopped == [True]  # Ray was stopped all the same


def test_the_default_name_of_a_long_space_file_is_a_valid_directory_name():
    """``<space>-<timestamp>`` from a space file whose name takes 250 bytes (or 100 two-byte
    letters) is cut to at most 255 bytes, whole letters, and keeps its timestamp."""
    import re

    from tune_nas.launch import _default_name

    for stem in ("L" * 250, "é" * 200, "short"):
        name = _default_name(stem)
        assert len(name.encode()) <= 255 and re.search(r"-\d{8}-\d{6}$", name), name
        assert stem.startswith(name[:-16]) and name[:-16], name
    assert _default_name("short").startswith("short-")


def _sqlite_with_a_table(path):
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text)")


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    (lambda p: p.write_bytes(bytes(range(256)) * 8), "not a SQLite database"),
    (_sqlite_with_a_table, "a SQLite database without Optuna's tables (it has: notes)"),
])
def test_resume_refuses_a_study_file_that_is_none_without_writing_to_it(tmp_path, capsys, make, needle):
    """The resume check opens optuna.db read-only: a file that is no study stays byte for byte
    as it was (an empty one used to be given Optuna's tables before the refusal)."""
    from tune_nas.launch import _check_saved_study

    db = tmp_path / "optuna.db"
    make(db)
    before = db.read_bytes()
    with pytest.raises(SystemExit) as info:
        _check_saved_study(tmp_path, "exp")
    err = capsys.readouterr().err
    assert info.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert db.read_bytes() == before
