"""This run's figures beside published ones (the study's `reference_results`).

For each declared number (source, arm, metric, checkpoint, value) our figure is the arm's headline trials
at that noise level — the same trials the report's headline uses (its confirmation seeds when there is a
confirmation, else its cross-fitted choice per seed) — read at the declared metric and checkpoint. An arm
outside the headline (a study of one arm, such as a calibration run) is read on its confirmation trials,
else on every seed of its selected configuration (stage "selected"; with one configuration, every trial). The
difference is ours minus theirs, per seed, with the sign-flip test's interval at its attainable level:
an interval that excludes 0 says this run differs from the published number on these seeds; one that
includes it says the two agree within what these seeds can tell.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import verdicts

COLUMNS = ["source", "arm", "metric", "checkpoint", "level", "published", "ours", "n", "difference", "ci_low",
           "ci_high", "ci_level", "stage"]


def compare(declared: list[dict], values: pd.DataFrame, outcomes: pd.DataFrame, best: pd.DataFrame,
            alpha: float) -> pd.DataFrame:
    """One row per declared number (COLUMNS); `values` are the report's per-seed test values (`Analysis.values`),
    `outcomes` its per-trial table (`<checkpoint>_<metric>` columns) and `best` each arm's selection."""
    table = outcomes.drop_duplicates("trial_id").set_index("trial_id")
    rows = []
    for ref in declared:
        level = float(ref.get("label_noise", 0.0))
        mine = _trials(ref["arm"], level, values, outcomes, best)
        column = f"{ref.get('checkpoint', 'best')}_{ref.get('metric', 'pgd_acc')}"
        ours = (table[column].reindex(mine["trial_id"]).to_numpy(float) if column in table
                else np.full(len(mine), math.nan))
        ours = ours[np.isfinite(ours)]
        row = {"source": ref["source"], "arm": ref["arm"], "metric": ref.get("metric", "pgd_acc"),
               "checkpoint": ref.get("checkpoint", "best"), "level": level, "published": float(ref["value"]),
               "ours": float(ours.mean()) if len(ours) else math.nan, "n": len(ours),
               "stage": ", ".join(sorted(set(mine["stage"].astype(str)))) if len(mine) else ""}
        test = verdicts.sign_flip(ours - row["published"], alpha) if len(ours) else None
        row |= {"difference": test.mean if test else math.nan, "ci_low": test.ci_low if test else math.nan,
                "ci_high": test.ci_high if test else math.nan, "ci_level": test.ci_level if test else math.nan}
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _trials(arm: str, level: float, values: pd.DataFrame, outcomes: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """The trials (`trial_id`, `stage`) that stand for `arm` at `level` (see the module docstring)."""
    if len(values):
        head = values[(values["test"] == "headline") & (values["method"] == arm) & (values["label_noise"] == level)]
        if len(head):
            return head.drop_duplicates("trial_id")
    mine = outcomes[(outcomes["method"] == arm) & (outcomes["label_noise"] == level)].drop_duplicates("trial_id")
    confirmed = mine[mine["stage"] == "confirm"]
    if len(confirmed):
        return confirmed
    chosen = best[(best["method"] == arm) & (best["label_noise"] == level)] if len(best) else best
    if not len(chosen):
        return mine.iloc[:0]
    setting, lr = chosen.iloc[0]["setting"], chosen.iloc[0]["lr"]
    return mine[(mine["stage"] != "confirm") & (mine["setting"] == setting) & (mine["lr"] == lr)].assign(
        stage="selected")


def sentence(row: pd.Series) -> str:
    """What one comparison says, in words (Markdown)."""
    if row["n"] == 0:
        return "no finished trial of the arm to set beside it."
    if not math.isfinite(row["ci_low"]):
        return (f"ours {100 * row['ours']:.1f}% on {row['n']} seed(s): too few seeds for an interval "
                f"(at least 6 are needed at α = 0.05).")
    agree = row["ci_low"] <= 0 <= row["ci_high"]
    return (f"ours {100 * row['ours']:.1f}% on {row['n']} seeds, {100 * row['difference']:+.1f} points "
            f"({100 * row['ci_level']:.1f}% interval [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]): "
            + ("consistent with the published number on these seeds." if agree else
               "differs from the published number on these seeds."))
