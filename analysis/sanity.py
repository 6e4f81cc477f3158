"""Sanity checks on evaluations: a stronger attack must not do worse than a weaker one.

On the same examples, AutoAttack accuracy ≤ PGD accuracy ≤ FGSM accuracy ≤ clean accuracy.
A violation usually means gradient masking (the model hides its gradients, so gradient
attacks fail while it is not actually robust) or a broken attack (wrong ε, model left in
train mode, clipping bug). Comparisons are strict and NaNs (attacks not run) are ignored.
"""

from __future__ import annotations

import pandas as pd

# (stronger attack, weaker attack or clean, what a violation may indicate)
ORDERINGS: tuple[tuple[str, str, str], ...] = (
    (
        "autoattack_acc",
        "pgd_acc",
        "AutoAttack weaker than PGD suggests a broken attack: check AutoAttack's ε, norm and "
        "examples, and that PGD ran on the same examples and model",
    ),
    (
        "pgd_acc",
        "fgsm_acc",
        "multi-step PGD weaker than single-step FGSM suggests gradient masking or a broken PGD "
        "(step size, projection, random start)",
    ),
    ("fgsm_acc", "clean_acc", "an attack raising accuracy suggests a broken attack or gradient masking"),
    ("pgd_acc", "clean_acc", "an attack raising accuracy suggests a broken attack or gradient masking"),
    ("autoattack_acc", "clean_acc", "an attack raising accuracy suggests a broken attack"),
)


def sanity_warnings(evals: pd.DataFrame) -> list[str]:
    """One message per (evaluations row, violated ordering), in row order.

    Flags autoattack_acc > pgd_acc, pgd_acc > fgsm_acc, and any robust accuracy > clean_acc.
    Each message names the trial, checkpoint, sparsity, the two numbers and a likely cause.
    """
    flagged = []
    for rank, (strong, weak, meaning) in enumerate(ORDERINGS):
        # NaN comparisons are False, so an attack that was not run never raises a flag.
        bad = evals.index[(evals[strong] > evals[weak]).fillna(False).to_numpy(bool)]
        flagged += [(position, rank, strong, weak, meaning) for position in evals.index.get_indexer(bad)]
    messages = []
    for position, _, strong, weak, meaning in sorted(flagged):
        row = evals.iloc[position]
        messages.append(
            f"trial {row['trial_id']} checkpoint {row['checkpoint']} sparsity {row['sparsity']:g}: "
            f"{strong} {row[strong]:.4f} > {weak} {row[weak]:.4f} — {meaning}"
        )
    return messages
