"""Everything that uses Ray: the cluster, the Ray Tune executor and the trackers' logger callbacks."""
