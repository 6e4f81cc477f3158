"""The report's "How to read this report" section: the rules, written for a reader of the report.

Each entry is (title, bullet points). The wording names no function or module: it says what was
done to the numbers, in the terms the tables and figures use.
"""

from __future__ import annotations

from analysis.select import RULES as SELECTION

NUMBERS = [
    "Every accuracy in the tables and tests comes from the **final evaluation**: the best and the last checkpoint of "
    "each trial, evaluated in full precision on the same seeded test examples with clean inputs, FGSM, the study's "
    "PGD attack and (when enabled) AutoAttack. The binomial standard error of one such evaluation is given under "
    "the comparison table.",
    "The per-epoch accuracies (measured during training on `eval.test_examples`) appear only in the per-epoch "
    "curves, labelled as such.",
    "A **diverged** seed counts as 0 in selection, in every table and in every test, and is flagged where it occurs "
    '(e.g. "3 (1 diverged, counted 0)"). Failed, stopped and running seeds, and finished seeds without a final '
    "evaluation, are left out and listed.",
    "± after a mean is the half-width of its 95% t-interval over seeds, and bands in figures are the same interval: "
    "descriptions of how a mean moves with the seed, never a test.",
]

STAGES = [
    "**Tuning seeds** (the study's `seeds`) are where every configuration is trained and the selection is made. "
    "**Confirmation seeds** (`confirm.seeds`, fresh) are where each arm's selected configuration is trained again; "
    "with `confirm.vary_split` each of them also draws its own data split and test subset.",
    "**Headline = confirmation** when there is one: the arm's confirmation trials against the reference's, paired "
    "by seed. The selection never saw these seeds, so the comparison is not tilted towards the arm with more "
    "configurations to choose from.",
    "**Without confirmation, the headline is exploratory and cross-fitted**: for each tuning seed, every arm's "
    "configuration is chosen by the same rule on the *other* tuning seeds and judged on the held-out one, so no "
    "seed both chooses and judges. The configuration may differ between held-out seeds. Selecting and testing on "
    "the same seeds is never shown as a test (the selected configuration's tuning mean is shown as a "
    "description).",
    "Every verdict sentence says which of the two it is, what varied between the paired replicates (seeds only, "
    "or seeds and data splits), and how it was adjusted.",
]

TESTS = [
    "**Headline test**: arm − reference in the headline accuracy, one difference per seed both have.",
    "**LR test (across the lr grid)**: for each tuning seed, the arm's best-per-lr curve (each lr's configuration "
    "chosen on the other seeds), and its *peak-normalised* accuracy: the mean over the lrs of (accuracy at that lr "
    "− the seed's best accuracy over the grid); 0 is a curve flat at its peak, and a higher peak alone does not "
    "raise it. Compared with the reference's, paired by seed. Not run with a single lr, nor for an Optuna stage.",
    "**One test for everything**: the two-sided sign-flip test of the mean difference (exact up to 20 seeds, Monte "
    "Carlo beyond, and said so). The interval is the same test inverted, so it excludes 0 exactly when the "
    "unadjusted p ≤ α (it is one comparison's, before the family's adjustment); its confidence is the level the "
    "seeds can attain (96.9% with 6 seeds, where it spans the smallest to the largest "
    "difference), and below 6 seeds no interval exists. Beside the mean: the Hodges–Lehmann estimate (the median "
    "of the pairwise means of the differences), and wins/ties/losses.",
    "**The family**: every non-reference arm × {headline, LR} × label-noise level, adjusted together with the "
    "study's `analysis.adjust` (max-T by default: arm labels permuted within each seed, which keeps the chance of "
    "any false *better*/*worse* at α and uses the comparisons' shared reference). Raw and adjusted p are both "
    "shown; the verdict uses the adjusted one.",
    "**Verdicts**: *better*/*worse* when the adjusted p ≤ α (on these seeds); *equivalent within ±min_effect* when "
    "the 1 − 2α/m interval lies inside ±`analysis.min_effect`; *too few seeds* when no result at this number of "
    "seeds could reach the per-test level α/m; *inconclusive* otherwise. A run with one seed or fewer than 5 "
    "epochs is a *smoke test*: its numbers are shown, no claim is made.",
    "**Power and seeds needed** are for this test at the declared smallest effect of interest "
    "(`analysis.min_effect`), with a conservative spread (the upper 90% limit of the sd of the differences), at "
    "the per-test level α/m: never at the observed difference, which would only restate p.",
    "**Test-set uncertainty**: the seed-level interval holds the test examples fixed. When the per-example "
    "correctness of the final evaluation was stored, the headline also gets a two-level interval (seeds and test "
    "examples resampled together, at the same level), which adds the sampling of the finite test set; without "
    "it, the claim is conditional on this split and test subset.",
    "The reference arm is the study's `analysis.reference`, else its first fixed arm (study order).",
]

CURVES = [
    "**Secondary comparisons** (their own family, adjusted the same way, exploratory, on the tuning seeds): the "
    "spread (max − min over the lrs) and LR-AUC (mean accuracy over log10 lr) of each arm's selected setting held "
    "at every lr, and the worst-lr accuracy of its best-per-lr curve, each compared with the reference's paired "
    "by seed, never by whether two intervals overlap. Their words are *higher*/*lower* (a higher spread is a more "
    "lr-sensitive arm).",
    "**Weight norm**: per seed, the log of ‖w‖ arm / ‖w‖ reference for the headline's trials; the geometric mean "
    "ratio with the sign-flip interval of the log ratios (a description, not a verdict).",
    "**Tuning budget**: the expected test accuracy of the validation-best of n configurations drawn at random "
    "(configurations tied on validation count equally, so their order does not matter); its band resamples the "
    "seeds, the same draw for every arm, and recomputes the choice; the practitioner spread (10th–90th "
    "percentile) is what one person trying n configurations may get; each arm's curve minus the reference's comes "
    "with its own band. Not computed for an Optuna stage, whose sampler is not uniform.",
    "**Optuna stage**: the best validation score so far in trial order per arm; configurations stopped early are "
    "flagged and never selected.",
    "**Hyperparameter importance**: which parameters move the validation score *within* one arm; an arm's shares "
    "sum to 1, so they are not compared across arms; rough below about 100 trials.",
    "**Pareto front**: the configurations of an arm no other configuration of it beats on both clean and robust "
    "accuracy; shown for reading, not used for choosing.",
]

RULES: list[tuple[str, list[str]]] = [
    ("Selection (on validation only)", SELECTION),
    ("Stages: tuning, confirmation, cross-fitting", STAGES),
    ("The numbers", NUMBERS),
    ("The tests and their verdicts", TESTS),
    ("Curves and summaries", CURVES),
]
