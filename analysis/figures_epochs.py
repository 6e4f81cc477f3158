"""Per-epoch figures of each arm's best-tuned configuration: robust overfitting and diagnostics.

Inputs are the flat per-epoch statistics of `analysis.overfitting.epoch_curves` for one
label-noise level: a line is the mean over `ok` seeds and its band the 95% t-interval over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis import plotting

PER_EPOCH_PGD = "per-epoch PGD on eval.test_examples"


def _line(ax: Axes, curve: pd.DataFrame, column: str, scale: float = 1.0,
          limits: tuple[float, float] | None = None, **line) -> None:
    """Mean line of `column` with its 95% band over seeds (clipped to `limits`)."""
    x = curve["epoch"].to_numpy()
    plotting.finite_line(ax, x, scale * curve[f"{column}_mean"].to_numpy(float), **line)
    plotting.band(
        ax,
        x,
        scale * curve[f"{column}_low"].to_numpy(float),
        scale * curve[f"{column}_high"].to_numpy(float),
        line["color"],
        limits,
    )


def overfitting_figure(curves: pd.DataFrame, best: pd.DataFrame, arms: list[str], colors: dict,
                       drops: pd.DataFrame | None = None) -> Figure:
    """Every arm in one panel: validation (dashed) and test (solid) robust accuracy vs epoch; the
    epochs where the lr schedule steps down (`drops`, the first epoch at the lower lr) marked."""
    fig, axes = plotting.new_figure(1, 1, panel_height=2.9)
    ax = axes[0, 0]
    steps = sorted(set(drops["epoch"])) if drops is not None and len(drops) else []
    for i, epoch in enumerate(steps):
        ax.axvline(epoch, color="0.55", linestyle=":", linewidth=1, label="lr step" if i == 0 else None, zorder=0)
    for arm in arms:
        chosen = best[best["method"] == arm]
        curve = curves[curves["method"] == arm]
        if chosen.empty or curve.empty:
            continue
        row = chosen.iloc[0]
        n = int(curve["n"].max())
        label = plotting.label_text(f"{arm} ({row['setting']}, lr={row['lr']:g}, {n} seed{'s' if n != 1 else ''})")
        _line(ax, curve, "test_robust_acc", 100, (0, 100), color=colors[arm], label=f"{label}: test")
        _line(ax, curve, "val_robust_acc", 100, (0, 100), color=colors[arm], linestyle="--", linewidth=0.9,
              label=f"{label}: val")
    if not ax.lines:
        plotting.mark_no_data(ax)
    plotting.epoch_axis(ax)
    plotting.percent_axis(ax, "robust accuracy")
    ax.set_title(f"Solid: test ({PER_EPOCH_PGD}); dashed: validation")
    plotting.legend_below(fig, [ax], ncols=2)
    return fig


def lambda_figure(curves: pd.DataFrame, best: pd.DataFrame, arms: list[str], colors: dict) -> Figure | None:
    """Each arm's effective decay coefficient per step (mean per epoch, band = min..max within
    epochs over seeds), log scale; arms whose coefficient is 0 throughout are left out. None if no arm."""
    fig, axes = plotting.new_figure(1, 1, width=plotting.TWO_COLUMNS, panel_height=2.6)
    ax = axes[0, 0]
    for arm in arms:
        curve = curves[curves["method"] == arm]
        chosen = best[best["method"] == arm]
        mean = curve["lambda_mean_mean"].to_numpy(float)
        if chosen.empty or not (np.isfinite(mean) & (mean > 0)).any():
            continue
        x = curve["epoch"].to_numpy()
        label = plotting.label_text(f"{arm} ({chosen['kind'].iloc[0]}, {chosen['setting'].iloc[0]})")
        ax.plot(x, np.where(mean > 0, mean, np.nan), color=colors[arm], label=label)
        low, high = curve["lambda_min_min"].to_numpy(float), curve["lambda_max_max"].to_numpy(float)
        ax.fill_between(
            x,
            np.where(low > 0, low, np.nan),
            np.where(high > 0, high, np.nan),
            color=colors[arm],
            alpha=0.18,
            linewidth=0,
        )
    if not ax.lines:
        return None
    ax.set_yscale("log")
    plotting.plain_log_labels(ax)
    plotting.epoch_axis(ax)
    ax.set_ylabel("decay coefficient per step (log)")
    ax.set_title("Effective weight-decay coefficient (band: min..max within each epoch, over seeds)")
    ax.legend(loc="best")
    return fig


def norms_figure(curves: pd.DataFrame, best: pd.DataFrame, arms: list[str], colors: dict) -> Figure:
    """Weight norm and gradient norm vs epoch for each arm's best-tuned configuration."""
    fig, axes = plotting.new_figure(1, 2, panel_height=2.3)
    for ax, column, name in zip(axes[0], ["weight_norm", "grad_norm"], ["‖w‖₂", "‖∇w CE‖₂"], strict=True):
        for arm in arms:
            curve = curves[curves["method"] == arm]
            if curve.empty or not (best["method"] == arm).any():
                continue
            _line(ax, curve, column, color=colors[arm], label=plotting.label_text(arm))
        plotting.epoch_axis(ax)
        # Gradient norms shrink by orders of magnitude during training; a log axis shows both ends.
        values = curves[f"{column}_mean"]
        log = column == "grad_norm" and len(values) > 0 and bool((values > 0).all())
        ax.set_yscale("log" if log else "linear")
        if log:
            plotting.plain_log_labels(ax)
        ax.set_ylabel(f"{name} (log scale)" if log else name)
        ax.set_title("Weight norm (decayed parameters)" if column == "weight_norm" else "Gradient norm (mean per step)")
    plotting.legend_below(fig, list(axes[0]), ncols=6)
    return fig
