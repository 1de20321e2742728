"""User plugins: Python files a space file names (``EXPERIMENT["plugins"]``) to register
their own models (``@register_model``) before the experiment is validated and in every trial.

A plugin is imported once per process, in the driver and in each Ray worker, by its absolute
path; importing it again is a no-op.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path


class PluginError(ValueError):
    """A plugin file that cannot be imported; the message names it and the reason."""


def import_plugins(paths: Iterable[str | Path]) -> None:
    for path in paths:
        path = Path(path).resolve()
        name = f"tune_nas_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            continue
        if not path.is_file():
            raise PluginError(f"plugin {path}: no such file; rule: plugins are paths to .py "
                              "files (relative to the space file)")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise PluginError(f"plugin {path}: importing it raised {type(exc).__name__}: {exc}; "
                              "rule: a plugin must import cleanly") from None
