"""Starting Ray and checking the cluster can run the requested trials: resources (with what an
autoscaler may add), a trials directory every node sees, how many trials fit at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import ray


class ResourceError(ValueError):
    """The cluster cannot run the requested trials (e.g. GPUs asked for, none present)."""


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Start (or connect to) Ray quietly: no dashboard, worker logs kept off the terminal."""
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                  logging_level=logging.ERROR, configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)


SHARED_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre",
                      "beegfs", "gpfs", "9p", "virtiofs", "efs", "fuse")


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; "" if unknown)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            mount = parts[1].replace("\\040", " ")
            if (str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                best, kind = mount, parts[2]
    return kind


def check_trials_dir_is_shared(trials_dir: Path) -> None:
    """On a cluster of several nodes, trial results must land on storage every node sees."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    hosts = {(n.get("NodeManagerHostname"), n.get("NodeManagerAddress")) for n in alive}
    if len(hosts) <= 1:
        return  # one node, or several on this one machine: all see the same directory
    kind = filesystem_type(trials_dir)
    if not kind.startswith(SHARED_FILESYSTEMS):
        raise ResourceError(
            f"--trials-dir {trials_dir}: a node-local {kind or 'unknown'} filesystem, but the Ray "
            f"cluster has {len(alive)} nodes; rule: on a multi-node cluster use a directory "
            "every node mounts (NFS and the like; Ray >= 2.7 does not copy trial results to "
            "the head)")


def autoscaling_limits() -> dict[str, float]:
    """The most of each resource the cluster's autoscaler may bring up, as it reports its node
    groups to Ray (autoscaler v2, KubeRay); empty where none is reported (a fixed cluster, a
    local Ray, the v1 autoscaler). Read through the call Ray Train uses for the same check."""
    from ray._private import state

    read = getattr(state.state, "get_max_resources_from_cluster_config", None)
    return {k: float(v) for k, v in ((read() if read else None) or {}).items()}


def check_resources(spec) -> dict[str, float]:
    """Refuse trials the cluster can never place (more CPUs/GPUs per trial than any total,
    counting what its autoscaler may still add: GPU workers that are not up yet)."""
    total = ray.cluster_resources()
    limits = autoscaling_limits()
    cpus = max(total.get("CPU", 0.0), limits.get("CPU", 0.0))
    gpus = max(total.get("GPU", 0.0), limits.get("GPU", 0.0))
    scaling = " (counting what its autoscaler may add)" if limits else ""
    if spec.gpus_per_trial > 0 and gpus < spec.gpus_per_trial:
        raise ResourceError(f"--gpus-per-trial {spec.gpus_per_trial}: the Ray cluster has "
                            f"{gpus:g} GPU(s){scaling}; rule: at most the cluster's GPUs (0 for CPU)")
    if spec.cpus_per_trial > cpus:
        raise ResourceError(f"--cpus-per-trial {spec.cpus_per_trial}: the Ray cluster has "
                            f"{cpus:g} CPU(s){scaling}; rule: at most the cluster's CPUs")
    return total


def concurrent_slots(spec) -> int:
    """How many trials the cluster's resources (and max_concurrent_trials) let run at once."""
    total = ray.cluster_resources() if ray.is_initialized() else {}
    slots = int(total.get("CPU", os.cpu_count() or 1) // spec.cpus_per_trial)
    if spec.gpus_per_trial > 0:
        slots = min(slots, int(total.get("GPU", 0) // spec.gpus_per_trial))
    if spec.max_concurrent_trials:
        slots = min(slots, spec.max_concurrent_trials)
    return max(1, slots)


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


