"""LR-sensitivity figures: the arms' tuned curves, every setting's curve, and λ × lr heatmaps.

Every function takes the frames of one label-noise level (see `analysis.sensitivity`) and
returns a Figure; accuracy is shown in percent. A diverged point is 0% and drawn as 'x'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import plotting

METRICS = (("sens_robust", "test robust accuracy"), ("sens_clean", "test clean accuracy"))
MAX_ANNOTATED_CELLS = 120  # beyond this the numbers in heatmap cells become unreadable


def lr_summary_figure(curves: pd.DataFrame, env: pd.DataFrame, best: pd.DataFrame, arms: list[str]) -> Figure:
    """Per arm: best-tuned-per-lr envelope (solid) and best single setting across lrs (dashed)."""
    fig, axes = plotting.new_figure(1, 2, width=4.6, height=3.4)
    colors = plotting.arm_colors(arms)
    lrs = sorted(curves["lr"].unique())
    for ax, (metric, name) in zip(axes[0], METRICS, strict=True):
        for arm in arms[: plotting.MAX_CURVES]:
            arm_env = env[env["method"] == arm]
            chosen = best[best["method"] == arm]
            if chosen.empty:
                continue
            row = chosen.iloc[0]
            single = curves[(curves["method"] == arm) & (curves["hp"] == row["hp"])]
            plotting.draw_points(
                ax,
                arm_env["lr"].to_numpy(),
                100 * arm_env[metric].to_numpy(),
                arm_env["diverged"].to_numpy(),
                color=colors[arm],
                linewidth=2,
                label=f"{arm}: best per lr",
            )
            plotting.draw_points(
                ax,
                single["lr"].to_numpy(),
                100 * single[metric].to_numpy(),
                single["diverged"].to_numpy(),
                color=colors[arm],
                linewidth=1.2,
                linestyle="--",
                label=f"{arm}: {row['label']} at every lr",
            )
        plotting.lr_axis(ax, lrs)
        plotting.percent_axis(ax, name)
        ax.set_title(f"{name.capitalize()} vs learning rate")
        ax.legend(loc="best")
    fig.suptitle("LR sensitivity of each arm (selected on validation; x = diverged, counted as 0%)")
    return fig


def lr_settings_figure(curves: pd.DataFrame, env: pd.DataFrame, best: pd.DataFrame, arms: list[str]) -> Figure:
    """Rows robust / clean, one column per arm: one curve per λ (or λ_awd), plus the envelope."""
    fig, axes = plotting.new_figure(2, len(arms), width=4.0, height=3.1, sharey="row", sharex=True)
    lrs = sorted(curves["lr"].unique())
    for col, arm in enumerate(arms):
        arm_curves = curves[curves["method"] == arm]
        chosen = best.loc[best["method"] == arm, "hp"]
        shown = plotting.pick_settings(arm_curves["hp"].unique(), chosen.iloc[0] if len(chosen) else np.nan)
        colors = dict(zip(shown, plotting.ramp_colors(len(shown)), strict=True))
        arm_env = env[env["method"] == arm]
        for row, (metric, name) in enumerate(METRICS):
            ax = axes[row, col]
            for hp, curve in arm_curves[arm_curves["hp"].isin(shown)].groupby("hp", sort=True):
                incomplete = bool(curve["incomplete"].iloc[0])
                label = curve["label"].iloc[0] + (" (incomplete)" if incomplete else "")
                plotting.draw_points(
                    ax,
                    curve["lr"].to_numpy(),
                    100 * curve[metric].to_numpy(),
                    curve["diverged"].to_numpy(),
                    color=colors[hp],
                    linewidth=1.1,
                    linestyle=":" if incomplete else "-",
                    label=label,
                )
            plotting.draw_points(
                ax,
                arm_env["lr"].to_numpy(),
                100 * arm_env[metric].to_numpy(),
                arm_env["diverged"].to_numpy(),
                color="black",
                linewidth=2.2,
                linestyle="--",
                label="best per lr (val-selected)",
                zorder=3,
            )
            plotting.lr_axis(ax, lrs)
            if row == 0:
                ax.set_xlabel("")
            plotting.percent_axis(ax, name)
            hidden = arm_curves["hp"].nunique() - len(shown)
            note = f", {len(shown)} of {len(shown) + hidden} settings" if hidden else ""
            ax.set_title(f"{arm}: {name}{note}")
            if row == 0:
                ax.legend(loc="best", ncols=1)
    fig.suptitle("Test accuracy at the best-validation epoch vs lr, mean over seeds (x = diverged, 0%)")
    return fig


def heatmap_figure(curves: pd.DataFrame, arms: list[str]) -> Figure:
    """Mean test robust accuracy per (λ, lr) for each arm; diverged cells marked, missing grey."""
    fig, axes = plotting.new_figure(1, len(arms), width=4.2, height=3.4)
    values = 100 * curves["sens_robust"]
    vmin, vmax = (np.nanmin(values), np.nanmax(values)) if values.notna().any() else (0.0, 100.0)
    image = None
    for ax, arm in zip(axes[0], arms, strict=True):
        arm_curves = curves[curves["method"] == arm]
        acc = arm_curves.pivot_table(index="hp", columns="lr", values="sens_robust", dropna=False) * 100
        div = arm_curves.pivot_table(index="hp", columns="lr", values="diverged", aggfunc="any")
        labels = arm_curves.drop_duplicates("hp").set_index("hp")["label"].reindex(acc.index)
        image = ax.imshow(acc.to_numpy(float), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
        ax.set_facecolor("0.85")
        ax.set_xticks(range(acc.shape[1]), [f"{lr:g}" for lr in acc.columns])
        ax.set_yticks(range(acc.shape[0]), list(labels))
        ax.set_xlabel("peak learning rate")
        ax.set_title(f"{arm}: test robust accuracy (%)")
        ax.grid(False)
        if acc.size <= MAX_ANNOTATED_CELLS:
            _annotate(ax, acc.to_numpy(float), div.reindex_like(acc).fillna(False).to_numpy(bool))
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), label="test robust accuracy (%)", shrink=0.9)
    fig.suptitle("λ × lr: mean test robust accuracy at the best-validation epoch (× = a seed diverged)")
    return fig


def _annotate(ax, acc: np.ndarray, diverged: np.ndarray) -> None:
    """Write each cell's value; '×' where a seed diverged, '–' where nothing finished."""
    mid = np.nanmean(acc) if np.isfinite(acc).any() else 0.0
    for (i, j), value in np.ndenumerate(acc):
        text = f"{value:.1f}" + (" ×" if diverged[i, j] else "") if np.isfinite(value) else "–"
        color = "white" if np.isfinite(value) and value < mid else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=color)
