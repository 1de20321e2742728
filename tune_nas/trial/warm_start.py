"""A trial that starts from its parent's trained weights (network morphism, Net2Net).

The ``morphism`` searcher (:mod:`tune_nas.search.morphism`) gives a child trial, besides its
``arch``, the reserved config key ``warm_start``::

    {"parent": 7,                      # the parent's trial number
     "parent_arch": "{...}",           # the parent's architecture (what it was built from)
     "checkpoint": "/.../checkpoint_000008",   # the parent's last checkpoint directory
     "morphs": [{"op": "widen", ...}], # the function-preserving transforms, in order
     "epochs": 3}                      # the child's own epoch budget

The child is built as the parent was, loads the parent's weights from its checkpoint (a
Lightning checkpoint of the trial's module), applies the morphs (each preserves the function
the network computes: :func:`tune_nas.models.morph_net.apply_morphs`) and must arrive exactly
at ``arch``. Before its first epoch it measures its validation accuracy
(``warm_start_val_acc``): equal to the parent's final one when the transforms preserved the
function and the weights were loaded, which is checked on every child. A checkpoint on object
storage (an ``s3://``-style trials directory) is read through ``pyarrow.fs``. A child resumed
from its own checkpoint does not read its parent's again (that checkpoint holds its weights and
its ``warm_start_val_acc``: :data:`tune_nas.trial.run.WARM_START_CKPT_KEY`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import torch

from tune_nas.models import create_model
from tune_nas.trial.run import CHECKPOINT_FILE


class WarmStartError(RuntimeError):
    """A child cannot start from its parent: the checkpoint is missing or the morphs do not lead
    to the child's architecture. The message names the parent and the reason."""


def _canonical(arch: Any) -> str:
    """An architecture (JSON string or dict) as compact sorted JSON, for comparison."""
    data = json.loads(arch) if isinstance(arch, str) else arch
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _load(path: str, named: str) -> dict[str, Any]:
    """``torch.load`` of a checkpoint file (weights only); WarmStartError in one line naming
    ``named`` when it cannot be read (truncated, corrupt, not a checkpoint)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")[:200]
        raise WarmStartError(f"parent checkpoint {named}: cannot be read ({type(exc).__name__}: {reason})") from None


def read_checkpoint(location: str) -> dict[str, Any]:
    """The Lightning checkpoint in the directory ``location`` (a path or a pyarrow-readable URI);
    WarmStartError (one line naming the file) when it is missing or cannot be read."""
    if "://" not in location:
        path = os.path.join(location, CHECKPOINT_FILE)
        if not os.path.isfile(path):
            raise WarmStartError(f"parent checkpoint {path}: no such file (was the parent's trial directory moved?)")
        return _load(path, path)
    import pyarrow.fs

    uri = f"{location.rstrip('/')}/{CHECKPOINT_FILE}"
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, CHECKPOINT_FILE)
        try:
            filesystem, root = pyarrow.fs.FileSystem.from_uri(location)
            pyarrow.fs.copy_files(f"{root}/{CHECKPOINT_FILE}", local, source_filesystem=filesystem)
        except (OSError, ValueError) as exc:  # pyarrow: missing object, no access, unknown scheme
            reason = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")[:200]
            raise WarmStartError(f"parent checkpoint {uri}: cannot be copied ({type(exc).__name__}: {reason})") from None
        return _load(local, uri)


def model_state(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The network's weights in a checkpoint of the trial's module (keys ``model.*``, also
    ``model._orig_mod.*`` when the trial compiled its model)."""
    state = {}
    for key, value in checkpoint["state_dict"].items():
        if key.startswith("model."):
            state[key[len("model."):].replace("_orig_mod.", "", 1)] = value
    return state


def warm_started_model(model_name: str, num_classes: int, in_channels: int, image_size: int,
                       arch: Mapping[str, Any], warm: Mapping[str, Any]) -> torch.nn.Module:
    """The child network: the parent's architecture with the parent's trained weights, morphed
    into ``arch`` (the child's architecture arguments) by ``warm["morphs"]``."""
    from tune_nas.models.morph_net import apply_morphs

    parent_args = {**arch, "arch": warm["parent_arch"]}
    parent = create_model(model_name, num_classes, in_channels, image_size, **parent_args)
    try:
        checkpoint = read_checkpoint(str(warm["checkpoint"]))
    except WarmStartError as exc:  # missing or unreadable: say whose it is (not "does not fit", below)
        raise WarmStartError(f"parent trial {warm.get('parent')}: {exc}") from None
    try:
        parent.load_state_dict(model_state(checkpoint))
    except (KeyError, RuntimeError) as exc:
        raise WarmStartError(f"parent trial {warm.get('parent')}: its checkpoint does not fit its architecture: "
                             f"{str(exc).splitlines()[0]}") from None
    child = apply_morphs(parent, list(warm.get("morphs", [])))
    if _canonical(child.arch_string()) != _canonical(arch["arch"]):
        raise WarmStartError(f"parent trial {warm.get('parent')}: its morphs {warm.get('morphs')} lead to "
                             f"{child.arch_string()}, not the child's arch {arch['arch']}")
    return child
