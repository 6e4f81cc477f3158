"""docs/reference/exit-codes.md and environment.md: what a `decaylab` process returns, and every environment
variable the code reads or sets.

The exit statuses are read from the classes that carry them (`orchestrator.errors`, `orchestrator.signals`,
argparse's own). The environment variables are found in the source (every upper-case string constant of a module
that touches `os.environ`, every `?=` variable of the Makefile, every `${NAME:-…}` of the cluster scripts); each
must have a line in VARIABLES, so a variable added to the code without one stops `python -m orchestrator.docs`.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import signal
from pathlib import Path

from orchestrator.docs import REPO, header
from orchestrator.docs.cli import cell

SCANNED = ("orchestrator", "trials", "analysis", "bench")
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
MAKE_VARIABLE = re.compile(r"^([A-Z_]+)\s*\?=", re.M)
SHELL_DEFAULT = re.compile(r"\$\{([A-Z_][A-Z0-9_]*):-")
NOT_VARIABLES = {"O_CLOEXEC", "O_DIRECTORY", "RUN_DIR"}  # upper-case constants of those modules that name no variable

RAY_SET = "set by decaylab before Ray is imported, unless already set"
VARIABLES: dict[str, tuple[str, str]] = {  # name → (group, meaning)
    "RAY_ADDRESS": ("ray", "the Ray cluster `sweep`, `resume`, `confirm` and `evaluate` join when `--address` is not "
                    "given; unset (and no `--address`): a private local cluster is started for the sweep"),
    "RAY_AUTH_MODE": ("ray", "a local cluster always runs with `token` (decaylab sets it); a cluster you start with "
                      "`ray start` needs `RAY_AUTH_MODE=token` on every node and in the driver's environment"),
    "RAY_AUTH_TOKEN": ("ray", "the cluster's token; for a local cluster decaylab makes one for the sweep unless this "
                       "or `RAY_AUTH_TOKEN_PATH` is set"),
    "RAY_AUTH_TOKEN_PATH": ("ray", "a file (mode 0600) holding the cluster's token, instead of `RAY_AUTH_TOKEN`"),
    "RAY_TMPDIR": ("ray", "Ray's temporary directory; for a local cluster decaylab makes a private one (mode 0700) "
                   "unless set, and `--address auto` looks there for the cluster this user started"),
    "RAY_USAGE_STATS_ENABLED": ("ray", f"`0`: {RAY_SET}"),
    "RAY_CHDIR_TO_TRIAL_DIR": ("ray", f"`0` (trials keep the working directory): {RAY_SET}; passed on to the "
                               "workers of a cluster joined by address"),
    "RAY_AIR_NEW_OUTPUT": ("ray", f"`0`: {RAY_SET}"),
    "TUNE_DISABLE_SIGINT_HANDLER": ("ray", f"`1` (decaylab stops a sweep on Ctrl-C itself): {RAY_SET}"),
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": ("ray", f"`0`: {RAY_SET}"),
    "TUNE_GLOBAL_CHECKPOINT_S": ("ray", f"`300`: seconds between Ray Tune's experiment snapshots, which decaylab "
                                 f"never reads back; {RAY_SET}"),
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": ("ray", "always `1`: the study's `tracking` says which loggers run"),
    "WANDB_MODE": ("trackers", "set to `offline` for a study with `tracking.wandb.mode: offline`"),
    "MLFLOW_TRACKING_URI": ("trackers", "the MLflow server your MLflow credentials are meant for: `validate` and "
                            "`sweep` warn when a study's `tracking.mlflow.uri` names another host while "
                            "credentials are set"),
    "MLFLOW_TRACKING_TOKEN": ("trackers", "an MLflow credential (see `MLFLOW_TRACKING_URI`)"),
    "MLFLOW_TRACKING_USERNAME": ("trackers", "an MLflow credential (see `MLFLOW_TRACKING_URI`)"),
    "MLFLOW_TRACKING_PASSWORD": ("trackers", "an MLflow credential (see `MLFLOW_TRACKING_URI`)"),
    "AWS_ACCESS_KEY_ID": ("storage", "S3 credentials for `--storage s3://…` (with `AWS_SECRET_ACCESS_KEY`); "
                          "without any S3 credential a sweep is refused before it starts"),
    "AWS_PROFILE": ("storage", "an S3 credential source (a profile of `~/.aws/credentials`)"),
    "AWS_SHARED_CREDENTIALS_FILE": ("storage", "an S3 credential source (a credentials file)"),
    "AWS_WEB_IDENTITY_TOKEN_FILE": ("storage", "an S3 credential source (web identity)"),
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": ("storage", "an S3 credential source (container credentials)"),
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ("storage", "an S3 credential source (container credentials)"),
    "AWS_EC2_METADATA_DISABLED": ("storage", "`false`: use the instance role's S3 credentials (the metadata service "
                                  "is not probed otherwise)"),
    "GOOGLE_APPLICATION_CREDENTIALS": ("storage", "a key file for `--storage gs://…`; without any GCS credential a "
                                       "sweep is refused before it starts"),
    "GOOGLE_CLOUD_PROJECT_CREDENTIALS": ("storage", "a GCS credential source"),
    "GCE_METADATA_HOST": ("storage", "set: use the instance's service account for GCS (the metadata service is not "
                          "probed otherwise)"),
    "XDG_CACHE_HOME": ("other", "where `validate --estimate` keeps its measured speeds: "
                       "`$XDG_CACHE_HOME/decaylab/speed.json` (default `~/.cache/decaylab/speed.json`)"),
    "BENCH_QUICK": ("other", "`1`: every benchmark runs its smallest sizes (what `--quick` does)"),
    # the Makefile's variables: `make sweep STUDY=…`, or the environment
    "PYTHON": ("make", "the Python that creates `.venv` (default `python3`)"),
    "VENV": ("make", "the virtual environment's directory (default `.venv`)"),
    "STUDY": ("make", "the study `make sweep` runs (default `studies/digits.yaml`)"),
    "STORAGE": ("make", "where `make sweep` writes run directories (default `results`)"),
    "RUN": ("make", "the run directory `make report` and `make status` read"),
    "OUT": ("make", "the report directory of `make report` (default `reports/<study>`)"),
    "TORCH_PINS": ("make", "what `make install` installs torch and torchvision as (default the exact pins for x86-64 "
                   "Linux, CPython 3.11); on another platform e.g. `make install TORCH_PINS=\"torch torchvision\"`"),
    "PYTEST_ARGS": ("make", "extra pytest arguments of `make test` and `make test-fast`"),
    "PYTEST_JOBS": ("make", "test processes of `make test` and `make test-fast` (default `-n 2 --dist loadgroup`; "
                            "empty: one process)"),
    # the cluster scripts
    "DECAYLAB": ("cluster", "`cluster/slurm.sbatch`: the decaylab command to run (default `decaylab`, e.g. "
                 "`DECAYLAB=$PWD/.venv/bin/decaylab`)"),
    "RAY_PORT": ("cluster", "`cluster/slurm.sbatch`: the Ray head's port (default 6379)"),
    "SLURM_SUBMIT_DIR": ("cluster", "set by SLURM: the checkout `cluster/slurm.sbatch` was submitted from"),
    "SLURM_CPUS_PER_TASK": ("cluster", "set by SLURM from `--cpus-per-task`: the CPUs each Ray node offers"),
    "SLURM_GPUS_PER_TASK": ("cluster", "set by SLURM from `--gpus-per-task`: the GPUs each Ray node offers"),
}
GROUPS = {
    "ray": "Ray and Ray Tune",
    "storage": "Storage credentials (`--storage s3://…`, `gs://…`)",
    "trackers": "Experiment trackers",
    "other": "Other",
    "make": "Makefile variables (`make sweep STUDY=…`, or the environment)",
    "cluster": "Cluster scripts (`cluster/`)",
}


# ----------------------------------------------------------------------------------------- exit statuses


def exit_statuses() -> list[tuple[int, str]]:
    from orchestrator.errors import RunError, UserError
    from orchestrator.signals import Interrupted

    return [
        (0, "Done. For `sweep`, `resume` and `confirm`: every trial ended `ok` or `diverged` (a diverged trial is a "
            "result, recorded and never selected)."),
        (RunError.exit_status, f"{first_line(RunError)} Some trials failed (they are listed; `decaylab resume "
            "RUN_DIR` retries them), the storage or the cluster failed, another decaylab holds the run directory, "
            "or the one trial of `decaylab train` did not end `ok`. Finished results are kept."),
        (UserError.exit_status, f"{first_line(UserError)} One message names the file or the option, the key and "
            f"the fix, without a traceback; the command started nothing. Also argparse's usage errors (exit "
            f"{argparse_usage_status()})."),
        (Interrupted(signal.SIGINT).exit_status, "Stopped by Ctrl-C (SIGINT): finished trials are kept, each running "
            "trial keeps its last finished epoch; `decaylab resume RUN_DIR` continues. A stopped sweep does not write "
            "its report (`--report`): the resumed one does."),
        (Interrupted(signal.SIGTERM).exit_status, "Stopped by SIGTERM (what SLURM, Kubernetes, `timeout` and "
            "`kill` send): the same graceful stop as Ctrl-C."),
    ]


def first_line(cls: type) -> str:
    """The class docstring's first line, without its own "Exit status N." (the table says it)."""
    line = (cls.__doc__ or "").strip().splitlines()[0]
    return re.sub(r"\s*Exit( status)? \d+\.$", "", line)


def argparse_usage_status() -> int:
    """The status argparse exits with on a command line it cannot parse."""
    from orchestrator.cli import build_parser

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args(["--no-such-option"])
        except SystemExit as e:
            return int(e.code)
    raise AssertionError("argparse accepted an unknown option")


def exit_codes_page() -> str:
    lines = [header("Exit statuses", "`orchestrator/errors.py` and `orchestrator/signals.py`"),
             "Every `decaylab` command exits with one of these statuses, so scripts and schedulers can act on them "
             "(a SLURM job's requeue, a CI step).", "",
             "| status | meaning |", "|---|---|",
             *(f"| {code} | {cell(text)} |" for code, text in exit_statuses()), ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- environment variables


def found_variables() -> dict[str, set[str]]:
    """Variable name → the files that name it."""
    found: dict[str, set[str]] = {}
    for package in SCANNED:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.is_relative_to(Path(__file__).parent):  # this package names them all, to describe them
                continue
            source = path.read_text(encoding="utf-8")
            if "environ" not in source and "getenv" not in source:
                continue
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                    found.setdefault(node.value, set()).add(_relative(path))
    for name in MAKE_VARIABLE.findall((REPO / "Makefile").read_text(encoding="utf-8")):
        found.setdefault(name, set()).add("Makefile")
    for path in sorted((REPO / "cluster").iterdir()):
        if path.suffix in (".sh", ".sbatch"):
            for name in SHELL_DEFAULT.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, set()).add(_relative(path))
    return {name: files for name, files in found.items() if name not in NOT_VARIABLES}


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def environment_page() -> str:
    found = found_variables()
    missing = sorted(set(found) - set(VARIABLES))
    if missing:
        raise ValueError(f"environment variables read by the code but not described in orchestrator/docs/runtime.py "
                         f"VARIABLES: {', '.join(missing)}")
    lines = [header("Environment variables", "the code that reads them (`orchestrator/`, `trials/`, `analysis/`, "
                    "`bench/`, the Makefile, `cluster/`) and `orchestrator/docs/runtime.py`"),
             "Every environment variable decaylab reads or sets, and where. None is needed for a local sweep.", ""]
    for group, title in GROUPS.items():
        names = [n for n, (g, _) in VARIABLES.items() if g == group and n in found]
        if names:
            lines += [f"## {title}", "", "| variable | meaning | read in |", "|---|---|---|",
                      *(f"| `{n}` | {cell(VARIABLES[n][1])} | {', '.join(f'`{f}`' for f in sorted(found[n]))} |"
                        for n in names), ""]
    return "\n".join(lines).rstrip() + "\n"
