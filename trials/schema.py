"""The fixed schema of decaylab's result files.

Shared by the trial engine (which makes the rows), the orchestrator (which writes the files) and
the analysis (which reads them);
this module imports neither torch nor Ray. Accuracies are fractions in [0, 1]; a value that
does not apply (a hyperparameter of another arm's kind, a metric not measured) is NaN (<NA>
for text). Every arm's hyperparameters have one column each, named as in `trials.arms`
(`lam` is the study file's `lambda`, spelled as a Python name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from trials import arms

if TYPE_CHECKING:  # pandas is imported by `conform` when it runs: `decaylab status` never needs it
    import pandas as pd

STATUSES: Final = ("ok", "diverged", "stopped", "failed", "running")  # stopped: early-stopped by ASHA (tuning)
KINDS: Final = arms.KINDS
HYPERPARAMETER_COLUMNS: Final[dict[str, str]] = arms.hyperparameter_columns()

# The configuration of a trial, carried on every row.
CONFIG_COLUMNS: Final[dict[str, str]] = {
    "study": "string",  # the study's name
    "trial_id": "string",  # the arm, its hyperparameter values, the lr and the seed, each spelled exactly
    "method": "string",  # the arm's name in the study file, e.g. "wd" or "awd"
    "kind": "string",  # the arm's kind (trials.arms.KINDS): fixed, adaptive, decoupled, rescale, ...
    "setting": "string",  # the arm's hyperparameters as a readable label, e.g. "λ=0.0005" or "θ=0.5, σ=1"
    **HYPERPARAMETER_COLUMNS,  # lam, lambda_awd, avg, tau, schedule, ...: NaN (<NA>) where not the arm's
    "lr": "float64",  # peak learning rate
    "seed": "int64",  # initialisation and data order; the same seed pairs trials across arms
    "stage": "string",  # tune: the study's seeds, on which selection is made; confirm: fresh seeds of the selection
    "label_noise": "float64",  # configured symmetric label-noise rate of the training split
}

EPOCH_METRICS: Final[dict[str, str]] = {
    "epoch": "int64",  # 1-based
    "lr_now": "float64",  # learning rate after the epoch's last step
    "train_loss": "float64",  # the objective minimised: mean over the epoch's batches (weighted by batch size) of
    # the arm's loss hook, i.e. after SoftAD or reweighting (else the mean CE or TRADES loss) on the adversarial batch
    "train_adv_ce": "float64",  # mean cross-entropy on the training step's own adversarial examples (before the
    # update, train mode; for TRADES the CE on x_adv), whatever the arm minimises
    "train_clean_acc": "float64",  # eval mode, fixed subset of the training split
    "train_clean_loss": "float64",  # mean CE, eval mode, on the examples of train_clean_acc
    "train_robust_acc": "float64",  # on the training step's own adversarial examples
    "val_clean_acc": "float64",  # eval mode, on eval.val_examples; NaN on an epoch eval.every leaves out
    "val_robust_acc": "float64",  # the same under the evaluation attack (attack.eval): what selection reads
    "test_clean_acc": "float64",  # eval mode, on eval.test_examples; NaN on an epoch eval.every leaves out
    "test_robust_acc": "float64",  # the same under the evaluation attack
    "val_clean_loss": "float64",  # mean cross-entropy on the examples of val_clean_acc
    "val_robust_loss": "float64",  # mean cross-entropy under the attack, on the examples of val_robust_acc
    "test_clean_loss": "float64",  # mean cross-entropy on the examples of test_clean_acc
    "test_robust_loss": "float64",  # mean cross-entropy under the attack, on the examples of test_robust_acc
    "ema_val_clean_acc": "float64",  # val_clean_acc of the averaged weights (train.ema); NaN when off
    "ema_val_robust_acc": "float64",  # val_robust_acc of the averaged weights; NaN when off
    "ema_test_clean_acc": "float64",  # test_clean_acc of the averaged weights; NaN when off
    "ema_test_robust_acc": "float64",  # test_robust_acc of the averaged weights; NaN when off
    "weight_norm": "float64",  # ‖w‖₂ over the decayed parameters, end of epoch
    "grad_norm": "float64",  # mean over the epoch's steps of ‖∇w loss‖₂ (decayed parameters, before any decay)
    "lambda_mean": "float64",  # the arm's effective decay coefficient per step (λ, λ̄, λ·lr_t/lr_0, ...:
    # trials.arms.decay_quantity(kind); 0 for the arms without decay, softad and reweight), mean over the epoch
    "lambda_min": "float64",  # the arm's effective decay coefficient: smallest of the epoch's steps
    "lambda_max": "float64",  # the arm's effective decay coefficient: largest of the epoch's steps
    "prescale_norm": "float64",  # rescale: ‖w‖ of the scale-invariant weights before rescaling; else NaN
    "weight_concentration": "float64",  # reweight: B·maxᵢ wᵢ of the instance weights (1 = uniform), mean over
    # the epoch's steps; else NaN
    "noisy_fit_acc": "float64",  # fraction of label-flipped training examples predicted as their
    # noisy label (memorisation); NaN without label noise
    "epoch_seconds": "float64",  # wall time of the epoch's training and evaluation
    "status": "string",  # the trial's status (same on all of its rows)
}

EPOCH_COLUMNS: Final[dict[str, str]] = {**CONFIG_COLUMNS, **EPOCH_METRICS}

TRIAL_METRICS: Final[dict[str, str]] = {
    "status": "string",  # ok, diverged, stopped (by ASHA, tuning only), failed or running
    "error": "string",  # last error message of a failed trial, else empty
    "epochs": "int64",  # planned epochs
    "epochs_done": "int64",  # epochs trained
    "best_epoch": "Int64",  # by val_robust_acc (first of ties); <NA> if none evaluated (trials.selection)
    "best_val_robust_acc": "float64",  # val_robust_acc at the best epoch
    "best_val_clean_acc": "float64",  # val_clean_acc at the best epoch
    "score": "float64",  # what selection averages over seeds: best val robust acc, 0.0 if diverged, else NaN
    "best_test_clean_acc": "float64",  # per-epoch test_clean_acc (eval.test_examples) at the best epoch
    "best_test_robust_acc": "float64",  # per-epoch test_robust_acc at the best epoch
    "last_test_clean_acc": "float64",  # per-epoch test_clean_acc at the last epoch
    "last_test_robust_acc": "float64",  # per-epoch test_robust_acc at the last epoch
    "gap_robust": "float64",  # best_test_robust_acc − last_test_robust_acc
    "autoattack_best": "float64",  # AutoAttack accuracy of the best checkpoint (NaN if not run)
    "autoattack_last": "float64",  # AutoAttack accuracy of the last checkpoint (NaN if not run)
    "autoattack_ema": "float64",  # of the best averaged weights (train.ema)
    "weight_norm_last": "float64",  # weight_norm at the last epoch
    "label_noise_actual": "float64",  # exact fraction of training labels flipped
    "train_seconds": "float64",  # the sum of epoch_seconds (the final evaluations not included)
}

TRIAL_COLUMNS: Final[dict[str, str]] = {**CONFIG_COLUMNS, **TRIAL_METRICS}

# Extra evaluations of kept checkpoints (`decaylab evaluate`, or a trial's final step):
# one row per (trial, checkpoint, sparsity). Clean, FGSM, PGD and AutoAttack accuracy are
# measured on the same seeded test examples so they can be checked against each other.
EVAL_COLUMNS: Final[dict[str, str]] = {
    **CONFIG_COLUMNS,
    "checkpoint": "string",  # "best" | "last" | "ema" (the averaged weights of their own best epoch, train.ema)
    "epoch": "int64",  # the checkpoint's epoch
    "sparsity": "float64",  # fraction of prunable weights zeroed (0 = unpruned)
    "examples": "int64",  # test examples evaluated (the same seeded ones for every trial)
    "clean_acc": "float64",  # accuracy on clean inputs
    "fgsm_acc": "float64",  # accuracy under FGSM at the evaluation ε
    "pgd_acc": "float64",  # accuracy under the study's evaluation attack (attack.eval)
    "autoattack_acc": "float64",  # NaN when AutoAttack was not run for this row

    # Per-example correctness on the row's `examples` test examples, in their fixed order, packed by
    # `pack_correct` below (bits, 8 to a byte, base64); <NA> when not stored. The report uses them for a
    # test-set (seed × example) bootstrap interval.
    "correct_clean": "string",  # per-example correctness on clean inputs, packed (pack_correct)
    "correct_pgd": "string",  # per-example correctness under the evaluation attack, packed
    "correct_autoattack": "string",  # per-example correctness under AutoAttack, packed
}

def conform(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Return `frame` with exactly `columns`, in order and with their dtypes.

    A missing float column is filled with NaN and a missing string column with <NA>; a
    missing integer column is an error (integers identify rows and are never optional).
    """
    import pandas as pd

    out = {}
    for name, dtype in columns.items():
        if name in frame.columns:
            column = frame[name]
            # compare names: pandas' own `str` dtype compares equal to "string" but keeps NaN, not <NA>
            out[name] = column if str(column.dtype) == dtype else column.astype(dtype)
        elif dtype == "int64":
            raise KeyError(f"result frame lacks the integer column {name!r}")
        else:
            out[name] = (
                pd.Series(pd.NA, index=frame.index, dtype="object").astype(dtype)
                if dtype in ("string", "Int64")
                else pd.Series(float("nan"), index=frame.index)
            )
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def pack_correct(bools) -> str:
    """Per-example correctness as compact text (the `correct_*` evaluation columns): the bits packed 8 to a byte,
    in base64."""
    import base64

    import numpy as np

    x = np.asarray(bools)
    if x.ndim != 1:
        raise ValueError(f"pack one trial's examples at a time (a 1-D array); got shape {x.shape}")
    if x.dtype != bool and not np.isin(x, (0, 1)).all():
        raise ValueError("correctness must be booleans (or 0/1)")
    return base64.b64encode(np.packbits(x.astype(bool)).tobytes()).decode("ascii")


def unpack_correct(text: str, n: int):
    """The n booleans that `pack_correct` turned into `text` (a numpy array)."""
    import base64

    import numpy as np

    raw = base64.b64decode(text, validate=True)
    if not (8 * len(raw) - 8 < n <= 8 * len(raw)) and not (n == 0 and not raw):
        raise ValueError(f"{len(raw)} packed bytes hold 8·{len(raw)} bits, which cannot be {n} examples")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n).astype(bool)
