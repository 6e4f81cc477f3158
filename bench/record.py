"""The figures `make bench` closes with, their targets, and the one JSON record each run leaves in bench/results/.

A record is written once, atomically, by `bench.run_all` and never edited; BENCHMARKS.md is generated from
the records (`bench.report`). Schema 1:

    {"schema": 1, "source": "bench.run_all", "commit": "<short hash>", "dirty": <bool>, "date": "<UTC, ISO 8601>",
     "machine": {"cpu", "cores", "memory_gib", "gpu", "platform", "python", "torch", "ray"},
     "duration_s": <seconds of the whole run>,
     "figures": [{"name", "value": <number or null>, "unit", "target": {"op": "<=" | ">=", "bound"} | null,
                  "verdict": "PASS" | "MISS" | "INFO" | "SKIP" | "ERROR", "module", "module_seconds", "line"}]}

This module imports nothing heavy: the page generator and the tests read it without torch.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

SCHEMA = 1
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
VERDICTS = ("PASS", "MISS", "INFO", "SKIP", "ERROR")
# paths a run itself writes: they do not make the tree it measured dirty
OWN_OUTPUTS = ("bench/results/", "BENCHMARKS.md")
NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Figure:
    name: str  # the name of its closing line, `name: value`
    module: str  # bench.<module> prints it
    unit: str  # ratio, seconds, count, images/s
    target: tuple[str, float] | None  # (comparison, bound); None: it describes, it does not gate
    compares: str  # what it compares, one phrase for the page's table


# in the order bench.run_all runs their modules
FIGURES: tuple[Figure, ...] = (
    Figure("awd_overhead", "awd_overhead", "ratio", ("<=", 1.03),
           "(fixed-decay step + AWD's extra hook time) ÷ fixed-decay step, worst of PreAct-18 and WRN-28-10"),
    Figure("attack_cost", "attack_cost", "ratio", ("<=", 1.15),
           "forward-equivalents of a PGD-10 training step, measured ÷ the 2K+3 = 23 floor"),
    Figure("trainer_vs_reference", "trainer_vs_reference", "ratio", (">=", 1.3),
           "Rice et al.'s training loop ÷ decaylab's, epoch time, lower of digits and PreAct-18"),
    Figure("checkpoint_growth", "records_scaling", "ratio", ("<=", 1.01),
           "checkpoint bytes at the last running epoch ÷ at epoch 1"),
    Figure("export_growth", "records_scaling", "ratio", ("<=", 1.2),
           "export + consolidation per trial, 1,000 trials ÷ 36"),
    Figure("cli_startup", "cli_startup", "seconds", ("<=", 1.0),
           "slowest reading command's time to its first output, above `python -c pass`"),
    Figure("sweep_overhead", "sweep_overhead", "ratio", None,
           "`decaylab sweep` wall time ÷ the same trials without Ray or records"),
    Figure("sweep_steady", "sweep_overhead", "ratio", None,
           "a slot's span from its first trial's start to its last's end, sweep ÷ the same without Ray"),
    Figure("estimate_error", "sweep_overhead", "ratio", None,
           "`decaylab validate --estimate` against the sweep's wall time: the larger of measured ÷ estimated "
           "and its inverse"),
    Figure("orchestration_vs_ray", "orchestration_scaling", "ratio", None,
           "decaylab's orchestration per trial ÷ plain Ray Tune's, worst of 36, 200 and 1,000 trials"),
    Figure("orchestration_growth", "orchestration_scaling", "ratio", None,
           "decaylab's orchestration per trial, 1,000 trials ÷ 36"),
    Figure("report_million_rows", "orchestration_scaling", "seconds", None,
           "`write_report` on 1,000,000 epoch rows in a fresh process"),
    Figure("report_speed", "report_speed", "seconds", None, "`write_report` on 100,000 epoch rows"),
    Figure("gpu_check", "gpu_check", "ratio", None, "MFU of a compiled CIFAR-10 PreAct-18 PGD-10 epoch in bf16"),
    Figure("gpu_compile_seconds", "gpu_check", "seconds", None, "that epoch's compilation, first epoch − second"),
    Figure("gpu_recompiles", "gpu_check", "count", None, "graphs compiled again in the second compiled epoch"),
    Figure("gpu_bf16_grad_cosine", "gpu_check", "ratio", None, "cosine of one step's gradients, bf16 vs fp32"),
    Figure("gpu_eval_images_per_s", "gpu_check", "images/s", None, "per-epoch evaluation (clean + PGD-10, bf16)"),
    Figure("gpu_packing_4_vs_1", "gpu_check", "ratio", None, "images/s of 4 trials packed on the GPU ÷ of 1"),
)
MODULES: tuple[str, ...] = tuple(dict.fromkeys(f.module for f in FIGURES))


def target_text(target: tuple[str, float] | None) -> str:
    return f"{'≤' if target[0] == '<=' else '≥'} {target[1]:g}" if target else "none"


def verdict(figure: Figure, line: str | None, status: int) -> tuple[float | None, str]:
    """(value, verdict) of a figure from its closing line (None: never printed) and its module's exit status."""
    if line is None:
        return None, "ERROR"
    text = line.split(":", 1)[1].strip()
    if text.startswith("skipped"):
        return None, "SKIP"
    match = NUMBER.match(text)
    if status != 0 or match is None:
        return None, "ERROR"
    value = float(match.group())
    if not math.isfinite(value):
        return None, "ERROR" if figure.target else "INFO"
    if figure.target is None:
        return value, "INFO"
    op, bound = figure.target
    return value, "PASS" if (value <= bound if op == "<=" else value >= bound) else "MISS"


def figure_entry(figure: Figure, line: str | None, status: int, module_seconds: float) -> dict:
    value, word = verdict(figure, line, status)
    target = {"op": figure.target[0], "bound": figure.target[1]} if figure.target else None
    return {"name": figure.name, "value": value, "unit": figure.unit, "target": target, "verdict": word,
            "module": figure.module, "module_seconds": round(module_seconds, 1), "line": line}


# ------------------------------------------------------------------------------ where it ran


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def gpu_name() -> str | None:
    import torch  # here only: the page generator never asks

    if not torch.cuda.is_available():
        return None
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory_gib(), "gpu": gpu_name(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": version("torch"),
            "ray": version("ray")}


def machine_text(m: dict) -> str:
    """One short line: CPU, cores, GPU."""
    return f"{m.get('cpu') or 'unknown CPU'}, {m.get('cores')} cores, {m.get('gpu') or 'no GPU'}"


def same_machine(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("cpu", "cores", "gpu"))


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def commit() -> tuple[str, bool]:
    """(short commit, whether the tree differs from it outside the run's own outputs)."""
    head = (git("rev-parse", "--short", "HEAD") or "").strip() or "unknown"
    status = git("status", "--porcelain") or ""
    changed = [line[3:].strip('"') for line in status.splitlines() if line.strip()]
    return head, any(not path.startswith(OWN_OUTPUTS) for path in changed)


# ------------------------------------------------------------------------------ the file


def build(*, figures: list[dict], started: datetime, duration_s: float, commit_: tuple[str, bool],
          machine_: dict) -> dict:
    return {"schema": SCHEMA, "source": "bench.run_all", "commit": commit_[0], "dirty": commit_[1],
            "date": started.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine_,
            "duration_s": round(duration_s, 1), "figures": figures}


def file_name(record: dict) -> str:
    date = datetime.strptime(record["date"], "%Y-%m-%dT%H:%M:%SZ")
    return f"{date:%Y-%m-%dT%H%M%SZ}-{record['commit']}.json"


def write(record: dict, directory: Path = RESULTS) -> Path:
    """Write the record into `directory` atomically (a temporary file renamed over nothing); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(record)
    if path.exists():
        raise FileExistsError(f"{path} exists: a record is never overwritten")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".record-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_all(directory: Path = RESULTS) -> list[dict]:
    """Every record in `directory`, oldest first; a file that is not a record is an error that names it."""
    records = []
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("schema") != SCHEMA or not isinstance(record.get("figures"), list):
                raise ValueError(f"not a schema-{SCHEMA} record")
            for fig in record["figures"]:
                if fig["verdict"] not in VERDICTS:
                    raise ValueError(f"unknown verdict {fig['verdict']!r}")
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from None
        records.append(record)
    return sorted(records, key=lambda r: r["date"])
