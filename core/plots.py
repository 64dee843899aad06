"""Plots people would rather look at than read: learning curves, the HSIC information
plane, confusion matrices, parity plots and residual histograms. All write PNG files.

Examples
--------
>>> import tempfile, numpy as np
>>> from hsickit.core.plots import parity
>>> path = parity(np.arange(5.0), np.arange(5.0) + 0.1, tempfile.mkdtemp() + "/parity.png")
>>> path.name
'parity.png'
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hsickit.core.files import atomic_write  # noqa: E402


def save_figure(fig, path) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically, and close it (every hsickit plot goes through here)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, buf.getvalue())


def learning_curves(history: list[dict], path, title: str = "Learning curves", unit: str = "") -> Path:
    """Training and validation loss (and accuracy or MAE where recorded) per epoch; ``unit``: the
    target's, for the MAE axis (a regressor's history holds its MAE in the target's unit)."""
    epochs = [r["epoch"] for r in history]
    metrics = [k for k in ("val_accuracy", "val_mae") if any(k in r for r in history)]
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 3.6), squeeze=False)
    ax = axes[0, 0]
    for key in ("train_loss", "val_loss"):
        vals = [r.get(key, np.nan) for r in history]
        ax.plot(epochs, vals, marker=".", label=key.replace("_", " "))
    formats = [r["epoch"] for r in history if str(r.get("phase")).endswith("format")]
    if formats:
        ax.axvspan(min(formats) - 0.5, max(formats) + 0.5, color="0.9", label="format layer only")
    standardised = any("val_mae_standardised" in r or "train_mae_standardised" in r for r in history)
    ax.set(xlabel="epoch", ylabel="loss (standardised target)" if standardised else "loss", title=title)
    ax.legend()
    for ax, key in zip(axes[0, 1:], metrics):
        ax.plot(epochs, [r.get(key, np.nan) for r in history], marker=".", color="C2")
        label = {"val_accuracy": "validation accuracy", "val_mae": "validation MAE"}[key]
        ax.set(xlabel="epoch", ylabel=f"{label} ({unit})" if unit and key == "val_mae" else label)
    return save_figure(fig, path)


def information_plane(history: list[dict], path, title: str = "HSIC information plane") -> Path:
    """HSIC(Z_i, X) against HSIC(Z_i, Y) per block, one trajectory per block over epochs."""
    blocks = sorted({int(m.group(1)) for r in history for k in r if (m := re.fullmatch(r"hsic_zx_(\d+)", k))})
    rows = [r for r in history if any(f"hsic_zx_{b}" in r for b in blocks)]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    cmap = plt.get_cmap("viridis", max(len(blocks), 2))
    for b in blocks:
        xs = [r[f"hsic_zx_{b}"] for r in rows if f"hsic_zx_{b}" in r]
        ys = [r[f"hsic_zy_{b}"] for r in rows if f"hsic_zy_{b}" in r]
        ax.plot(xs, ys, "-", color=cmap(b), alpha=0.6)
        ax.scatter(xs, ys, c=np.linspace(0.2, 1, len(xs)), cmap="Greys", s=14, edgecolors=cmap(b), zorder=3)
        if xs:
            ax.annotate(f"block {b + 1}", (xs[-1], ys[-1]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="HSIC(Z, X)", ylabel="HSIC(Z, Y)", title=title + "\n(darker markers = later epochs)")
    return save_figure(fig, path)


def confusion_matrix(cm, labels, path, title: str = "Confusion matrix", normalize: bool = True) -> Path:
    """A confusion matrix (rows: true class, columns: predicted), counts annotated."""
    cm = np.asarray(cm)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n + 2, 0.8 + 0.45 * n + 1.5))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), labels, rotation=90 if n > 8 else 0)
    ax.set_yticks(range(n), labels)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.5 * shown.max() else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class" if normalize else "count")
    return save_figure(fig, path)


def parity(y_true, y_pred, path, title: str = "Parity plot", unit: str = "") -> Path:
    """Predicted against true values with the identity line and MAE / R^2 in the title."""
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.scatter(y_true, y_pred, s=8, alpha=0.5)
    lo, hi = np.nanmin([y_true.min(), y_pred.min()]), np.nanmax([y_true.max(), y_pred.max()])
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    u = f" ({unit})" if unit else ""
    ax.set(xlabel=f"true{u}", ylabel=f"predicted{u}",
           title=f"{title}\nMAE {mean_absolute_error(y_true, y_pred):.4g}{unit and ' ' + unit}, R² {r2_score(y_true, y_pred):.3f}")
    return save_figure(fig, path)


def residual_histogram(y_true, y_pred, path, title: str = "Residuals", unit: str = "") -> Path:
    """Histogram of predicted minus true."""
    res = np.asarray(y_pred, float) - np.asarray(y_true, float)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.hist(res, bins=40, color="C1", alpha=0.8)
    ax.axvline(0, color="k", lw=1)
    ax.set(xlabel=f"predicted − true{f' ({unit})' if unit else ''}", ylabel="count", title=title)
    return save_figure(fig, path)


def bars(values: dict[str, float], path, title: str, ylabel: str, errors: dict[str, float] | None = None) -> Path:
    """A labelled bar chart (e.g. accuracy per taxonomic level or per model)."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(values), 3.6))
    names = list(values)
    ax.bar(names, [values[k] for k in names], yerr=[errors.get(k, 0) for k in names] if errors else None, color="C0", capsize=3)
    for i, k in enumerate(names):
        ax.text(i, values[k], f"{values[k]:.3g}", ha="center", va="bottom", fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    return save_figure(fig, path)
