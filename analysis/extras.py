"""Sections that exist only when their data does: label noise, pruning, AutoAttack.

* Label noise (any `label_noise` > 0): each arm at its best-tuned setting of every noise
  level, its best and last clean test accuracy, and how many flipped labels it memorised.
* Pruning (`evaluations.parquet` rows with sparsity > 0): clean and PGD accuracy of the
  best checkpoint of each arm's best-tuned configuration vs the fraction of weights zeroed.
* AutoAttack: `decaylab evaluate` may write AutoAttack accuracies to evaluations.parquet only;
  they fill the trials' `autoattack_best` / `autoattack_last` where those are NaN.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from analysis import plotting
from analysis.overfitting import config_trials
from analysis.select import ARM_KEYS, LEVEL

PRUNING_GROUP = [*ARM_KEYS, "hp", "lr", "label", "sparsity"]


def fill_autoattack(outcomes: pd.DataFrame, evaluations: pd.DataFrame | None) -> pd.DataFrame:
    """`outcomes` with AutoAttack NaNs filled from unpruned evaluation rows of the same trial."""
    if evaluations is None or evaluations["autoattack_acc"].isna().all():
        return outcomes
    unpruned = evaluations[(evaluations["sparsity"] == 0) & evaluations["autoattack_acc"].notna()]
    by_checkpoint = unpruned.pivot_table(index="trial_id", columns="checkpoint", values="autoattack_acc")
    out = outcomes.copy()
    for checkpoint in ("best", "last"):
        if checkpoint in by_checkpoint:
            measured = out["trial_id"].map(by_checkpoint[checkpoint]).astype("float64")
            out[f"autoattack_{checkpoint}"] = out[f"autoattack_{checkpoint}"].fillna(measured)
    return out


def has_label_noise(outcomes: pd.DataFrame) -> bool:
    return bool((outcomes[LEVEL] > 0).any())


def label_noise_table(best: pd.DataFrame) -> pd.DataFrame:
    """Per (noise level, arm) at its best-tuned setting: clean best/last, robust best, memorised."""
    columns = [LEVEL, "method", "kind", "hp", "label", "lr", "n_ok"]
    for metric in [
        "best_test_clean_acc",
        "last_test_clean_acc",
        "best_test_robust_acc",
        "last_noisy_fit_acc",
    ]:
        columns += [f"{metric}_mean", f"{metric}_std"]
    return best[columns].sort_values([LEVEL, "kind", "method"]).reset_index(drop=True)


def memorisation_figure(curves: pd.DataFrame, arms: list[str]) -> Figure:
    """Fraction of flipped training labels predicted as their noisy label vs epoch."""
    fig, axes = plotting.new_figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    colors = plotting.arm_colors(arms)
    levels = sorted(curves.loc[curves[LEVEL] > 0, LEVEL].unique())
    styles = ["-", "--", ":", "-."]
    for i, level in enumerate(levels):
        for arm in arms:
            curve = curves[(curves[LEVEL] == level) & (curves["method"] == arm)]
            if curve.empty:
                continue
            label = f"{arm}, noise {100 * level:g}% ({curve['label'].iloc[0]})"
            ax.plot(
                curve["epoch"],
                100 * curve["noisy_fit_acc_mean"],
                color=colors[arm],
                linestyle=styles[i % len(styles)],
                linewidth=1.5,
                label=label,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("flipped labels fitted (%)")
    ax.set_title("Memorisation of noisy labels, best-tuned configuration per arm and noise rate")
    ax.legend(loc="best")
    return fig


def pruning_table(evaluations: pd.DataFrame, outcomes: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Clean and PGD accuracy vs sparsity of each arm's best-tuned configuration ('best' checkpoint)."""
    ids = config_trials(outcomes, best).merge(best[[*ARM_KEYS, "hp", "lr", "label"]], on=[*ARM_KEYS, "hp", "lr"])
    rows = evaluations.loc[evaluations["checkpoint"] == "best", ["trial_id", "sparsity", "clean_acc", "pgd_acc"]]
    rows = rows.merge(ids, on="trial_id")
    grouped = rows.groupby(PRUNING_GROUP, sort=True)
    table = grouped[["clean_acc", "pgd_acc"]].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table["n"] = grouped.size()
    return table.reset_index()


def has_pruning(evaluations: pd.DataFrame | None) -> bool:
    return evaluations is not None and bool((evaluations["sparsity"] > 0).any())


def pruning_figure(table: pd.DataFrame, arms: list[str]) -> Figure:
    """Clean and PGD accuracy (mean ± std over seeds) vs sparsity, one line per arm."""
    fig, axes = plotting.new_figure(1, 2, width=4.4, height=3.3, sharey=False)
    colors = plotting.arm_colors(arms)
    for ax, metric, name in zip(axes[0], ["clean_acc", "pgd_acc"], ["clean", "PGD"], strict=True):
        for arm in arms:
            curve = table[table["method"] == arm]
            if curve.empty:
                continue
            ax.errorbar(
                100 * curve["sparsity"],
                100 * curve[f"{metric}_mean"],
                yerr=100 * curve[f"{metric}_std"].fillna(0),
                color=colors[arm],
                marker="o",
                markersize=3.5,
                capsize=2,
                label=f"{arm} ({curve['label'].iloc[0]})",
            )
        ax.set_xlabel("sparsity: weights pruned (%)")
        plotting.percent_axis(ax, f"{name} test accuracy")
        ax.set_title(f"{name.capitalize() if name == 'clean' else name} accuracy vs pruning")
        ax.legend(loc="best")
    fig.suptitle("Pruning the best checkpoint of each arm's best-tuned configuration")
    return fig
