"""The report's "How to read this report" section: the rules, written for a reader of the report.

Each entry is (title, bullet points). The wording names no function or module: it says what was
done to the numbers, in the terms the tables and figures use.
"""

from __future__ import annotations

from analysis import stats
from analysis.select import RULES as SELECTION

NUMBERS = [
    "Every accuracy in the tables and tests comes from the **final evaluation**: the best and the last checkpoint of "
    "each trial, evaluated in full precision on the same seeded test examples with clean inputs, FGSM, the study's "
    "PGD attack and (when enabled) AutoAttack. The binomial standard error of one such evaluation is given under "
    "the comparison table.",
    "The per-epoch accuracies (measured during training on `eval.test_examples`) appear only in the per-epoch "
    "curves, labelled as such.",
    "A **diverged** seed counts as 0 in selection, in every table and in both tests, and is flagged where it occurs "
    '(e.g. "3 (1 diverged, counted 0)"). Failed, stopped and running seeds, and finished seeds without a final '
    "evaluation, are left out and listed.",
    "± after a mean is the half-width of its 95% t-interval over seeds; bands in figures are the same interval.",
]

TESTS = [
    "**Headline test (best-tuned vs best-tuned)**: each arm's best-tuned configuration against the reference arm's "
    "best-tuned configuration (each chosen on validation, possibly at different lrs), paired by seed: one difference "
    "per seed both ran.",
    "**LR-robustness test (across the lr grid)**: for each seed, the mean over the lr grid of the arm's best-per-lr "
    "accuracy, against the same for the reference arm, paired by seed. The seed is the unit of replication: the lrs "
    "of one seed are never counted as independent pairs.",
    "Both report the mean difference, its 95% interval (t-interval below "
    f"{stats.BOOTSTRAP_FROM} seeds, seeded bootstrap from there on), the exact two-sided p of the sign-flip "
    "permutation test (all 2^n sign patterns of the n differences), wins/ties/losses, the smallest p the test can "
    "give at this n (2/2^n: below 6 seeds nothing can reach 0.05), the seeds needed to detect the observed "
    "difference with power 0.8 at α = 0.05, and the smallest difference detectable at the current n.",
    "Wording follows the evidence: *too few seeds* when no result at this n could reach p ≤ 0.05; *better/worse on "
    "these n seeds* when p ≤ 0.05 (a statement about this run); *inconclusive* otherwise. A run with one seed or "
    "fewer than 5 epochs is a *smoke test*: its numbers are shown, no claim is made.",
    "The reference arm is the study's `analysis.reference`, else its first fixed arm (study order).",
]

CURVES = [
    "**LR sensitivity**: per seed, the best-tuned setting held fixed at every lr (and, separately, the best "
    "configuration per lr); spread = max − min over the lrs, LR-AUC = the area under accuracy vs log10(lr) divided "
    "by the log10 range (an average accuracy over the grid); then the mean over seeds with its 95% interval.",
    "**Tuning budget**: what an arm delivers when only n configurations can be tried (see that section).",
    "**Hyperparameter importance**: which parameters move the validation score within one arm; rough below about "
    "100 trials.",
    "**Pareto front**: the configurations of an arm no other configuration of it beats on both clean and robust "
    "accuracy; shown for reading, not used for choosing.",
]

RULES: list[tuple[str, list[str]]] = [
    ("Selection (on validation only)", SELECTION),
    ("The numbers", NUMBERS),
    ("The two tests", TESTS),
    ("Curves and summaries", CURVES),
]
