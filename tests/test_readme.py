"""The README's commands are the ones CI runs and they name real things."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO / "README.md").read_text()
    test_cmd = next(line for block in _bash_blocks(readme) for line in block.splitlines()
                    if "pytest" in line and "pip install" in line)
    assert test_cmd in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_run_command_installs_and_launches():
    readme = (REPO / "README.md").read_text()
    lines = [line for block in _bash_blocks(readme) for line in block.splitlines()]
    assert any("pip install -e ." in ln and ln.endswith("python -m tune_nas.launch") for ln in lines)


def test_presets_named_in_readme_exist():
    readme = (REPO / "README.md").read_text()
    for name in re.findall(r"`search_spaces/(\w+)\.py`", readme):
        assert (REPO / "search_spaces" / f"{name}.py").is_file(), name
