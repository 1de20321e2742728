"""optuna-dashboard serves an experiment's study: the study and its trials through its JSON API.

Starts ``optuna-dashboard sqlite:///<db> --host 127.0.0.1 --port <free port>`` the way the
launcher's report tells users to, asks ``/api/studies`` and ``/api/studies/<id>`` (the
routes in optuna_dashboard/_app.py), and always stops the server.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("optuna_dashboard") is None,
                                reason="optuna-dashboard is not installed "
                                "(pip install tune_nas[dashboard])")

STARTUP_TIMEOUT_S = 20.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dashboard_command() -> list[str]:
    """The venv's ``optuna-dashboard`` script; else its CLI module (the package has no
    ``__main__``)."""
    script = Path(sys.executable).parent / "optuna-dashboard"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "optuna_dashboard._cli"]


def _make_study(db: Path) -> None:
    """Study 'exp' (maximize): trial 0 COMPLETE, 1 PRUNED at epoch 2, 2 FAIL."""
    import optuna
    from optuna.distributions import FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="exp", direction="maximize")
    space = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    outcomes = [(optuna.trial.TrialState.COMPLETE, [0.5, 0.8, 0.9]),
                (optuna.trial.TrialState.PRUNED, [0.3, 0.4]),
                (optuna.trial.TrialState.FAIL, [])]
    for state, curve in outcomes:
        trial = study.ask(space)
        for epoch, value in enumerate(curve, 1):
            trial.report(value, epoch)
        trial.set_user_attr("epochs", len(curve))
        if state == optuna.trial.TrialState.FAIL:
            trial.set_user_attr("error", "loss is NaN")
        study.tell(trial, curve[-1] if state == optuna.trial.TrialState.COMPLETE else None,
                   state=state)
    study._storage.remove_session()


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


def _wait_for(server: subprocess.Popen, url: str) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if server.poll() is not None:
            _, err = server.communicate()
            pytest.fail(f"optuna-dashboard exited with {server.returncode}: {err[-2000:]}")
        try:
            return _get_json(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                pytest.fail(f"optuna-dashboard did not answer {url} in {STARTUP_TIMEOUT_S} s")
            time.sleep(0.2)


def test_dashboard_lists_the_study_and_its_trials(tmp_path):
    db = tmp_path / "optuna.db"
    _make_study(db)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*_dashboard_command(), f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port),
         "--server", "wsgiref", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        studies = _wait_for(server, f"{base}/api/studies")["study_summaries"]
        assert [(s["study_name"], s["directions"]) for s in studies] == [("exp", ["maximize"])]
        detail = _get_json(f"{base}/api/studies/{studies[0]['study_id']}")
        assert detail["name"] == "exp"
        trials = sorted(detail["trials"], key=lambda t: t["number"])
        assert [(t["number"], t["state"]) for t in trials] == [
            (0, "Complete"), (1, "Pruned"), (2, "Fail")]
        assert trials[0]["values"] == [0.9]
        assert [(v["step"], v["value"]) for v in trials[1]["intermediate_values"]] == [
            (1, 0.3), (2, 0.4)]
        attrs = {a["key"]: a["value"] for a in trials[2]["user_attrs"]}
        assert attrs["error"] == "loss is NaN"
        assert [t["number"] for t in detail["best_trials"]] == [0]
        assert detail["has_intermediate_values"] is True
    finally:
        server.kill()
        server.wait(timeout=10)
        if server.stderr:
            server.stderr.close()
