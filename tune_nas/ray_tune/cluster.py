"""Starting Ray and checking the cluster can run the requested trials: resources (with what an
autoscaler may add), a trials directory every node sees, how many trials fit at once."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from tune_nas.record.formatting import first_line as _first_line


class ResourceError(ValueError):
    """The cluster cannot run the requested trials (e.g. GPUs asked for, none present)."""


class AddressError(ValueError):
    """An ``--address`` where no Ray cluster answers; the message is the one line a user sees."""


#: Seconds ``check_address`` waits for a TCP connection, and for the GCS's answer after that.
CONNECT_TIMEOUT_S = 5.0
#: Seconds Ray's GCS client spends before it gives up on a server that accepts connections but
#: is no GCS: 5 to connect, 5 to its pubsub (Ray's ``gcs_rpc_server_connect_timeout_s``).
GCS_CLIENT_GIVES_UP_S = 10.0
#: The port of a Ray Client server (``ray://host``) when the address names none.
RAY_CLIENT_PORT = 10001
_ADDRESS_RULE = ("rule: host:port of a running cluster's head (what `ray start --head` prints; GCS "
                 "port 6379 by default), ray://host[:port] or auto")


def check_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S, what: str | None = None) -> None:
    """Raise :class:`AddressError` unless a Ray cluster answers at ``address``, in seconds.

    ``ray.init`` retries an address where nothing (or something else) listens for minutes
    before it gives up; this asks first, as ``ray.init`` would resolve the address (``auto``:
    ``RAY_ADDRESS`` or the cluster this node belongs to; ``localhost`` as this node's IP):
    a TCP connection within ``timeout_s``, then, for a GCS address, the cluster's id from
    its GCS (a live one answers in milliseconds; a web server or another service on that port
    is refused once Ray's client gives up, after ``GCS_CLIENT_GIVES_UP_S + timeout_s``).
    ``what`` names the address in the message (default ``--address ADDRESS``). Nothing is
    written and nothing of Ray is started.
    """
    from ray._private.services import canonicalize_bootstrap_address

    text = address.strip()
    env = os.environ.get("RAY_ADDRESS", "")
    label = what or (f"--address {address} (RAY_ADDRESS={env})" if text == "auto" and env
                     else f"--address {address}")
    if text == "local":
        return  # ray.init starts a cluster on this node
    if text.startswith("ray://"):
        host, port = _host_and_port(label, text[len("ray://"):], RAY_CLIENT_PORT)
        _connect(label, host, port, timeout_s)
        return
    if text != "auto":
        _host_and_port(label, text, None)  # its form, before Ray reads it
    try:
        resolved = canonicalize_bootstrap_address(text)
    except ConnectionError:
        raise AddressError(f"{label}: no running Ray cluster found on this node; {_ADDRESS_RULE}") from None
    except ValueError as exc:
        raise AddressError(f"{label}: {_first_line(exc)}; {_ADDRESS_RULE}") from None
    if resolved is None:
        return
    host, port = _host_and_port(label, resolved, None)
    _connect(label, host, port, timeout_s)
    _ask_gcs(label, resolved, timeout_s)


def _host_and_port(label: str, text: str, default_port: int | None) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or "/" in port:
        host, port = text, ""
    host = host.strip("[]")
    if not port and default_port is not None:
        return host, default_port
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AddressError(f"{label}: no host and port (1-65535) in {text!r}; {_ADDRESS_RULE}")
    return host, int(port)


def _connect(label: str, host: str, port: int, timeout_s: float) -> None:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise AddressError(f"{label}: cannot connect to {host}:{port} within {timeout_s:g} s "
                           f"({reason}); {_ADDRESS_RULE}") from None


def _ask_gcs(label: str, gcs_address: str, timeout_s: float) -> None:
    """Ask the GCS at ``gcs_address`` for its cluster id, with Ray's own client and a timeout.

    Ray's C++ client logs its failed attempts on file descriptor 2; they are kept off the
    terminal (the one line of the error says it all). Where this Ray has no standalone
    client, the TCP connection was all that could be checked.
    """
    import threading

    from ray import _raylet

    client = getattr(getattr(_raylet, "InnerGcsClient", None), "standalone", None)
    if client is None:
        return
    outcome: dict[str, BaseException | None] = {}

    def ask() -> None:
        try:
            client(gcs_address, None, int(timeout_s * 1000))
            outcome["error"] = None
        except Exception as exc:  # a refused or failed RPC: the reason goes into the line
            outcome["error"] = exc

    with _stderr_to_devnull():
        thread = threading.Thread(target=ask, name="ask-ray-gcs", daemon=True)
        thread.start()
        waited = GCS_CLIENT_GIVES_UP_S + timeout_s + 2  # so that its last log line is silenced too
        thread.join(waited)
    if "error" not in outcome:
        raise AddressError(f"{label}: no answer from a Ray GCS at {gcs_address} within "
                           f"{waited:g} s; {_ADDRESS_RULE}")
    if outcome["error"] is not None:
        raise AddressError(f"{label}: {gcs_address} answers, but not as a Ray cluster's GCS "
                           f"({_first_line(outcome['error'])}); {_ADDRESS_RULE}")


@contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """File descriptor 2 points at /dev/null for the block (what C++ libraries log goes there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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
    workers = int(getattr(spec, "workers_per_trial", 1))
    if workers > 1 and not limits:  # every worker of a trial on one node: the largest must hold them
        node_cpus, node_gpus = largest_node()  # (an autoscaler may still add a larger one)
        for what, per_worker, have in (("CPU", spec.cpus_per_trial, node_cpus), ("GPU", spec.gpus_per_trial, node_gpus)):
            if per_worker > 0 and per_worker * workers > have:
                raise ResourceError(
                    f"--workers-per-trial {workers}: {workers} x {per_worker:g} {what}(s) per trial, but the "
                    f"Ray cluster's largest node has {have:g}; rule: a data-parallel trial runs on one node: "
                    f"workers_per_trial x {what.lower()}s_per_trial at most one node's {what}s")
    return total


def largest_node() -> tuple[float, float]:
    """(CPUs, GPUs) of the alive node with the most of them (each counted on its own)."""
    alive = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    return (max((r.get("CPU", 0.0) for r in alive), default=0.0),
            max((r.get("GPU", 0.0) for r in alive), default=0.0))


def concurrent_slots(spec) -> int:
    """How many trials the cluster's resources (and max_concurrent_trials) let run at once."""
    total = ray.cluster_resources() if ray.is_initialized() else {}
    workers = int(getattr(spec, "workers_per_trial", 1))
    slots = int(total.get("CPU", os.cpu_count() or 1) // (spec.cpus_per_trial * workers))
    if spec.gpus_per_trial > 0:
        slots = min(slots, int(total.get("GPU", 0) // (spec.gpus_per_trial * workers)))
    if spec.max_concurrent_trials:
        slots = min(slots, spec.max_concurrent_trials)
    return max(1, slots)


def shutdown() -> None:
    """Stop Ray. Garbage still holding Ray object references (the Tuner's trainable and its
    put data sit in reference cycles) is collected first, while Ray runs: collected later, in
    whichever thread the cyclic collector happens to run (the end-of-search report runs while
    Ray stops), an ObjectRef's finaliser reaches the stopped core worker, which ends the
    whole process with exit code 1 ("The core worker has already been shutdown"; seen once
    in 8 searches, before the fidelity files were written)."""
    if ray.is_initialized():
        gc.collect()
        ray.shutdown()


