"""Low-fidelity search then a full-fidelity final stage, through Ray, asserted on its files."""

import json
import textwrap

import optuna
import pytest
from conftest import run_launch

SPACE = """
from ray import tune
EXPERIMENT = {"dataset": "digits", "model": "small_cnn", "max_epochs": 2, "grace_period": 1,
              "reduction_factor": 3, "num_samples": 4, "train_fraction": 0.3, "image_size": 6,
              "final_top_k": 2, "final_max_epochs": 2, "scheduler": "none"}
PARAM_SPACE = {"lr": tune.loguniform(1e-3, 3e-2), "width": tune.choice([8, 16])}
"""


@pytest.mark.slow
def test_top_k_are_retrained_at_full_fidelity_and_the_proxy_is_judged(tmp_path):
    space = tmp_path / "space.py"
    space.write_text(textwrap.dedent(SPACE))
    proc = run_launch("--space", str(space), "--name", "fs", "--trials-dir", str(tmp_path / "t"),
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    exp = tmp_path / "t" / "fs"
    summary = json.loads((exp / "summary.json").read_text())
    assert "0.3 of train, 6px" in summary["dataset"]  # the search ran on the proxy
    final = summary["final_stage"]
    assert final["k"] == 2 and final["epochs"] == 2 and "6px" not in final["data"]
    searched = {t["number"]: t["val_acc"] for t in summary["trials"] if t["state"] == "COMPLETE"}
    top2 = sorted(searched, key=searched.get, reverse=True)[:2]
    assert [row["search_trial"] for row in final["trials"]] == top2
    for row in final["trials"]:
        assert row["search_value"] == pytest.approx(searched[row["search_trial"]])
        assert 0 <= row["final_value"] <= 1 and 0 <= row["final_test_acc"] <= 1
    assert final["rank_correlation"]["n"] == 2
    study = optuna.load_study(study_name="fs-final", storage=f"sqlite:///{exp / 'optuna.db'}")
    assert sorted(t.user_attrs["search_trial"] for t in study.trials) == sorted(top2)
    assert {t.value for t in study.trials} == {row["final_value"] for row in final["trials"]}
    assert (exp / "final" / "curves.csv").is_file()
    runs = [p.name for p in (exp / "tensorboard").iterdir()]
    assert sum(r.startswith("final_") for r in runs) == 2 and len(runs) == 6
    assert "Final stage: top 2 retrained at full fidelity" in proc.stdout
