"""`decaylab export RUN_DIR (--trial ID | --best ARM) [--checkpoint best|last] --output model.pt`.

Writes the trial's weights as a standalone state dict and a JSON sidecar next to it
(`model.json`): architecture, dataset (input shape, classes, the normalisation the model applies
itself), threat model and ε, the accuracies of the trial's final evaluation of those weights, and
the trial's full configuration. `trials.models.load_model(path)` rebuilds the network from the two.
The weights come from the trial's final checkpoint (`orchestrator.run.records`), which holds both its
last weights and the weights of its best validation epoch. The sidecar names the weights file and
its sha256, so `load_model` refuses a pair an interrupted export left mismatched (`save`), and an
export never overwrites the sidecar of another model file.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.run import manifest, records, results
from orchestrator.run.directory import open_run
from orchestrator.run.storage import RunDir, write_atomic_local
from trials import selection
from trials.config import TrialConfig, resolved_eval_attack
from trials.datasets import dataset_info
from trials.exported import FORMAT, MAX_SIDECAR, sidecar_path
from trials.files import read_regular


def export(location: str, *, trial: str | None, best: str | None, checkpoint: str, out: str) -> int:
    if Path(out).suffix == ".json":
        raise UserError(f"--output {out}", "the model file would be its own sidecar", "give e.g. --output model.pt")
    check_sidecar_free(Path(out))  # before the checkpoint is read: a refusal comes at once
    run, study = open_run(location, check_data=False)
    trial_id = trial or best_trial(run, best, study.data.label_noise[0])
    state = finished_checkpoint(run, trial_id)
    weights, epoch = {"best": (state["best_model"], state["best_epoch"]), "last": (state["model"], state["epoch"]),
                      "ema": (state.get("ema_best_model"), state.get("ema_best_epoch"))}[checkpoint]
    if weights is None:
        what = ("averaged weights (train.ema was off)" if checkpoint == "ema"
                else "best checkpoint (no epoch was evaluated)")
        raise UserError(trial_id, f"the trial has no {what}", "export --checkpoint last")
    epoch = int(epoch)
    meta = sidecar(TrialConfig.from_dict(state["config"]), weights, checkpoint, epoch,
                   results.trial_state(run, trial_id)["evaluations"], manifest.read_manifest(run) or {})
    save(out, weights, meta)
    print(f"{trial_id} ({checkpoint} weights, epoch {epoch}) → {out} and {sidecar_path(out)}", file=sys.stderr)
    return 0


def best_trial(run: RunDir, arm: str, label_noise: float) -> str:
    """The arm's best-tuned trial (`trials.selection.best_tuned`) at the study's first label-noise level."""
    states = results.trial_states(run)
    rows = [results.trial_row(s) for s in states.values()]
    rows = [r for r in rows if (r.get("stage") or "tune") == "tune"]  # selection is made on the tuning stage
    arms = sorted({r["method"] for r in rows})
    if arm not in arms:
        raise UserError(f"--best {arm}", "no trial of that arm in the run", f"the arms here: {', '.join(arms)}")
    chosen = selection.best_tuned([r for r in rows if r["method"] == arm and r["label_noise"] == label_noise])
    if chosen is None:
        raise UserError(f"--best {arm}", "no trial of the arm has finished", "wait for the sweep, or use --trial")
    return chosen["trial_id"]


def finished_checkpoint(run: RunDir, trial_id: str) -> dict:
    if not records.valid_trial_id(trial_id) or not run.exists(records.TRIALS, trial_id):
        raise UserError(f"--trial {trial_id}", "no such trial in the run",
                        f"`decaylab status {run.location}` lists the trials")
    # the newest checkpoint only, read without the fallback of `records.load_checkpoint`: an older one is never
    # final, and that fallback drops the rows of later epochs, which a command that only reads must not do
    files = records.checkpoint_files(run, trial_id)
    state = None
    if files:
        epoch, name = files[0]
        records.require_safe_torch()
        try:
            state = exportable(records.read_checkpoint(run, trial_id, epoch, name))
        except Exception as e:  # truncated, corrupted, foreign, or without what export reads
            raise UserError(trial_id, f"no usable final checkpoint: {records.unusable(trial_id, name, e)}",
                            "train it again with `decaylab resume`, or export another trial") from None
    if state is None or state["status"] not in results.FINISHED:
        raise UserError(trial_id, "the trial has not finished (no final checkpoint)",
                        "finish it with `decaylab resume`, or export another trial")
    return state


# what export reads from a checkpoint: a file that lacks one is damaged, never a KeyError
WEIGHTS = ("model", "best_model")
NEEDED = ("status", "config", "epoch", "best_epoch", *WEIGHTS)


def exportable(state: dict) -> dict:
    missing = [k for k in NEEDED if k not in state]
    if missing:
        raise records.DamagedRecord(f"it lacks {', '.join(missing)}")
    if not all(isinstance(state[k], dict) for k in WEIGHTS if state[k] is not None) \
            or not isinstance(state["config"], dict):
        raise records.DamagedRecord("its weights or config are not mappings")
    return state


def output_classes(weights: dict) -> int:
    """The classes a network predicts: the rows of its last weight matrix (every decaylab model ends in a
    linear layer; image_folder's classes are not in the dataset registry)."""
    return int([w for w in weights.values() if w.ndim == 2][-1].shape[0])


def sidecar(cfg: TrialConfig, weights: dict, checkpoint: str, epoch: int, evaluations: list[dict],
            manifest: dict) -> dict:
    info = dataset_info(cfg.data.dataset, cfg.data.image_size)
    attack = resolved_eval_attack(cfg)
    final = next((r for r in evaluations if r["checkpoint"] == checkpoint and r["sparsity"] == 0.0), None)
    return {
        "format": FORMAT,
        "trial_id": cfg.trial_id, "checkpoint": checkpoint, "epoch": epoch,
        "architecture": cfg.model.model_dump(mode="json"),
        "dataset": {"name": info.name, "channels": info.channels, "size": info.size, "classes": output_classes(weights),
                    "mean": list(info.mean), "std": list(info.std)},
        "input": {"shape": [info.channels, info.size, info.size], "range": [0.0, 1.0],
                  "normalization": "inside the model (dataset mean and std)"},
        "threat_model": "Linf", "eps": attack.eps,
        "accuracy": None if final is None else {  # null where not measured (AutoAttack off)
            k: None if final[k] != final[k] else final[k]
            for k in ("examples", "clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc")},
        "evaluation": {"attack": {"kind": attack.kind, "eps": attack.eps, "steps": attack.steps,
                                  "step_size": attack.step_size}, "precision": "fp32",
                       "test_examples": "the first `examples` of the test split shuffled by data.split_seed"},
        "config": cfg.to_dict(),
        "decaylab": {"git_commit": manifest.get("git_commit"), "versions": manifest.get("versions")},
    }


def save(out: str, weights: dict, meta: dict) -> None:
    """Write the weights and their sidecar, which names them and their sha256. The sidecar goes first: an
    export cut short between the two leaves a sidecar whose sha256 the weights beside it do not match, and
    `load_model` refuses the pair until the export is run again (the other order could leave new weights
    beside an earlier sidecar, one of `decaylab-model/1` without a sha256 among them)."""
    import torch

    target = Path(out).resolve()
    check_sidecar_free(target)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in weights.items()}, buf)
    data = buf.getvalue()
    meta = {**meta, "format": FORMAT, "weights": {"file": target.name, "sha256": hashlib.sha256(data).hexdigest()}}
    write_atomic_local(sidecar_path(target), json.dumps(meta, indent=2, default=str).encode())
    write_atomic_local(target, data)


def check_sidecar_free(out: Path) -> None:
    """Refuse an export whose sidecar path holds the sidecar of another export (`model.pt` and `model.pth` share
    `model.json`): a sidecar is replaced only together with the weights it describes."""
    side = sidecar_path(out)
    if not side.exists():
        return
    try:
        described = json.loads(read_regular(side, MAX_SIDECAR, follow=True)).get("weights", {}).get("file")
    except (OSError, ValueError, AttributeError, RecursionError):
        described = None
    if described == out.name or (described is None and out.exists()):  # this model file's own (an earlier format's)
        return
    other = f"another model file, {described}" if described else "another model file"
    raise UserError(f"--output {out}", f"{side} beside it describes {other}; writing this export's sidecar would "
                    "leave that one without its own",
                    f"give --output another name (each model file has its own sidecar, <name>.json), or remove {side}")
