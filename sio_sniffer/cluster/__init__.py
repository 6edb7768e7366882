"""The cluster layer: the Redis I/O of ``--cluster`` (see :mod:`sio_sniffer.cluster.link`)."""

from sio_sniffer.cluster.link import ClusterConfig, ClusterError, ClusterLink

__all__ = ["ClusterConfig", "ClusterError", "ClusterLink"]
