"""Sections that exist only when their data does: label noise and pruning.

* Label noise (any `label_noise` > 0): each arm at its best-tuned configuration of every noise
  level, its final clean accuracy at the best and last checkpoints, and how many flipped
  training labels it memorised (last epoch).
* Pruning (`evaluations.parquet` rows with sparsity > 0): clean and headline accuracy of the
  best checkpoint of each arm's best-tuned configuration vs the fraction of weights zeroed.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from analysis import plotting, stats
from analysis.overfitting import config_trials
from analysis.select import CONFIG_KEYS, LEVEL

PRUNING_GROUP = [*CONFIG_KEYS, "sparsity"]


def has_label_noise(outcomes: pd.DataFrame) -> bool:
    return bool((outcomes[LEVEL] > 0).any())


def memorisation_figure(curves: pd.DataFrame, best: pd.DataFrame, arms: list[str], colors: dict) -> Figure:
    """Fraction of flipped training labels predicted as their noisy label vs epoch (mean, 95% band over seeds)."""
    fig, axes = plotting.new_figure(1, 1, panel_height=2.6)
    ax = axes[0, 0]
    levels = sorted(curves.loc[curves[LEVEL] > 0, LEVEL].unique())
    styles = ["-", "--", ":", "-."]
    for i, level in enumerate(levels):
        for arm in arms:
            curve = curves[(curves[LEVEL] == level) & (curves["method"] == arm)]
            chosen = best[(best[LEVEL] == level) & (best["method"] == arm)]
            if curve.empty or chosen.empty:
                continue
            x = curve["epoch"].to_numpy()
            plotting.finite_line(
                ax,
                x,
                100 * curve["noisy_fit_acc_mean"].to_numpy(float),
                color=colors[arm],
                linestyle=styles[i % len(styles)],
                label=f"{arm}, noise {100 * level:g}% ({chosen['setting'].iloc[0]})",
            )
            low, high = curve["noisy_fit_acc_low"].to_numpy(float), curve["noisy_fit_acc_high"].to_numpy(float)
            plotting.band(ax, x, 100 * low, 100 * high, colors[arm], (0, 100))
    plotting.epoch_axis(ax)
    ax.set_ylabel("flipped labels fitted (%)")
    ax.set_title("Memorisation of noisy training labels, best-tuned configuration per arm and noise rate")
    plotting.legend_below(fig, [ax], ncols=2)
    return fig


def pruning_table(evaluations: pd.DataFrame, outcomes: pd.DataFrame, best: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Clean and headline accuracy vs sparsity of each arm's best-tuned configuration (best checkpoint)."""
    ids = config_trials(outcomes, best)
    rows = evaluations.loc[evaluations["checkpoint"] == "best", ["trial_id", "sparsity", "clean_acc", metric]]
    rows = rows.rename(columns={metric: "value"}).merge(ids, on="trial_id")
    grouped = rows.groupby(PRUNING_GROUP, sort=True)
    table = grouped[["clean_acc", "value"]].agg(["mean", "std", "count"])
    table.columns = [f"{m}_{s if s != 'count' else 'n'}" for m, s in table.columns]
    for column in ("clean_acc", "value"):
        table[f"{column}_ci"] = stats.t_half_widths(table[f"{column}_std"], table[f"{column}_n"])
    return table.reset_index()


def has_pruning(evaluations: pd.DataFrame | None) -> bool:
    return evaluations is not None and bool((evaluations["sparsity"] > 0).any())


def pruning_figure(table: pd.DataFrame, arms: list[str], colors: dict, metric: str) -> Figure:
    """Clean and headline accuracy (mean with 95% band over seeds) vs sparsity, one line per arm."""
    fig, axes = plotting.new_figure(1, 2, panel_height=2.3)
    for ax, column, name in zip(axes[0], ["clean_acc", "value"], ["clean accuracy", metric], strict=True):
        for arm in arms:
            curve = table[table["method"] == arm]
            if curve.empty:
                continue
            x, y = 100 * curve["sparsity"].to_numpy(float), 100 * curve[f"{column}_mean"].to_numpy(float)
            half = 100 * curve[f"{column}_ci"].to_numpy(float)
            ax.plot(x, y, color=colors[arm], marker="o", label=f"{arm} ({curve['setting'].iloc[0]})")
            plotting.band(ax, x, y - half, y + half, colors[arm], (0, 100))
        ax.set_xlabel("weights pruned (%)")
        plotting.percent_axis(ax, name)
        ax.set_title(f"{name[0].upper()}{name[1:]} vs sparsity")
    plotting.legend_below(fig, [axes[0, 0]], ncols=3)
    return fig
