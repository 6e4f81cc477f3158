"""Figures of `decaylab compare`: a forest plot per arm, P(improvement) per arm, and performance profiles.

Differences are in points and accuracies in percent; every arm keeps the colour its study's report gives it
(`plotting.arm_colors` over the arms in study order, the first study's first); text from run directories goes
through `plotting.label_text`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis import plotting
from analysis.across.compute import Comparison

ROW_HEIGHT = 0.2  # inches per stratum row of the forest plot


def colors(c: Comparison) -> dict[str, str]:
    return plotting.arm_colors(c.arms)


def forest_figure(c: Comparison, metric: str) -> Figure | None:
    """Per compared arm a panel: each stratum's mean difference with its bootstrap interval, the aggregate
    mean (diamond) and IQM (open square) below, 0 and ±min_effect marked."""
    if c.aggregate.empty:
        return None
    arms = list(c.aggregate["arm"])
    rows, cols = plotting.panel_grid(len(arms), max_cols=2)
    labels = [s.label for s in c.strata]
    height = ROW_HEIGHT * (len(labels) + 3) + 0.7
    fig, axes = plotting.new_figure(rows, cols, panel_height=height, sharey=True)
    palette = colors(c)
    positions = {label: i for i, label in enumerate(labels)}
    bottom = len(labels) + 1  # the aggregate's row, one blank row below the strata
    for ax, arm in zip(axes.flat, arms, strict=False):
        color = palette[arm]
        ax.axvspan(-100 * c.min_effect, 100 * c.min_effect, color="0.85", alpha=0.6, linewidth=0)
        ax.axvline(0, color="0.3", linewidth=0.8)
        rows_of_arm = c.per_stratum[c.per_stratum["arm"] == arm]
        for _, r in rows_of_arm.iterrows():
            y = positions[r["stratum"]]
            _interval(ax, y, r["mean_diff"], r["boot_low"], r["boot_high"], color, "o")
        agg = c.aggregate[c.aggregate["arm"] == arm].iloc[0]
        _interval(ax, bottom, agg["mean_diff"], agg["mean_low"], agg["mean_high"], color, "D", size=5)
        _interval(ax, bottom + 0.45, agg["iqm_diff"], agg["iqm_low"], agg["iqm_high"], color, "s", size=4,
                  filled=False)
        for label in set(labels) - set(rows_of_arm["stratum"]):
            ax.text(0.02, positions[label], "not in this stratum", transform=ax.get_yaxis_transform(),
                    va="center", fontsize=6, color="0.45")
        ax.set_title(f"{plotting.label_text(arm)} − {plotting.label_text(c.reference)}")
        ax.set_xlabel(f"difference in {plotting.label_text(metric)} (points)")
        ax.grid(axis="y", visible=False)
    first = axes.flat[0]
    first.set_yticks([*range(len(labels)), bottom, bottom + 0.45])
    first.set_yticklabels([plotting.label_text(x) for x in labels] + ["aggregate: mean", "IQM"])
    first.set_ylim(bottom + 1, -1)
    plotting.hide_unused(axes, len(arms))
    return fig


def _interval(ax, y: float, centre: float, low: float, high: float, color: str, marker: str, *,
              size: float = 3.5, filled: bool = True) -> None:
    if np.isfinite(low) and np.isfinite(high):
        ax.plot([100 * low, 100 * high], [y, y], color=color, linewidth=1.4, solid_capstyle="butt")
    if np.isfinite(centre):
        ax.plot([100 * centre], [y], marker=marker, markersize=size, color=color,
                markerfacecolor=color if filled else "white", linestyle="none")


def probability_figure(c: Comparison) -> Figure | None:
    """P(arm > reference) per arm with its interval, against ½ (no difference) and γ / 1 − γ (meaningful)."""
    if c.aggregate.empty:
        return None
    arms = list(c.aggregate["arm"])
    fig, axes = plotting.new_figure(1, 1, width=plotting.ONE_COLUMN, panel_height=0.35 * len(arms) + 0.9)
    ax = axes[0, 0]
    palette = colors(c)
    ax.axvline(0.5, color="0.3", linewidth=0.8)
    for x in (c.meaningful, 1 - c.meaningful):
        ax.axvline(x, color="0.5", linewidth=0.8, linestyle="--")
    for y, (_, r) in enumerate(c.aggregate.iterrows()):
        color = palette[r["arm"]]
        if np.isfinite(r["p_low"]):
            ax.plot([r["p_low"], r["p_high"]], [y, y], color=color, linewidth=2.2, solid_capstyle="butt")
        ax.plot([r["p_improvement"]], [y], marker="o", color=color, markersize=4)
    ax.set_yticks(range(len(arms)))
    ax.set_yticklabels([plotting.label_text(a) for a in arms])
    ax.set_ylim(len(arms) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"P({'arm'} > {plotting.label_text(c.reference)})")
    ax.grid(axis="y", visible=False)
    return fig


def profile_figure(c: Comparison, metric: str) -> Figure | None:
    """Share of strata × seeds whose accuracy exceeds τ, one curve per arm, with its bootstrap band."""
    arms = c.profiles.get("arms", {})
    if not arms:
        return None
    taus = 100 * np.asarray(c.profiles["tau"], float)
    fig, axes = plotting.new_figure(1, 1, width=plotting.ONE_COLUMN, panel_height=2.4)
    ax = axes[0, 0]
    palette = colors(c)
    for arm, curve in arms.items():
        style = "--" if arm == c.reference else "-"
        ax.step(taus, curve["fraction"], where="post", color=palette[arm], linestyle=style,
                label=plotting.label_text(arm) + (" (reference)" if arm == c.reference else ""))
        ax.fill_between(taus, curve["low"], curve["high"], step="post", color=palette[arm], alpha=0.2, linewidth=0)
    ax.set_xlabel(f"τ: {plotting.label_text(metric)} (%)")
    ax.set_ylabel("fraction of runs above τ")
    ax.set_ylim(-0.02, 1.02)
    plotting.legend_below(fig, [ax], ncols=3)
    return fig
