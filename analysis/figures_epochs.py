"""Per-epoch figures of each arm's best-tuned configuration: robust overfitting and diagnostics.

Inputs are the flat per-epoch statistics of `analysis.overfitting.epoch_curves` for one
label-noise level: a line is the mean over seeds and the band spans min..max over seeds.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis import plotting


def _band(ax: Axes, curve: pd.DataFrame, column: str, scale: float = 1.0, **line) -> None:
    """Mean line of `column` with its min..max band over seeds."""
    x = curve["epoch"].to_numpy()
    ax.plot(x, scale * curve[f"{column}_mean"].to_numpy(), **line)
    ax.fill_between(
        x,
        scale * curve[f"{column}_min"].to_numpy(),
        scale * curve[f"{column}_max"].to_numpy(),
        color=line.get("color"),
        alpha=0.18,
        linewidth=0,
    )


def overfitting_figure(curves: pd.DataFrame, drops: pd.DataFrame, best: pd.DataFrame, arms: list[str]) -> Figure:
    """One panel per arm: val (dashed) and test (solid) robust accuracy vs epoch, lr steps marked."""
    shown = [arm for arm in arms if (best["method"] == arm).any()]
    fig, axes = plotting.new_figure(1, max(len(shown), 1), width=4.4, height=3.3, sharey=True)
    colors = plotting.arm_colors(arms)
    for ax, arm in zip(axes[0], shown, strict=False):
        row = best[best["method"] == arm].iloc[0]
        curve = curves[curves["method"] == arm]
        _band(ax, curve, "test_robust_acc", 100, color=colors[arm], linewidth=1.6, label="test robust")
        _band(ax, curve, "val_robust_acc", 100, color="0.35", linewidth=1.2, linestyle="--", label="val robust")
        for i, epoch in enumerate(sorted(drops.loc[drops["method"] == arm, "epoch"])):
            ax.axvline(epoch, color="0.5", linestyle=":", linewidth=1, label="lr step" if i == 0 else None)
        n = int(curve["n"].max()) if len(curve) else 0
        ax.set_title(f"{arm}: {row['label']}, lr={row['lr']:g} ({n} seeds)")
        ax.set_xlabel("epoch")
        plotting.percent_axis(ax, "robust accuracy")
        ax.legend(loc="lower right")
    if not shown:
        plotting.mark_no_data(axes[0, 0])
    fig.suptitle("Robust overfitting: best-tuned configuration per arm (mean, band = min..max over seeds)")
    return fig


def lambda_figure(curves: pd.DataFrame, best: pd.DataFrame, fixed_lams: list[float]) -> Figure | None:
    """AWD's effective decay λ̄ per epoch for each adaptive arm's best configuration (log y).

    Horizontal lines mark the fixed λ values of the grid for scale. None without an adaptive arm.
    """
    adaptive = best[best["kind"] == "adaptive"]
    if adaptive.empty:
        return None
    fig, axes = plotting.new_figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    colors = plotting.arm_colors(sorted(adaptive["method"]))
    for arm, row in adaptive.set_index("method").iterrows():
        curve = curves[curves["method"] == arm]
        x = curve["epoch"].to_numpy()
        ax.plot(x, curve["lambda_mean_mean"], color=colors[arm], linewidth=1.6, label=f"{arm}: λ̄ ({row['label']})")
        low, high = curve["lambda_min_min"].to_numpy(), curve["lambda_max_max"].to_numpy()
        ax.fill_between(x, low, high, color=colors[arm], alpha=0.18, linewidth=0, label=f"{arm}: min..max in epoch")
    for lam in sorted(v for v in fixed_lams if v > 0):
        ax.axhline(lam, color="0.45", linestyle="--", linewidth=0.9)
        ax.annotate(
            f"fixed λ={lam:g}",
            (0.01, lam),
            xycoords=("axes fraction", "data"),
            ha="left",
            va="bottom",
            fontsize=7,
            color="0.3",
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weight decay coefficient (log scale)")
    ax.set_title("Adaptive weight decay λ̄ vs the fixed λ grid (dashed)")
    ax.legend(loc="best")
    return fig


def norms_figure(curves: pd.DataFrame, best: pd.DataFrame, arms: list[str]) -> Figure:
    """Weight norm and gradient norm vs epoch for each arm's best-tuned configuration."""
    fig, axes = plotting.new_figure(1, 2, width=4.6, height=3.3)
    colors = plotting.arm_colors(arms)
    for ax, column, name in zip(axes[0], ["weight_norm", "grad_norm"], ["‖w‖₂", "‖∇w CE‖₂"], strict=True):
        for arm in arms:
            chosen = best[best["method"] == arm]
            if chosen.empty:
                continue
            curve = curves[curves["method"] == arm]
            _band(
                ax,
                curve,
                column,
                color=colors[arm],
                linewidth=1.5,
                label=f"{arm} ({chosen.iloc[0]['label']})",
            )
        ax.set_xlabel("epoch")
        # Gradient norms shrink by orders of magnitude during training; a log axis shows both ends.
        log = column == "grad_norm" and len(curves) > 0 and bool((curves[f"{column}_mean"] > 0).all())
        ax.set_yscale("log" if log else "linear")
        if log:
            plotting.plain_log_labels(ax)
        ax.set_ylabel(f"{name} (log scale)" if log else name)
        ax.set_title("Weight norm (decayed parameters)" if column == "weight_norm" else "Gradient norm (mean per step)")
        ax.legend(loc="best")
    fig.suptitle("Norms of the best-tuned configuration per arm (mean, band = min..max over seeds)")
    return fig
