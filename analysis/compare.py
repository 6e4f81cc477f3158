"""The primary tests of each arm against the reference arm, paired by seed, and their family.

* **Headline.** With a confirmation stage, each arm's selected configuration (chosen on the tuning
  seeds, validation only) retrained on fresh seeds (`stage` "confirm"), against the reference's,
  paired by confirmation seed: the selection never saw these seeds. Without one, the **cross-fitted**
  comparison (`analysis.crossfit`): tuning seed s contributes the test value on s of the
  configuration chosen on the other tuning seeds; exploratory, because the tuning seeds also chose
  the grid. An arm is confirmed only when it and the reference both have confirmation trials.
* **LR** (robustness to the learning rate). Per tuning seed, the arm's best-per-lr curve (at each lr
  the configuration chosen on validation there, cross-fitted like the headline; a diverged seed
  counts 0, and so does a seed at an lr where every configuration diverged), then the
  *peak-normalised* accuracy: the mean over the lr grid of (accuracy at that lr − the seed's best
  accuracy over the grid), 0 for a curve that is flat at its peak. It measures flatness, not level:
  a higher peak does not raise it. The worst-lr accuracy is kept beside it (a secondary comparison).

Every comparison is a row of one `analysis.verdicts.verdict_table` call: the family is every
non-reference arm × {headline, LR} × label-noise level, adjusted with the study's `analysis.adjust`.
The seed is the unit of replication: the lrs of one seed are never independent pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import crossfit, verdicts
from analysis.select import ARM_KEYS, CONFIG_KEYS, LEVEL

CONFIRM, CROSS_FIT = "confirm", "cross-fit"
VALUE_COLUMNS = [LEVEL, "test", "stage", "method", "seed", "value"]
# What a headline value carries besides the number: which trial it is and why it may be missing.
TRIAL_COLUMNS = ["setting", "lr", "trial_id", "status", "no_eval", "correct", "examples", "weight_norm_last"]


@dataclass(frozen=True)
class Settings:
    """The study's `analysis` section: what the verdicts are asked."""

    alpha: float = verdicts.ALPHA
    min_effect: float = verdicts.MIN_EFFECT
    adjust: str = "maxT"
    vary_split: bool = False  # the confirmation seeds also drew their own data split


# ---------------------------------------------------------------- the headline's per-seed values


def headline_values(
    outcomes: pd.DataFrame, tune: pd.DataFrame, configs: pd.DataFrame, best: pd.DataFrame, references: dict
) -> pd.DataFrame:
    """Per (level, arm, seed) the headline value, its `stage`, and the trial it comes from (TRIAL_COLUMNS)."""
    folds = crossfit.cross_fitted(_with_trial_columns(tune), configs[configs["eligible"]])
    confirm = outcomes[outcomes["stage"] == "confirm"]
    parts = []
    for level, reference in references.items():
        if reference is None:
            continue
        confirmed = _confirmed(confirm[confirm[LEVEL] == level], at(configs, level), at(best, level))
        crossed = at(folds, level).assign(stage=CROSS_FIT)
        arms = [m for m in dict.fromkeys([*at(best, level)["method"], *confirmed["method"]]) if m != reference]
        stage = {m: CONFIRM if _has(confirmed, m) and _has(confirmed, reference) else CROSS_FIT for m in arms}
        for name, rows in ((CONFIRM, confirmed.assign(stage=CONFIRM)), (CROSS_FIT, crossed)):
            wanted = [m for m in arms if stage[m] == name]
            if wanted:
                parts.append(rows[rows["method"].isin([*wanted, reference])])
    columns = [*VALUE_COLUMNS, "kind", *TRIAL_COLUMNS]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True).assign(test="headline")[columns]


def _with_trial_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the columns a headline value carries (a trial id stands in for the rest)."""
    return frame[[*CONFIG_KEYS, "setting_rank", "seed", "score", "value", *TRIAL_COLUMNS[2:]]]


def _has(frame: pd.DataFrame, method: str) -> bool:
    return bool((frame["method"] == method).any())


def _confirmed(confirm: pd.DataFrame, configs: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Each arm's confirmation trials: those of its selected configuration.

    If the confirmation retrained another configuration (it was chosen while some tuning trials had not
    finished), the one the tuning scores rank highest among those retrained is used: `confirmed` says so.
    """
    out = []
    for method, rows in confirm.groupby("method", sort=False):
        trained = rows[CONFIG_KEYS].drop_duplicates()
        selected = best[best["method"] == method][CONFIG_KEYS]
        match = trained.merge(selected, on=CONFIG_KEYS)
        if match.empty:
            ranked = trained.merge(configs[[*CONFIG_KEYS, "score", "setting_rank"]], on=CONFIG_KEYS, how="left")
            ranked = ranked.sort_values(["score", "setting_rank", "lr"], ascending=[False, True, True])
            match = ranked.head(1)[CONFIG_KEYS]
        chosen = rows.merge(match, on=CONFIG_KEYS)
        out.append(chosen.assign(confirmed=not selected.merge(match, on=CONFIG_KEYS).empty))
    columns = [*confirm.columns, "confirmed"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


def at(frame: pd.DataFrame, level: float) -> pd.DataFrame:
    return frame[frame[LEVEL] == level] if len(frame) else frame


# ---------------------------------------------------------------- the LR statistic


def lr_cells(tune: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Per (level, arm, seed, lr of the level's grid) the cross-fitted best-per-lr value.

    0 for a seed that diverged at an lr where no configuration is eligible (every one diverged there);
    NaN, with `missing` naming the lr, for a seed with no number there (failed, running, no final
    evaluation, or no eligible configuration).
    """
    if tune.empty:
        return pd.DataFrame(columns=[*ARM_KEYS, "seed", "lr", "value", "missing"])
    chosen = crossfit.cross_fitted(_with_trial_columns(tune), configs[configs["eligible"]], per_lr=True)
    grid = tune[[*ARM_KEYS, "lr"]].drop_duplicates().merge(tune[[LEVEL, "seed"]].drop_duplicates(), on=LEVEL)
    cells = grid.merge(chosen[[*ARM_KEYS, "lr", "seed", "value"]], on=[*ARM_KEYS, "lr", "seed"], how="left")
    diverged = tune.loc[tune["status"] == "diverged", [*ARM_KEYS, "lr", "seed"]].drop_duplicates()
    cells = cells.merge(diverged.assign(any_diverged=True), on=[*ARM_KEYS, "lr", "seed"], how="left")
    choices = chosen[[*ARM_KEYS, "lr", "seed"]].assign(has_choice=True)
    cells = cells.merge(choices, on=[*ARM_KEYS, "lr", "seed"], how="left")
    cells.loc[cells["has_choice"].isna() & cells["any_diverged"].eq(True), "value"] = 0.0
    cells["missing"] = [f"lr {lr:g}" if pd.isna(v) else "" for lr, v in zip(cells["lr"], cells["value"], strict=True)]
    return cells[[*ARM_KEYS, "seed", "lr", "value", "missing"]].sort_values([*ARM_KEYS, "seed", "lr"])


def lr_seed_stats(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (level, arm, seed): `peak_normalised` (mean over lrs of value − the seed's best value) and
    `worst_lr` (its lowest value); NaN, with the lrs it lacks in `missing`, for a seed lacking an lr."""
    rows = []
    for key, group in cells.groupby([*ARM_KEYS, "seed"], sort=True):
        v = group["value"].to_numpy(float)
        complete = bool(np.isfinite(v).all())
        rows.append(
            dict(zip([*ARM_KEYS, "seed"], key, strict=True))
            | {
                "peak_normalised": float(np.mean(v - v.max())) if complete else np.nan,
                "worst_lr": float(v.min()) if complete else np.nan,
                "n_lr": len(group),
                "missing": ", ".join(x for x in group["missing"] if x),
            }
        )
    return pd.DataFrame(rows, columns=[*ARM_KEYS, "seed", "peak_normalised", "worst_lr", "n_lr", "missing"])


def lr_values(stats: pd.DataFrame, references: dict) -> pd.DataFrame:
    """The LR test's long per-seed values (peak-normalised), at the levels with a reference."""
    keep = stats[stats[LEVEL].isin([level for level, reference in references.items() if reference is not None])]
    out = keep.rename(columns={"peak_normalised": "value"}).assign(test="lr", stage=CROSS_FIT)
    return out[[*VALUE_COLUMNS, "kind", "missing"]]


# ---------------------------------------------------------------- the family


def family(values: pd.DataFrame, reference: str | None, settings: Settings, smoke: bool) -> pd.DataFrame:
    """The verdict rows of the primary family: one per (level, test, stage, non-reference arm).

    Columns: LEVEL, `test`, `stage`, `method`, then `analysis.verdicts.COLUMNS` (less `arm`), and
    `varied` (what differed between the paired replicates), `seeds` (the paired seeds), `missing`
    (the seeds left out and why). `verdict` is "smoke test" for a smoke test.
    """
    return verdict_rows(values, reference, settings, smoke, [LEVEL, "test", "stage"])


def verdict_rows(
    values: pd.DataFrame, reference: str | None, settings: Settings, smoke: bool, by: list[str]
) -> pd.DataFrame:
    """`verdicts.verdict_table` over the long `values` (columns `by`, method, seed, value), one family."""
    if reference is None or values.empty:
        return pd.DataFrame(columns=[*by, "method", *verdicts.COLUMNS[1:], "varied", "seeds", "missing"])
    # One value per arm and seed: a seed retrained twice (a repeated confirmation) counts once, the first.
    long = values[[*by, "method", "seed", "value"]].drop_duplicates([*by, "method", "seed"])
    long = long.rename(columns={"method": "arm"})
    table = verdicts.verdict_table(
        long,
        reference=reference,
        alpha=settings.alpha,
        min_effect=settings.min_effect,
        adjust=settings.adjust,
        by=by,
        value="value",
    ).rename(columns={"arm": "method"})
    if smoke:
        table["verdict"] = "smoke test"
    paired = [_pairing(values, row, by, reference) for _, row in table.iterrows()]
    table["seeds"] = [seeds for seeds, _ in paired]
    table["missing"] = [note for _, note in paired]
    stages = table["stage"] if "stage" in table else pd.Series(CROSS_FIT, index=table.index)
    table["varied"] = np.where(stages.eq(CONFIRM) & settings.vary_split, "seeds and data splits", "seeds only")
    return table


def _pairing(values: pd.DataFrame, row: pd.Series, by: list[str], reference: str) -> tuple[list[int], str]:
    """(the paired seeds, the seeds left out with the reason) of one comparison."""
    group = values
    for column in by:
        group = group[group[column] == row[column]]
    arm = group[group["method"] == row["method"]].set_index("seed")
    ref = group[group["method"] == reference].set_index("seed")
    seeds = sorted(set(arm.index) | set(ref.index))
    paired, notes = [], []
    for seed in seeds:
        sides = [(name, _why(frame, seed)) for name, frame in (("arm", arm), ("reference", ref))]
        gaps = [(name, why) for name, why in sides if why]
        if gaps:
            notes.append(f"seed {int(seed)} ({', '.join(f'{name}: {why}' for name, why in gaps)})")
        else:
            paired.append(int(seed))
    return paired, "; ".join(notes)


def _why(frame: pd.DataFrame, seed: int) -> str:
    """Why one side of a seed has no number ('' when it has one)."""
    if seed not in frame.index:
        return "not run"
    row = frame.loc[seed]
    if pd.notna(row["value"]):
        return ""
    if "missing" in frame.columns and isinstance(row["missing"], str) and row["missing"]:
        return f"no number at {row['missing']}"
    if "status" not in frame.columns:
        return "no number"
    status = row.get("status")
    if status is None or pd.isna(status):
        return "not run"
    return "no final evaluation" if bool(row.get("no_eval")) else str(status)
