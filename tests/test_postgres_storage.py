"""``--storage`` with PostgreSQL: URL checks (no server needed) and, when a server is configured,
a real search whose Optuna study lands in PostgreSQL without the password landing anywhere.

A server is configured by the environment, e.g. the one ``.ci/postgres.sh`` sets up:

    eval "$(.ci/postgres.sh)"   # TUNE_NAS_TEST_PG_URL=postgresql+psycopg2://tune_nas@127.0.0.1:5432/tune_nas
                                # PGPASSWORD=<random>
    python -m pytest tests/test_postgres_storage.py            # fast checks
    python -m pytest -m slow tests/test_postgres_storage.py    # + the real search (~40 s)
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
from conftest import run_launch

from tune_nas.launch import main
from tune_nas.storage.study_db import StorageError, check_storage, mask_url

PG_URL_ENV = "TUNE_NAS_TEST_PG_URL"
NO_SERVER = (f"no PostgreSQL server configured: set {PG_URL_ENV} (e.g. "
             "postgresql+psycopg2://tune_nas@127.0.0.1:5432/tune_nas) and PGPASSWORD, "
             'e.g. with eval "$(.ci/postgres.sh)"')
PASSWORD = "hunter2-not-a-real-one"
UNREACHABLE = "postgresql+psycopg2://tune_nas@127.0.0.1:1/tune_nas"  # nothing listens on port 1


def one_line(message: str) -> str:
    lines = [ln for ln in message.splitlines() if ln.strip()]
    assert len(lines) == 1, message
    return lines[0]


# --- without a server -----------------------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    (f"postgresql://tune_nas:{PASSWORD}@db.example.org:5432/tune_nas",
     "postgresql://tune_nas:***@db.example.org:5432/tune_nas"),
    (f"postgresql+psycopg2://u:{PASSWORD}@127.0.0.1/db", "postgresql+psycopg2://u:***@127.0.0.1/db"),
    (f"mysql+pymysql://u:{PASSWORD}@10.0.0.5/optuna", "mysql+pymysql://u:***@10.0.0.5/optuna"),
    ("postgresql://tune_nas@db.example.org/tune_nas", "postgresql://tune_nas@db.example.org/tune_nas"),
    ("sqlite:///trials/x/optuna.db", "sqlite:///trials/x/optuna.db"),
])
def test_mask_url_hides_only_the_password(url, shown):
    assert mask_url(url) == shown
    assert PASSWORD not in mask_url(url)


def test_password_in_the_url_is_refused_without_showing_it():
    with pytest.raises(StorageError) as info:
        check_storage(f"postgresql://tune_nas:{PASSWORD}@127.0.0.1:1/tune_nas")
    line = one_line(str(info.value))
    assert PASSWORD not in line
    assert "postgresql://tune_nas:***@127.0.0.1:1/tune_nas" in line
    assert "holds a password" in line and "PGPASSWORD" in line


@pytest.mark.parametrize("url, scheme", [("redis://localhost:6379/0", "redis"),
                                         ("mongodb://tune_nas@127.0.0.1/optuna", "mongodb")])
def test_unsupported_scheme_is_refused(url, scheme):
    with pytest.raises(StorageError) as info:
        check_storage(url)
    line = one_line(str(info.value))
    assert f"unsupported scheme {scheme!r}" in line and "postgresql://" in line


def test_not_a_url_is_refused():
    with pytest.raises(StorageError) as info:
        check_storage("tune_nas at the database server")
    assert "not a database URL" in one_line(str(info.value))


def test_unreachable_server_is_one_line(monkeypatch):
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "3")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        check_storage(UNREACHABLE)
    line = one_line(str(info.value))
    assert line.startswith(f"--storage {UNREACHABLE}: cannot open the database (")
    assert PASSWORD not in line
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("url, needle", [
    (f"postgresql://tune_nas:{PASSWORD}@127.0.0.1:1/tune_nas", "holds a password"),
    (UNREACHABLE, "cannot open the database"),
])
def test_launcher_refuses_bad_storage_before_writing(tmp_path, capsys, monkeypatch, url, needle):
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "3")
    with pytest.raises(SystemExit) as info:
        main(["--storage", url, "--trials-dir", str(tmp_path / "trials"), "--name", "pg"])
    out, err = capsys.readouterr()
    assert info.value.code == 2
    assert needle in one_line(err) and PASSWORD not in err + out
    assert not (tmp_path / "trials").exists()


def test_password_as_query_parameter_is_refused_and_masked():
    url = f"postgresql://tune_nas@127.0.0.1:1/tune_nas?password={PASSWORD}"
    assert PASSWORD not in mask_url(url)
    with pytest.raises(StorageError, match="password"):
        check_storage(url)


# --- with a server (TUNE_NAS_TEST_PG_URL) ---------------------------------------------------

@pytest.fixture
def pg_url() -> str:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(NO_SERVER)
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    assert not parsed.password, f"{PG_URL_ENV} must not hold a password: use PGPASSWORD"
    assert parsed.host in ("127.0.0.1", "localhost", "::1"), \
        f"{PG_URL_ENV}: tests only talk to a server on this machine, not {parsed.host}"
    assert os.environ.get("PGPASSWORD"), (f"{PG_URL_ENV} is set but PGPASSWORD is not: the test "
                                          "checks that the password never reaches trials/")
    return url


def test_server_is_reachable_with_the_password_from_the_environment(pg_url):
    check_storage(pg_url)  # raises StorageError (one line) otherwise


def test_wrong_password_is_one_line_without_the_password(pg_url, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with pytest.raises(StorageError) as info:
        check_storage(pg_url)
    line = one_line(str(info.value))
    assert "cannot open the database" in line and "password authentication failed" in line
    assert PASSWORD not in line


def _files_containing(root: Path, secret: bytes) -> list[str]:
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*"))
            if p.is_file() and secret in p.read_bytes()]


@pytest.mark.slow
def test_real_search_keeps_its_study_in_postgres_and_no_password_on_disk(pg_url, tmp_path):
    import optuna

    name = f"pg-{uuid.uuid4().hex[:8]}"  # a fresh study each run: the database outlives tests
    trials_dir = tmp_path / "trials"
    try:
        proc = run_launch("--num-samples", "2", "--max-epochs", "1", "--name", name,
                          "--trials-dir", str(trials_dir), "--storage", pg_url, "--seed", "5",
                          cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        experiment = trials_dir / name
        summary = json.loads((experiment / "summary.json").read_text())

        study = optuna.load_study(study_name=name, storage=pg_url)
        trials = study.get_trials(deepcopy=False)
        assert len(trials) == 2
        states = {t.number: t.state.name for t in trials}
        assert set(states.values()) <= {"COMPLETE", "PRUNED"}, states  # no RUNNING, no FAIL
        assert "COMPLETE" in states.values()
        by_number = {t["number"]: t for t in summary["trials"]}
        assert {n: by_number[n]["state"] for n in states} == states
        for t in trials:
            assert t.user_attrs["ray_trial_id"] == by_number[t.number]["trial_id"]
            assert t.user_attrs["epochs"] == by_number[t.number]["epochs"]
        assert summary["best"]["val_acc"] == pytest.approx(study.best_value)

        # the study is only in PostgreSQL, and every record names it by the masked URL
        assert not (experiment / "optuna.db").exists()
        assert summary["study"] == {"name": name, "storage": mask_url(pg_url)}
        assert json.loads((experiment / "experiment.json").read_text())["storage"] == mask_url(pg_url)

        secret = os.environ["PGPASSWORD"].encode()
        assert _files_containing(tmp_path, secret) == []
        assert secret.decode() not in proc.stdout + proc.stderr
    finally:
        try:
            optuna.delete_study(study_name=name, storage=pg_url)
        except KeyError:
            pass  # the run failed before it created the study
