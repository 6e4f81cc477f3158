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
from trials.arms import decay_quantity


def _line(ax: Axes, curve: pd.DataFrame, column: str, scale: float = 1.0,
          limits: tuple[float, float] | None = None, banded: bool = True, **line) -> None:
    """Mean line of `column` with its 95% band over seeds (clipped to `limits`; none unless `banded`)."""
    x = curve["epoch"].to_numpy()
    plotting.finite_line(ax, x, scale * curve[f"{column}_mean"].to_numpy(float), **line)
    if not banded:
        return
    plotting.band(
        ax,
        x,
        scale * curve[f"{column}_low"].to_numpy(float),
        scale * curve[f"{column}_high"].to_numpy(float),
        line["color"],
        limits,
    )


# (split, accuracy column, loss column, line style): robust accuracy and cross-entropy of each split
OVERFITTING_LINES = [
    ("test", "test_robust_acc", "test_robust_loss", {"linestyle": "-"}),
    ("validation", "val_robust_acc", "val_robust_loss", {"linestyle": "--", "linewidth": 0.9}),
    ("train", "train_robust_acc", "train_adv_ce", {"linestyle": ":", "linewidth": 1.1}),
]


def overfitting_figure(curves: pd.DataFrame, best: pd.DataFrame, arms: list[str], colors: dict,
                       drops: pd.DataFrame | None = None) -> Figure:
    """Two panels, every arm in each: robust accuracy (left) and robust cross-entropy (right) vs epoch, on the
    test (solid), validation (dashed) and training (dotted: the training step's own adversarial examples)
    splits; the epochs where the lr schedule steps down (`drops`, the first epoch at the lower lr) marked.
    Robust overfitting reads as the test curves turning (accuracy down, loss up) while the training ones
    keep improving."""
    fig, axes = plotting.new_figure(1, 2, panel_height=2.9)
    accuracy, loss = axes[0]
    steps = sorted(set(drops["epoch"])) if drops is not None and len(drops) else []
    for ax in (accuracy, loss):  # a wide pale bar: not to be read as one of the splits' line styles
        for i, epoch in enumerate(steps):
            ax.axvline(epoch, color="0.85", linestyle="-", linewidth=3, label="lr step" if i == 0 else None, zorder=0)
    for arm in arms:
        chosen = best[best["method"] == arm]
        curve = curves[curves["method"] == arm]
        if chosen.empty or curve.empty:
            continue
        row = chosen.iloc[0]
        n = int(curve["n"].max())
        label = plotting.label_text(f"{arm} ({row['setting']}, lr={row['lr']:g}, {n} seed{'s' if n != 1 else ''})")
        for i, (_, acc_column, loss_column, style) in enumerate(OVERFITTING_LINES):
            shown, banded = (label, True) if i == 0 else (None, False)  # a band on the test curve only
            _line(accuracy, curve, acc_column, 100, (0, 100), banded, color=colors[arm], label=shown, **style)
            _line(loss, curve, loss_column, 1.0, (0, np.inf), banded, color=colors[arm], **style)
    for split, _, _, style in OVERFITTING_LINES:  # the line styles, once, in grey
        accuracy.plot([], [], color="0.3", label=split, **style)
    if not any(line.get_xydata().size for line in accuracy.lines):
        plotting.mark_no_data(accuracy)
    if not any(line.get_xydata().size for line in loss.lines):
        plotting.mark_no_data(loss, "no losses recorded")
    for ax in (accuracy, loss):
        plotting.epoch_axis(ax)
    plotting.percent_axis(accuracy, "robust accuracy")
    loss.set_ylabel("robust cross-entropy")
    accuracy.set_title("Robust accuracy")
    loss.set_title("Robust cross-entropy")
    plotting.legend_below(fig, [accuracy, loss], ncols=2)
    return fig


def lambda_figure(curves: pd.DataFrame, best: pd.DataFrame, arms: list[str], colors: dict) -> Figure | None:
    """Each arm's decay per step (mean per epoch, band = min..max within epochs over seeds), log scale, one
    panel per quantity (`trials.arms.decay_quantity`: a coupled coefficient λ, AWD's λ̄, a decoupled shrink
    factor, ... are different things and never share an axis); arms whose decay is 0 throughout, or that
    have none, are left out. None if no arm decays."""
    panels: dict[tuple[str, str], list[tuple[str, pd.DataFrame, pd.Series]]] = {}
    for arm in arms:
        curve = curves[curves["method"] == arm]
        chosen = best[best["method"] == arm]
        if chosen.empty:
            continue
        quantity = decay_quantity(str(chosen["kind"].iloc[0]))
        mean = curve["lambda_mean_mean"].to_numpy(float)
        if quantity is None or not (np.isfinite(mean) & (mean > 0)).any():
            continue
        panels.setdefault(quantity, []).append((arm, curve, chosen.iloc[0]))
    if not panels:
        return None
    rows, cols = plotting.panel_grid(len(panels), max_cols=2)
    fig, axes = plotting.new_figure(rows, cols, width=plotting.TWO_COLUMNS, panel_height=2.6)
    flat = list(axes.flat)
    for ax, ((symbol, meaning), lines) in zip(flat, panels.items(), strict=False):
        widths = _nested_widths([curve for _, curve, _ in lines])
        for (arm, curve, chosen), width in zip(lines, widths, strict=True):
            x, mean = curve["epoch"].to_numpy(), curve["lambda_mean_mean"].to_numpy(float)
            label = plotting.label_text(f"{arm} ({chosen['kind']}, {chosen['setting']})")
            ax.plot(x, np.where(mean > 0, mean, np.nan), color=colors[arm], label=label, linewidth=width)
            low, high = curve["lambda_min_min"].to_numpy(float), curve["lambda_max_max"].to_numpy(float)
            ax.fill_between(x, np.where(low > 0, low, np.nan), np.where(high > 0, high, np.nan), color=colors[arm],
                            alpha=0.18, linewidth=0)
        ax.set_yscale("log")
        values = np.concatenate([curve[c].to_numpy(float) for _, curve, _ in lines
                                 for c in ("lambda_mean_mean", "lambda_min_min", "lambda_max_max")])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size and values.max() / values.min() < 4:  # a constant decay: a readable decade around it
            ax.set_ylim(values.min() / 3, values.max() * 3)
        plotting.plain_log_labels(ax)
        plotting.epoch_axis(ax)
        ax.set_ylabel(f"{symbol} per step (log)")
        ax.set_title(f"{symbol}: {meaning}", fontsize="small")
    plotting.hide_unused(axes, len(panels))
    plotting.legend_below(fig, flat[: len(panels)], ncols=2)  # under the panels: it never hides a curve
    return fig


def _nested_widths(curves: list[pd.DataFrame], base: float = 1.5, step: float = 1.3) -> list[float]:
    """Line widths for curves drawn in order: a curve that later ones coincide with (a fixed λ and a window
    of it) is drawn wider by `step` per curve on top of it at one epoch, so each shows as a line inside a
    line instead of one hiding the other; the others are `base` wide."""
    values = [dict(zip(c["epoch"], c["lambda_mean_mean"].to_numpy(float), strict=True)) for c in curves]
    widths = []
    for i, mine in enumerate(values):
        depth = max((sum(1 for later in values[i + 1:] if epoch in later and np.isclose(later[epoch], value))
                     for epoch, value in mine.items() if value > 0), default=0)
        widths.append(base + step * depth)
    return widths


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
