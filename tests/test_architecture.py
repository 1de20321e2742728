"""The layout's rules, checked on the source: Ray is imported by one package only; policies
(searchers, schedulers) are Ray-free; the public API is what ``tune_nas.__all__`` says."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import run_python

import tune_nas

PACKAGE = Path(tune_nas.__file__).resolve().parent
RAY_PACKAGE = PACKAGE / "ray_tune"


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (at any depth)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_ray_tune_package_imports_ray():
    offenders = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if not path.is_relative_to(RAY_PACKAGE)
        and any(name == "ray" or name.startswith("ray.") for name in _imported_modules(path)))
    assert offenders == [], f"modules outside tune_nas/ray_tune/ that import ray: {offenders}"


def test_the_check_itself_sees_ray_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from ray.tune.search.sample import Domain\n    return Domain\n")
    assert "ray.tune.search.sample" in _imported_modules(sample)


def test_policies_load_without_ray_or_torch():
    """Searchers, scheduler policies, objectives and the layout are pure: importing them in a
    fresh interpreter loads neither Ray nor torch."""
    code = ("import sys\n"
            "import tune_nas.objectives, tune_nas.states, tune_nas.layout\n"
            "import tune_nas.search.tpe, tune_nas.search.random\n"
            "import tune_nas.schedulers\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch', 'lightning'}))\n")
    assert run_python(code) == "[]"


def test_public_api_names_resolve_lazily():
    code = ("import sys, tune_nas\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch', 'optuna'})\n"
            "missing = [n for n in tune_nas.__all__ if getattr(tune_nas, n, None) is None]\n"
            "print(heavy, missing)\n")
    assert run_python(code) == "[] []"  # importing the package loads nothing heavy
