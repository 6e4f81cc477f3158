"""What each table shows: machine frames (fractions) -> `Table`s with display strings (percent).

Each builder takes the rows of one label-noise level (or all levels, where the level is a
column) and returns a `Table` whose `data` goes to CSV and whose `display` goes to Markdown,
HTML and LaTeX. Cells are plain text: each renderer escapes them.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.secondary import TESTS as SECONDARY_TESTS
from analysis.select import LEVEL, symbol
from analysis.tables import CI_NOTE, Table, fixed, interval, num_pm, p_text, pct, pct_pm, pts

FINAL_METRICS = [
    ("best_clean_acc", "Clean best"),
    ("best_fgsm_acc", "FGSM best"),
    ("best_pgd_acc", "PGD best"),
    ("best_autoattack_acc", "AA best"),
    ("last_clean_acc", "Clean last"),
    ("last_pgd_acc", "PGD last"),
    ("last_autoattack_acc", "AA last"),
]
ERROR_CHARS = 120


def seeds_cell(row: pd.Series) -> str:
    """'3', '3 (1 diverged, counted 0)', '2 (+1 failed)': counted seeds, and how the others fared."""
    text = str(int(row["n_counted"]))
    notes = [f"{int(row['n_diverged'])} diverged, counted 0"] if row["n_diverged"] else []
    for status in ("failed", "running", "stopped", "no_eval"):
        if row.get(f"n_{status}", 0):
            notes.append(f"+{int(row[f'n_{status}'])} {'without final evaluation' if status == 'no_eval' else status}")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _pm(frame: pd.DataFrame, metric: str) -> list[str]:
    return [pct_pm(m, h) for m, h in zip(frame[f"{metric}_mean"], frame[f"{metric}_ci"], strict=True)]


def _diff_pm(frame: pd.DataFrame, metric: str) -> list[str]:
    """Signed differences in points ('+1.2 ± 0.4')."""
    return [
        pts(m) if pd.isna(h) or pd.isna(m) else f"{pts(m)} ± {fixed(100 * h)}"
        for m, h in zip(frame[f"{metric}_mean"], frame[f"{metric}_ci"], strict=True)
    ]


def binomial_note(frame: pd.DataFrame, metric: str) -> str:
    """The binomial standard error of one evaluation at the table's accuracies and example count."""
    examples = frame["examples_mean"].dropna()
    values = frame[f"{metric}_mean"].dropna()
    if examples.empty or values.empty:
        return ""
    n = float(examples.min())
    ses = [fixed(100 * math.sqrt(p * (1 - p) / n)) for p in values.clip(0, 1)]
    spread = ses[0] if min(ses) == max(ses) else f"{min(ses)}–{max(ses)}"
    return f" One evaluation on {int(n)} examples has a binomial standard error of {spread} points at these accuracies."


def comparison(rows: pd.DataFrame, name: str, title: str, with_autoattack: bool, metric: str) -> Table:
    """One row per arm at its best-tuned configuration: the final evaluation, best and last checkpoints."""
    metrics = [m for m in FINAL_METRICS if with_autoattack or "autoattack" not in m[0]]
    display = pd.DataFrame(
        {
            "Arm": [
                f"{m} ({k}{', reference' if ref else ''})"
                for m, k, ref in zip(rows["method"], rows["kind"], rows["is_reference"], strict=True)
            ],
            "Setting": list(rows["setting"]),
            "lr": [f"{lr:g}" for lr in rows["lr"]],
            "Seeds": [seeds_cell(r) for _, r in rows.iterrows()],
        }
    )
    for column, header in metrics:
        display[f"{header} (%)"] = _pm(rows, column)
    display["Best − last (pts)"] = _diff_pm(rows, "final_gap")
    display["‖w‖ last"] = [
        num_pm(m, h) for m, h in zip(rows["weight_norm_last_mean"], rows["weight_norm_last_ci"], strict=True)
    ]
    display["Examples"] = ["–" if pd.isna(e) else str(int(e)) for e in rows["examples_mean"]]
    keep = [LEVEL, "method", "kind", "setting", "lr", "is_reference", "score", "n_counted", "n_ok", "n_diverged"]
    keep += [f"{m}_{s}" for m, _ in metrics for s in ("mean", "ci", "n")]
    keep += ["final_gap_mean", "final_gap_ci", "weight_norm_last_mean", "weight_norm_last_ci", "examples_mean"]
    note = (
        f"Final evaluation (clean, FGSM, PGD{', AutoAttack' if with_autoattack else ''} on the same seeded test "
        f"examples) of the best and last checkpoints; mean over seeds, {CI_NOTE}; the gap is in {metric} "
        "(best − last)." + binomial_note(rows, "value")
    )
    return Table(name, title, rows[keep], display, note)


def tests(rows: pd.DataFrame, name: str, title: str, note: str) -> Table:
    """One row per arm: the paired comparison with the reference arm, its stage and its verdict."""
    display = pd.DataFrame(
        {
            "Arm": list(rows["method"]),
            "vs": list(rows["reference"]),
            "Stage": [STAGES.get(s, s) for s in rows["stage"]],
            "Varied": list(rows["varied"]),
            "n seeds": [str(int(n)) for n in rows["n"]],
            "Mean diff (pts)": [pts(v) for v in rows["mean_diff"]],
            "Hodges–Lehmann (pts)": [pts(v) for v in rows["hodges_lehmann"]],
            "Interval (pts)": [_interval_cell(r) for _, r in rows.iterrows()],
            "p": [p_text(p) for p in rows["p_value"]],
            "Adjusted p": [p_text(p) for p in rows["p_adjusted"]],
            "W/T/L": [
                f"{int(w)}/{int(t)}/{int(lo)}"
                for w, t, lo in zip(rows["wins"], rows["ties"], rows["losses"], strict=True)
            ],
            "Power at min effect": [_fraction(v) for v in rows["power_at_min_effect"]],
            "Seeds needed": ["–" if pd.isna(s) else str(int(s)) for s in rows["seeds_needed"]],
            "Verdict": list(rows["verdict"]),
            "Left out": list(rows["missing"].fillna("")),
        }
    )
    if "two_level_low" in rows and rows["two_level_low"].notna().any():
        at = display.columns.get_loc("p")
        display.insert(at, "With test-set sampling (pts)", [_two_level_cell(r) for _, r in rows.iterrows()])
    data = rows.drop(columns=["seeds", "tuning_seeds"], errors="ignore")
    return Table(name, title, data, display, note)


STAGES = {"confirm": "confirmation", "cross-fit": "cross-fitted"}


def _interval_cell(row: pd.Series) -> str:
    """'[−0.1, +2.2] (96.9%)'; '–' when the seeds are too few for any interval."""
    if pd.isna(row["ci_level"]):
        return "–"
    return f"{interval(row['ci_low'], row['ci_high'])} ({100 * row['ci_level']:.3g}%)"


def _two_level_cell(row: pd.Series) -> str:
    if pd.isna(row.get("two_level_low")):
        return "–"
    return f"{interval(row['two_level_low'], row['two_level_high'])} ({100 * row['two_level_level']:.3g}%)"


def _fraction(value: float) -> str:
    return "–" if pd.isna(value) else fixed(value, 2)


def secondary(rows: pd.DataFrame, name: str, title: str, note: str) -> Table:
    """One row per (test, arm): a secondary paired comparison with the reference (its own family)."""
    display = pd.DataFrame(
        {
            "Comparison": [SECONDARY_TESTS.get(t, t) for t in rows["test"]],
            "Arm": list(rows["method"]),
            "vs": list(rows["reference"]),
            "n seeds": [str(int(n)) for n in rows["n"]],
            "Mean diff (pts)": [pts(v) for v in rows["mean_diff"]],
            "Interval (pts)": [_interval_cell(r) for _, r in rows.iterrows()],
            "p": [p_text(p) for p in rows["p_value"]],
            "Adjusted p": [p_text(p) for p in rows["p_adjusted"]],
            "Verdict": list(rows["verdict"]),
        }
    )
    return Table(name, title, rows.drop(columns=["seeds"], errors="ignore"), display, note)


def left_out(rows: pd.DataFrame, name: str, title: str) -> Table:
    """The configurations selection could not choose, and why."""
    display = pd.DataFrame(
        {
            "Arm": list(rows["method"]),
            "Setting": list(rows["setting"]),
            "lr": [f"{lr:g}" for lr in rows["lr"]],
            "Why": list(rows["left_out"]),
        }
    )
    note = "A configuration takes part in selection only once every tuning seed it is due has finished."
    return Table(name, title, rows, display, note)


def sensitivity(table: pd.DataFrame, name: str, title: str) -> Table:
    """Spread and LR-AUC per arm, of the best-tuned setting and of best per lr, with 95% CIs over seeds."""

    def cell(row: pd.Series, metric: str) -> str:
        low, high = row[f"{metric}_low"], row[f"{metric}_high"]
        ci = "" if pd.isna(low) else f" [{pct(low)}, {pct(high)}]"
        return f"{pct(row[metric])}{ci}"

    display = pd.DataFrame(
        {
            "Arm": list(table["method"]),
            "Setting": list(table["setting"]),
            "Seeds": [str(int(n)) for n in table["n_seeds_best"]],
            "Spread, setting (pts)": [cell(r, "spread_best") for _, r in table.iterrows()],
            "LR-AUC, setting (%)": [cell(r, "area_best") for _, r in table.iterrows()],
            "Spread, best per lr (pts)": [cell(r, "spread_envelope") for _, r in table.iterrows()],
            "LR-AUC, best per lr (%)": [cell(r, "area_envelope") for _, r in table.iterrows()],
        }
    )
    note = (
        "Per seed, then mean over seeds with its 95% t-interval (a description: the arms are compared paired by "
        "seed under Secondary comparisons); spread = max − min over the lrs (lower: less sensitive); LR-AUC = mean "
        "accuracy over log10(lr); best per lr chosen for each seed on the other seeds. Seeds lacking an lr are "
        "left out."
    )
    return Table(name, title, table, display, note)


def budget(curves: pd.DataFrame, name: str, title: str) -> Table:
    """Per arm, the expected best at n = 1, 2, 4, … and N (every n is in the CSV), and the difference from the
    reference at the largest n both arms reach."""
    rows = []
    for arm, curve in curves.groupby("method", sort=False):
        total = int(curve["configurations"].iloc[0])
        shown = sorted({min(2**k, total) for k in range(total.bit_length() + 1)})
        cells = {f"n={n}": _budget_cell(curve[curve["n"] == n].iloc[0]) for n in shown}
        rows.append(
            {
                "Arm": arm,
                "N": str(total),
                **cells,
                "Difference from the reference at the largest shared n": _budget_diff(curve),
                "Hours per configuration": f"{float(curve['compute_hours'].iloc[0]):.3g}",
            }
        )
    display = pd.DataFrame(rows).fillna("")
    columns = ["Arm", "N", *sorted((c for c in display.columns if c.startswith("n=")), key=lambda c: int(c[2:]))]
    display = display[[*columns, "Difference from the reference at the largest shared n", "Hours per configuration"]]
    note = (
        "Expected test accuracy (%) of the validation-best of n configurations drawn without replacement from the "
        "arm's N finished configurations (ties on validation averaged), [95% band from resampling the seeds, the "
        "same draw for every arm], {10th–90th percentile of one practitioner's result}; n = N is the "
        "validation-best configuration. The difference is in points, with its band from the same draws. "
        "Compute: n × the hours per configuration (train_seconds of all its seeds)."
    )
    return Table(name, title, curves, display, note)


def _budget_cell(row: pd.Series) -> str:
    return (
        f"{pct(row['expected_best'])} [{pct(row['low'])}, {pct(row['high'])}] "
        f"{{{pct(row['spread_low'])}–{pct(row['spread_high'])}}}"
    )


def _budget_diff(curve: pd.Series) -> str:
    shared = curve[curve["diff"].notna()]
    if shared.empty:
        return "–"
    row = shared.iloc[-1]
    return f"n={int(row['n'])}: {pts(row['diff'])} {interval(row['diff_low'], row['diff_high'])}"


def anytime(rows: pd.DataFrame, name: str, title: str) -> Table:
    """Per arm of an Optuna stage: configurations tried, stopped early, and the best found (when)."""
    summary = []
    for arm, group in rows.groupby("method", sort=False):
        scored = group[group["eligible"]]
        best = scored.loc[scored["score"].idxmax()] if len(scored) else None
        summary.append(
            {
                "Arm": arm,
                "Configurations": str(len(group)),
                "Stopped early": str(int(group["stopped"].sum())),
                "Best val score (%)": "–" if best is None else pct(best["score"]),
                "Found at": "–" if best is None else f"#{int(best['order'])}: {best['setting']}, lr {best['lr']:.3g}",
            }
        )
    note = (
        "Configurations in the order trials.parquet lists them; a stopped configuration (early stopping) has no "
        "score and is never selected. The full best-so-far curve is in the CSV."
    )
    return Table(name, title, rows, pd.DataFrame(summary), note)


def importances(rows: pd.DataFrame, name: str, title: str) -> Table:
    wide = rows.pivot_table(index=["method", "kind", "param"], columns="evaluator", values="importance", sort=False)
    wide = wide.reindex(columns=["ped_anova", "fanova"]).reset_index()
    display = pd.DataFrame(
        {
            "Arm": list(wide["method"]),
            "Parameter": [symbol(kind, p) for kind, p in zip(wide["kind"], wide["param"], strict=True)],
            "PED-ANOVA": [fixed(v, 2) if pd.notna(v) else "–" for v in wide["ped_anova"]],
            "fANOVA": [fixed(v, 2) if pd.notna(v) else "–" for v in wide["fanova"]],
        }
    )
    note = (
        "Importance of each parameter for the validation score within one arm (sums to 1 per evaluator, so a share "
        "depends on the arm's other parameters: compare parameters within an arm, never shares across arms); "
        "the seed's importance is the noise floor."
    )
    return Table(name, title, rows, display, note)


def pareto(points: pd.DataFrame, name: str, title: str, metric: str) -> Table:
    front = points[points["on_front"]]
    display = pd.DataFrame(
        {
            "Arm": list(front["method"]),
            "Setting": list(front["setting"]),
            "lr": [f"{lr:g}" for lr in front["lr"]],
            "Seeds": [str(int(n)) for n in front["n_seeds"]],
            "Clean (%)": [pct(v) for v in front["clean"]],
            f"{metric[0].upper()}{metric[1:]} (%)": [pct(v) for v in front["robust"]],
        }
    )
    note = "Configurations no other configuration of the same arm beats on both numbers (seed means; final evaluation)."
    return Table(name, title, points, display, note)


def configurations(configs: pd.DataFrame, best: pd.DataFrame, name: str, title: str) -> Table:
    """Every configuration: validation score, best epoch, final best/last accuracy and their gap."""
    chosen = set(zip(best["method"], best["setting"], best["lr"], strict=True))
    arm_rank = {arm: i for i, arm in enumerate(dict.fromkeys(configs["method"]))}  # configs come in study order
    table = configs.assign(_arm=configs["method"].map(arm_rank)).sort_values(["_arm", "setting_rank", "lr"])
    display = pd.DataFrame(
        {
            "Arm": list(table["method"]),
            "Setting": list(table["setting"]),
            "lr": [f"{lr:g}" for lr in table["lr"]],
            "Best-tuned": [
                "yes" if k in chosen else "" for k in zip(table["method"], table["setting"], table["lr"], strict=True)
            ],
            "Seeds": [seeds_cell(r) for _, r in table.iterrows()],
            "Val score (%)": [pct(v) for v in table["score"]],
            "Best epoch": [_epoch(m, h) for m, h in zip(table["best_epoch_mean"], table["best_epoch_ci"], strict=True)],
            "Best ckpt (%)": _pm(table, "value"),
            "Last ckpt (%)": _pm(table, "value_last"),
            "Best − last (pts)": _diff_pm(table, "final_gap"),
        }
    )
    note = (
        f"Val score = the selection score (seed mean, diverged = 0); accuracies from the final evaluation; {CI_NOTE}."
    )
    return Table(name, title, table, display, note)


def _epoch(mean: float, half: float) -> str:
    """A mean epoch: an integer when every seed agrees ('12'), else '12.3 ± 1.5'."""
    if pd.notna(mean) and float(mean).is_integer() and (pd.isna(half) or half == 0):
        return str(int(mean))
    return num_pm(mean, half, 1)


def unfinished(table: pd.DataFrame, name: str, title: str) -> Table:
    """Diverged, failed and running trials; `epoch` is where each one stopped (or has reached)."""
    display = pd.DataFrame(
        {
            "Trial": list(table["trial_id"]),
            "Status": list(table["status"]),
            "Noise (%)": [f"{100 * v:g}" for v in table[LEVEL]],
            "Arm": list(table["method"]),
            "Setting": list(table["setting"]),
            "lr": [f"{lr:g}" for lr in table["lr"]],
            "Seed": [str(s) for s in table["seed"]],
            "Epoch": ["–" if pd.isna(e) else str(int(e)) for e in table["epoch"]],
            "Error": [str(e)[:ERROR_CHARS] for e in table["error"]],
        }
    )
    return Table(name, title, table, display, "Epoch: the last epoch logged (for a diverged trial, where it diverged).")


def label_noise(best: pd.DataFrame, name: str, title: str) -> Table:
    """Per noise rate and arm (best-tuned at that rate): final clean best/last, headline best, memorisation."""
    table = best.sort_values([LEVEL, "method"])
    display = pd.DataFrame(
        {
            "Noise (%)": [f"{100 * v:g}" for v in table[LEVEL]],
            "Arm": list(table["method"]),
            "Setting": list(table["setting"]),
            "lr": [f"{lr:g}" for lr in table["lr"]],
            "Seeds": [seeds_cell(r) for _, r in table.iterrows()],
            "Clean best (%)": _pm(table, "best_clean_acc"),
            "Clean last (%)": _pm(table, "last_clean_acc"),
            "Robust best (%)": _pm(table, "value"),
            "Noisy labels fitted, last (%)": _pm(table, "last_noisy_fit_acc"),
        }
    )
    note = (
        f"Noisy labels fitted: flipped training labels predicted as their flipped label at the last epoch; {CI_NOTE}."
    )
    return Table(name, title, table, display, note)


def pruning(table: pd.DataFrame, name: str, title: str, metric: str) -> Table:
    """Clean and headline accuracy of the best checkpoint at each sparsity, per arm."""
    display = pd.DataFrame(
        {
            "Noise (%)": [f"{100 * v:g}" for v in table[LEVEL]],
            "Arm": list(table["method"]),
            "Setting": list(table["setting"]),
            "lr": [f"{lr:g}" for lr in table["lr"]],
            "Sparsity (%)": [f"{100 * v:g}" for v in table["sparsity"]],
            "Seeds": [str(int(n)) for n in table["value_n"]],
            "Clean (%)": _pm(table, "clean_acc"),
            f"{metric[0].upper()}{metric[1:]} (%)": _pm(table, "value"),
        }
    )
    return Table(name, title, table, display, f"Best checkpoint of each arm's best-tuned configuration; {CI_NOTE}.")


def published(table: pd.DataFrame, name: str, title: str) -> Table:
    """Each declared published number beside this run's figure, with the difference's interval."""
    display = pd.DataFrame(
        {
            "Source": list(table["source"]),
            "Arm": list(table["arm"]),
            "Noise (%)": [f"{100 * v:g}" for v in table["level"]],
            "Metric": [f"{m} ({c})" for m, c in zip(table["metric"], table["checkpoint"], strict=True)],
            "Published (%)": [pct(v) for v in table["published"]],
            "Ours (%)": [pct(v) for v in table["ours"]],
            "Seeds": [str(int(n)) for n in table["n"]],
            "Ours − published (points)": [pts(v) for v in table["difference"]],
            "Interval": [_published_interval(r) for _, r in table.iterrows()],
        }
    )
    note = ("Ours: the arm's headline trials (confirmation seeds, else the cross-fitted choice per seed); "
            "interval: the inverted sign-flip interval of the per-seed differences at its attainable level.")
    return Table(name, title, table, display, note)


def _published_interval(row: pd.Series) -> str:
    if pd.isna(row["ci_low"]):
        return "–"
    return f"[{pts(row['ci_low'])}, {pts(row['ci_high'])}] at {fixed(100 * row['ci_level'])}%"
