"""Predictions at every taxonomic level: tree-consistent probabilities, top-k and back-off.

The probability of a genus (or family, order ...) is the sum of the probabilities of its
species, so the levels never contradict each other.

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
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hsickit.core.errors import HsickitError
from hsickit.datasets.plants import Taxonomy

__all__ = ["level_probabilities", "level_predictions", "top_k", "back_off", "prediction_table"]


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


def level_predictions(levels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Most probable group index at every level."""
    return {lvl: p.argmax(1) for lvl, p in levels.items()}


def top_k(p: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) and probabilities (n, k) of the ``k`` most probable classes, best first."""
    k = min(k, p.shape[1])
    idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(p, idx, axis=1)


def back_off(levels: dict[str, np.ndarray], taxonomy: Taxonomy, threshold: float = 0.5) -> pd.DataFrame:
    """The deepest level whose most probable group clears ``threshold``.

    Returns a frame with ``level``, ``index`` (group index at that level), ``name`` and
    ``probability``. When no level clears the threshold the coarsest level is reported
    and ``confident`` is False.
    """
    if not 0.0 <= threshold <= 1.0:
        raise HsickitError(f"back-off threshold must lie in [0, 1], got {threshold}")
    order = list(taxonomy.levels)
    n = next(iter(levels.values())).shape[0]
    chosen = np.full(n, len(order) - 1)
    confident = np.zeros(n, dtype=bool)
    for depth in range(len(order) - 1, -1, -1):  # coarse to fine: keep the finest that clears
        ok = levels[order[depth]].max(1) >= threshold
        chosen = np.where(ok, depth, chosen)
        confident |= ok
    idx = np.array([levels[order[d]][i].argmax() for i, d in enumerate(chosen)], dtype=np.int64)
    prob = np.array([levels[order[d]][i, j] for i, (d, j) in enumerate(zip(chosen, idx))])
    names = [taxonomy.names(order[d])[j] for d, j in zip(chosen, idx)]
    return pd.DataFrame({"level": [order[d] for d in chosen], "depth": chosen, "index": idx, "name": names,
                         "probability": prob, "confident": confident})


def prediction_table(proba: np.ndarray, taxonomy: Taxonomy, ids=None, k: int = 5, threshold: float = 0.5) -> pd.DataFrame:
    """One row per sample: the answer and its probability at every level, the top-k leaves and the back-off answer."""
    levels = level_probabilities(proba, taxonomy)
    cols: dict[str, object] = {}
    if ids is not None:
        cols["id"] = list(ids)
    for lvl, p in levels.items():
        j = p.argmax(1)
        names = taxonomy.names(lvl)
        cols[lvl] = [names[i] for i in j]
        cols[f"p_{lvl}"] = p[np.arange(len(p)), j]
    if taxonomy.key != taxonomy.leaf_level:
        cols[taxonomy.key] = taxonomy.leaves[levels[taxonomy.leaf_level].argmax(1)]
    idx, pk = top_k(levels[taxonomy.leaf_level], k)
    leaf_names = taxonomy.names(taxonomy.leaf_level)
    cols[f"top{k}_{taxonomy.leaf_level}"] = [";".join(leaf_names[i] for i in row) for row in idx]
    cols[f"top{k}_p"] = [";".join(f"{v:.4f}" for v in row) for row in pk]
    bo = back_off(levels, taxonomy, threshold)
    cols["backoff_level"] = bo["level"].tolist()
    cols["backoff_name"] = bo["name"].tolist()
    cols["backoff_p"] = bo["probability"].to_numpy()
    return pd.DataFrame(cols)
