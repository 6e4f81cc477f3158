"""`decaylab status RUN_DIR`: trials by status, without Ray or torch."""

from __future__ import annotations

from orchestrator.cli import args as a


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "status", status, "trials done / running / failed / diverged, without Ray", epilog)
    a.run_dir(sp)


def status(args) -> int:
    from orchestrator.run.directory import open_run
    from orchestrator.run.status import status_text
    from orchestrator.terminal import visible

    run, _ = open_run(args.run_dir, check_data=False)
    print(visible(status_text(run)))  # names, errors and the manifest's fields come from files
    return 0
