"""Metrics for taxonomic classification: per-level accuracy and top-k, hierarchical
precision/recall/F1, mistake severity and back-off accuracy.

``accuracy_<level>`` scores each level's most probable group (summed species probabilities);
``accuracy_<level>_from_leaf``, hierarchical F1, mistake severity and back-off score the lineage
of the most probable species, as ``hsickit plants predict`` writes it.
Hierarchical precision/recall follow Kiritchenko et al. (2006), as in hiclass: each
prediction and each truth is the set of its nodes at every level, and
``hP = sum |P & T| / sum |P|``, ``hR = sum |P & T| / sum |T|``. Mistake severity is the
mean tree distance (levels climbed to the lowest common ancestor) of the wrong species
predictions (Bertinetto et al. 2020).

Examples
--------
>>> import io, numpy as np
>>> from hsickit.datasets.plants import read_taxonomy
>>> tax = read_taxonomy(io.StringIO("species,genus,family\\nA a,A,F\\nA b,A,F\\nB c,B,G\\n"))
>>> proba = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]])
>>> m = taxonomic_metrics([0, 0], proba, tax, k=2)
>>> m["accuracy_species"], m["accuracy_genus"], m["mistake_severity"]
(0.5, 1.0, 1.0)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hsickit.core.errors import HsickitError
from hsickit.datasets.plants import Taxonomy

from hsickit.apps.plants.hierarchy import back_off, level_predictions, level_probabilities, top_k

__all__ = ["taxonomic_metrics", "hierarchical_prf", "backoff_metrics", "per_level_accuracy"]


def _truth(y_true, taxonomy: Taxonomy) -> np.ndarray:
    y = np.asarray(y_true)
    if y.dtype.kind in "iu":
        if len(y) and (y.min() < 0 or y.max() >= taxonomy.n_leaves):
            raise HsickitError(f"true leaf indices must lie in 0..{taxonomy.n_leaves - 1}")
        return y.astype(np.int64)
    return taxonomy.index_of(y)


def hierarchical_prf(y_true, pred_leaf, taxonomy: Taxonomy, pred_depth=None) -> tuple[float, float, float]:
    """Hierarchical precision, recall and F1 (micro-averaged over samples).

    ``pred_depth`` (optional, per sample) truncates a prediction to the levels from
    ``depth`` upwards (a back-off answer at genus predicts genus, family, ... only).
    """
    y = _truth(y_true, taxonomy)
    p = np.asarray(pred_leaf, dtype=np.int64)
    n_levels = len(taxonomy.levels)
    depth = np.zeros(len(y), dtype=np.int64) if pred_depth is None else np.asarray(pred_depth, dtype=np.int64)
    inter = np.zeros(len(y))
    for k, lvl in enumerate(taxonomy.levels):
        codes = taxonomy.group_index(lvl)
        inter += (codes[y] == codes[p]) & (depth <= k)
    n_pred = (n_levels - depth).sum()
    n_true = n_levels * len(y)
    hp = float(inter.sum() / n_pred) if n_pred else float("nan")
    hr = float(inter.sum() / n_true) if n_true else float("nan")
    hf = 2 * hp * hr / (hp + hr) if hp + hr > 0 else 0.0
    return hp, hr, float(hf)


def backoff_metrics(y_true, proba, taxonomy: Taxonomy, thresholds: Sequence[float] = (0.5, 0.7, 0.9)) -> dict:
    """For each threshold: the share of specimens answered (some level reaches it), the accuracy
    of the answered ones, the share answered at the leaf level, the mean depth climbed by the
    answered ones and the hierarchical precision of the answers (see :func:`back_off`)."""
    y = _truth(y_true, taxonomy)
    levels = level_probabilities(proba, taxonomy)
    pred_leaf = level_predictions(levels, taxonomy)[taxonomy.leaf_level]
    n_levels = len(taxonomy.levels)
    out = {}
    for t in thresholds:
        bo = back_off(levels, taxonomy, t)
        depth = bo["depth"].to_numpy()
        answered = depth < n_levels
        correct = np.array([taxonomy.group_index(taxonomy.levels[d])[yi] == j if d < n_levels else False
                            for yi, d, j in zip(y, depth, bo["index"])], dtype=bool)
        tag = f"{t:g}"
        out[f"backoff_answered@{tag}"] = float(answered.mean()) if len(y) else float("nan")
        out[f"backoff_accuracy@{tag}"] = float(correct[answered].mean()) if answered.any() else float("nan")
        out[f"backoff_leaf_share@{tag}"] = float((depth == 0).mean()) if len(y) else float("nan")
        out[f"backoff_mean_depth@{tag}"] = float(depth[answered].mean()) if answered.any() else float("nan")
        hp, _, _ = hierarchical_prf(y, pred_leaf, taxonomy, pred_depth=depth)
        out[f"backoff_hprecision@{tag}"] = hp
    return out


def per_level_accuracy(y_true, proba, taxonomy: Taxonomy) -> dict[str, float]:
    """Accuracy at every level from the tree-consistent level probabilities."""
    y = _truth(y_true, taxonomy)
    levels = level_probabilities(proba, taxonomy)
    return {lvl: float((p.argmax(1) == taxonomy.group_index(lvl)[y]).mean()) for lvl, p in levels.items()}


def taxonomic_metrics(y_true, proba, taxonomy: Taxonomy, k: int = 5,
                      thresholds: Sequence[float] = (0.5, 0.7, 0.9)) -> dict:
    """All metrics as a flat ``name -> number`` dict (plus ``n_samples``).

    ``accuracy_<level>`` uses the argmax of the level's summed probabilities;
    ``accuracy_<level>_from_leaf`` reads the level off the predicted species (the lineage
    of the prediction table). Hierarchical F1 and mistake severity use the predicted species.
    """
    y = _truth(y_true, taxonomy)
    proba = np.asarray(proba, dtype=np.float64)
    levels = level_probabilities(proba, taxonomy)
    lineage = level_predictions(levels, taxonomy)
    pred_leaf = lineage[taxonomy.leaf_level]
    out: dict[str, float] = {}
    for lvl, p in levels.items():
        truth = taxonomy.group_index(lvl)[y]
        out[f"accuracy_{lvl}"] = float((p.argmax(1) == truth).mean())
        idx, _ = top_k(p, k)
        out[f"top{k}_{lvl}"] = float((idx == truth[:, None]).any(1).mean())
        out[f"accuracy_{lvl}_from_leaf"] = float((lineage[lvl] == truth).mean())
    hp, hr, hf = hierarchical_prf(y, pred_leaf, taxonomy)
    out.update(hierarchical_precision=hp, hierarchical_recall=hr, hierarchical_f1=hf)
    dist = taxonomy.distance(y, pred_leaf)
    wrong = dist > 0
    out["mistake_severity"] = float(dist[wrong].mean()) if wrong.any() else 0.0
    out["mean_tree_distance"] = float(dist.mean())
    nll = -np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None))
    out[f"nll_{taxonomy.leaf_level}"] = float(nll.mean())
    out.update(backoff_metrics(y, proba, taxonomy, thresholds))
    out["n_samples"] = int(len(y))
    return out
