"""Leaf outlines: 1-D contour signatures and closed (x, y) curves, read, checked and resampled.

Three inputs, each joined to a taxonomy like the other plant readers (:mod:`hsickit.datasets.plants`):

- a **signature table** (:func:`read_signature_table`): one specimen per row, a label column and
  ordered numeric columns of a 1-D contour signature such as the centroid distance (the format
  of the UCR/UEA leaf sets): ``PlantSamples.kind == "signatures"``, ``X`` (n, N);
- a **point table** (:func:`read_point_table`), long format: one row per point with the columns
  specimen (``id_col``), point (its order along the curve), x, y and the label: each outline is
  resampled to ``n_points`` points equally spaced by arc length and turned counter-clockwise:
  ``kind == "outlines"``, ``X`` (n, n_points, 2);
- **silhouette images** (:func:`read_image_outlines`): the outer boundary
  (``skimage.measure.find_contours``) of the largest connected component of each image,
  resampled the same way.

Every outline is checked (:func:`outline_problem`); a bad one (a missing or non-numeric value,
fewer than ``n_points`` points, an open curve, a self-intersecting curve) is an
:class:`~hsickit.core.errors.HsickitError` naming the specimen, or, with ``ignore_errors``,
skipped and listed in ``samples.skipped``.

Examples
--------
>>> import numpy as np
>>> t = np.linspace(0, 2 * np.pi, 300, endpoint=False)
>>> ellipse = np.c_[2 * np.cos(t), np.sin(t)]
>>> curve = resample_closed(ellipse[::-1], 64)       # clockwise in, counter-clockwise out
>>> curve.shape, outline_problem(curve, 64) is None, signed_area(curve) > 0
((64, 2), True, True)
>>> r = centroid_distance(curve[None])              # (n, N) 1-D signature
>>> r.shape, bool(np.isclose(r.max(), 2, atol=0.01)), bool(np.isclose(r.min(), 1, atol=0.01))
((1, 64), True, True)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from hsickit.core.errors import HsickitError
from hsickit.datasets.plants import (PlantSamples, Taxonomy, join_labels, read_images, row_names, select_columns,
                                     skip_or_raise, source_name, split_column, table_samples)

__all__ = ["DEFAULT_POINTS", "resample_closed", "signed_area", "self_intersection", "outline_problem",
           "centroid_distance", "extract_outline", "outlines_from_images", "read_signature_table", "read_point_table",
           "read_outlines", "read_image_outlines", "is_point_table"]

#: Points per outline when a curve is resampled (the 128-point contours of the UCR leaf sets).
DEFAULT_POINTS = 128
#: A curve is open when the gap from its last point back to its first is this many times its median step.
OPEN_GAP = 10.0
#: The fewest values a contour signature may have.
MIN_SIGNATURE = 8


# --- geometry -----------------------------------------------------------------------------------
def signed_area(points: np.ndarray) -> float:
    """Shoelace area of a closed polygon (m, 2): positive when counter-clockwise."""
    x, y = np.asarray(points, dtype=np.float64).T
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _drop_repeats(points: np.ndarray) -> np.ndarray:
    """Consecutive duplicate points removed, and the last point when it repeats the first (a closed listing)."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) > 1:
        keep = np.r_[True, np.any(np.diff(p, axis=0) != 0, axis=1)]
        p = p[keep]
    if len(p) > 2 and np.array_equal(p[0], p[-1]):
        p = p[:-1]
    return p


def resample_closed(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points equally spaced by arc length along the closed polygon ``points`` (m, 2),
    starting at its first point and turned counter-clockwise."""
    p = _drop_repeats(points)
    if signed_area(p) < 0:
        p = np.r_[p[:1], p[:0:-1]]  # same start, other direction
    seg = np.linalg.norm(np.diff(np.r_[p, p[:1]], axis=0), axis=1)
    s = np.r_[0.0, np.cumsum(seg)]
    t = np.linspace(0.0, s[-1], int(n), endpoint=False)
    closed = np.r_[p, p[:1]]
    return np.c_[np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])]


def self_intersection(points: np.ndarray) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (i, j) of the closed polygon that cross, else None.

    Edge i joins point i to point i+1 (the last edge closes the curve). Touching without
    crossing is not counted.
    """
    p = np.asarray(points, dtype=np.float64)
    m = len(p)
    a, b = p, np.roll(p, -1, axis=0)
    i, j = np.triu_indices(m, k=2)
    ok = ~((i == 0) & (j == m - 1))  # the first and last edges share point 0
    i, j = i[ok], j[ok]

    def orient(p0, p1, q):
        return np.sign((p1[..., 0] - p0[..., 0]) * (q[..., 1] - p0[..., 1]) - (p1[..., 1] - p0[..., 1]) * (q[..., 0] - p0[..., 0]))

    d1, d2 = orient(a[i], b[i], a[j]), orient(a[i], b[i], b[j])
    d3, d4 = orient(a[j], b[j], a[i]), orient(a[j], b[j], b[i])
    cross = (d1 * d2 < 0) & (d3 * d4 < 0)
    if not cross.any():
        return None
    k = int(np.argmax(cross))
    return int(i[k]), int(j[k])


def outline_problem(points: np.ndarray, n_points: int) -> str | None:
    """Why the closed curve ``points`` (m, 2) cannot be used, or None when it can.

    Checks, in order: every coordinate is a finite number; at least ``n_points`` distinct
    points; the curve is closed (the gap from the last point back to the first is at most
    :data:`OPEN_GAP` times the median step); it encloses an area; it does not cross itself.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        return f"has shape {p.shape}, not (points, 2)"
    bad = ~np.isfinite(p).all(1)
    if bad.any():
        return f"point {int(np.argmax(bad)) + 1} has a missing or non-numeric coordinate"
    p = _drop_repeats(p)
    if len(p) < n_points:
        return f"has {len(p)} distinct points, fewer than the {n_points} required (n_points)"
    steps = np.linalg.norm(np.diff(p, axis=0), axis=1)
    gap = float(np.linalg.norm(p[-1] - p[0]))
    if gap > OPEN_GAP * float(np.median(steps)):
        return (f"is an open curve: its last point is {gap:.3g} from its first, {gap / np.median(steps):.0f} times "
                "the median step between points (list the points all the way round the leaf)")
    if abs(signed_area(p)) <= 1e-12 * max(1.0, float(np.ptp(p, axis=0).max()) ** 2):
        return "encloses no area (all its points lie on a line)"
    hit = self_intersection(p)
    if hit is not None:
        return (f"crosses itself (the edge from point {hit[0] + 1} crosses the edge from point {hit[1] + 1}); "
                "trace the outline once round without loops")
    return None


def centroid_distance(outlines: np.ndarray) -> np.ndarray:
    """Centroid-distance signatures (n, N) of outlines (n, N, 2): distance of each point from the
    centroid of the points (equally spaced by arc length, so the centroid of the curve)."""
    o = np.asarray(outlines, dtype=np.float64)
    if o.ndim != 3 or o.shape[-1] != 2:
        raise HsickitError(f"outlines must be (n, points, 2), got shape {o.shape}")
    return np.linalg.norm(o - o.mean(1, keepdims=True), axis=-1)


def extract_outline(image: np.ndarray, n_points: int = DEFAULT_POINTS, level: float = 0.5) -> np.ndarray:
    """The outer boundary of the largest connected component of a silhouette, resampled to ``n_points``.

    ``image`` (H, W) or (1, H, W), the leaf bright on a dark ground. The boundary is the
    longest ``skimage.measure.find_contours`` curve at ``level`` (times the image maximum) of the
    component's mask, padded so that a leaf touching the border still closes. Coordinates are
    ``x`` = column and ``y`` = height - row, so a plot shows the leaf upright.
    Raises :class:`HsickitError` when the image has no leaf pixel.
    """
    from skimage import measure

    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2:
        raise HsickitError(f"a silhouette must be one grayscale image (H, W), got shape {img.shape}")
    top = float(img.max()) if img.size else 0.0
    if not top > 0:
        raise HsickitError("has no leaf: the image is blank (a white leaf on a black ground is expected)")
    mask = img >= level * top
    comps = measure.label(mask, connectivity=1)  # face-connected, as find_contours traces the bright side
    sizes = np.bincount(comps.ravel())
    sizes[0] = 0
    main = np.pad(comps == int(np.argmax(sizes)), 1).astype(np.float64)
    curves = measure.find_contours(main, 0.5)
    outer = max(curves, key=len)
    pts = np.c_[outer[:, 1] - 1, img.shape[0] - (outer[:, 0] - 1)]
    return resample_closed(pts, n_points)


def outlines_from_images(images: np.ndarray, ids, n_points: int = DEFAULT_POINTS) -> tuple[np.ndarray, list[int], list[str]]:
    """Outlines (k, n_points, 2) of the images (n, [1,] H, W) that yield one, the indices of those
    images, and one problem per image that does not (``"id 7: has no leaf ..."``)."""
    out, keep, problems = [], [], []
    for i, (img, name) in enumerate(zip(images, ids)):
        try:
            o = extract_outline(img, n_points)
            why = outline_problem(o, n_points)
        except HsickitError as err:
            why = str(err)
        if why is None:
            out.append(o)
            keep.append(i)
        else:
            problems.append(f"specimen {name}: the outline {why}" if not why.startswith("has no leaf")
                            else f"specimen {name} {why}")
    return (np.stack(out).astype(np.float32) if out else np.zeros((0, n_points, 2), np.float32)), keep, problems


# --- readers ---------------------------------------------------------------------------------------
def _table(path, what: str) -> pd.DataFrame:
    source = source_name(path)
    if isinstance(path, (str, os.PathLike)) and not Path(path).exists():
        raise HsickitError(f"{what} {path} does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise HsickitError(f"{source} is not a readable CSV ({err}); save it as comma-separated text with a header") from err
    table.columns = [str(c).strip() for c in table.columns]
    return table


def is_point_table(columns) -> bool:
    """True when a table's columns hold (x, y) points (columns ``x`` and ``y``), i.e. the long format."""
    cols = {str(c).strip().casefold() for c in columns}
    return {"x", "y"} <= cols


def read_signature_table(path, taxonomy: Taxonomy | None = None, label_col: str = "species", id_col: str = "id",
                         n_points: int | None = None, signature_cols=None, splits=None, split=None,
                         require_labels: bool = False, ignore_errors: bool = False) -> PlantSamples:
    """A wide table of 1-D contour signatures: one specimen per row, ordered numeric columns.

    Every numeric column except the id, the label and ``split`` is a point of the signature, in
    file order (or ``signature_cols``: names or prefixes, as ``feature_cols`` of
    :func:`~hsickit.datasets.plants.read_feature_table`). A specimen with a missing or
    non-numeric value (a shorter signature), or a table with fewer than ``n_points`` columns,
    is an error naming it.

    Examples
    --------
    >>> import io
    >>> s = read_signature_table(io.StringIO("id,species,r1,r2,r3,r4,r5,r6,r7,r8\\n1,A b,1,2,1,2,1,2,1,2\\n"))
    >>> s.kind, s.X.shape
    ('signatures', (1, 8))
    """
    source = source_name(path)
    table = _table(path, "outline table")
    if is_point_table(table.columns):
        raise HsickitError(f"{source} has x and y columns: it is a point table (one row per point); "
                           "read it with read_point_table (read_outlines picks the reader from the columns)")
    has_labels = label_col in table.columns
    if require_labels and not has_labels:
        raise HsickitError(f"{source} has no label column {label_col!r} (columns: {list(table.columns)[:8]} ...); "
                           "pass the right --label-col")
    skip = {label_col, id_col, "split"} | (set(taxonomy.levels) | {taxonomy.key} if taxonomy is not None else set())
    candidates = [c for c in table.columns if c not in skip]
    numeric = {c: pd.to_numeric(table[c].str.strip(), errors="coerce") for c in candidates}
    auto = [c for c in candidates if len(table) and numeric[c].notna().mean() >= 0.5]
    cols = select_columns(auto if signature_cols is None else candidates, signature_cols, source)
    L = len(cols)
    if n_points is not None and L < n_points:
        raise HsickitError(f"{source}: its signatures have {L} values, fewer than the {n_points} required "
                           f"(n_points); pass n_points={L} (--n-points {L}) or longer signatures")
    if L < MIN_SIGNATURE:
        raise HsickitError(f"{source}: a contour signature needs at least {MIN_SIGNATURE} ordered values; this table has "
                           f"{L} numeric columns ({cols}); pass the signature columns with signature_cols")
    X = np.column_stack([numeric[c].to_numpy(dtype=np.float64) for c in cols]) if len(table) else np.zeros((0, L))
    ids = (table[id_col].str.strip() if id_col in table.columns else pd.Series(row_names(len(table)))).to_numpy(dtype=object)
    where = np.array([f"specimen {i}" if id_col in table.columns else str(i) for i in ids], dtype=object)
    bad = ~np.isfinite(X)
    problems = [f"{where[i]}: its signature has {int((~bad[i]).sum())} of {L} values (column "
                f"{cols[int(np.argmax(bad[i]))]!r} is missing or not a number); resample every outline to {L} points"
                for i in np.nonzero(bad.any(1))[0]]
    return table_samples(table, X, cols, "signatures", ids, where, problems, ~bad.any(1), taxonomy=taxonomy,
                         label_col=label_col, id_col=id_col, splits=splits, split=split, ignore_errors=ignore_errors,
                         source=source)


def read_point_table(path, taxonomy: Taxonomy | None = None, label_col: str = "species", id_col: str = "specimen",
                     point_col: str = "point", x_col: str = "x", y_col: str = "y", n_points: int = DEFAULT_POINTS,
                     splits=None, split=None, require_labels: bool = False, ignore_errors: bool = False) -> PlantSamples:
    """Outlines as (x, y) point lists, one row per point (long format).

    Columns: ``id_col`` (the specimen; ``id`` is accepted too), ``point_col`` (the order of
    the points along the curve; file order when the column is absent), ``x_col``, ``y_col``,
    and ``label_col`` (the same on every row of a specimen); an optional ``split`` column.
    Each outline is checked (:func:`outline_problem`) and resampled to ``n_points`` points by
    arc length, counter-clockwise (:func:`resample_closed`).

    Examples
    --------
    >>> import io, numpy as np
    >>> t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    >>> rows = "\\n".join(f"a,{k},{np.cos(v):.4f},{np.sin(v):.4f},A b" for k, v in enumerate(t))
    >>> s = read_point_table(io.StringIO("specimen,point,x,y,species\\n" + rows + "\\n"), n_points=32)
    >>> s.kind, s.X.shape, s.ids.tolist()
    ('outlines', (1, 32, 2), ['a'])
    """
    source = source_name(path)
    table = _table(path, "outline point table")
    lower = {c.casefold(): c for c in table.columns}
    if id_col not in table.columns:
        alt = [lower[c] for c in ("specimen", "id", "specimen_id") if c in lower]
        if not alt:
            raise HsickitError(f"{source} has no specimen column {id_col!r} (columns: {list(table.columns)}); "
                               "a point table needs specimen, point, x, y and label columns (pass id_col / --id-col)")
        id_col = alt[0]
    for name, col in (("x", x_col), ("y", y_col)):
        if col not in table.columns and name in lower:
            col = lower[name]
        if col not in table.columns:
            raise HsickitError(f"{source} has no {name} column {col!r} (columns: {list(table.columns)})")
        if name == "x":
            x_col = col
        else:
            y_col = col
    has_labels = label_col in table.columns
    if require_labels and not has_labels:
        raise HsickitError(f"{source} has no label column {label_col!r} (columns: {list(table.columns)}); "
                           "pass the right --label-col")
    if len(table) == 0:
        raise HsickitError(f"{source} has no points")
    table["_spec"] = table[id_col].str.strip()
    table["_x"] = pd.to_numeric(table[x_col].str.strip(), errors="coerce")
    table["_y"] = pd.to_numeric(table[y_col].str.strip(), errors="coerce")
    if point_col in table.columns:
        table["_order"] = pd.to_numeric(table[point_col].str.strip(), errors="coerce")
    else:
        table["_order"] = np.arange(len(table), dtype=float)
    ids, outlines, labels, split_col, problems = [], [], [], [], []
    for spec, g in table.groupby("_spec", sort=False):
        where = f"specimen {spec}"
        if g["_order"].isna().any():
            problems.append(f"{where}: column {point_col!r} has a missing or non-numeric point number")
            continue
        if g["_order"].duplicated().any():
            dup = g.loc[g["_order"].duplicated(), point_col].iloc[0]
            problems.append(f"{where}: point {dup} is listed twice")
            continue
        g = g.sort_values("_order", kind="stable")
        lab = ""
        if has_labels:
            labs = sorted(set(g[label_col].str.strip()))
            if len(labs) > 1:
                problems.append(f"{where}: its points carry different labels {labs[:3]}; give one label per specimen")
                continue
            lab = labs[0]
        pts = g[["_x", "_y"]].to_numpy(dtype=np.float64)
        why = outline_problem(pts, n_points)
        if why is not None:
            problems.append(f"{where}: the outline {why}")
            continue
        ids.append(spec)
        outlines.append(resample_closed(pts, n_points))
        labels.append(lab)
        split_col.append(g["split"].iloc[0].strip() if "split" in g.columns else "")
    if problems and not ignore_errors:
        skip_or_raise(problems, False, source)
    ids = np.array(ids, dtype=object)
    where = np.array([f"specimen {i}" for i in ids], dtype=object)
    y, keep = None, np.ones(len(ids), dtype=bool)
    if has_labels:
        y, keep, p = join_labels(np.array(labels, dtype=object), taxonomy, ignore_errors, source, where)
        problems += p
    skipped = skip_or_raise(problems, ignore_errors, source)
    split_arr = split_column(pd.DataFrame({"split": split_col}) if "split" in table.columns else pd.DataFrame(),
                              ids, splits, id_col, source)
    X = np.stack(outlines).astype(np.float32) if outlines else np.zeros((0, n_points, 2), np.float32)
    s = PlantSamples(X=X, ids=ids, labels=np.array(labels, dtype=object) if has_labels else None, y=y,
                     taxonomy=taxonomy, feature_names=[], kind="outlines", split=split_arr, skipped=skipped,
                     source=source).subset(keep)
    return s.select_split(split) if split is not None else s


def read_outlines(path, taxonomy: Taxonomy | None = None, label_col: str = "species", id_col: str | None = None,
                  n_points: int | None = None, splits=None, split=None, require_labels: bool = False,
                  ignore_errors: bool = False, signature_cols=None) -> PlantSamples:
    """A signature table or a point table, told apart by its columns (``x`` and ``y``: points).

    ``n_points``: points per resampled outline (point tables; default :data:`DEFAULT_POINTS`), or
    the least number of values a signature must have (signature tables; default: no minimum).
    ``id_col`` defaults to ``id`` (signatures) or ``specimen``, else ``id`` (points).
    ``signature_cols``: the signature's columns (names or prefixes; default every numeric column).
    """
    head = _table(path, "outline table").head(0)
    common = dict(label_col=label_col, splits=splits, split=split, require_labels=require_labels,
                  ignore_errors=ignore_errors)
    if is_point_table(head.columns):
        return read_point_table(path, taxonomy, id_col=id_col or "specimen", n_points=n_points or DEFAULT_POINTS,
                                **common)
    return read_signature_table(path, taxonomy, id_col=id_col or "id", n_points=n_points,
                                signature_cols=signature_cols, **common)


def read_image_outlines(path, taxonomy: Taxonomy | None = None, n_points: int = DEFAULT_POINTS,
                        ignore_errors: bool = False, **kwargs) -> PlantSamples:
    """Outlines of silhouette images (any input of :func:`~hsickit.datasets.plants.read_images`),
    extracted with :func:`extract_outline`: ``kind == "outlines"``, ``X`` (n, n_points, 2).

    An image without a usable outline (blank, or a curve that fails :func:`outline_problem`)
    is an error naming it, or skipped with ``ignore_errors``.
    """
    s = read_images(path, taxonomy, ignore_errors=ignore_errors, **kwargs)
    outlines, keep, problems = outlines_from_images(s.X, s.ids, n_points)
    skipped = list(s.skipped) + skip_or_raise(problems, ignore_errors, s.source)
    s = s.subset(np.asarray(keep, dtype=np.int64))
    s.X, s.kind, s.skipped = outlines, "outlines", skipped
    return s
