# Ray's node commands, as Ray's documentation describes for nodes started by hand: ray start --head on one
# node and ray start --address=<head>:<port> on the others, each with --block so that it stays in the
# foreground of its task and drains and stops its node when that task is signalled.
#
# Sourced by cluster/slurm.sbatch; tests/orchestrator/test_cluster.py starts its two-node test cluster with
# the same functions. Token authentication is not on by itself: Ray 2.60's ray start --head turns it on only
# when RAY_AUTH_MODE=token is set (or a token file already exists), and without it anyone who reaches the
# head's port can run code on every node. So both functions refuse to start a node unless RAY_AUTH_MODE=token
# and the cluster's one token (RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH naming a file of mode 0600) are set in
# the environment, the same on every node; the sweep's driver and every other Ray client need them too.
# cluster/slurm.sbatch makes a token per job. By hand, on every node:
#
#   export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=~/.decaylab/ray-token   # the same token file everywhere
#   source cluster/ray-nodes.sh
#   ray_head 10.0.0.10 6379 16 4             # on the head; on each other node:
#   ray_worker 10.0.0.11 10.0.0.10:6379 16 4

# ray_head IP PORT CPUS GPUS
ray_head() {
    [ "${RAY_AUTH_MODE:-}" = token ] && [ -n "${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-}" ] || {
        echo "ray_head: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH (the cluster's token)" >&2
        return 2
    }
    exec ray start --head --block --node-ip-address="$1" --port="$2" --num-cpus="$3" --num-gpus="$4" \
        --include-dashboard=false --disable-usage-stats
}

# ray_worker IP HEAD_ADDRESS CPUS GPUS
ray_worker() {
    [ "${RAY_AUTH_MODE:-}" = token ] && [ -n "${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-}" ] || {
        echo "ray_worker: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH (the cluster's token)" >&2
        return 2
    }
    exec ray start --block --node-ip-address="$1" --address="$2" --num-cpus="$3" --num-gpus="$4" \
        --disable-usage-stats
}
