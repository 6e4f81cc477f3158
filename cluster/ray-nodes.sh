# Ray's node commands, as Ray's documentation describes for nodes started by hand: `ray start --head`
# on one node, `ray start --address=<head>:<port>` on the others, each with --block so that it stays in
# the foreground of its task and drains and stops its node when that task is signalled.
#
# Sourced by cluster/slurm.sbatch; tests/test_cluster.py starts its two-node test cluster with the same
# functions. With token authentication (Ray's default for `ray start --head`), every process of the
# cluster needs RAY_AUTH_MODE=token and the token (RAY_AUTH_TOKEN, or ~/.ray/auth_token).

# ray_head IP PORT CPUS GPUS
ray_head() {
    exec ray start --head --block --node-ip-address="$1" --port="$2" --num-cpus="$3" --num-gpus="$4" \
        --include-dashboard=false --disable-usage-stats
}

# ray_worker IP HEAD_ADDRESS CPUS GPUS
ray_worker() {
    exec ray start --block --node-ip-address="$1" --address="$2" --num-cpus="$3" --num-gpus="$4" \
        --disable-usage-stats
}
