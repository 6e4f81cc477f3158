"""Figures about tuning: budget curves, an Optuna stage's best so far, Pareto fronts, importance.

Every function takes the frames of one label-noise level and returns a Figure (or None when
there is nothing to draw); accuracies are in percent and arms keep their study colours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from analysis import plotting
from analysis.importance import EVALUATOR_NAMES, EVALUATORS
from analysis.select import symbol


def budget_figure(curves: pd.DataFrame, arms: list[str], colors: dict, metric: str) -> Figure | None:
    """Expected test accuracy of the validation-best of n configurations, vs n and vs training time."""
    if curves.empty:
        return None
    fig, axes = plotting.new_figure(1, 2, panel_height=2.4, sharey=True)
    scale, unit = time_unit(float(curves["compute_hours"].max()))
    curves = curves.assign(compute=curves["compute_hours"] * scale)
    for ax, x_column, label in zip(
        axes[0],
        ["n", "compute"],
        ["configurations tried (n)", f"training {unit} (all seeds of each configuration)"],
        strict=True,
    ):
        for arm in arms:
            curve = curves[curves["method"] == arm]
            if curve.empty:
                continue
            x = curve[x_column].to_numpy(float)
            ax.plot(
                x, 100 * curve["expected_best"].to_numpy(float), color=colors[arm], marker="o",
                label=plotting.label_text(arm),
            )
            plotting.band(ax, x, 100 * curve["low"].to_numpy(float), 100 * curve["high"].to_numpy(float), colors[arm])
            for end in ("spread_low", "spread_high"):  # one practitioner's spread, beside the estimate's band
                ax.plot(x, 100 * curve[end].to_numpy(float), color=colors[arm], linestyle=":", linewidth=0.8)
        ax.set_xlabel(label)
        if x_column == "n":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        plotting.percent_axis(ax, f"expected {metric}")
    axes[0, 0].set_title("By number of configurations")
    axes[0, 1].set_title("By training compute")
    plotting.legend_below(fig, [axes[0, 0]], ncols=6)
    return fig


def anytime_figure(rows: pd.DataFrame, arms: list[str], colors: dict) -> Figure | None:
    """An Optuna stage: each arm's best validation score so far vs configurations tried, in trial order."""
    if rows.empty:
        return None
    fig, axes = plotting.new_figure(1, 1, width=plotting.ONE_COLUMN, panel_height=2.4)
    ax = axes[0, 0]
    for arm in arms:
        curve = rows[rows["method"] == arm]
        if curve.empty:
            continue
        x = curve["order"].to_numpy(float)
        ax.step(x, 100 * curve["best_so_far"].to_numpy(float), where="post", color=colors[arm],
                label=plotting.label_text(arm))
        ax.scatter(x, 100 * curve["score"].to_numpy(float), s=6, color=colors[arm], alpha=0.35, linewidths=0)
        stopped = curve[curve["stopped"]]
        ax.scatter(stopped["order"], 100 * stopped["best_so_far"].to_numpy(float), marker="x", s=12,
                   color=colors[arm], linewidths=0.8)
    ax.set_xlabel("configurations tried (trial order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    plotting.percent_axis(ax, "best validation score so far")
    plotting.legend_below(fig, [ax], ncols=3)
    return fig


def time_unit(hours: float) -> tuple[float, str]:
    """(factor from hours, unit name) that keeps a compute axis in readable numbers."""
    if hours >= 1:
        return 1.0, "hours"
    if hours * 60 >= 1:
        return 60.0, "minutes"
    return 3600.0, "seconds"


def pareto_figure(points: pd.DataFrame, arms: list[str], colors: dict, metric: str) -> Figure | None:
    """Every configuration (faint) and each arm's clean-vs-robust front (line)."""
    if points.empty:
        return None
    fig, axes = plotting.new_figure(1, 1, width=plotting.ONE_COLUMN, panel_height=2.6)
    ax = axes[0, 0]
    for arm in arms:
        arm_points = points[points["method"] == arm]
        if arm_points.empty:
            continue
        ax.scatter(
            100 * arm_points["clean"], 100 * arm_points["robust"], s=8, color=colors[arm], alpha=0.3, linewidths=0
        )
        front = arm_points[arm_points["on_front"]].sort_values("clean")
        label = plotting.label_text(arm)
        ax.plot(100 * front["clean"], 100 * front["robust"], color=colors[arm], marker="o", label=label)
    ax.set_xlabel("clean accuracy (%)")
    plotting.percent_axis(ax, metric)
    ax.set_title("Pareto front per arm\n(dots: every configuration)")
    plotting.legend_below(fig, [ax], ncols=3)
    return fig


def importance_figure(rows: pd.DataFrame, arms: list[str], colors: dict) -> Figure | None:
    """Per arm, one bar per parameter for each evaluator (light shade: PED-ANOVA, dark: fANOVA)."""
    shown = [arm for arm in arms if (rows["method"] == arm).any()]
    if not shown:
        return None
    nrows, ncols = plotting.panel_grid(len(shown))
    fig, axes = plotting.new_figure(nrows, ncols, panel_height=1.9, sharex=True)
    width = 0.38
    for ax, arm in zip(axes.flat, shown, strict=False):
        arm_rows = rows[rows["method"] == arm]
        params = list(dict.fromkeys(arm_rows["param"]))
        y = np.arange(len(params))
        for offset, evaluator, shade in zip(
            (-width / 2, width / 2), EVALUATORS, plotting.shades(colors[arm], 2), strict=True
        ):
            values = arm_rows[arm_rows["evaluator"] == evaluator].set_index("param")["importance"].reindex(params)
            ax.barh(y + offset, values.to_numpy(float), height=width, color=shade, label=EVALUATOR_NAMES[evaluator])
        ax.set_yticks(y, [plotting.label_text(symbol(str(arm_rows["kind"].iloc[0]), p)) for p in params])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(plotting.label_text(arm))
        ax.set_xlabel("importance (sums to 1)")
    plotting.hide_unused(axes, len(shown))
    fig.legend(
        [Patch(color="0.75"), Patch(color="0.3")],
        [EVALUATOR_NAMES[e] for e in EVALUATORS],
        loc="outside lower center",
        ncols=2,
        frameon=False,
    )
    return fig
