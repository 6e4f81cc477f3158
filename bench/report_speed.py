"""How long `write_report` takes on 100,000 epoch rows, next to merely reading the same files.

500 synthetic trials × 200 epochs (`bench.synthetic`: two arms × 5 λ × 5 lr × 10 seeds, every trial
finished, a piecewise lr schedule, pruning and AutoAttack evaluations), written once; one untimed report
first (imports, font caches), then reading the three parquet files and writing the report, each timed once
on the wall clock in this process. Figure: `report_speed`, write_report's seconds.

Why: it describes, it does not gate: a study's report should take seconds, not minutes, at the size of a
real study.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import pandas as pd

from analysis.report import write_report
from bench.common import sized
from bench.synthetic import write_run_dir

ARMS = {
    "wd": ("fixed", (0.0, 1e-4, 5e-4, 1e-3, 5e-3)),
    "awd": ("adaptive", (0.005, 0.01, 0.02, 0.03, 0.05)),
}
LRS = (0.01, 0.02, 0.05, 0.1, 0.2)
SEEDS = tuple(range(sized(10, 1)))
EPOCHS = sized(200, 10)


def build(run_dir: Path) -> int:
    """Write the synthetic run directory; return its number of epoch rows."""
    write_run_dir(
        run_dir,
        arms=ARMS,
        lrs=LRS,
        seeds=SEEDS,
        epochs=EPOCHS,
        evaluations=True,
        autoattack=True,
        schedule="piecewise",
    )
    return len(pd.read_parquet(run_dir / "epochs.parquet", columns=["epoch"]))


def time_read(run_dir: Path) -> float:
    start = time.perf_counter()
    for name in ("epochs", "trials", "evaluations"):
        pd.read_parquet(run_dir / f"{name}.parquet")
    return time.perf_counter() - start


def time_report(run_dir: Path, out_dir: Path) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # the per-section progress lines
        write_report(run_dir, out_dir)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, out_dir = Path(tmp) / "run", Path(tmp) / "report"
        rows = build(run_dir)
        time_report(run_dir, Path(tmp) / "warmup")  # imports and font caches, not the report's own cost
        read_s = time_read(run_dir)
        report_s = time_report(run_dir, out_dir)
        figures = len(list((out_dir / "figures").glob("*.png")))
    print(f"read parquet files:  {read_s:8.3f} s")
    print(f"write_report:        {report_s:8.3f} s  ({figures} figures, PNG + PDF)")
    print(f"ratio report / read: {report_s / read_s:8.1f}x")
    print(f"report_speed: {report_s:.2f} s for {rows} epoch rows")


if __name__ == "__main__":
    main()
