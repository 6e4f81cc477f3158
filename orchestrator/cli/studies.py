"""`decaylab studies`: the bundled studies at a glance; `decaylab show NAME`: one of them, as a file to start from."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from orchestrator.cli import args as a
from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.study.schema import Study

LEGEND = ("trials: tuning + confirmation. cost: GPU studies in GPU-hours by the FLOP model (an assumed {mfu:.0%} "
          "of an H100's bf16 peak) unless this machine's GPU has timed them; CPU studies in minutes on this machine "
          "once `decaylab validate NAME --estimate` has timed them, else —. A study's name is its file's, and its "
          "run directory's (<storage>/NAME).")


def add(sub, epilog: str) -> None:
    a.command(sub, "studies", studies, "the bundled studies: dataset, network, trials, epochs and estimated cost",
              epilog)
    sp = a.command(sub, "show", show, "print a bundled study file, to start a study of your own from "
                   "(decaylab show digits > my.yaml)", epilog)
    sp.add_argument("name", metavar="NAME", help="a bundled study's name (`decaylab studies` lists them)")


def studies(args) -> int:
    import textwrap

    from orchestrator.study.catalog import bundled
    from orchestrator.study.load import load_study
    from orchestrator.sweep.estimate import DEFAULT_MFU

    rows = [("STUDY", "DATASET", "NETWORK", "TRIALS", "EPOCHS", "COST")]
    for name, path in sorted(bundled().items()):
        study = load_study(path, check_data=False)  # their datasets need not be here to list them
        rows.append(row(name, study))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {3, 4, 5}  # numbers line up on the right
    for r in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(r, widths, strict=True))]
        print("  ".join(cells).rstrip())
    print("\n" + textwrap.fill(LEGEND.format(mfu=DEFAULT_MFU), min(sum(widths) + 2 * (len(widths) - 1), 100)))
    return 0


def row(name: str, study: Study) -> tuple[str, ...]:
    from orchestrator.study.plan import confirmation_trials, planned_trials

    model = study.model
    network = f"{model.arch}-{model.depth}-{model.width}" if model.arch == "wide_resnet" else model.arch
    confirm = confirmation_trials(study)
    return (name, study.data.dataset, network, f"{planned_trials(study) - confirm} + {confirm}",
            str(study.train.epochs), cost(study))


def cost(study: Study) -> str:
    """GPU-hours of a GPU study, minutes of a CPU study from the cached speed of this machine, else —; never
    times anything."""
    from orchestrator.sweep.estimate import estimate

    e = estimate(study, measure=False)
    if study.resources.gpu > 0:
        hours = e.gpu_hours if e.gpu_hours is not None else e.seconds / 3600 if e.seconds is not None else None
        return "—" if hours is None else f"{hours:,.1f} GPU-h"
    return "—" if e.seconds is None else f"{max(1, round(e.seconds / 60)):,} min"


def show(args) -> int:
    from orchestrator.study.catalog import bundled

    found = bundled()
    if args.name not in found:
        close = a.close_match(args.name, sorted(found))
        raise UserError(args.name, "no bundled study of that name",
                        f"did you mean `{close}`?" if close else "`decaylab studies` lists them")
    sys.stdout.write(found[args.name].read_text(encoding="utf-8"))
    return 0
