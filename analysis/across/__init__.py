"""Across studies: every arm against a reference arm over the strata of several run directories.

`decaylab compare RUN_DIR…` (orchestrator/cli/compare.py) asks this package, and `analysis.across_report`
writes compare.md, compare.html, compare.json, figures/ and tables/.

**Strata** (`analysis.across.strata`). A stratum is one run directory at one label-noise level where the
reference arm has headline values. Within it each arm's per-seed values are the report's own
(`analyse(load_run(dir)).values`, test `headline`: confirmation trials where there are some, else the
cross-fitted ones), read at the chosen metric and checkpoint (default: the report's headline, its metric at
the best checkpoint). Pruning sparsity is not a stratum: it re-measures the same seeds.

**Numbers** (`analysis.across.bootstrap`), per arm against the reference:

* P(improvement): per stratum the share of (arm seed, reference seed) pairs the arm wins, ties ½ (the
  Mann–Whitney U / (n·m) of rliable), averaged over the strata, each stratum weighing the same;
* the mean of the paired difference arm − reference (pairs by seed within a stratum): the mean over strata of
  each stratum's mean; its IQM: the mean of the middle half of all pairs, a stratum's pairs sharing weight 1;
* a stratified percentile bootstrap of all three, B = 2,000 replicates from seed 0 (`[0, i]` for the i-th arm):
  within each stratum n − 1 of its n seeds drawn with replacement, a seed bringing its arm and reference
  value; `--resample-strata` also draws K − 1 of the K strata; `--two-level` also draws the test examples
  (per stratum and replicate, shared by both sides) from the per-example correctness.

**Family and verdicts.** The m compared arms are one family, adjusted by **Bonferroni on the intervals'
level**: every interval is at 1 − α/m (α: the studies' `analysis.alpha`). Verdict: "meaningfully better"
when P's interval lies above γ (`--meaningful`, 0.75: Bouthillier et al. 2021), "better" above ½,
"meaningfully worse" below 1 − γ, "worse" below ½; else "equivalent" when the mean difference's interval at
1 − 2α/m (two one-sided tests at α/m, as `analysis.verdicts` does) lies within ±min_effect (the studies'
`analysis.min_effect`); else "inconclusive". P is bounded by 1 in each stratum, so one stratum cannot carry
the mean P of K strata above (1 + (K − 1)·P_others)/K: a huge effect in one stratum is not a meaningful
improvement across them. Each stratum also keeps its own verdict: the report's headline verdict row when the
comparison is that headline (same reference, metric, checkpoint), else `analysis.compare.verdict_rows` on
these values (the study's α, min_effect and adjustment; the headlines of that study as one family).

**compare.json** (strict JSON: NaN, ±inf and missing numbers are null)::

    schema            "decaylab.compare/1"
    written_by        "decaylab compare"
    reference         the reference arm
    metric            pgd_acc | autoattack_acc | clean_acc, or "mixed" (with --allow-mixed; see runs[].metric)
    checkpoint        best | last | ema, or "mixed"
    alpha             family-wise α; min_effect: the equivalence margin (fraction); meaningful: γ
    adjustment        {method: "bonferroni", family_size: m, interval_level: 1 − α/m,
                       equivalence_level: 1 − 2α/m}
    bootstrap         {resamples, seed, seeds_drawn: "n - 1 of n per stratum", resample_strata, two_level}
    runs[]            {study, label (unique), run_dir, git_commit, study_yaml_sha256 (SHA-256 of the run's
                       study.yaml; null when absent), resolved_study_sha256 (of the manifest's resolved study,
                       canonical JSON), manifest (bool), started, finished, levels[], metric, checkpoint,
                       fallback (why not the metric/checkpoint asked for, or null),
                       threat_model {attack, eps, steps, text}, alpha, min_effect, adjust, reference, arms[],
                       smoke_test}
    strata[]          {id, label ("<study label>, noise <p>%"), study, run_dir, level}
    arms[]            one per compared arm: {arm, reference, strata (how many it has), pairs (paired seeds over
                       them), p_improvement, p_low, p_high, mean_diff, mean_low, mean_high, iqm_diff, iqm_low,
                       iqm_high (fractions: 0.01 is one point), equivalence_low, equivalence_high, verdict,
                       missing_strata [labels]}
    per_stratum[]     one per (arm, stratum it has): {arm, stratum, stratum_id, study, level, stage
                       ("confirm" | "cross-fit"), n (paired seeds), n_arm, n_reference, p_improvement, p_low,
                       p_high, mean_diff, boot_low, boot_high (the bootstrap interval of this stratum's mean,
                       at interval_level), verdict (the stratum's own), verdict_source ("report" | "computed"),
                       ci_low, ci_high, ci_level (its sign-flip interval at its attainable level), p_value,
                       p_adjusted}
    missing[]         {arm, stratum, reason}: where an arm has no comparison (not silently dropped)
    profiles          {tau [fractions], level (pointwise band: 1 − α), arms {arm: {strata, fraction[], low[],
                       high[]}}}: share of strata × seeds above τ (each stratum weighing the same)
    notes[]           what was mixed, left out or fell back, in words
    files[]           the files written, relative to the output directory
"""

from __future__ import annotations

from analysis.across.compute import Comparison, compare_runs
from analysis.across.strata import CompareInputError

__all__ = ["CompareInputError", "Comparison", "compare_runs"]
