"""`manifest.json`: what was run where — the resolved study, commit, package versions, hardware, start
and end. Descriptive only: the trial records are the truth, so a damaged manifest is read as absent."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from orchestrator.run import records
from orchestrator.run.layout import MANIFEST
from orchestrator.run.storage import RunDir
from orchestrator.study.schema import Study


def manifest(run: RunDir, study: Study, planned: int, resources: dict | None) -> dict:
    """The manifest of a sweep starting now (its start time and experiments kept from an earlier one)."""
    old = read_manifest(run) or {}
    return {
        "study": study.name, "run_dir": run.location, "search": study.search.kind,
        "resolved_study": study.to_dict(), "trials_planned": planned,
        "git_commit": git_commit(), "versions": versions(), "hardware": hardware(resources),
        "started": old.get("started") or now(), "finished": None,
        "experiments": old.get("experiments", []),
        **{k: old[k] for k in KEPT if k in old},
    }


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("decaylab", "torch", "torchvision", "ray", "optuna", "pandas", "pyautoattack"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def hardware(resources: dict | None) -> dict:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"machine": platform.machine(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "gpus": gpus, "cluster": resources or {}}


# what each manifest key read back must be; anything else is treated as absent
MANIFEST_TYPES = {"study": str, "run_dir": str, "search": str, "trials_planned": int, "started": str,
                  "finished": str, "experiments": list, "resolved_study": dict, "mlflow_parent_run": str}
KEPT = ("mlflow_parent_run",)  # what a new sweep of the run directory keeps from the earlier ones


def read_manifest(run: RunDir) -> dict | None:
    """manifest.json with every known key of the right type (a wrong one is dropped: the manifest is
    descriptive, the records are the truth); None when it is missing or not JSON."""
    try:
        manifest = records.read_json(run, MANIFEST)
    except records.DamagedRecord as e:
        records.log.warning("%s", e)
        return None
    if not isinstance(manifest, dict):
        return None
    bad = [k for k, kind in MANIFEST_TYPES.items() if k in manifest and manifest[k] is not None
           and (not isinstance(manifest[k], kind) or isinstance(manifest[k], bool))]
    if isinstance(manifest.get("experiments"), list) and not all(isinstance(e, str) for e in manifest["experiments"]):
        bad.append("experiments")
    return {k: v for k, v in manifest.items() if k not in bad}


def write_manifest(run: RunDir, manifest: dict) -> None:
    run.write_atomic(json.dumps(manifest, indent=2, default=str).encode(), MANIFEST)
