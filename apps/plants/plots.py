"""Plots for taxonomic classification: accuracy per level, a confusion matrix at one level, and for
leaf outlines a page of outlines per species with their mean and the most confused species pairs.

Examples
--------
>>> import io, tempfile, numpy as np
>>> from hsickit.datasets.plants import read_taxonomy
>>> tax = read_taxonomy(io.StringIO("species,genus,family\\nA a,A,F\\nA b,A,F\\nB c,B,G\\n"))
>>> d = tempfile.mkdtemp()
>>> level_accuracy_plot({"accuracy_species": 0.5, "accuracy_genus": 0.8, "accuracy_family": 0.9}, tax, d + "/a.png").name
'a.png'
>>> level_confusion_plot([0, 2], np.eye(3)[[1, 2]], tax, d + "/c.png").name
'c.png'
>>> t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
>>> curves = np.stack([np.c_[(1 + k % 3) * np.cos(t), np.sin(t)] for k in range(6)])
>>> outline_page(curves, np.arange(6) % 3, tax, d + "/o.png").name
'o.png'
>>> confused_pairs_plot(curves, np.arange(6) % 3, np.array([0, 2, 2, 0, 1, 1]), tax, d + "/p.png").name
'p.png'
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

from hsickit.core import plots
from hsickit.datasets.plants import Taxonomy

from hsickit.apps.plants.hierarchy import level_probabilities

__all__ = ["level_accuracy_plot", "level_confusion_plot", "outline_page", "confused_pairs_plot"]


def level_accuracy_plot(metrics: dict, taxonomy: Taxonomy, path, errors: dict | None = None,
                        title: str = "Accuracy per taxonomic level") -> Path:
    """Bar chart of ``accuracy_<level>`` (and ``top5_<level>`` when present) for every level."""
    values, err = {}, {}
    for lvl in taxonomy.levels:
        for key, label in ((f"accuracy_{lvl}", lvl), (f"top5_{lvl}", f"{lvl}\ntop-5")):
            if key in metrics:
                values[label] = float(metrics[key])
                if errors and key in errors:
                    err[label] = float(errors[key])
    return plots.bars(values, path, title=title, ylabel="accuracy", errors=err or None)


def level_confusion_plot(y_true, proba, taxonomy: Taxonomy, path, level: str = "family") -> Path:
    """Confusion matrix at ``level`` (default family) from tree-consistent probabilities."""
    y = np.asarray(y_true, dtype=np.int64)
    pred = level_probabilities(proba, taxonomy)[level].argmax(1)
    codes = taxonomy.group_index(level)
    names = taxonomy.names(level)
    cm = confusion_matrix(codes[y], pred, labels=np.arange(len(names)))
    return plots.confusion_matrix(cm, names, path, title=f"Confusion matrix ({level})")


def _draw_species(ax, X, title: str, color: str = "C0") -> None:
    """Aligned specimens (thin) and their mean (bold) in one panel; signatures as curves over the points."""
    from hsickit.apps.plants.outlines import mean_outline

    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(X) == 0:
        return
    mean, aligned = mean_outline(X)
    if aligned.ndim == 2:  # signatures
        for a in aligned:
            ax.plot(a, color=color, lw=0.4, alpha=0.35)
        ax.plot(mean, color="k", lw=1.2)
        return
    for a in aligned:
        ax.plot(*np.r_[a, a[:1]].T, color=color, lw=0.4, alpha=0.35)
    ax.plot(*np.r_[mean, mean[:1]].T, color="k", lw=1.2)
    ax.set_aspect("equal")


def outline_page(X, y, taxonomy: Taxonomy, path, max_species: int = 120, title: str = "Outlines per species "
                 "(thin: specimens, aligned; bold: mean outline)") -> Path:
    """One panel per species: its specimens' outlines (aligned for size, rotation and starting
    point) and their mean, species in taxonomy order (at most ``max_species``)."""
    import matplotlib.pyplot as plt  # Agg backend, set by hsickit.core.plots

    X, y = np.asarray(X), np.asarray(y, dtype=np.int64)
    present = [j for j in range(taxonomy.n_leaves) if (y == j).any()][:max_species]
    cols = int(np.ceil(np.sqrt(max(1, len(present)))))
    rows = int(np.ceil(len(present) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), squeeze=False)
    names = taxonomy.names(taxonomy.leaf_level)
    for ax, j in zip(axes.flat, present):
        _draw_species(ax, X[y == j], f"{names[j]} ({int((y == j).sum())})")
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return plots.save_figure(fig, path)


def confused_pairs_plot(X, y_true, y_pred, taxonomy: Taxonomy, path, k: int = 6) -> Path:
    """The ``k`` species pairs most often confused (either way round), side by side: each species'
    outlines and mean, titled with how many specimens went which way and the pair's tree distance."""
    import matplotlib.pyplot as plt  # Agg backend, set by hsickit.core.plots

    X = np.asarray(X)
    y, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    counts: dict[tuple[int, int], int] = {}
    for a, b in zip(y[y != p], p[y != p]):
        key = (min(a, b), max(a, b))
        counts[key] = counts.get(key, 0) + 1
    pairs = sorted(counts, key=lambda ab: (-counts[ab], ab))[:k]
    names = taxonomy.names(taxonomy.leaf_level)
    fig, axes = plt.subplots(max(1, len(pairs)), 2, figsize=(4.4, 2.1 * max(1, len(pairs)) + 0.4), squeeze=False)
    if not pairs:
        for ax in axes.flat:
            ax.axis("off")
        axes[0, 0].text(0.5, 0.5, "no species confused", ha="center", va="center", transform=axes[0, 0].transAxes)
    for row, (a, b) in zip(axes, pairs):
        ab, ba = int(((y == a) & (p == b)).sum()), int(((y == b) & (p == a)).sum())
        _draw_species(row[0], X[y == a], f"{names[a]}\n{ab} taken for the other", "C0")
        _draw_species(row[1], X[y == b], f"{names[b]}\n{ba} taken for the other", "C3")
        row[0].set_ylabel(f"tree distance {int(taxonomy.distance(a, b))}", fontsize=7)
    fig.suptitle("Most confused species pairs (outlines aligned; bold: mean)", fontsize=9)
    fig.tight_layout()
    return plots.save_figure(fig, path)
