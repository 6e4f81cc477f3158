"""The Ray cluster a sweep runs on: a local one started for the sweep, or one joined by address.

Every module that imports `ray` lives in this package (`tests/orchestrator/test_layers.py` checks it).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from orchestrator.errors import RunError, UserError
from orchestrator.ray import environment

# Set before Ray starts so that a local cluster's workers inherit them.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# decaylab stops a sweep on SIGINT itself (orchestrator.signals); Tune's handler would end the
# running trials as if they had completed
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Tune's experiment snapshot pickles every trial and is never read back (resume starts from the trials'
# own records): taken every 5 minutes and at the end rather than continuously
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "300")
# the study says which loggers run (`orchestrator.ray.trackers`); Tune adds none of its own
os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"

import ray

# passed to the workers of a cluster joined by address (they do not inherit this process's environment)
RAY_ENV_KEYS = ("RAY_CHDIR_TO_TRIAL_DIR",)
ADDRESS_TIMEOUT_S = 10.0

_opened = False  # whether `connect` started or joined the Ray session (not one its caller had opened)


def connect(address: str | None, num_cpus: int | None = None, dashboard: bool = False) -> dict[str, float]:
    """Join the cluster at `address` (or RAY_ADDRESS), else start a local one. Returns its resources."""
    # Tune logs every trial error with its traceback; decaylab prints one line per failure
    # and keeps the traceback in the trial's error.txt
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    global _opened
    if not ray.is_initialized():
        kwargs = init_kwargs(address, num_cpus, dashboard, os.environ)
        if kwargs["address"] == "local" and dashboard:
            check_dashboard_installed()
        ray.init(**kwargs)
        _opened = True
    return ray.cluster_resources()


def init_kwargs(address: str | None, num_cpus: int | None, dashboard: bool, environ) -> dict:
    """The arguments of `ray.init` (a pure function, so the safety defaults can be tested)."""
    kwargs = {"include_dashboard": dashboard, "log_to_driver": False, "logging_level": logging.WARNING,
              # Ray starts its API server process even without the dashboard: bound to this machine
              "dashboard_host": "127.0.0.1"}
    address = address or environ.get("RAY_ADDRESS")
    if address:
        return {"address": address, **kwargs,
                "runtime_env": {"env_vars": {k: environ[k] for k in RAY_ENV_KEYS if k in environ}}}
    import torch

    # "local": always a fresh cluster of this process, never one a `ray start` left running
    return {"address": "local", "num_cpus": num_cpus, "num_gpus": torch.cuda.device_count(), **kwargs}


def check_dashboard_installed() -> None:
    """`--dashboard` needs the dashboard's packages (ray[default]); without them `ray.init` fails with a
    bare exception after starting half a cluster."""
    try:  # what Ray itself imports to decide whether it can start the dashboard
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError:
        raise UserError("--dashboard", "Ray's dashboard is not installed here (it comes with ray[default])",
                        "pip install 'ray[default]' into this environment, or run without --dashboard") from None


def check_address(address: str | None) -> None:
    """Fail at once, before anything is written, when no Ray cluster answers at a `host:port` address:
    Ray itself keeps retrying the connection for minutes. `auto` and `local` are Ray's to resolve."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address == "auto":
        check_auto_is_ours()
    if not address or address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    _, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"--address {address}", "not a Ray address",
                        "give host:port of the head node (e.g. 10.0.0.5:6379), `auto`, or ray://host:10001")
    if err := connection_error(target, ADDRESS_TIMEOUT_S):
        raise RunError(f"--address {address}", f"no Ray cluster answers there ({err.strerror or err})",
                       f"check the address with `ray status --address {target}`, or start the head node "
                       "with `ray start --head`")


def check_auto_is_ours() -> None:
    """`--address auto` joins the cluster Ray finds on this machine; on a shared login node that can be another
    user's, which would then receive this driver's code and token: refused unless it is this user's own."""
    found = Path(os.environ.get("RAY_TMPDIR") or "/tmp") / "ray" / "ray_current_cluster"
    try:
        owner = found.stat().st_uid
    except OSError:
        return  # none found: Ray says so itself
    if owner != os.getuid():
        raise UserError("--address auto", f"the Ray cluster found on this machine ({found}) was started by another "
                        f"user (uid {owner})", "give your own cluster's address (host:port), or leave --address out "
                        "for a local cluster of your own")


def connection_error(host_port: str, timeout: float) -> OSError | None:
    """Why a TCP connection to `host:port` fails, or None when something accepts it."""
    host, _, port = host_port.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        return err
    return None


def node_resources() -> list[dict[str, float]]:
    """The resources of each live node (a trial must fit on one)."""
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def gcs_address() -> str:
    """`host:port` of the cluster's GCS (Ray's head process)."""
    return ray.get_runtime_context().gcs_address


def shutdown() -> None:
    """End the Ray session, whoever opened it (and remove a local cluster's own temporary directory)."""
    global _opened
    if ray.is_initialized():
        ray.shutdown()
    _opened = False
    environment.remove_own_tmp()


def disconnect() -> None:
    """Leave the Ray session `connect` opened (a local cluster: stop it)."""
    if _opened:
        shutdown()
