"""The two tests of each arm against the reference arm, both paired by seed.

* **Headline (best-tuned vs best-tuned)**: the arm's best-tuned configuration against the
  reference's best-tuned configuration (each selected on validation, possibly at different lrs),
  on each seed both ran: d = arm − reference of the final evaluation's headline metric at the
  best checkpoint.
* **LR robustness (across the lr grid)**: per seed, the mean over the lr grid of the arm's
  best-per-lr accuracy (the configuration chosen on validation at each lr); d = arm − reference
  of those per-seed means. The seed is the unit of replication in both tests: the lrs of one
  seed are never treated as independent pairs.

Seeds that did not finish in both configurations are left out of the pairs and listed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import stats
from analysis.select import ARM_KEYS, CONFIG_KEYS, LEVEL

TEST_COLUMNS = [LEVEL, "method", "reference", "n", "mean_diff", "sd_diff", "ci_low", "ci_high", "ci_method"]
TEST_COLUMNS += ["p_value", "wins", "ties", "losses", "min_attainable_p", "seeds_needed", "detectable_effect"]


def seed_values(outcomes: pd.DataFrame, chosen: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """Per (level, arm, seed) the chosen configuration's `column` (NaN when not counted) and status."""
    rows = outcomes.merge(chosen[CONFIG_KEYS], on=CONFIG_KEYS)
    return rows[[*ARM_KEYS, "setting", "lr", "seed", "status", "no_eval", column]]


def _reason(row: pd.Series, suffix: str) -> str:
    """Why one side of a seed has no number: not run, failed, running, stopped, or no final evaluation."""
    status = row[f"status{suffix}"]
    if pd.isna(status):
        return "not run"
    return "no final evaluation" if row[f"no_eval{suffix}"] else str(status)


def headline(
    outcomes: pd.DataFrame, best: pd.DataFrame, references: dict, column: str = "value"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tests, pairs): one test row per (level, non-reference arm) and its per-seed pairs of `column`."""
    values = seed_values(outcomes, best, column)
    tests, pairs = [], []
    for level, reference in references.items():
        at_level = values[values[LEVEL] == level]
        ref = at_level[at_level["method"] == reference]
        for method in [m for m in at_level["method"].unique() if m != reference and reference is not None]:
            arm = at_level[at_level["method"] == method]
            pair, missing = _pair(arm, ref, column)
            pairs.append(pair.assign(**{LEVEL: level, "method": method, "reference": reference}))
            tests.append(_test_row(level, method, reference, pair["diff"].to_numpy(), missing))
    return _frame(tests), pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()


def _pair(arm: pd.DataFrame, ref: pd.DataFrame, column: str) -> tuple[pd.DataFrame, str]:
    """Seeds with a number in both frames, their values and diff; and the seeds left out, explained."""
    both = arm.merge(ref, on="seed", how="outer", suffixes=("", "_ref"))
    ok = both[column].notna() & both[f"{column}_ref"].notna()
    pair = both.loc[ok, ["seed", column, f"{column}_ref"]].rename(columns={column: "acc", f"{column}_ref": "acc_ref"})
    pair["diff"] = pair["acc"] - pair["acc_ref"]
    notes = []
    for _, row in both[~ok].sort_values("seed").iterrows():
        sides = [(name, sfx) for name, sfx in (("arm", ""), ("reference", "_ref")) if pd.isna(row[f"{column}{sfx}"])]
        notes.append(f"seed {int(row['seed'])} ({', '.join(f'{name}: {_reason(row, sfx)}' for name, sfx in sides)})")
    return pair.sort_values("seed").reset_index(drop=True), "; ".join(notes)


def _test_row(level: float, method: str, reference: str, d: np.ndarray, missing: str) -> dict:
    return {LEVEL: level, "method": method, "reference": reference, **stats.paired(d).as_dict(), "missing": missing}


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[*TEST_COLUMNS, "missing"])


def lr_seed_means(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (level, arm, seed): the mean over the lr grid of the best-per-lr value (`lr_mean`).

    `cells` are `analysis.sensitivity.envelope_cells`. A seed without a number at some lr of the
    grid gets NaN, with the lrs it lacks in `missing`.
    """
    grouped = cells.groupby([*ARM_KEYS, "seed"], sort=True)
    out = grouped["value"].agg(lambda v: v.mean() if v.notna().all() else np.nan).rename("lr_mean").to_frame()
    out["n_lr"] = grouped["lr"].nunique()
    out["missing"] = grouped["missing"].agg(lambda m: ", ".join(x for x in m if x))
    return out.reset_index()


def lr_robustness(per_seed: pd.DataFrame, references: dict) -> pd.DataFrame:
    """One test row per (level, non-reference arm) on the per-seed means over the lr grid."""
    rows = []
    for level, reference in references.items():
        at_level = per_seed[per_seed[LEVEL] == level]
        ref = at_level[at_level["method"] == reference].assign(status="ok", no_eval=False)
        for method in [m for m in at_level["method"].unique() if m != reference and reference is not None]:
            arm = at_level[at_level["method"] == method].assign(status="ok", no_eval=False)
            pair, _ = _pair(arm, ref, "lr_mean")
            gaps = pd.concat([arm, ref])
            missing = "; ".join(
                f"seed {int(r.seed)} ({r.method}: no number at {r.missing})" for r in gaps.itertuples() if r.missing
            )
            rows.append(_test_row(level, method, reference, pair["diff"].to_numpy(), missing))
    return _frame(rows)
