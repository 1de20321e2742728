"""The wheel: everything ``python -m tune_nas.launch`` needs, presets included, installs from it.

The slow test builds the wheel offline, installs it (no dependencies downloaded) into a fresh
virtual environment that borrows this environment's dependencies through a ``.pth`` file, and
runs searches from a directory outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRESETS_PACKAGE = "tune_nas.search_spaces"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_folder_and_the_presets_are_listed_for_the_wheel():
    """pyproject.toml lists the packages (a find directive cannot add the presets, which live
    outside tune_nas/): a folder of modules missing from the list would be missing from the
    wheel, and only an installed wheel would notice."""
    setuptools = _pyproject()["tool"]["setuptools"]
    folders = {".".join(d.relative_to(REPO).parts) for d in [REPO / "tune_nas", *(REPO / "tune_nas").rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))}
    assert set(setuptools["packages"]) == folders | {PRESETS_PACKAGE}
    assert setuptools["package-dir"] == {PRESETS_PACKAGE: "search_spaces"}
    assert (REPO / "search_spaces" / "__init__.py").is_file()


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _summary(trials_dir: Path) -> dict:
    (summary,) = trials_dir.glob("*/summary.json")
    return json.loads(summary.read_text())


@pytest.mark.slow
def test_launch_runs_from_an_installed_wheel_with_its_presets(tmp_path):
    started = time.monotonic()
    # 1. the wheel, built from a copy of the sources (no build/ or egg-info left in the repository)
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", _pyproject()["project"]["readme"]):
        shutil.copy2(REPO / name, source / name)
    for folder in ("tune_nas", "search_spaces"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--wheel-dir", str(dist), str(source)], cwd=tmp_path)
    (wheel,) = dist.glob("tune_nas-*.whl")

    # 2. a fresh environment holding only the wheel; its dependencies come from this one
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], cwd=tmp_path)
    site_packages = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              cwd=tmp_path).stdout.strip())
    # a plain path line: this environment's site-packages is added to sys.path after the fresh
    # one's, and its .pth files (the editable install of /work/main among them) are not run
    (site_packages / "zz_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    # 3. run from a directory outside the repository, with nothing pointing at it
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    where = _run([str(python), "-c", "import tune_nas\nfrom tune_nas.config.space_file import SPACES_DIR\n"
                  "print(tune_nas.__file__)\nprint(SPACES_DIR)"], cwd=work, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site_packages) for p in where), where
    assert Path(where[1]) == site_packages / "tune_nas" / "search_spaces"
    assert (Path(where[1]) / "superkernel_digits_tiny.py").is_file()

    _run([str(python), "-m", "tune_nas.launch", "--num-samples", "2", "--max-epochs", "1",
          "--name", "from_wheel", "--trials-dir", "trials_default"], cwd=work, env=env)
    summary = _summary(work / "trials_default")
    assert len(summary["trials"]) == 2 and sum(summary["counts"].values()) == 2
    assert Path(summary["space_file"]).is_relative_to(site_packages)  # the default preset, from the wheel

    _run([str(python), "-m", "tune_nas.launch", "--space", "superkernel_digits_tiny", "--num-samples", "1",
          "--max-epochs", "1", "--name", "preset_from_wheel", "--trials-dir", "trials_preset"], cwd=work, env=env)
    summary = _summary(work / "trials_preset")
    assert len(summary["trials"]) == 1
    assert Path(summary["space_file"]) == site_packages / "tune_nas" / "search_spaces" / "superkernel_digits_tiny.py"
    assert time.monotonic() - started < 240, f"took {time.monotonic() - started:.0f} s"
