"""Checks of a study beyond each key's own type: rules across fields, and that a valid study can
also run (everything that would fail, hang or lie in every trial and is knowable before anything
starts). `validate` and `sweep` run them; each failure names the file,
the key, the reason and a fix (`UserError`, exit status 2).

Split sizes are derived from the dataset's published size (image_folder: by counting its files),
with the same per-class rounding as `trials.data.split_indices`, so no data is loaded.
"""

from __future__ import annotations

import importlib.util
import math
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.errors import UserError
from orchestrator.study.errors import did_you_mean
from orchestrator.study.plan import confirmation_seeds, expand_grid, grid_size, planned_trials, settings_count
from orchestrator.study.schema import Study, TrackingConfig
from trials import arms
from trials.config import MAX_SEED, DataConfig, TrialConfig
from trials.datasets import DATASETS, fetch_command, image_folder_sizes

MAX_GRID_TRIALS = 10_000  # beyond this a grid is almost always a typo (a list where a range was meant)
# never, even with --allow-large-grid or read back from a run directory: the records of a million trials
# are a million directories, and a study's trials are built in memory to plan and check them
MAX_TRIALS = 1_000_000
NETWORK_TIMEOUT_S = 3.0
# the packages an Optuna sampler imports when it first samples (Optuna 5)
SAMPLER_PACKAGES = {"gp": ("torch", "scipy"), "cmaes": ("cmaes",)}


# --------------------------------------------------------------------------- data splits


def dataset_sizes(data: DataConfig, check_files: bool) -> tuple[int, int | None, int] | None:
    """(training pool, official test size or None, classes), or None when unknown without the files."""
    info = DATASETS[data.dataset][0]
    if info.train_size is not None:
        return info.train_size, info.test_size, info.classes
    if not check_files or data.root is None or not (Path(data.root).expanduser() / "train").is_dir():
        return None
    train, test, classes = image_folder_sizes(data.root)
    return train, test, classes


def check_splits(data: DataConfig, where: str, check_files: bool) -> None:
    """Refuse splits that leave no training or validation examples, or a subset that cannot hold
    one example per class (every trial would fail or select on nothing)."""
    sizes = dataset_sizes(data, check_files)
    if sizes is None:
        return
    total, test_size, classes = sizes
    classes = max(classes, 1)
    what = f"{data.dataset} has {total:,} training examples in {classes} classes"
    per_class = total / classes
    if test_size is None:
        held = round(data.test_fraction * per_class)
        if held >= per_class:
            raise UserError(where, f"data.test_fraction: {data.test_fraction:g} holds out every example for the "
                            f"test split, leaving none to train on ({what})",
                            "use a fraction below 1, e.g. 0.2 (the default)")
        per_class -= held
    val = round(data.val_fraction * per_class)
    train = round((per_class - val) * classes)
    if val == 0:
        raise UserError(where, f"data.val_fraction: {data.val_fraction:g} leaves the validation split empty "
                        f"(about {per_class:.0f} examples per class; {what}); every trial selects its best epoch "
                        "on the validation split", "use e.g. 0.1 (the default)")
    if train < classes:
        raise UserError(where, f"data.val_fraction: {data.val_fraction:g} leaves no training examples ({what})",
                        "use e.g. 0.1 (the default)")
    if data.subset is not None and data.subset < classes:
        raise UserError(where, f"data.subset: {data.subset} is fewer than the {classes} classes of {data.dataset}",
                        f"give at least {classes} (one example per class), or null for all")
    if data.subset is not None and data.subset > train:
        raise UserError(where, f"data.subset: {data.subset:,} is more than the about {train:,} training examples left "
                        f"after the validation{' and test' if test_size is None else ''} split ({what})",
                        f"give at most {train:,}, or null for all")


# ------------------------------------------------------------------------------- downloads


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=NETWORK_TIMEOUT_S).close()
        return True
    except OSError:
        return False


# where torchvision downloads each dataset from (host, port), probed once before a sweep
DOWNLOAD_HOSTS = {"mnist": ("ossci-datasets.s3.amazonaws.com", 443),
                  "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
                  "cifar10": ("www.cs.toronto.edu", 443), "cifar100": ("www.cs.toronto.edu", 443),
                  "svhn": ("ufldl.stanford.edu", 80), "flowers102": ("www.robots.ox.ac.uk", 443)}


def check_download(data: DataConfig, where: str) -> None:
    """`data.download: true` for files that are not there yet needs the dataset's server: without a
    network every trial would fail at its first line."""
    info = DATASETS[data.dataset][0]
    if not data.download or data.root is None or not info.torchvision:
        return
    root = Path(data.root).expanduser()
    if (root / info.folder).exists():
        return  # already downloaded: torchvision checks the files and downloads nothing
    host, port = DOWNLOAD_HOSTS[data.dataset]
    if not reachable(host, port):
        raise UserError(where, f"data.download: {data.dataset} is not under {root} and its server ({host}) "
                        "cannot be reached from this machine (no network?)",
                        f"on a machine with internet run `{fetch_command(info, str(root))}` and copy "
                        f"{root} here, then set data.download: false")


# ------------------------------------------------------------------------------- optuna


def check_optuna(study: Study, where: str) -> None:
    s = study.search
    if s.seeds_per_trial is not None and s.seeds_per_trial > len(study.seeds):
        raise UserError(where, f"search.seeds_per_trial: {s.seeds_per_trial} is more than the {len(study.seeds)} "
                        f"seeds of the study", f"give at most {len(study.seeds)}, or list more `seeds`")
    missing = [p for p in SAMPLER_PACKAGES.get(s.sampler, ()) if importlib.util.find_spec(p) is None]
    if missing:
        raise UserError(where, f"search.sampler: {s.sampler} needs the package(s) {', '.join(missing)}, "
                        "which are not installed", f"pip install {' '.join(missing)}, or use sampler: tpe")
    if s.storage and Path(s.storage).expanduser().is_absolute():  # a relative journal lies in the run directory
        parent = Path(s.storage).expanduser().resolve().parent
        if not parent.is_dir():
            raise UserError(where, f"search.storage: the directory {parent} does not exist",
                            f"create it (mkdir -p {parent}) or give a journal file in an existing directory")


# ------------------------------------------------------------------------------- grid size


def check_grid_size(study: Study, where: str, allow_large_grid: bool = False) -> None:
    """Refuse a grid of more than `MAX_GRID_TRIALS` (unless allowed) and any study of more than
    `MAX_TRIALS`, counted without building a trial (an arm's own grid counts for Optuna studies too:
    the study's summary lists its settings)."""
    for n, what in ((planned_trials(study), "trials"), (settings_count(study), "settings in its arms' grids")):
        if n > MAX_TRIALS:
            raise UserError(where, f"the study has {n:,} {what}, more than decaylab takes in one study "
                            f"({MAX_TRIALS:,}, even with --allow-large-grid)",
                            "shorten the lists of values, or split the study into several")
    n = grid_size(study)
    if study.search.kind == "grid" and not allow_large_grid and n > MAX_GRID_TRIALS:
        raise UserError(where, f"the grid has {n:,} trials (more than {MAX_GRID_TRIALS:,})",
                        "check for a long list where fewer values were meant; if it is intended, add "
                        "--allow-large-grid")


# ------------------------------------------------------------------------------ resources


def require_cuda(where: str, hint: str) -> None:
    """Refuse a GPU demanded on this machine when it has none (the trials would run on its CPUs)."""
    import torch

    if not torch.cuda.is_available():
        raise UserError(where, "this machine has no CUDA GPU", hint)


def local_node(num_cpus: int | None) -> dict[str, float]:
    """The resources of this machine as a one-node cluster (what a local sweep runs on)."""
    import os

    import torch

    return {"CPU": float(num_cpus or os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def check_fits(study: Study, nodes: list[dict[str, float]], device: str, where: str, place: str) -> None:
    """Refuse trials no node can hold (Ray would keep them pending forever) and GPUs the study asks for
    that are not there (the trials would silently train on CPUs)."""
    r = study.resources
    cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    if r.cpu > cpus:
        raise UserError(where, f"resources.cpu: each trial asks for {r.cpu:g} CPUs, but {place} has at most "
                        f"{cpus:g} on one node: the trials would wait forever",
                        f"lower it (--set resources.cpu={max(1, math.floor(cpus))}), or run on bigger nodes")
    if device == "auto" and r.gpu > 0 and gpus == 0:
        raise UserError(where, f"resources.gpu: the study asks for {r.gpu:g} GPU per trial, but {place} has no GPU",
                        "train on CPUs with --device cpu, or run where GPUs are (--address a cluster with "
                        "GPUs; --device gpu requires them)")
    if device != "cpu" and gpus > 0 and r.gpu > gpus:
        raise UserError(where, f"resources.gpu: each trial asks for {r.gpu:g} GPUs, but {place} has at most "
                        f"{gpus:g} on one node: the trials would wait forever",
                        f"lower it (--set resources.gpu={gpus:g}), or run on bigger nodes")


# ------------------------------------------------------------------------------- the study

def check_study(study: Study, where: str, check_data: bool = True, allow_large_grid: bool = False,
                expand: bool = True) -> None:
    """Rules that involve several fields, and what would make every trial fail (`feasibility`). `expand=False`
    skips the checks that build every trial (a run directory's study, read by `status`, `report`, `export`)."""
    if not study.arms:
        raise UserError(where, "methods: no arms given",
                        "add e.g. `methods: {wd: {kind: fixed, lambda: [5.0e-4]}, "
                        "awd: {kind: adaptive, lambda_awd: [0.02]}}`")
    check_grid_size(study, where, allow_large_grid)  # before the grid's points are built
    for name, arm in study.arms.items():
        check_arm_grid(study, name, arm, where, expand)
    tr, ev = study.attack.train, study.attack.eval
    if tr.kind != "none" and tr.eps is None:
        raise UserError(where, "attack.train.eps: missing", "give ε in [0, 1] pixel scale, e.g. 0.031 (8/255)")
    if ev.kind == "none" and study.eval.autoattack.enabled:
        raise UserError(where, "eval.autoattack.enabled: AutoAttack needs an ε",
                        "set attack.eval.kind to pgd (ε comes from attack.eval.eps or attack.train.eps)")
    if ev.kind != "none" and ev.eps is None and (tr.eps is None or tr.kind == "none"):
        raise UserError(where, "attack.eval.eps: missing", "give ε, or an attack.train.eps to inherit")
    if study.confirm is not None:
        check_confirmation(study, where)
    for i, ref in enumerate(study.reference_results):
        if ref.arm not in study.arms:
            raise UserError(where, f"reference_results[{i}].arm: {ref.arm!r} is not an arm of the study",
                            did_you_mean(ref.arm, list(study.arms), "methods"))
    if study.analysis.reference is not None and study.analysis.reference not in study.arms:
        raise UserError(where, f"analysis.reference: {study.analysis.reference!r} is not an arm of the study",
                        did_you_mean(study.analysis.reference, list(study.arms), "methods"))
    if check_data:
        check_machine(study, where)
    check_splits(study.data, where, check_files=check_data)
    if study.search.kind == "optuna":
        check_optuna_space(study, where)
    elif expand:
        check_trial_ids(expand_grid(study), where)


def check_machine(study: Study, where: str, data_root: bool = True) -> None:
    """What this machine must have to run the study: the dataset (unless `data_root` is False), a network
    for a download, the packages of the Optuna sampler and of the trackers."""
    if data_root:
        check_data_root(study.data, where)
    check_download(study.data, where)
    if study.search.kind == "optuna":
        check_optuna(study, where)
    check_trackers(study.tracking, where)


# the package each tracker needs (the `track` extra installs them)
TRACKER_PACKAGES = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}


def check_trackers(tracking: TrackingConfig, where: str) -> None:
    """Refuse a tracker whose package is missing (the sweep would fail when it starts logging)."""
    for name, package in TRACKER_PACKAGES.items():
        if getattr(tracking, name) and importlib.util.find_spec(package) is None:
            raise UserError(where, f"tracking.{name}: the package {package} is not installed",
                            "install the checkout's track extra (pip install -e '.[track]' in the decaylab "
                            "checkout; make install does), or turn the tracker off")


def check_arm_grid(study: Study, name: str, arm: arms.ArmGrid, where: str, expand: bool = True) -> None:
    """A grid study needs every hyperparameter's grid; an Optuna study may range it instead. `expand=False`
    skips the check of every combination of the arm's values."""
    for h in arm.hyperparameters():
        key = f"methods.{name}.{arm.study_key(h)}"
        values = getattr(arm, h)
        ranged = f"{name}.{arm.study_key(h)}" in study.search.space
        if study.search.kind == "grid" or not ranged:
            if values is None:
                raise UserError(where, f"{key}: missing", f"give the arm's grid, e.g. {arm.study_key(h)}: [...]"
                                + (f", or a range search.space.{name}.{arm.study_key(h)}"
                                   if study.search.kind == "optuna" else ""))
            if not values:
                raise UserError(where, f"{key}: the grid is empty", "give at least one value")
    if study.search.kind == "grid" and expand:
        for point in arm.points():
            if (reason := arm.check_point(point)) is not None:
                raise UserError(where, f"methods.{name}: {reason}",
                                "every combination of the arm's grids is a trial; use separate arms for "
                                "combinations that do not go together")


def check_trial_ids(configs: list[TrialConfig], where: str) -> None:
    seen: dict[str, TrialConfig] = {}
    for cfg in configs:
        if cfg.trial_id in seen:
            raise UserError(where, f"two grid points share the trial id {cfg.trial_id!r}",
                            "every value of a grid must differ from the others")
        seen[cfg.trial_id] = cfg


IMAGE_FOLDER_LAYOUT = "image_folder expects <root>/train/<class>/*.jpg and <root>/val (or test)/<class>/"


def check_data_root(data: DataConfig, where: str) -> None:
    """The dataset's directory is there, or will be filled by `data.download`. Only the datasets torchvision
    fetches download (image_folder reads files you put there), so only their hints offer it."""
    if data.dataset == "digits":
        return
    info = DATASETS[data.dataset][0]
    if data.root is None:
        raise UserError(where, f"data.root: required for dataset {data.dataset}",
                        "give the directory holding (or to receive, with data.download: true) the files"
                        if info.torchvision else f"give the directory holding the files ({IMAGE_FOLDER_LAYOUT})")
    root = Path(data.root).expanduser()
    if not root.is_dir() and not (data.download and info.torchvision):
        if info.torchvision:
            hint = (f"fetch it with `{fetch_command(info, str(root))}` (on a machine with internet, then copy the "
                    "directory here), fix the path, or set data.download: true to fetch the dataset there")
        else:
            hint = f"fix the path, or put the dataset there ({IMAGE_FOLDER_LAYOUT}; it is never downloaded)"
        raise UserError(where, f"data.root: directory {root} does not exist", hint)
    if data.dataset == "image_folder" and not (root / "train").is_dir():
        raise UserError(where, f"data.root: {root}/train does not exist", IMAGE_FOLDER_LAYOUT)


def data_problem(study: Study, where: str) -> UserError | None:
    """Why the study's dataset is not here (its data.root does not exist), or None."""
    if study.data.root is None:
        return None  # a mistake in the study file, not a missing dataset: check_data_root says so
    try:
        check_data_root(study.data, where)
    except UserError as e:
        return e
    return None


def tunable(study: Study) -> list[str]:
    """The keys `search.space` may range: `lr` and every arm's numeric hyperparameters."""
    columns = arms.hyperparameter_columns()
    return ["lr"] + [f"{name}.{arm.study_key(h)}" for name, arm in study.arms.items()
                     for h in arm.hyperparameters() if columns[h] == "float64"]


def check_optuna_space(study: Study, where: str) -> None:
    allowed = tunable(study)
    for key, rng in study.search.space.items():
        if key not in allowed:
            raise UserError(where, f"search.space.{key}: not a tunable parameter",
                            f"tunable here: {', '.join(allowed)}")
        if rng.low >= rng.high:
            raise UserError(where, f"search.space.{key}: low ({rng.low:g}) must be below high ({rng.high:g})",
                            "swap the bounds, or fix the value in the grid instead of a range")
        if rng.log and rng.low <= 0:
            raise UserError(where, f"search.space.{key}: a log range needs low > 0 (got {rng.low:g})",
                            "give a positive low, or log: false")




def check_confirmation(study: Study, where: str) -> None:
    """Confirmation seeds are fresh: none of them is a tuning seed (the same seeds would both choose a
    configuration and judge it)."""
    seeds = confirmation_seeds(study)
    shared = sorted(set(seeds) & set(study.seeds))
    if shared:
        raise UserError(where, f"confirm.seeds: {shared} are also tuning seeds (`seeds`)",
                        "confirmation seeds must be fresh: give seeds that are not in `seeds`, or a number of them "
                        "(taken after the largest tuning seed)")
    if seeds and max(seeds) > MAX_SEED:
        raise UserError(where, f"confirm.seeds: {max(seeds)} is beyond the largest seed {MAX_SEED}",
                        "give fewer or smaller seeds")


def tracker_destinations(study: Study) -> list[str]:
    """Where the study's trackers send what they log, in words (said by `validate` and at a sweep's start)."""
    t = study.tracking
    out = ["TensorBoard: event files under the run directory"] if t.tensorboard else []
    if t.mlflow:
        out.append(f"MLflow: {redacted(t.mlflow.uri)} (experiment {t.mlflow.experiment or study.name})")
    if t.wandb:
        where = "offline, under the run directory" if t.wandb.mode == "offline" else "online"
        out.append(f"W&B: project {t.wandb.project} ({where})")
    return out


def redacted(uri: str) -> str:
    """`uri` without a password it may carry (scheme://user:password@host → scheme://user:***@host)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", uri)


def credential_warnings(study: Study, environ: Mapping[str, str]) -> list[str]:
    """MLflow attaches MLFLOW_TRACKING_TOKEN (or USERNAME/PASSWORD) to every request, whichever host the URI
    names: a warning when they would go to another host than the one MLFLOW_TRACKING_URI names."""
    if not study.tracking.mlflow or not any(environ.get(k) for k in CREDENTIAL_VARIABLES):
        return []
    host = urlsplit(study.tracking.mlflow.uri).hostname
    trusted = urlsplit(environ.get("MLFLOW_TRACKING_URI", "")).hostname
    if host is None or host == trusted:
        return []
    names = ", ".join(k for k in CREDENTIAL_VARIABLES if environ.get(k))
    return [f"tracking.mlflow.uri sends {names} from this environment to {host}, not to MLFLOW_TRACKING_URI's host "
            f"({trusted or 'unset'}): check the study file names your own server"]


CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
