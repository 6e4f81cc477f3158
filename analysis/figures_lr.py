"""LR-sensitivity figures: the arms' tuned curves, every setting's curve, and setting × lr heatmaps.

Every function takes the frames of one label-noise level (see `analysis.sensitivity`) and
returns a Figure; accuracy is in percent, a point is the mean over seeds with its 95%
t-interval as a band, and a diverged point is 0% drawn as 'x'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import plotting

MAX_ANNOTATED_CELLS = 120  # beyond this the numbers in heatmap cells become unreadable
MIN_COLOR_SPAN = 5.0  # points: a colour scale never stretches a smaller range over the full map


def lr_summary_figure(
    curves: pd.DataFrame, env: pd.DataFrame, best: pd.DataFrame, arms: list[str], colors: dict, metric: str
) -> Figure:
    """Per arm: best per lr (solid) and its best-tuned setting at every lr (dashed), robust and clean."""
    fig, axes = plotting.new_figure(1, 2, panel_height=2.4)
    lrs = sorted(curves["lr"].unique())
    for ax, (column, name) in zip(axes[0], [("value", metric), ("value_clean", "clean accuracy")], strict=True):
        for arm in arms:
            chosen = best[best["method"] == arm]
            if chosen.empty:
                continue
            arm_env = env[env["method"] == arm]
            single = curves[(curves["method"] == arm) & (curves["setting"] == chosen["setting"].iloc[0])]
            for frame, style, label in ((arm_env, "-", "best per lr"), (single, "--", chosen["setting"].iloc[0])):
                x = frame["lr"].to_numpy()
                y, half = 100 * frame[f"{column}_mean"].to_numpy(float), 100 * frame[f"{column}_ci"].to_numpy(float)
                plotting.draw_points(
                    ax,
                    x,
                    y,
                    frame["diverged"].to_numpy(bool),
                    color=colors[arm],
                    linestyle=style,
                    label=plotting.label_text(f"{arm}: {label}"),
                )
                if style == "-":
                    plotting.band(ax, x, y - half, y + half, colors[arm], (0, 100))
        plotting.lr_axis(ax, lrs)
        plotting.percent_axis(ax, name)
        ax.set_title(plotting.label_text(plotting.capital(name)))
    plotting.legend_below(fig, list(axes[0]), ncols=3)
    return fig


def lr_settings_figure(curves: pd.DataFrame, env: pd.DataFrame, arms: list[str], colors: dict, metric: str) -> Figure:
    """One panel per arm: one curve per setting (shades of the arm's colour) and best per lr (dashed)."""
    shown_arms = [arm for arm in arms if (curves["method"] == arm).any()]
    rows, cols = plotting.panel_grid(len(shown_arms))
    fig, axes = plotting.new_figure(rows, cols, panel_height=2.1, sharey=True)
    lrs = sorted(curves["lr"].unique())
    for ax, arm in zip(axes.flat, shown_arms, strict=False):
        arm_curves = curves[curves["method"] == arm]
        settings = arm_curves.drop_duplicates("setting").sort_values("setting_rank")["setting"].tolist()
        shown = _pick(settings)
        for setting, color in zip(shown, plotting.shades(colors[arm], len(shown)), strict=True):
            curve = arm_curves[arm_curves["setting"] == setting]
            incomplete = bool(curve["incomplete"].iloc[0])
            plotting.draw_points(
                ax,
                curve["lr"].to_numpy(),
                100 * curve["value_mean"].to_numpy(float),
                curve["diverged"].to_numpy(bool),
                color=color,
                linestyle=":" if incomplete else "-",
                label=plotting.label_text(setting) + (" (incomplete)" if incomplete else ""),
            )
        arm_env = env[env["method"] == arm]
        plotting.draw_points(
            ax,
            arm_env["lr"].to_numpy(),
            100 * arm_env["value_mean"].to_numpy(float),
            arm_env["diverged"].to_numpy(bool),
            color="0.2",
            linestyle="--",
            linewidth=1.6,
            label="best per lr",
            zorder=3,
        )
        plotting.lr_axis(ax, lrs)
        plotting.percent_axis(ax, metric)
        hidden = len(settings) - len(shown)
        ax.set_title(plotting.label_text(arm) + (f" ({len(shown)} of {len(settings)} settings)" if hidden else ""))
        ax.legend(loc="best", fontsize=5.5, ncols=1 if len(shown) < 4 else 2)
    plotting.hide_unused(axes, len(shown_arms))
    return fig


def _pick(settings: list[str], cap: int = plotting.MAX_CURVES) -> list[str]:
    """At most `cap` settings, evenly spread over the arm's ordered grid."""
    if len(settings) <= cap:
        return settings
    return [settings[round(i)] for i in np.linspace(0, len(settings) - 1, cap)]


def heatmap_figure(curves: pd.DataFrame, arms: list[str], metric: str) -> Figure:
    """Mean accuracy per (setting, lr) for each arm; diverged cells marked, missing grey."""
    shown_arms = [arm for arm in arms if (curves["method"] == arm).any()]
    rows, cols = plotting.panel_grid(len(shown_arms))
    n_settings = max((curves[curves["method"] == a]["setting"].nunique() for a in shown_arms), default=1)
    fig, axes = plotting.new_figure(rows, cols, panel_height=0.9 + 0.22 * n_settings)
    # Diverged cells (0 by the counting rule) would stretch the scale and flatten every other difference:
    # they are clipped to its dark end and marked '×' instead.
    vmin, vmax = color_range(100 * curves.loc[~curves["diverged"], "value_mean"].to_numpy(float))
    image = None
    for ax, arm in zip(axes.flat, shown_arms, strict=False):
        arm_curves = curves[curves["method"] == arm].sort_values(["setting_rank", "lr"])
        order = arm_curves.drop_duplicates("setting")["setting"].tolist()
        acc = arm_curves.pivot_table(index="setting", columns="lr", values="value_mean", dropna=False).reindex(order)
        div = arm_curves.pivot_table(index="setting", columns="lr", values="diverged", aggfunc="any").reindex(order)
        grid = 100 * acc.to_numpy(float)
        image = ax.imshow(grid, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
        ax.set_facecolor("0.85")
        ax.set_xticks(range(acc.shape[1]), [f"{lr:g}" for lr in acc.columns])
        ax.set_yticks(range(acc.shape[0]), [plotting.label_text(s) for s in order], fontsize=5.5)
        ax.set_xlabel("peak learning rate")
        ax.set_title(plotting.label_text(arm))
        ax.grid(False)
        if acc.size <= MAX_ANNOTATED_CELLS:
            _annotate(ax, grid, div.reindex_like(acc).fillna(False).to_numpy(bool), (vmin + vmax) / 2)
    plotting.hide_unused(axes, len(shown_arms))
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label=f"{plotting.label_text(metric)} (%)", shrink=0.9)
    return fig


def color_range(values: np.ndarray) -> tuple[float, float]:
    """The colour scale's (min, max): the data's range, widened to at least MIN_COLOR_SPAN points."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0, 100.0
    low, high = float(finite.min()), float(finite.max())
    if high - low < MIN_COLOR_SPAN:
        middle = (low + high) / 2
        low, high = middle - MIN_COLOR_SPAN / 2, middle + MIN_COLOR_SPAN / 2
    return low, high


def _annotate(ax, acc: np.ndarray, diverged: np.ndarray, middle: float) -> None:
    """Write each cell's value; '×' where a seed diverged, '–' where nothing finished."""
    for (i, j), value in np.ndenumerate(acc):
        text = (f"{value:.1f}" + (" ×" if diverged[i, j] else "")) if np.isfinite(value) else "–"
        color = "white" if np.isfinite(value) and value < middle else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=6, color=color)
