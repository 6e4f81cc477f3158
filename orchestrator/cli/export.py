"""`decaylab export RUN_DIR`: a trained model as a standalone state dict plus a JSON sidecar."""

from __future__ import annotations

from orchestrator.cli import args as a


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "export", export, "a trained model as a standalone state dict plus a JSON sidecar", epilog)
    a.run_dir(sp)
    pick = sp.add_mutually_exclusive_group(required=True)
    pick.add_argument("--trial", metavar="ID", help="the trial to export (its id, as `decaylab status` lists it)")
    pick.add_argument("--best", metavar="ARM", help="export the arm's best-tuned trial")
    sp.add_argument("--checkpoint", choices=["best", "last", "ema"], default="best",
                    help="best: the weights of the best validation epoch (default); last: the final weights; ema: "
                    "the averaged weights of their best validation epoch (train.ema)")
    output = sp.add_mutually_exclusive_group(required=True)  # required, by its name or its former one
    output.add_argument("-o", "--output", metavar="FILE", help="model file to write (e.g. model.pt); its JSON "
                        "sidecar is written beside it (model.json)")
    a.alias(output, "--out", "output")


def export(args) -> int:
    from orchestrator.run.export import export as run_export

    return run_export(args.run_dir, trial=args.trial, best=args.best, checkpoint=args.checkpoint, out=args.output)
