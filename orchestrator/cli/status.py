"""`decaylab status RUN_DIR`: trials by status, without Ray or torch."""

from __future__ import annotations

from orchestrator.cli import args as a

JSON_FIELDS = """--json prints one JSON object: run_dir; study; search (grid|optuna); trials (with a record);
planned (null: unknown); counts (per status: ok, diverged, stopped, failed, running); not_started; damaged;
progress (ended trials / planned, 0–1, or null); finished (whether the last sweep ended; null: no manifest);
best (per arm: arm, val_robust_acc, test_robust_acc, setting, lr, seed, epoch, running); failed (trial_id,
error); diverged (trial_id, epoch); damaged_records (why each is damaged)."""


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "status", status, "trials done / running / failed / diverged, without Ray", epilog,
                   fields=JSON_FIELDS)
    a.run_dir(sp)
    sp.add_argument("--json", action="store_true", help="print the status as one JSON object (fields below)")


def status(args) -> int:
    from orchestrator.run.directory import open_run
    from orchestrator.terminal import visible

    run, _ = open_run(args.run_dir, check_data=False)
    if args.json:
        import json

        from orchestrator.run.status import status_summary

        print(json.dumps(status_summary(run), indent=1, allow_nan=False))  # ASCII: no file's text acts on a terminal
        return 0
    from orchestrator.run.status import status_text

    print(visible(status_text(run)))  # names, errors and the manifest's fields come from files
    return 0
