"""Predictions at every taxonomic level: tree-consistent probabilities, one lineage, top-k and back-off.

The probability of a genus (or family, order ...) is the sum of the probabilities of its
species: the model has one softmax over the species, and the taxonomic loss is trained on
exactly these sums. The predicted lineage is that of the most probable species (the answer
that is right most often at the species level), so every row's genus lies in its family and
the probabilities never grow with depth; the back-off answer is the deepest level of that
lineage whose probability reaches a threshold. A level's own most probable group (what
``accuracy_<level>`` in :mod:`hsickit.apps.plants.metrics` scores) can lie outside the lineage
when that group's probability is spread over many species.

Examples
--------
>>> import io, numpy as np
>>> from hsickit.datasets.plants import read_taxonomy
>>> tax = read_taxonomy(io.StringIO("species,genus,family\\nA a,A,F\\nA b,A,F\\nB c,B,G\\n"))
>>> levels = level_probabilities(np.array([[0.4, 0.35, 0.25]]), tax)
>>> levels["genus"].tolist(), levels["family"].tolist()
([[0.75, 0.25]], [[0.75, 0.25]])
>>> back_off(levels, tax, threshold=0.5)["level"].tolist()   # species 0.4 < 0.5: back off to genus
['genus']
>>> back_off(levels, tax, threshold=0.9)[["level", "name"]].values.tolist()  # no level reaches 0.9
[['none', '']]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hsickit.core.errors import HsickitError
from hsickit.datasets.plants import Taxonomy

__all__ = ["level_probabilities", "level_predictions", "top_k", "back_off", "prediction_table", "UNDETERMINED"]

UNDETERMINED = "none"
"""``backoff_level`` of a specimen for which no level reaches the threshold (its name is empty)."""


def level_probabilities(proba: np.ndarray, taxonomy: Taxonomy) -> dict[str, np.ndarray]:
    """Probabilities at every level, ``{level: (n, n_groups)}``, from leaf probabilities (n, n_leaves)."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != taxonomy.n_leaves:
        raise HsickitError(f"probabilities have shape {proba.shape} but the taxonomy has {taxonomy.n_leaves} leaves; "
                           "use the taxonomy the model was trained with")
    out = {taxonomy.leaf_level: proba}
    for lvl in taxonomy.levels[1:]:
        idx = taxonomy.group_index(lvl)
        groups = np.zeros((proba.shape[0], len(taxonomy.names(lvl))))
        np.add.at(groups.T, idx, proba.T)
        out[lvl] = groups
    return out


def level_predictions(levels: dict[str, np.ndarray], taxonomy: Taxonomy) -> dict[str, np.ndarray]:
    """The predicted lineage, ``{level: (n,) group index}``: the most probable species and its groups."""
    leaf = levels[taxonomy.leaf_level].argmax(1)
    return {lvl: taxonomy.group_index(lvl)[leaf] for lvl in taxonomy.levels}


def top_k(p: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) and probabilities (n, k) of the ``k`` most probable classes, best first."""
    k = min(k, p.shape[1])
    idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(p, idx, axis=1)


def back_off(levels: dict[str, np.ndarray], taxonomy: Taxonomy, threshold: float = 0.5) -> pd.DataFrame:
    """The deepest level of the predicted lineage whose probability reaches ``threshold``.

    Returns a frame with ``level``, ``depth`` (0 for the leaf level), ``index`` (group index
    at that level), ``name`` and ``probability``. When no level reaches the threshold the
    answer is undetermined: ``level`` is ``"none"`` (:data:`UNDETERMINED`), ``depth`` the
    number of levels, ``index`` -1, ``name`` empty and ``probability`` that of the
    coarsest group of the lineage (the highest probability of the lineage, below the threshold).
    """
    if not 0.0 <= threshold <= 1.0:
        raise HsickitError(f"back-off threshold must lie in [0, 1], got {threshold}")
    order = list(taxonomy.levels)
    lineage = level_predictions(levels, taxonomy)
    rows = np.arange(len(lineage[order[0]]))
    probs = np.stack([levels[lvl][rows, lineage[lvl]] for lvl in order], axis=1)  # (n, n_levels), never smaller at coarser levels
    ok = probs >= threshold
    depth = np.where(ok.any(1), ok.argmax(1), len(order))  # first (finest) level that reaches it
    known = depth < len(order)
    d = np.minimum(depth, len(order) - 1)
    idx = np.where(known, np.stack([lineage[lvl] for lvl in order], axis=1)[rows, d], -1)
    names = [taxonomy.names(order[k])[j] if k < len(order) else "" for k, j in zip(depth, idx)]
    return pd.DataFrame({"level": [order[k] if k < len(order) else UNDETERMINED for k in depth], "depth": depth,
                         "index": idx, "name": names, "probability": np.where(known, probs[rows, d], probs[:, -1])})


def prediction_table(proba: np.ndarray, taxonomy: Taxonomy, ids=None, k: int = 5, threshold: float = 0.5) -> pd.DataFrame:
    """One row per sample: the predicted lineage with each level's probability, the top-k leaves
    (by probability alone) and the back-off answer (see :func:`back_off`)."""
    levels = level_probabilities(proba, taxonomy)
    lineage = level_predictions(levels, taxonomy)
    cols: dict[str, object] = {}
    if ids is not None:
        cols["id"] = list(ids)
    rows = np.arange(len(proba))
    for lvl, p in levels.items():
        names = taxonomy.names(lvl)
        cols[lvl] = [names[i] for i in lineage[lvl]]
        cols[f"p_{lvl}"] = p[rows, lineage[lvl]]
    if taxonomy.key != taxonomy.leaf_level:
        cols[taxonomy.key] = taxonomy.leaves[lineage[taxonomy.leaf_level]]
    idx, pk = top_k(levels[taxonomy.leaf_level], k)
    leaf_names = taxonomy.names(taxonomy.leaf_level)
    cols[f"top{k}_{taxonomy.leaf_level}"] = [";".join(leaf_names[i] for i in row) for row in idx]
    cols[f"top{k}_p"] = [";".join(f"{v:.4f}" for v in row) for row in pk]
    bo = back_off(levels, taxonomy, threshold)
    cols["backoff_level"] = bo["level"].tolist()
    cols["backoff_name"] = bo["name"].tolist()
    cols["backoff_p"] = bo["probability"].to_numpy()
    return pd.DataFrame(cols)
