"""Bad input, everywhere: every command, every flag, every EXPERIMENT key of a space file.

The rule (README, "Bad input"): a bad invocation gets ONE line on stderr naming the thing
(file, flag or EXPERIMENT key), the value and the rule; exit code 2; no traceback; nothing
written (no experiment directory, no trials directory, no files beside the space file or
the data); and, for the launcher, all of it before any Ray work starts.

Most cases call the command's ``main([...])`` in this process (the launcher's ``prepare`` is
wrapped so that bad input it lets through fails the case instead of starting Ray); the few
about tracebacks, hangs and what Ray's own libraries print run as real processes.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# --------------------------------------------------------------------------- what a case is


@dataclass(frozen=True)
class Bad:
    """One bad invocation: ``python -m tune_nas.<command> ARGS``.

    ``args`` may hold ``{tmp}`` (the test's directory, the process's working directory),
    ``{port}`` (a TCP port nothing listens on) and ``{http}`` (a port where a plain HTTP
    server answers: not a Ray cluster). ``needle`` is the offending value the one line must
    name; ``setup`` writes the files the case needs before the "nothing written" snapshot.
    """

    command: str
    args: tuple[str, ...]
    needle: str
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    real_process: bool = False
    offline: bool = False  # torchvision's download raises, as it does without network


def launch(*args: str, needle: str, **kw) -> Bad:
    """A launcher case; ``--trials-dir {tmp}/trials`` is added unless the case sets it."""
    extra = () if "--trials-dir" in args else ("--trials-dir", "{tmp}/trials")
    return Bad("launch", (*args, *extra), needle, **kw)


def space_file(body: str, name: str = "bad") -> Callable[[Path], None]:
    """Setup: ``{tmp}/spaces/<name>.py`` holding ``body``."""

    def write(tmp: Path) -> None:
        (tmp / "spaces").mkdir(exist_ok=True)
        (tmp / "spaces" / f"{name}.py").write_text(textwrap.dedent(body))

    return write


CELL_SPACE = """
    from ray import tune
    from tune_nas.spaces.nasbench101 import param_choices
    EXPERIMENT = {{"model": "nb101", "max_epochs": 1, "num_samples": 2}}
    PARAM_SPACE = {{**{{k: tune.choice(v) for k, v in param_choices(7).items()}}, "stem_channels": 8, {extra}}}
    """
GOOD_PARAM_SPACE = 'PARAM_SPACE = {"lr": tune.loguniform(1e-3, 1e-2), "width": tune.choice([8, 16])}'


def experiment_key(key: str, value: str, needle: str | None = None, **kw) -> Bad:
    """A space file that is good but for ``EXPERIMENT[key] = value`` (a Python literal)."""
    body = f"""
        from ray import tune
        EXPERIMENT = {{"max_epochs": 3, "num_samples": 2, {key!r}: {value}}}
        {GOOD_PARAM_SPACE}
        """
    kw.setdefault("setup", space_file(body))
    return launch("--space", "{tmp}/spaces/bad.py", needle=needle or f"{key}=", **kw)


def space(body: str, needle: str, setup_extra: Callable[[Path], None] | None = None, **kw) -> Bad:
    setup = space_file(body) if setup_extra is None else both(space_file(body), setup_extra)
    return launch("--space", "{tmp}/spaces/bad.py", needle=needle, setup=setup, **kw)


# --------------------------------------------------------------------------- setups


def a_file(relative: str, content: bytes = b"x") -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    return write


def npz_file(relative: str, **arrays) -> Callable[[Path], None]:
    """Setup: an .npz holding ``arrays`` (what ``numpy.savez`` writes)."""

    def write(tmp: Path) -> None:
        import numpy as np

        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})

    return write


def _grid(rows: int, cols: int, nan_at: tuple[int, int] | None = None):
    values = [[float(r * cols + c) for c in range(cols)] for r in range(rows)]
    if nan_at is not None:
        values[nan_at[0]][nan_at[1]] = float("nan")
    return values


OK_NPZ = npz_file("ok.npz", x=_grid(20, 2), y=_grid(20, 1))  # the space's data set, as it should be
EMU = ("--space", "emulator_burgers", "--dataset")  # a regression space, then the data set
REGRESSION_SPACE = """
    EXPERIMENT = {{"dataset": "arrays:ok.npz", "max_epochs": 2{extra}}}
    PARAM_SPACE = {{"width": 8{param}}}
"""


def random_bytes(relative: str) -> Callable[[Path], None]:
    return a_file(relative, os.urandom(4096))


def text_images(tmp: Path) -> None:
    """An image folder whose .png files hold text."""
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            folder = tmp / "pictures" / split / cls
            folder.mkdir(parents=True)
            (folder / "a.png").write_text("this is not a picture\n")


def truncated_tar_gz(tmp: Path) -> None:
    """A real gzip stream of a tar whose end is cut off."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = os.urandom(20_000)
        info = tarfile.TarInfo("train/cat/a.png")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp / "cut.tar.gz").write_bytes(gzip.compress(raw.getvalue())[:3000])


def saved_experiment(experiment_json: str) -> Callable[[Path], None]:
    """trials/old/ holding ``experiment.json``."""

    def write(tmp: Path) -> None:
        old = tmp / "trials" / "old"
        old.mkdir(parents=True)
        (old / "experiment.json").write_text(experiment_json)

    return write


def recorded_experiment(tmp: Path) -> None:
    """trials/exp/: experiment.json, curves.csv (3 trials × 3 epochs) and optuna.db."""
    exp = tmp / "trials" / "exp"
    exp.mkdir(parents=True)
    spec = {"metric": "val/acc", "mode": "max", "max_epochs": 3, "grace_period": 1,
            "reduction_factor": 3, "scheduler": "asha", "num_samples": 3}
    (exp / "experiment.json").write_text(json.dumps({"name": "exp", "spec": spec}))
    rows = ["trial_id,trial_number,run,state,final_epoch,epoch,val/acc,time/epoch_s"]
    for n, curve in enumerate([(0.5, 0.6, 0.7), (0.4, 0.8, 0.9), (0.6, 0.65, 0.66)]):
        rows += [f"id{n},{n},{n:03d}_x,COMPLETE,3,{e},{v},0.5" for e, v in enumerate(curve, 1)]
    (exp / "curves.csv").write_text("\n".join(rows) + "\n")
    shutil.copy(_study_db(), exp / "optuna.db")


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        for setup in setups:
            setup(tmp)

    return run


@functools.cache
def _study_db() -> Path:
    """An optuna.db with one finished study ``exp``: built once, copied into each case that
    needs an experiment, removed when the tests end."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="tune_nas_bad_input_"))
    atexit.register(shutil.rmtree, folder, True)
    study = optuna.create_study(storage=f"sqlite:///{folder / 'optuna.db'}", study_name="exp", direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    study._storage.remove_session()
    return folder / "optuna.db"


A_PLUGIN_THAT_RAISES = a_file("spaces/broken_plugin.py", b"raise RuntimeError('plugin is broken')\n")

# --------------------------------------------------------------------------- the table

CASES: list = [
    # ---- launch: --space
    pytest.param(launch("--space", "no_such_space", needle="no_such_space"), id="space-unknown-preset"),
    pytest.param(launch("--space", "{tmp}/spaces", needle="spaces", setup=a_file("spaces/x.txt")),
                 id="space-is-a-directory"),
    pytest.param(launch("--space", "{tmp}/notes.txt", needle="notes.txt", setup=a_file("notes.txt", b"hello")),
                 id="space-not-a-py-file"),
    pytest.param(space("EXPERIMENT = {\n", needle="bad.py"), id="space-syntax-error"),
    pytest.param(space("import no_such_module_here\n", needle="no_such_module_here"), id="space-import-raises"),
    pytest.param(space("EXPERIMENT = [1, 2]\nPARAM_SPACE = {'lr': 0.1}\n", needle="EXPERIMENT is list"),
                 id="space-experiment-not-a-dict"),
    pytest.param(space("EXPERIMENT = {}\n", needle="neither"), id="space-neither-space-nor-function"),
    # ---- several objectives, constraints
    pytest.param(experiment_key("objectives", "{'val/acc': 'max', 'model/parms': 'min'}", "model/parms"),
                 id="exp-objective-unknown-metric"),
    pytest.param(experiment_key("objectives", "{'val/acc': 'max', 'model/params': 'smallest'}", "smallest"),
                 id="exp-objective-bad-direction"),
    pytest.param(experiment_key("objectives", "['val/acc', 'model/params']"), id="exp-objectives-not-a-dict"),
    pytest.param(experiment_key("constraints", "{'model/params': ('<', 1000)}", "'<'"), id="exp-constraint-bad-op"),
    pytest.param(experiment_key("constraints", "{'model/params': ('<=', float('nan'))}", "nan"),
                 id="exp-constraint-bound-nan"),
    pytest.param(experiment_key("constraints", "{'model/size': ('<=', 1000)}", "model/size"),
                 id="exp-constraint-unknown-metric"),
    # ---- a NAS-Bench-101 cell space's flat encoding
    pytest.param(space(CELL_SPACE.format(extra="'edge_21': tune.choice([0, 1]),"), needle="edge_21"),
                 id="cell-encoding-incomplete"),
    pytest.param(space(CELL_SPACE.format(extra="'edge_3': tune.choice([1, 0]),"), needle="edge_3"),
                 id="cell-edge-choices-not-0-1"),
    pytest.param(space(CELL_SPACE.format(extra="'op_node_2': tune.choice(['conv3x3-bn-relu', 'conv5x5']),"),
                       needle="conv5x5"), id="cell-op-unknown"),
    pytest.param(space(CELL_SPACE.format(extra="'edge_0': 1,"), needle="edge_0"), id="cell-edge-fixed"),
    pytest.param(space(CELL_SPACE.format(extra="'max_edges': tune.choice([9, 12]),"), needle="max_edges"),
                 id="cell-limit-searched"),
    # ---- launch: --dataset, --data-dir
    pytest.param(launch("--dataset", "imagenet", needle="'imagenet'"), id="dataset-unknown"),
    pytest.param(launch("--dataset", "imagefolder:", needle="'imagefolder:'"), id="dataset-imagefolder-empty"),
    pytest.param(launch("--dataset", "imagefolder:{tmp}/nowhere", needle="nowhere"), id="dataset-imagefolder-missing"),
    pytest.param(launch("--dataset", "imagefolder:{tmp}/x.tar.gz", needle="x.tar.gz",
                        setup=random_bytes("x.tar.gz"), real_process=True), id="dataset-archive-of-random-bytes"),
    pytest.param(launch("--dataset", "imagefolder:{tmp}/empty.tar.gz", needle="empty.tar.gz",
                        setup=a_file("empty.tar.gz", b"")), id="dataset-archive-empty-file"),
    pytest.param(launch("--dataset", "imagefolder:{tmp}/cut.tar.gz", needle="cut.tar.gz", setup=truncated_tar_gz),
                 id="dataset-archive-truncated"),
    pytest.param(launch("--dataset", "imagefolder:{tmp}/notes.txt", needle="notes.txt",
                        setup=a_file("notes.txt", b"just text\n")), id="dataset-imagefolder-text-file"),
    pytest.param(launch("--dataset", "imagefolder:{tmp}/pictures", needle="a.png", setup=text_images,
                        real_process=True), id="dataset-images-that-are-text"),
    pytest.param(launch("--dataset", "imagefolder:{tmp}/pictures", needle="a.png", setup=text_images),
                 id="dataset-images-that-are-text-in-process"),
    pytest.param(launch("--dataset", "imagefolder:{tmp}/nosplits", needle="nosplits",
                        setup=a_file("nosplits/cat/a.png")), id="dataset-imagefolder-without-train"),
    pytest.param(launch("--dataset", "mnist", "--data-dir", "{tmp}/afile/data", needle="afile/data",
                        setup=a_file("afile")), id="data-dir-below-a-file"),
    pytest.param(launch("--dataset", "mnist", "--data-dir", "{tmp}/nodata", needle="nodata", offline=True),
                 id="data-dir-absent-offline"),
    pytest.param(launch("--dataset", "mnist", "--data-dir", "{tmp}/data", needle="data", offline=True,
                        setup=a_file("data/keep.txt")), id="data-dir-present-offline-leaves-no-mnist-folder"),
    pytest.param(experiment_key("image_size", "100000", "image_size=100000"), id="exp-image-size-beyond-memory"),
    pytest.param(space('EXPERIMENT = {"dataset": "digits", "workers_per_trial": 2, "cpus_per_trial": 0.5}\n'
                       'PARAM_SPACE = {"batch_size": 1}\n', needle="batch_size 1"),
                 id="workers-per-trial-above-every-batch-size"),
    # ---- launch: regression data (arrays:, sim:) and what a regression experiment refuses
    pytest.param(launch(*EMU, "arrays:{tmp}/nowhere.npz", needle="nowhere.npz"), id="arrays-missing"),
    pytest.param(launch(*EMU, "arrays:{tmp}/data.txt",
                        needle="data.txt", setup=a_file("data.txt")), id="arrays-unknown-suffix"),
    pytest.param(launch(*EMU, "arrays:{tmp}/cut.npz",
                        needle="cut.npz", setup=random_bytes("cut.npz")), id="arrays-npz-not-npz"),
    pytest.param(launch(*EMU, "arrays:{tmp}/noy.npz",
                        needle="'y'", setup=npz_file("noy.npz", x=_grid(20, 2))), id="arrays-npz-without-y"),
    pytest.param(launch(*EMU, "arrays:{tmp}/len.npz", needle="y has 19",
                        setup=npz_file("len.npz", x=_grid(20, 2), y=_grid(19, 1))),
                 id="arrays-npz-lengths-differ"),
    pytest.param(launch(*EMU, "arrays:{tmp}/nan.npz", needle="x[3, 1]",
                        setup=npz_file("nan.npz", x=_grid(20, 2, nan_at=(3, 1)), y=_grid(20, 1))),
                 id="arrays-npz-nan"),
    pytest.param(launch(*EMU, "arrays:{tmp}/cube.npz", needle="(20, 2, 2, 2)",
                        setup=npz_file("cube.npz", x=[[[[0.0] * 2] * 2] * 2] * 20, y=_grid(20, 1))),
                 id="arrays-npz-x-too-many-dims"),
    pytest.param(launch(*EMU, "arrays:{tmp}/few.npz", needle="5 rows",
                        setup=npz_file("few.npz", x=_grid(5, 2), y=_grid(5, 1))),
                 id="arrays-npz-too-few-rows"),
    pytest.param(launch(*EMU, "arrays:{tmp}/t.csv",
                        needle="outputs", setup=a_file("t.csv", b"a,b\n1,2\n")), id="arrays-csv-no-outputs"),
    pytest.param(space(REGRESSION_SPACE.replace("ok.npz", "t.csv").format(extra=', "outputs": ["b"]', param=""),
                       needle="'oops'", setup_extra=a_file("t.csv", b"a,b\n" + b"1,2\n" * 12 + b"3,oops\n")),
                 id="arrays-csv-text-in-a-number-column"),
    pytest.param(space(REGRESSION_SPACE.replace("ok.npz", "t.csv").format(extra=', "outputs": ["c"]', param=""),
                       needle="'c'", setup_extra=a_file("t.csv", b"a,b\n" + b"1,2\n" * 12)),
                 id="arrays-csv-unknown-output-column"),
    pytest.param(space(REGRESSION_SPACE.format(extra=', "outputs": ["b"]', param=""), needle="outputs",
                       setup_extra=OK_NPZ),
                 id="arrays-outputs-for-an-npz-key"),
    pytest.param(launch("--dataset", "arrays:{tmp}/gone.npz", needle="gone.npz: no such file"),
                 id="arrays-missing-with-the-image-preset"),  # the file, not the preset's model
    pytest.param(launch("--space", "emulator_burgers", "--dataset", "imagefolder:{tmp}/gone",
                        needle="gone: no such directory"),
                 id="imagefolder-missing-with-a-regression-preset"),
    pytest.param(space('EXPERIMENT = {"dataset": "digits", "train_fraction": 0.001}\nPARAM_SPACE = {"width": 8}\n',
                       needle="train_fraction=0.001"),
                 id="train-fraction-keeps-no-image-of-a-class"),
    pytest.param(launch("--dataset", "sim:nope", needle="'nope'"), id="sim-unknown-simulator"),
    pytest.param(launch("--dataset", "sim:burgers:5", needle="sim:burgers:5"), id="sim-too-few-samples"),
    pytest.param(launch("--dataset", "sim:burgers:lots", needle="lots"), id="sim-samples-not-a-number"),
    pytest.param(launch("--dataset", "sim:burgers", needle="small_cnn"), id="sim-with-an-image-model"),
    pytest.param(launch(*EMU, "digits", needle="'mlp'"),
                 id="regression-model-on-images"),
    pytest.param(space(REGRESSION_SPACE.format(extra=', "metric": "val/acc"', param=""), needle="metric='val/acc'",
                       setup_extra=OK_NPZ),
                 id="regression-metric-accuracy"),
    pytest.param(space(REGRESSION_SPACE.format(extra="", param=', "crop_pad": 2'), needle="crop_pad",
                       setup_extra=OK_NPZ),
                 id="regression-space-with-image-augmentation"),
    pytest.param(space(REGRESSION_SPACE.format(extra=', "task": "classification"', param=""), needle="task",
                       setup_extra=OK_NPZ),
                 id="regression-data-task-classification"),
    # ---- launch: --model, --searcher, --scheduler
    pytest.param(launch("--model", "vgg", needle="'vgg'"), id="model-unknown"),
    pytest.param(launch("--searcher", "bayes", needle="'bayes'"), id="searcher-unknown"),
    pytest.param(launch("--searcher", "", needle="'' is empty; rule: --searcher"), id="searcher-empty"),
    pytest.param(launch("--scheduler", "hyperband", needle="'hyperband'"), id="scheduler-unknown"),
    pytest.param(launch("--scheduler", "asha_promotion", "--max-concurrent-trials", "2",
                        needle="max_concurrent_trials=2: paused trials"), id="asha-promotion-concurrency-limit"),
    pytest.param(launch("--scheduler", "asha_promotion", "--grace-period", "12",
                        needle="grace_period=12 > max_epochs=9"), id="asha-promotion-grace-beyond-budget"),
    # ---- launch: numbers
    pytest.param(launch("--num-samples", "0", needle="--num-samples"), id="num-samples-zero"),
    pytest.param(launch("--num-samples", "many", needle="'many'"), id="num-samples-not-a-number"),
    pytest.param(launch("--max-epochs", "-1", needle="--max-epochs"), id="max-epochs-negative"),
    pytest.param(launch("--max-epochs", "2.5", needle="'2.5'"), id="max-epochs-fraction"),
    pytest.param(launch("--max-epochs", "100001", needle="max_epochs=100001"), id="max-epochs-beyond-the-cap"),
    pytest.param(launch("--max-epochs", needle="--max-epochs"), id="max-epochs-without-value"),
    pytest.param(launch("--grace-period", "0", needle="--grace-period"), id="grace-period-zero"),
    pytest.param(launch("--grace-period", "20", needle="grace_period=20"), id="grace-period-above-max-epochs"),
    pytest.param(launch("--gpus-per-trial", "-1", needle="--gpus-per-trial"), id="gpus-negative"),
    pytest.param(launch("--gpus-per-trial", "1.5", needle="gpus_per_trial=1.5"), id="gpus-fraction-above-one"),
    pytest.param(launch("--gpus-per-trial", "nan", needle="nan"), id="gpus-nan"),
    pytest.param(launch("--gpus-per-trial", "64", needle="gpus_per_trial=64 (--gpus-per-trial)"),
                 id="gpus-more-than-this-machine"),
    pytest.param(launch("--cpus-per-trial", "0", needle="--cpus-per-trial"), id="cpus-zero"),
    pytest.param(launch("--cpus-per-trial", "inf", needle="inf"), id="cpus-infinite"),
    pytest.param(launch("--cpus-per-trial", "4096", needle="cpus_per_trial=4096 (--cpus-per-trial)"),
                 id="cpus-more-than-this-machine"),
    pytest.param(launch("--workers-per-trial", "0", needle="--workers-per-trial"), id="workers-zero"),
    pytest.param(launch("--workers-per-trial", "-2", needle="--workers-per-trial"), id="workers-negative"),
    pytest.param(launch("--workers-per-trial", "1.5", needle="'1.5'"), id="workers-fraction"),
    pytest.param(launch("--workers-per-trial", "two", needle="'two'"), id="workers-not-a-number"),
    pytest.param(launch("--workers-per-trial", "4096", needle="workers_per_trial=4096 (--workers-per-trial)"),
                 id="workers-more-than-this-machines-cpus"),
    pytest.param(launch("--workers-per-trial", "2", "--cpus-per-trial", str(max(1, (os.cpu_count() or 1) // 2 + 1)),
                        needle="workers_per_trial=2 (--workers-per-trial) x cpus_per_trial"),
                 id="workers-times-cpus-more-than-this-machine"),
    pytest.param(launch("--workers-per-trial", "2", "--gpus-per-trial", "0.5",
                        needle="gpus_per_trial=0.5 with workers_per_trial=2"),
                 id="workers-with-a-gpu-fraction"),
    pytest.param(launch("--max-concurrent-trials", "-2", needle="--max-concurrent-trials"), id="max-concurrent-negative"),
    pytest.param(launch("--time-budget-s", "-5", needle="--time-budget-s"), id="time-budget-negative"),
    pytest.param(launch("--seed", "-1", needle="--seed"), id="seed-negative"),
    pytest.param(launch("--seed", "4294967296", needle="4294967296"), id="seed-beyond-32-bits"),
    # ---- launch: --address
    pytest.param(launch("--address", "", needle="--address: ''"), id="address-empty"),
    pytest.param(launch("--address", "127.0.0.1:{port}", needle="127.0.0.1:{port}", real_process=True),
                 id="address-nothing-listens"),
    pytest.param(launch("--address", "127.0.0.1:{port}", needle="127.0.0.1:{port}"),
                 id="address-nothing-listens-in-process"),
    pytest.param(launch("--address", "127.0.0.1:{http}", needle="127.0.0.1:{http}", real_process=True),
                 id="address-not-a-ray-cluster", marks=pytest.mark.slow),  # Ray's client gives up after 10 s
    pytest.param(launch("--address", "ray://127.0.0.1:{port}", needle="ray://127.0.0.1:{port}"),
                 id="address-ray-client-nothing-listens"),
    pytest.param(launch("--address", "headnode", needle="'headnode'"), id="address-without-port"),
    pytest.param(launch("--address", "headnode:http", needle="headnode:http"), id="address-port-not-a-number"),
    pytest.param(launch("--address", "no-such-host.invalid:6379", needle="no-such-host.invalid"),
                 id="address-unknown-host"),
    pytest.param(launch("--address", "auto", needle="127.0.0.1:{port}", env={"RAY_ADDRESS": "127.0.0.1:{port}"}),
                 id="address-auto-from-stale-environment"),
    pytest.param(launch(needle="RAY_ADDRESS=127.0.0.1:{port}", env={"RAY_ADDRESS": "127.0.0.1:{port}"}),
                 id="no-address-but-a-stale-environment"),
    # ---- launch: --name, --trials-dir, --storage, --resume
    pytest.param(launch("--name", "", needle="--name: ''"), id="name-empty"),
    pytest.param(launch("--name", "a/b", needle="'a/b'"), id="name-with-slash"),
    pytest.param(launch("--name", "..", needle="'..'"), id="name-dot-dot"),
    pytest.param(launch("--name", "a\x00b", needle="--name"), id="name-with-nul"),
    pytest.param(launch("--name", "old", needle="already exists", setup=saved_experiment("{}")),
                 id="name-exists"),
    pytest.param(launch("--trials-dir", "{tmp}/somefile/trials", needle="somefile", setup=a_file("somefile"),
                        real_process=True), id="trials-dir-below-a-file"),
    pytest.param(launch("--trials-dir", "{tmp}/somefile", needle="somefile", setup=a_file("somefile")),
                 id="trials-dir-is-a-file"),
    pytest.param(launch("--trials-dir", "", needle="--trials-dir: ''"), id="trials-dir-empty"),
    # access() says a root user may write /proc: creating a directory there fails all the same
    pytest.param(launch("--trials-dir", "/proc/tune_nas_trials", needle="/proc/tune_nas_trials"),
                 id="trials-dir-where-no-directory-can-be-made"),
    pytest.param(launch("--trials-dir", "nosuchscheme://bucket/x", needle="nosuchscheme://bucket/x"),
                 id="trials-dir-unknown-uri-scheme"),
    pytest.param(launch("--storage", "not a url", needle="not a url"), id="storage-not-a-url"),
    pytest.param(launch("--storage", "ftp://host/db", needle="'ftp'"), id="storage-unsupported-scheme"),
    pytest.param(launch("--storage", "postgresql://me:secret@host/db", needle="--storage postgresql://me:***@host/db"),
                 id="storage-password-in-url"),
    pytest.param(launch("--storage", "postgresql://me@127.0.0.1:{port}/db", needle="127.0.0.1:{port}"),
                 id="storage-database-not-listening"),
    pytest.param(launch("--storage", "sqlite:///{tmp}/afile/study.db", needle="afile/study.db", setup=a_file("afile")),
                 id="storage-sqlite-below-a-file"),
    pytest.param(launch("--storage", "sqlite:///{tmp}/noise.db", needle="noise.db", setup=random_bytes("noise.db")),
                 id="storage-sqlite-not-a-database"),
    pytest.param(launch("--storage", "sqlite:///{tmp}/fresh.db", "--dataset", "imagefolder:{tmp}/nowhere",
                        needle="nowhere"),
                 id="storage-sqlite-not-created-on-other-bad-input"),
    pytest.param(launch("--storage", "sqlite://", needle="sqlite://"), id="storage-sqlite-in-memory"),
    pytest.param(launch("--storage", "sqlite:///:memory:", needle=":memory:"), id="storage-sqlite-memory-file"),
    pytest.param(launch("--scheduler", "none", "--grace-period", "100", needle="--grace-period 100"),
                 id="grace-period-with-no-scheduler"),
    pytest.param(launch("--name", "dangling", needle="--name dangling",
                        setup=lambda tmp: ((tmp / "trials").mkdir(), (tmp / "trials" / "dangling").symlink_to(
                            tmp / "nowhere"))), id="name-a-link-to-nothing"),
    *[pytest.param(launch(flag, "", needle=f"rule: {flag} is"), id=f"empty{flag}")
      for flag in ("--model", "--scheduler", "--searcher", "--dataset", "--data-dir")],
    pytest.param(launch("--name", "two\nlines", needle="'two\\nlines'"), id="name-with-a-newline"),
    pytest.param(Bad("compare", ("--name", "tab\tbed"), "'tab\\tbed'"), id="compare-name-with-a-tab"),
    pytest.param(launch("--resume", needle="--resume"), id="resume-without-name"),
    pytest.param(launch("--resume", "--name", "old", "--num-samples", "3", "--searcher", "random",
                        needle="--num-samples, --searcher", setup=saved_experiment("{}")),
                 id="resume-with-setting-flags"),
    pytest.param(launch("--resume", "--name", "old", "--space", "default", needle="--space",
                        setup=saved_experiment("{}")), id="resume-with-a-space"),
    pytest.param(launch("--resume", "--name", "", needle="--name: ''"), id="resume-with-empty-name"),
    pytest.param(launch("--resume", "--name", "never_ran", needle="never_ran"), id="resume-missing-experiment"),
    pytest.param(launch("--resume", "--name", "../x", needle="'../x'"), id="resume-name-outside-trials-dir"),
    pytest.param(launch("--resume", "--name", "old", needle="experiment.json", setup=saved_experiment("{not json")),
                 id="resume-experiment-json-garbage"),
    pytest.param(launch("--resume", "--name", "old", needle="experiment.json", setup=saved_experiment("[1]")),
                 id="resume-experiment-json-a-list"),
    pytest.param(launch("--resume", "--name", "old", needle="format 1",
                        setup=saved_experiment(json.dumps({"name": "old", "format": 1}))), id="resume-old-format"),
    pytest.param(launch("--bogus", needle="--bogus"), id="unknown-flag"),
    # ---- launch: EXPERIMENT keys of a space file
    pytest.param(experiment_key("dataset", "5"), id="exp-dataset-not-a-string"),
    pytest.param(experiment_key("dataset", "'imagenet'", "'imagenet'"), id="exp-dataset-unknown"),
    pytest.param(experiment_key("data_dir", "['data']"), id="exp-data-dir-not-a-string"),
    pytest.param(experiment_key("model", "'vgg'"), id="exp-model-unknown"),
    pytest.param(experiment_key("metric", "'val/accuracy'"), id="exp-metric-unknown"),
    pytest.param(experiment_key("mode", "'maximize'"), id="exp-mode-unknown"),
    pytest.param(experiment_key("max_epochs", "0"), id="exp-max-epochs-zero"),
    pytest.param(experiment_key("max_epochs", "'9'"), id="exp-max-epochs-a-string"),
    pytest.param(experiment_key("max_epochs", "True"), id="exp-max-epochs-a-bool"),
    pytest.param(experiment_key("grace_period", "-1"), id="exp-grace-period-negative"),
    pytest.param(experiment_key("reduction_factor", "1"), id="exp-reduction-factor-one"),
    pytest.param(experiment_key("reduction_factor", "float('inf')"), id="exp-reduction-factor-infinite"),
    pytest.param(experiment_key("scheduler", "'hyperband'"), id="exp-scheduler-unknown"),
    pytest.param(experiment_key("searcher", "'bayes'"), id="exp-searcher-unknown"),
    pytest.param(experiment_key("searcher_options", "{'n_ei_candidates': 0}", "n_ei_candidates"),
                 id="exp-tpe-option-out-of-range"),
    pytest.param(experiment_key("constraints", "{'val/acc': ('>=', 95)}", "'val/acc' >= 95 can never hold"),
                 id="exp-constraint-accuracy-as-a-percentage"),
    pytest.param(experiment_key("constraints", "{'model/params': ('<=', -1)}", "'model/params' <= -1 can never hold"),
                 id="exp-constraint-below-any-count"),
    # ---- integers beyond a float's range (math.isfinite raised OverflowError: a traceback)
    *[pytest.param(experiment_key(key, value, needle), id=f"exp-{key}-10**400")
      for key, value, needle in (
          ("reduction_factor", "10**400", "reduction_factor="),
          ("time_budget_s", "10**400", "time_budget_s="),
          ("image_size", "10**400", "image_size="),
          ("constraints", "{'model/params': ('<=', 10**400)}", "constraints="),
          ("searcher", "'nsga2', 'objectives': {'val/acc': 'max', 'model/params': 'min'}, 'scheduler': 'none', "
                       "'searcher_options': {'mutation_prob': 10**400}", "mutation_prob"),
          ("searcher", "'reinforce', 'searcher_options': {'entropy_weight': 10**400}", "entropy_weight"),
          ("model", "'morph_net', 'searcher': 'morphism', 'scheduler': 'none', "
                    "'searcher_options': {'child_warmup_epochs': 10**400}", "child_warmup_epochs"))],
    pytest.param(space("""
        EXPERIMENT = {"max_epochs": 1, "num_samples": 1}
        PARAM_SPACE = {"width": 100000, "depth": 3, "lr": 0.01}
        """, needle="GiB of float32 weights alone"), id="model-whose-weights-cannot-fit-counted-without-building"),
    pytest.param(space("""
        EXPERIMENT = {"max_epochs": 1, "num_samples": 1}
        PARAM_SPACE = {"width": 10**30, "lr": 0.01}
        """, needle="width=1000000000000000000000000000000: rule: architecture integers at most 1,000,000"),
        id="architecture-integer-whose-build-would-not-end"),
    pytest.param(experiment_key("searcher_options", "{'n_ei_candidates': 10**30}", "n_ei_candidates"),
                 id="exp-tpe-candidates-beyond-memory"),
    pytest.param(experiment_key("searcher", "'reinforce', 'searcher_options': {'learning_rate': 1e308}",
                                "learning_rate"), id="exp-reinforce-rate-overflowing-the-logits"),
    pytest.param(experiment_key("searcher", "'reinforce', 'searcher_options': {'entropy_weight': 1e308}",
                                "entropy_weight"), id="exp-reinforce-entropy-weight-locking-the-policy"),
    pytest.param(experiment_key("searcher", "'reinforce', 'searcher_options': {'bins': 10**12}", "bins"),
                 id="exp-reinforce-bins-beyond-memory"),
    pytest.param(space("""
        EXPERIMENT = {"max_epochs": 1, "num_samples": 1}
        PARAM_SPACE = {"crop_pad": 8, "lr": 0.01}
        """, needle="crop_pad=8"), id="crop-pad-as-large-as-the-digits-images"),
    pytest.param(experiment_key("searcher_options", "{'multivariate': 'yes'}", "multivariate"),
                 id="exp-tpe-option-wrong-type"),
    pytest.param(experiment_key("searcher_options", "{'n_ei_candidate': 5}", "n_ei_candidate"),
                 id="exp-tpe-option-unknown"),
    pytest.param(experiment_key("searcher_options", "[1, 2]"), id="exp-searcher-options-not-a-dict"),
    pytest.param(space("""
        from ray import tune
        EXPERIMENT = {"searcher": "random", "searcher_options": {"seed": 3}}
        PARAM_SPACE = {"lr": tune.loguniform(1e-3, 1e-2)}
        """, needle="'seed'"), id="exp-random-takes-no-options"),
    pytest.param(experiment_key("num_samples", "0"), id="exp-num-samples-zero"),
    pytest.param(experiment_key("cpus_per_trial", "0"), id="exp-cpus-zero"),
    pytest.param(experiment_key("cpus_per_trial", "'1'"), id="exp-cpus-a-string"),
    pytest.param(experiment_key("gpus_per_trial", "-1"), id="exp-gpus-negative"),
    pytest.param(experiment_key("gpus_per_trial", "1.5"), id="exp-gpus-fraction-above-one"),
    pytest.param(experiment_key("workers_per_trial", "0"), id="exp-workers-zero"),
    pytest.param(experiment_key("workers_per_trial", "2.0"), id="exp-workers-a-float"),
    pytest.param(experiment_key("workers_per_trial", "'2'"), id="exp-workers-a-string"),
    pytest.param(experiment_key("workers_per_trial", "True"), id="exp-workers-a-bool"),
    pytest.param(experiment_key("workers_per_trial", "4096", needle="workers_per_trial=4096 ("),
                 id="exp-workers-more-than-this-machines-cpus"),
    pytest.param(space("""
        EXPERIMENT = {"workers_per_trial": 2, "gpus_per_trial": 2}
        PARAM_SPACE = {"lr": 0.01}
        """, needle="gpus_per_trial=2 with workers_per_trial=2"), id="exp-workers-with-two-gpus-each"),
    pytest.param(experiment_key("max_concurrent_trials", "-1"), id="exp-max-concurrent-negative"),
    pytest.param(experiment_key("checkpoint_every", "0"), id="exp-checkpoint-every-zero"),
    pytest.param(experiment_key("max_failures", "-1"), id="exp-max-failures-negative"),
    pytest.param(experiment_key("seed", "-1"), id="exp-seed-negative"),
    pytest.param(experiment_key("seed", "2**40"), id="exp-seed-beyond-32-bits"),
    pytest.param(experiment_key("n_startup_trials", "-1"), id="exp-n-startup-negative"),
    pytest.param(experiment_key("curve_fit_min_epochs", "0"), id="exp-curve-fit-min-epochs-zero"),
    pytest.param(experiment_key("curve_fit_threshold", "1.0"), id="exp-curve-fit-threshold-one"),
    pytest.param(experiment_key("plugins", "'models.py'"), id="exp-plugins-a-string"),
    pytest.param(experiment_key("plugins", "['missing_plugin.py']", "missing_plugin.py"), id="exp-plugin-missing"),
    pytest.param(experiment_key("plugins", "['broken_plugin.py']", "broken_plugin.py", setup=both(
        A_PLUGIN_THAT_RAISES, space_file(f"""
        from ray import tune
        EXPERIMENT = {{"plugins": ["broken_plugin.py"]}}
        {GOOD_PARAM_SPACE}
        """))), id="exp-plugin-raises"),
    pytest.param(experiment_key("train_fraction", "0"), id="exp-train-fraction-zero"),
    pytest.param(experiment_key("train_fraction", "1.5"), id="exp-train-fraction-above-one"),
    pytest.param(experiment_key("image_size", "-1"), id="exp-image-size-negative"),
    pytest.param(experiment_key("final_top_k", "-1"), id="exp-final-top-k-negative"),
    pytest.param(experiment_key("final_max_epochs", "-1"), id="exp-final-max-epochs-negative"),
    pytest.param(experiment_key("final_max_epochs", "10**18"), id="exp-final-max-epochs-beyond-the-cap"),
    pytest.param(experiment_key("time_budget_s", "-1"), id="exp-time-budget-negative"),
    pytest.param(experiment_key("description", "42"), id="exp-description-not-a-string"),
    pytest.param(experiment_key("max_epoch", "3", "'max_epoch'"), id="exp-unknown-key"),
    # ---- launch: PARAM_SPACE and define_by_run
    pytest.param(space("""
        from ray import tune
        EXPERIMENT = {}
        PARAM_SPACE = {"lr": tune.uniform(0.5, 0.1)}
        """, needle="PARAM_SPACE['lr']"), id="param-space-low-above-high"),
    pytest.param(space("""
        from ray import tune
        EXPERIMENT = {}
        PARAM_SPACE = {"depth": tune.randint(2, 2)}
        """, needle="PARAM_SPACE['depth']"), id="param-space-empty-integer-range"),
    pytest.param(space("""
        from ray import tune
        EXPERIMENT = {}
        PARAM_SPACE = {"widht": tune.choice([8, 16])}
        """, needle="'widht'"), id="param-space-unknown-key"),
    pytest.param(space("""
        EXPERIMENT = {}
        PARAM_SPACE = {}
        """, needle="PARAM_SPACE"), id="param-space-empty"),
    pytest.param(space("""
        EXPERIMENT = {}
        PARAM_SPACE = {"optimizer": "rmsprop"}
        """, needle="'rmsprop'"), id="param-space-unknown-optimizer"),
    pytest.param(space("""
        EXPERIMENT = {}
        PARAM_SPACE = {"width": 0}
        """, needle="width=0"), id="param-space-model-cannot-build"),
    pytest.param(space("""
        from ray import tune
        EXPERIMENT = {"seed": 0}
        PARAM_SPACE = {"width": tune.choice([-8, 16, 24, 32]), "depth": tune.randint(1, 3)}
        """, needle="with width=-8"), id="param-space-a-choice-no-model-builds-with"),
    pytest.param(space("""
        EXPERIMENT = {}
        def define_by_run(trial):
            if trial.suggest_categorical("optimizer", ["sgd", "adamw"]) == "sgd":
                return {"width": 0}
            trial.suggest_int("width", 8, 16)
        """, needle="width=0"), id="define-by-run-a-branch-no-model-builds-with"),  # a draw (seed 0) misses both
    pytest.param(space("""
        EXPERIMENT = {}
        PARAM_SPACE = {"lr": 0.01}
        def define_by_run(trial):
            return None
        """, needle="both"), id="param-space-and-define-by-run"),
    pytest.param(space("""
        EXPERIMENT = {}
        def define_by_run(trial):
            raise KeyError("oops")
        """, needle="oops"), id="define-by-run-raises"),
    pytest.param(space("""
        EXPERIMENT = {}
        define_by_run = dict
        """, needle="define_by_run is a type"), id="define-by-run-a-builtin-type"),
    pytest.param(space("""
        EXPERIMENT = {"model": "morph_net", "searcher": "morphism", "scheduler": "none",
                      "searcher_options": {"ops": {"widen", "deepen"}}}
        PARAM_SPACE = {"width": 8, "depth": 2}
        """, needle="searcher_options['ops']"), id="morphism-ops-a-set"),
    pytest.param(space("""
        EXPERIMENT = {}
        def define_by_run(trial):
            trial.suggest_float("lr", 1.0, 0.1)
        """, needle="define_by_run"), id="define-by-run-low-above-high"),
    pytest.param(space("""
        EXPERIMENT = {}
        def define_by_run(trial):
            trial.suggest_float("lr", 0.001, 0.002, step=0.5)
            return {"bogus_key": 1}
        """, needle="trial.suggest_float('lr', low=0.001, high=0.002, step=0.5)"),
        id="define-by-run-step-beyond-the-range-no-warning-before-the-line"),
    pytest.param(space("""
        EXPERIMENT = {}
        def define_by_run(trial):
            return [trial.suggest_float("lr", 0.001, 0.1)]
        """, needle="returned list"), id="define-by-run-returns-a-list"),
    # ---- study
    # ---- launch: --warm-start
    pytest.param(launch("--warm-start", "{tmp}/missing", needle="--warm-start: {tmp}/missing: no such directory"),
                 id="warm-start-missing-dir"),
    pytest.param(launch("--warm-start-study", "old", needle="--warm-start-study old: given alone"),
                 id="warm-start-study-alone"),
    pytest.param(launch("--warm-start", "{tmp}/trials/exp", "--space", "{tmp}/spaces/loss.py",
                        needle="its study optimised val/acc (max); rule: the same objectives as this search: "
                               "val/loss (min)",
                        setup=both(recorded_experiment, space_file(
                            "EXPERIMENT = {'dataset': 'digits', 'metric': 'val/loss', 'mode': 'min'}\n"
                            "PARAM_SPACE = {'lr': 0.01}\n", name="loss"))),
                 id="warm-start-other-objective"),
    pytest.param(launch("--warm-start", "sqlite:///{tmp}/trials/exp/optuna.db", "--warm-start-study", "nope",
                        needle="--warm-start: --warm-start-study 'nope': not in", setup=recorded_experiment),
                 id="warm-start-unknown-study"),
    pytest.param(Bad("study", ("{tmp}/missing",), "missing"), id="study-missing-dir"),
    pytest.param(Bad("study", ("{tmp}/afile",), "afile", a_file("afile")), id="study-a-file"),
    pytest.param(Bad("study", ("{tmp}/spaces",), "spaces", a_file("spaces/x.py")), id="study-not-an-experiment"),
    pytest.param(Bad("study", ("{tmp}/trials/old",), "optuna.db", both(
        saved_experiment("{}"), random_bytes("trials/old/optuna.db"))), id="study-garbage-optuna-db"),
    pytest.param(Bad("study", ("--storage", "notaurl"), "notaurl"), id="study-storage-not-a-url"),
    pytest.param(Bad("study", ("--storage", "sqlite:///{tmp}/missing.db"), "missing.db"), id="study-storage-missing-file"),
    pytest.param(Bad("study", (), "no study given"), id="study-nothing-given"),
    pytest.param(Bad("study", ("--storage", "postgresql://me@127.0.0.1:{port}/db"), "127.0.0.1:{port}"),
                 id="study-storage-database-not-listening"),
    pytest.param(Bad("study", ("{tmp}/trials/exp", "--top", "0"), "--top", recorded_experiment), id="study-top-zero"),
    pytest.param(Bad("study", ("{tmp}/trials/exp", "--study", "nope"), "'nope'", recorded_experiment),
                 id="study-unknown-study"),
    pytest.param(Bad("study", ("{tmp}/trials/exp", "--plotlyjs", "web"), "'web'", recorded_experiment),
                 id="study-plotlyjs-unknown"),
    pytest.param(Bad("study", ("{tmp}/trials/exp", "--plots", "{tmp}/trials/exp/plots"), "--plots",
                     recorded_experiment), id="study-plots-inside-the-experiment"),
    pytest.param(Bad("study", ("{tmp}/trials/exp", "--plots", "{tmp}/afile"), "afile",
                     both(recorded_experiment, a_file("afile"))), id="study-plots-a-file"),
    pytest.param(Bad("study", ("{tmp}/trials/exp", "--plots", "/proc/tune_nas_plots"), "--plots /proc/tune_nas_plots",
                     recorded_experiment), id="study-plots-where-no-directory-can-be-made"),
    pytest.param(Bad("study", ("{tmp}/trials/exp", "--bogus"), "--bogus", recorded_experiment), id="study-unknown-flag"),
    pytest.param(Bad("study", ("--storage", "sqlite:///{tmp}/trials/exp/optuna.db", "--fidelity"), "--fidelity",
                     recorded_experiment), id="study-fidelity-without-experiment-dir"),
    pytest.param(Bad("study", ("{tmp}/missing",), "missing", real_process=True), id="study-missing-dir-real"),
    # ---- replay
    pytest.param(Bad("replay", ("{tmp}/missing",), "missing"), id="replay-missing-dir"),
    pytest.param(Bad("replay", ("{tmp}/spaces",), "spaces", a_file("spaces/x.py")), id="replay-not-an-experiment"),
    pytest.param(Bad("replay", ("{tmp}/trials/old",), "curves.csv", both(
        saved_experiment("{}"), random_bytes("trials/old/curves.csv"))), id="replay-garbage-curves"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--grace", "0"), "'0'", recorded_experiment), id="replay-grace-zero"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--grace", "3,5"), "--grace 3,5", recorded_experiment),
                 id="replay-grace-at-or-beyond-max-epochs"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--grace", "1,x"), "'1,x'", recorded_experiment),
                 id="replay-grace-not-numbers"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--grace", ","), "','", recorded_experiment),
                 id="replay-grace-empty-list"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--rf", "1"), "'1'", recorded_experiment), id="replay-rf-one"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--rf", "2,1.0000001"), "'2,1.0000001'", recorded_experiment),
                 id="replay-rf-below-a-searchs"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--rf", "nan"), "'nan'", recorded_experiment), id="replay-rf-nan"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--rf", "2,inf"), "'2,inf'", recorded_experiment),
                 id="replay-rf-infinite"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--thresholds", "1.5"), "1.5", recorded_experiment),
                 id="replay-threshold-above-one"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--workers", "1,2"), "1,2", recorded_experiment),
                 id="replay-two-worker-counts"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--min-epochs", "0"), "'0'", recorded_experiment),
                 id="replay-min-epochs-zero"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--min-epochs", "100000000000000000000"), "--min-epochs 1000",
                     recorded_experiment), id="replay-min-epochs-at-or-beyond-max-epochs"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--trials", "best"), "'best'", recorded_experiment),
                 id="replay-trial-set-unknown"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--out", "{tmp}/afile/replay.json"), "afile",
                     both(recorded_experiment, a_file("afile"))), id="replay-out-below-a-file"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--out", "/proc/tune_nas_replay.json"), "--out /proc/tune_nas_replay",
                     recorded_experiment), id="replay-out-where-no-file-can-be-made"),
    pytest.param(Bad("replay", ("{tmp}/trials/exp", "--out", "{tmp}/trials/exp/curves.csv"), "inside the experiment",
                     recorded_experiment), id="replay-out-over-the-experiments-own-file"),
    # ---- compare
    pytest.param(Bad("compare", ("--models", "vgg", "--datasets", "digits"), "'vgg'"), id="compare-model-unknown"),
    pytest.param(Bad("compare", ("--models", "small_cnn", "--datasets", "digits", "--final-cpus", "100000"),
                     "--final-cpus 100000"), id="compare-final-cpus-beyond-this-machine"),
    pytest.param(Bad("compare", ("--models", "small_cnn,small_cnn", "--datasets", "digits"), "small_cnn,small_cnn"),
                 id="compare-model-twice"),
    pytest.param(Bad("compare", ("--models", "", "--datasets", "digits"), "--models ''"), id="compare-models-empty"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "imagenet"), "'imagenet'"),
                 id="compare-dataset-unknown"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits,,mnist"), "digits,,mnist"),
                 id="compare-dataset-empty-entry"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "imagefolder:{tmp}/nowhere"), "nowhere"),
                 id="compare-imagefolder-missing"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits=imagefolder:{tmp}/x.tar.gz",
                                 "--preset-suffix", "_tiny"), "x.tar.gz", random_bytes("x.tar.gz")),
                 id="compare-archive-of-random-bytes"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits=imagefolder:{tmp}/pictures",
                                 "--preset-suffix", "_tiny"), "a.png", text_images), id="compare-images-that-are-text"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "1st=imagefolder:{tmp}/pictures"), "'1st'",
                     text_images), id="compare-label-not-a-name"),
    pytest.param(Bad("compare", ("--models", "small_cnn", "--datasets", "mnist"), "small_cnn_mnist"),
                 id="compare-no-preset"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits", "--preset-suffix", "/../x"),
                     "'/../x'"), id="compare-preset-suffix-path"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits", "--preset-suffix", "_tiny",
                                 "--name", "a/b"), "'a/b'"), id="compare-name-with-slash"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits", "--preset-suffix", "_tiny",
                                 "--name", ""), "--name: ''"), id="compare-name-empty"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits", "--preset-suffix", "_tiny",
                                 "--trials-dir", "s3://bucket/x"), "s3://bucket/x"), id="compare-trials-dir-uri"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits", "--preset-suffix", "_tiny",
                                 "--trials-dir", "{tmp}/somefile/trials"), "somefile", a_file("somefile")),
                 id="compare-trials-dir-below-a-file"),
    pytest.param(Bad("compare", ("--num-samples", "0"), "--num-samples"), id="compare-num-samples-zero"),
    pytest.param(Bad("compare", ("--final-train-fraction", "0"), "--final-train-fraction"),
                 id="compare-final-fraction-zero"),
    pytest.param(Bad("compare", ("--final-image-size", "-1"), "--final-image-size"), id="compare-final-image-size"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits", "--preset-suffix", "_tiny",
                                 "--final-image-size", "60000"), "--final-image-size 60000"),
                 id="compare-final-image-size-beyond-memory-before-the-search"),
    pytest.param(Bad("compare", ("--models", "superkernel", "--datasets", "digits", "--preset-suffix", "_tiny",
                                 "--final-train-fraction", "0.001"), "--final-train-fraction 0.001"),
                 id="compare-final-fraction-keeping-no-image-of-a-class-before-the-search"),
    pytest.param(Bad("compare", ("--final-epochs", "1000000"), "--final-epochs"), id="compare-final-epochs-beyond-cap"),
    pytest.param(Bad("compare", ("--final-cpus", "0"), "--final-cpus"), id="compare-final-cpus-zero"),
    pytest.param(Bad("compare", ("--seed", "x"), "'x'"), id="compare-seed-not-a-number"),
    pytest.param(Bad("compare", ("--seed", "4294967296"), "4294967296"), id="compare-seed-beyond-32-bits"),
    pytest.param(Bad("compare", ("--max-epochs", "0"), "--max-epochs"), id="compare-max-epochs-zero"),
    pytest.param(Bad("compare", ("--time-budget-s", "-1"), "--time-budget-s"), id="compare-time-budget-negative"),
    pytest.param(Bad("compare", ("--final-epochs", "0"), "--final-epochs"), id="compare-final-epochs-zero"),
    pytest.param(Bad("compare", ("--models", "resnet50", "--datasets", "mnist", "--data-dir", "{tmp}/afile/data"),
                     "afile/data", a_file("afile")), id="compare-data-dir-below-a-file"),
    # ---- ~USER of a user this machine does not have (Path.expanduser raised a bare RuntimeError)
    *[pytest.param(case, id=f"tilde-unknown-user-{name}") for name, case in (
        ("launch-trials-dir", launch("--trials-dir", "~tune_nas_nobody/t", needle="--trials-dir ~tune_nas_nobody/t")),
        ("launch-space", launch("--space", "~tune_nas_nobody/s.py", needle="~tune_nas_nobody/s.py")),
        ("launch-imagefolder", launch("--dataset", "imagefolder:~tune_nas_nobody/d",
                                      needle="imagefolder:~tune_nas_nobody/d")),
        ("launch-arrays", launch("--dataset", "arrays:~tune_nas_nobody/d.npz", needle="arrays:~tune_nas_nobody/d.npz")),
        ("launch-warm-start", launch("--warm-start", "~tune_nas_nobody/old", needle="--warm-start: ~tune_nas_nobody/old")),
        ("launch-storage", launch("--storage", "sqlite:///~tune_nas_nobody/s.db", needle="~tune_nas_nobody/s.db")),
        ("study", Bad("study", ("~tune_nas_nobody/exp",), "~tune_nas_nobody/exp")),
        ("study-storage", Bad("study", ("--storage", "sqlite:///~tune_nas_nobody/s.db"), "~tune_nas_nobody/s.db")),
        ("study-plots", Bad("study", ("{tmp}/trials/exp", "--plots", "~tune_nas_nobody/p"), "--plots ~tune_nas_nobody/p",
                            recorded_experiment)),
        ("compare-imagefolder", Bad("compare", ("--models", "superkernel", "--datasets", "imagefolder:~tune_nas_nobody/d"),
                                    "~tune_nas_nobody/d")),
        ("compare-trials-dir", Bad("compare", ("--models", "superkernel", "--datasets", "digits", "--preset-suffix",
                                               "_tiny", "--trials-dir", "~tune_nas_nobody/t"),
                                   "--trials-dir ~tune_nas_nobody/t")),
    )],
]

# --------------------------------------------------------------------------- running a case


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NotRay:
    """A TCP server on every interface that answers like a web server: what a mistyped
    --address (the dashboard's port, another service) reaches."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _main_of(command: str):
    import importlib

    return importlib.import_module(f"tune_nas.{command}").main


def _in_process(case: Bad, argv: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """``main(argv)`` here; bad input that got through fails the case before any real work."""
    if case.command == "launch":
        from tune_nas import launch as launcher

        real_prepare = launcher.prepare

        def prepare_must_refuse(args):
            real_prepare(args)
            raise AssertionError(f"prepare() accepted {argv}: Ray would start now")

        monkeypatch.setattr(launcher, "prepare", prepare_must_refuse)
    if case.command == "compare":
        from tune_nas import compare

        def no_search(*a, **k):
            raise AssertionError(f"compare accepted {argv}: a search would start now")

        monkeypatch.setattr(compare, "compare_pair", no_search)
    code = 0
    try:
        code = _main_of(case.command)(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _real_process(case: Bad, argv: list[str], cwd: Path, values: dict[str, str]) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "RAY_ADDRESS")}
    env.update({k: v.format(**values) for k, v in case.env.items()}, PYTHONUNBUFFERED="1")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", f"tune_nas.{case.command}", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=90)
    took = time.monotonic() - started
    assert took < 30, f"{argv}: took {took:.0f} s; rule: bad input fails fast"
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def not_ray():
    server = _NotRay()
    yield server
    server.close()


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: Bad, tmp_path, capsys, monkeypatch, not_ray):
    port = str(_free_port())
    values = {"tmp": str(tmp_path), "port": port, "http": str(not_ray.port)}
    argv = [a.format(**values) for a in case.args]
    needle = case.needle.format(**values)
    if case.setup:
        case.setup(tmp_path)
    before = _listing(tmp_path)
    if case.real_process:
        code, out, err = _real_process(case, argv, tmp_path, values)
    else:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        for key, value in case.env.items():
            monkeypatch.setenv(key, value.format(**values))
        monkeypatch.setattr(sys, "dont_write_bytecode", False)  # what a user's Python does
        if case.offline:  # the network call fails; what torchvision does before it (MNIST/raw/) happens
            from urllib.error import URLError

            import torchvision.datasets.mnist

            def offline(*a, **k):
                raise URLError("network is unreachable")

            monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
        code, out, err = _in_process(case, argv, capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == 2, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"tune_nas.{case.command}: error: ") or line.startswith(
        f"python -m tune_nas.{case.command}: error: "), line
    assert needle in line, (needle, line)
    assert ("rule" in line or "invalid choice" in line or "expected one argument" in line
            or "unrecognized arguments" in line), line
    assert out == "", out
    assert _listing(tmp_path) == before, "bad input wrote files"


def test_the_table_covers_every_command_and_flag():
    """At least 60 cases; every flag of every command's parser appears in one."""
    import argparse
    import importlib

    assert len(CASES) >= 60
    used = {(c.values[0].command, a) for c in CASES for a in c.values[0].args if a.startswith("--")}
    for command in ("launch", "study", "replay", "compare"):
        parser = importlib.import_module(f"tune_nas.{command}").build_parser()
        flags = {s for action in parser._actions if not isinstance(action, argparse._HelpAction)
                 for s in action.option_strings if s.startswith("--")}
        untested = flags - {a for c, a in used if c == command} - {"--json"}  # a switch: no bad value
        assert not untested, f"{command}: no bad-input case for {sorted(untested)}"


@pytest.mark.slow
def test_a_live_ray_cluster_passes_the_address_check(tmp_path):
    """The reachability check refuses what is not a Ray cluster, never a cluster: a local Ray's
    GCS address passes it, in well under a second."""
    code = textwrap.dedent("""
        import time
        import ray
        from tune_nas.ray_tune.cluster import check_address
        ray.init(num_cpus=1, include_dashboard=False, configure_logging=False)
        started = time.monotonic()
        check_address(ray.get_runtime_context().gcs_address)
        print(f"passed in {time.monotonic() - started:.2f} s")
        ray.shutdown()
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seconds = float(proc.stdout.split("passed in ")[1].split()[0])
    assert seconds < 1.0
