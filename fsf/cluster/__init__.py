"""Running sweeps on Ray clusters.

The cluster configurations themselves ship in `cluster/` at the repository root (a Ray
cluster launcher YAML, KubeRay manifests, and cluster/README.md). This package holds what
code needs: `LocalCluster`, a Ray cluster of several nodes on one machine (separate
`ray start` processes), used by the tests and by `cluster/local/` to try multi-node sweeps
and node failures without a cloud account.
"""

from fsf.cluster.local import LocalCluster, NodeSpec, free_port

__all__ = ["LocalCluster", "NodeSpec", "free_port"]
