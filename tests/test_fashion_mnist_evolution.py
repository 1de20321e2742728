"""The fashion_mnist_evolution preset end to end at a tiny scale: its global space evolved on a
made-up 28-px grayscale image folder (the real Fashion-MNIST is a benchmark, never a fixture),
then its final stage, asserted on the experiment's files."""

import json

import numpy as np
import optuna
import pytest
from conftest import run_launch
from PIL import Image

from tune_nas.config.space_file import SPACES_DIR, load_space
from tune_nas.spaces.global_spec import GlobalSpec

CLASSES = 10


def make_image_folder(root, per_class: dict[str, int], seed: int = 0) -> None:
    """28×28 grayscale PNGs, class c a noisy horizontal bar at row 2c + 4 (learnable)."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c in range(CLASSES):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 60, (28, 28), dtype=np.uint8)
                image[2 * c + 4: 2 * c + 6, 4:24] = 230
                Image.fromarray(image, mode="L").save(folder / f"{i}.png")


def test_the_preset_searches_the_global_space_with_evolution_and_the_research_budget():
    space = load_space("fashion_mnist_evolution")
    spec = space.spec
    assert (spec.model, spec.searcher, spec.scheduler) == ("global_net", "evolution", "asha")
    assert spec.max_epochs <= 10 and spec.final_max_epochs <= 20 and spec.final_top_k >= 1
    for seed in range(5):
        config = space.sample(seed)
        assert config["crop_pad"] > 0 and config["flip"]  # augmentation in search and final
        arch = GlobalSpec.from_params(config, config["stages"], config["slots"])
        assert {op for _, _, op, _ in arch.slots()} <= {"none", "conv3", "conv5", "res3"}


@pytest.mark.slow
def test_the_preset_runs_end_to_end_at_a_tiny_scale(tmp_path):
    make_image_folder(tmp_path / "fashion", {"train": 12, "test": 4})
    tiny = tmp_path / "tiny.py"  # the preset as shipped, at a tiny scale
    tiny.write_text((SPACES_DIR / "fashion_mnist_evolution.py").read_text() + (
        "\nEXPERIMENT.update(num_samples=4, max_epochs=1, train_fraction=0.5, time_budget_s=0,\n"
        "                  final_top_k=1, final_max_epochs=1,\n"
        "                  searcher_options={'population_size': 2, 'sample_size': 1})\n"))
    proc = run_launch("--space", str(tiny), "--dataset", f"imagefolder:{tmp_path / 'fashion'}",
                      "--name", "fm", "--trials-dir", str(tmp_path / "trials"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "trials" / "fm"
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["counts"]["COMPLETE"] == 4
    archs = {t["number"]: t["arch"] for t in summary["trials"]}
    assert all(GlobalSpec.parse(a).stages == 3 for a in archs.values())
    final = summary["final_stage"]
    assert final["k"] == 1 and final["epochs"] == 1
    (row,) = final["trials"]
    assert 0 <= row["final_test_acc"] <= 1
    study = optuna.load_study(study_name="fm", storage=f"sqlite:///{exp / 'optuna.db'}")
    best = max(t.value for t in study.trials)
    retrained = study.trials[row["search_trial"]]
    assert retrained.value == best  # the final stage retrains the search's best (or a tie)
    assert retrained.user_attrs["arch"] == archs[retrained.number]
    assert row["search_value"] == pytest.approx(best)


def test_the_gpu_preset_keeps_the_research_budget_and_builds_its_largest_network():
    import torch

    from tune_nas.models import create_model

    spec = load_space("fashion_mnist_evolution_h100").spec
    assert spec.max_epochs <= 10 and spec.final_max_epochs <= 20 and spec.gpus_per_trial > 0
    space = load_space("fashion_mnist_evolution_h100")
    config = space.sample(0)
    arch = {k: v for k, v in config.items() if k.startswith(("op_", "skip_"))}
    heaviest = {**arch, **{k: "conv5" for k in arch if k.startswith("op_")}}
    model = create_model("global_net", 10, 1, 28, width=config["width"], stages=3, slots=3, **heaviest)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
