"""A two-node Ray cluster on this machine for a fault test, driven over stdin/stdout.

Run in its own process (Ray's state never enters the test process)::

    python two_node_cluster.py

prints one JSON line ``{"address": ..., "head_node_id": ..., "worker_node_id": ...}`` once
both nodes (1 CPU each) are up, then reads commands from stdin, one per line:

* ``remove`` — remove the worker node (kill its raylet and its workers), then print
  ``removed``;
* end of input (or ``stop``) — shut the whole cluster down and exit.

Both nodes listen on the address Ray itself picks for this machine (as ``ray start`` does):
a driver given ``--address`` rewrites a loopback address to that one, so a cluster bound to
127.0.0.1 alone would be unreachable for it. Ray writes under ``$RAY_TMPDIR`` (the test
gives it a private one), so the cluster's address file never redirects anybody else's
``ray.init()``.
"""

from __future__ import annotations

import json
import sys

from ray.cluster_utils import Cluster
from ray.util import get_node_ip_address


def main() -> int:
    node = {"num_cpus": 1, "node_ip_address": get_node_ip_address(), "object_store_memory": 100 << 20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        worker = cluster.add_node(**node)
        cluster.wait_for_nodes()
        print(json.dumps({"address": cluster.address, "head_node_id": cluster.head_node.node_id,
                          "worker_node_id": worker.node_id}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "remove":
                cluster.remove_node(worker, allow_graceful=False)
                print("removed", flush=True)
            elif command == "stop":
                break
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
