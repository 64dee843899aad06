"""Plots for taxonomic classification: accuracy per level and a confusion matrix at one level.

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
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

from hsickit.core import plots
from hsickit.datasets.plants import Taxonomy

from hsickit.apps.plants.hierarchy import level_probabilities

__all__ = ["level_accuracy_plot", "level_confusion_plot"]


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
