"""Composition featurisers, vectorised over a whole table.

Every featuriser follows matminer's names (``featurize``, ``featurize_many``,
``feature_labels``, ``citations``, ``implementors``) and is a scikit-learn transformer
(``fit``/``transform`` on a list of formulas or pymatgen compositions). A table is turned once
into a padded :class:`CompositionMatrix` (atomic numbers and amounts, one row per
composition); each featuriser then computes its values with array operations on that matrix.

* :class:`ElementFraction` — element fractions: the full periodic table (118, as matminer) or
  ElemNet's 86 elements.
* :class:`Stoichiometry`, :class:`ElementProperty` (``from_preset("magpie")``),
  :class:`ValenceOrbital`, :class:`IonProperty` — the parts of the Ward et al. (2016) attributes.
* :class:`WardAttributes` — the 145 attributes IRNet uses: 6 p-norms + 132 Magpie statistics
  + 4 valence-orbital fractions + 3 ionic-character features.

Values equal matminer's featurisers of the same names (``IonProperty(fast=True)``; see
tests/test_materials_featurizers.py).

Example
-------
>>> from hsickit.apps.materials.featurizers import WardAttributes
>>> X = WardAttributes().featurize_many(["Fe2O3", "NaCl", "Ag(AuS)2"])
>>> X.shape
(3, 145)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from hsickit.apps.materials import elements as _el
from hsickit.core.errors import HsickitError
from hsickit.datasets.materials import parse_formula

__all__ = [
    "CompositionMatrix", "CompositionFeaturizer", "ElementFraction", "Stoichiometry",
    "ElementProperty", "ValenceOrbital", "IonProperty", "WardAttributes",
    "MAGPIE_PROPERTIES", "MAGPIE_STATS", "ELEMNET_ELEMENTS", "FEATURIZERS", "get_featurizer",
]

WARD_2016 = (
    "@article{ward_agrawal_choudary_wolverton_2016, title={A general-purpose machine learning "
    "framework for predicting properties of inorganic materials}, volume={2}, "
    "DOI={10.1038/npjcompumats.2017.28}, number={1}, journal={npj Computational Materials}, "
    "author={Ward, Logan and Agrawal, Ankit and Choudhary, Alok and Wolverton, Christopher}, year={2016}}"
)
ELEMNET_2018 = (
    "@article{jha2018elemnet, title={ElemNet: Deep Learning the Chemistry of Materials From Only "
    "Elemental Composition}, author={Jha, Dipendra and Ward, Logan and Paul, Arindam and Liao, "
    "Wei-keng and Choudhary, Alok and Wolverton, Chris and Agrawal, Ankit}, journal={Scientific "
    "Reports}, volume={8}, pages={17593}, year={2018}, doi={10.1038/s41598-018-35934-y}}"
)

#: The 22 element properties of matminer's ``ElementProperty.from_preset("magpie")``.
MAGPIE_PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence",
    "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "GSvolume_pa",
    "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)
MAGPIE_STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")

#: ElemNet's 86 elements: H..Pu without He, Ne, Ar, Po, At, Rn, Fr, Ra (atomic numbers).
ELEMNET_ELEMENTS = tuple(z for z in range(1, 95) if z not in (2, 10, 18, 84, 85, 86, 87, 88))


@dataclass
class CompositionMatrix:
    """A table of compositions as padded arrays: row i holds its elements in columns 0..k_i-1.

    Attributes
    ----------
    z : (n, K) int array — atomic numbers (0 in padding).
    amount : (n, K) float array — amounts as written (0 in padding); matminer weights by these.
    mask : (n, K) bool array — True where an element is present.
    """

    z: np.ndarray
    amount: np.ndarray
    mask: np.ndarray

    @classmethod
    def from_compositions(cls, entries, ignore_errors=False):
        """Build from formula strings and/or pymatgen ``Composition`` objects.

        Strings are parsed strictly (:func:`hsickit.datasets.materials.parse_formula`).
        With ``ignore_errors=True`` a bad entry gives an empty row (its features become NaN);
        otherwise :class:`HsickitError` names the entry.
        """
        rows = []
        for i, entry in enumerate(entries):
            try:
                comp = parse_formula(entry) if isinstance(entry, str) or entry is None else entry
                pairs = []
                for sp, amt in comp.items():
                    z = getattr(sp, "Z", 0)
                    if not z:
                        raise HsickitError(f"{sp!s} is not a chemical element")
                    pairs.append((z, amt))
                if len(pairs) != len({z for z, _ in pairs}):  # species of one element: merge as matminer
                    merged = {}
                    for z, a in pairs:
                        merged[z] = merged.get(z, 0.0) + a
                    pairs = list(merged.items())
            except (HsickitError, AttributeError, TypeError) as exc:
                if ignore_errors:
                    pairs = []
                else:
                    raise HsickitError(f"entry {i} ({entry!r}): {exc}") from None
            rows.append(pairs)
        n = len(rows)
        k = max((len(r) for r in rows), default=1) or 1
        z = np.zeros((n, k), dtype=np.int64)
        amount = np.zeros((n, k))
        for i, r in enumerate(rows):
            for j, (zz, a) in enumerate(r):
                z[i, j] = zz
                amount[i, j] = a
        return cls(z=z, amount=amount, mask=amount > 0)

    def __len__(self):
        return self.z.shape[0]

    @property
    def total(self):
        """Sum of amounts per row, shape (n,) (NaN for empty rows)."""
        t = self.amount.sum(1)
        return np.where(t > 0, t, np.nan)

    @property
    def fractions(self):
        """Atomic fractions, shape (n, K)."""
        return self.amount / self.total[:, None]

    def lookup(self, table):
        """Element property per entry, shape (n, K) (or (n, K, p) for a (119, p) table)."""
        return table[self.z]


class CompositionFeaturizer(TransformerMixin, BaseEstimator):
    """Base class: matminer-style names plus the scikit-learn transformer interface."""

    def fit(self, X=None, y=None):
        """Nothing to learn; returns self."""
        return self

    def transform(self, X):
        """Features of a list of formulas / compositions, shape (n, n_features)."""
        return self.featurize_many(X)

    def featurize(self, comp):
        """Features of one formula or composition, a 1-D array."""
        return self.featurize_many([comp])[0]

    def featurize_many(self, entries, ignore_errors=False):
        """Features of many formulas/compositions at once, shape (n, n_features).

        With ``ignore_errors=True`` unparsable entries give rows of NaN instead of an error.
        """
        if isinstance(entries, CompositionMatrix):
            cm = entries
        else:
            if isinstance(entries, str):
                raise HsickitError("featurize_many expects a list of formulas; use featurize for one formula")
            cm = CompositionMatrix.from_compositions(list(entries), ignore_errors=ignore_errors)
        with np.errstate(invalid="ignore", divide="ignore"):  # empty rows (ignore_errors) -> NaN
            out = np.asarray(self._from_matrix(cm), dtype=float)
        if ignore_errors:
            out[~cm.mask.any(1)] = np.nan
        return out

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_labels(), dtype=object)

    def _from_matrix(self, cm: CompositionMatrix) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def feature_labels(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def citations(self):
        return [WARD_2016]

    def implementors(self):
        return ["hsickit (vectorised re-implementation of matminer's featuriser of the same name)"]


class ElementFraction(CompositionFeaturizer):
    """Atomic fraction of each element.

    Parameters
    ----------
    elements : {"all", "elemnet"}
        "all": the 118 elements H..Og (as matminer's ``ElementFraction``);
        "elemnet": ElemNet's 86 elements (H..Pu without He, Ne, Ar, Po, At, Rn, Fr, Ra); a
        composition with another element raises :class:`HsickitError` naming it.

    Example
    -------
    >>> float(ElementFraction("elemnet").featurize("NaCl").sum())
    1.0
    """

    def __init__(self, elements="all"):
        self.elements = elements

    def _z(self):
        if self.elements == "all":
            return np.arange(1, _el.N_Z)
        if self.elements == "elemnet":
            return np.asarray(ELEMNET_ELEMENTS)
        raise HsickitError(f"elements={self.elements!r}: use 'all' (118 elements) or 'elemnet' (86)")

    def _from_matrix(self, cm):
        zs = self._z()
        col = np.full(_el.N_Z, -1)
        col[zs] = np.arange(len(zs))
        cols = col[cm.z]
        outside = cm.mask & (cols < 0)
        if outside.any():
            i, j = np.argwhere(outside)[0]
            sym = _el.symbols()[cm.z[i, j]]
            raise HsickitError(f"entry {i} contains {sym}, which is not among ElemNet's 86 elements; "
                               "use ElementFraction('all') or remove the entry")
        out = np.zeros((len(cm), len(zs)))
        rows = np.broadcast_to(np.arange(len(cm))[:, None], cm.z.shape)
        m = cm.mask
        np.add.at(out, (rows[m], cols[m]), cm.fractions[m])
        return out

    def feature_labels(self):
        sym = _el.symbols()
        return [sym[z] for z in self._z()]

    def citations(self):
        return [ELEMNET_2018]


class Stoichiometry(CompositionFeaturizer):
    """Lp norms of the atomic fractions (p = 0 counts the elements). Ward et al. 2016.

    Example
    -------
    >>> Stoichiometry().featurize("NaCl")[:2].round(4).tolist()
    [2.0, 0.7071]
    """

    def __init__(self, p_list=(0, 2, 3, 5, 7, 10)):
        self.p_list = p_list

    def _from_matrix(self, cm):
        f = cm.fractions
        cols = []
        for p in self.p_list:
            if p < 0:
                raise HsickitError(f"p-norm not defined for p={p}; use p >= 0")
            if p == 0:
                cols.append(cm.mask.sum(1).astype(float))
            else:
                cols.append((np.where(cm.mask, f, 0.0) ** p).sum(1) ** (1.0 / p))
        return np.stack(cols, axis=1)

    def feature_labels(self):
        return [f"{p}-norm" for p in self.p_list]


def _weighted_stats(values, amount, mask, stats):
    """Matminer's PropertyStats over the element axis. values (n, K, p), amount/mask (n, K)."""
    m3 = mask[:, :, None]
    w = amount[:, :, None]
    wsum = w.sum(1)
    nan_any = np.isnan(np.where(m3, values, 0.0)).any(1)
    v0 = np.where(m3, values, 0.0)
    out = {}
    mn = np.where(m3, values, np.inf).min(1)
    mx = np.where(m3, values, -np.inf).max(1)
    mn[nan_any] = np.nan
    mx[nan_any] = np.nan
    mean = (w * v0).sum(1) / wsum
    for s in stats:
        if s == "minimum":
            out[s] = mn
        elif s == "maximum":
            out[s] = mx
        elif s == "range":
            out[s] = mx - mn
        elif s == "mean":
            out[s] = mean
        elif s == "avg_dev":
            out[s] = (w * np.where(m3, np.abs(values - mean[:, None, :]), 0.0)).sum(1) / wsum
        elif s == "std_dev":
            out[s] = np.sqrt((w * np.where(m3, (values - mean[:, None, :]) ** 2, 0.0)).sum(1) / wsum)
        elif s == "mode":
            # entries whose weight is close to the largest (np.isclose), minimum value among them
            top = amount.max(1, keepdims=True)
            is_top = mask & (np.abs(amount - top) <= 1e-8 + 1e-5 * np.abs(top))
            out[s] = np.where(is_top[:, :, None], values, np.inf).min(1)
        else:
            raise HsickitError(f"unknown statistic {s!r}; use any of minimum, maximum, range, mean, avg_dev, std_dev, mode")
    return out


class ElementProperty(CompositionFeaturizer):
    """Amount-weighted statistics of Magpie element properties (matminer's ElementProperty).

    Parameters
    ----------
    features : sequence of str
        Magpie property names (files in matminer's magpie_elementdata).
    stats : sequence of str
        Any of minimum, maximum, range, mean, avg_dev, std_dev, mode.
    impute_nan : bool
        Missing element values replaced by the mean over elements (matminer's default).

    Example
    -------
    >>> ep = ElementProperty.from_preset("magpie")
    >>> len(ep.feature_labels())
    132
    """

    def __init__(self, features=MAGPIE_PROPERTIES, stats=MAGPIE_STATS, impute_nan=True):
        self.features = features
        self.stats = stats
        self.impute_nan = impute_nan

    @classmethod
    def from_preset(cls, preset_name="magpie", impute_nan=True):
        if preset_name != "magpie":
            raise HsickitError(f"preset {preset_name!r} is not available; use 'magpie'")
        return cls(MAGPIE_PROPERTIES, MAGPIE_STATS, impute_nan=impute_nan)

    def _from_matrix(self, cm):
        table = np.stack([_el.magpie_table(f, self.impute_nan) for f in self.features], axis=1)
        res = _weighted_stats(cm.lookup(table), cm.amount, cm.mask, self.stats)
        # matminer's order: for each property, every statistic
        return np.stack([res[s][:, j] for j in range(len(self.features)) for s in self.stats], axis=1)

    def feature_labels(self):
        return [f"MagpieData {s} {f}" for f in self.features for s in self.stats]


class ValenceOrbital(CompositionFeaturizer):
    """Mean number of valence electrons in s, p, d, f orbitals ("avg") and their share of the mean
    total valence ("frac"), weighted by amount (matminer's ValenceOrbital, Magpie data).

    Example
    -------
    >>> ValenceOrbital(props=("frac",)).featurize("NaCl").round(3).tolist()
    [0.375, 0.625, 0.0, 0.0]
    """

    def __init__(self, orbitals=("s", "p", "d", "f"), props=("avg", "frac"), impute_nan=True):
        self.orbitals = orbitals
        self.props = props
        self.impute_nan = impute_nan

    def _from_matrix(self, cm):
        names = [f"N{o}Valence" for o in self.orbitals] + ["NValence"]
        table = np.stack([_el.magpie_table(f, self.impute_nan) for f in names], axis=1)
        mean = _weighted_stats(cm.lookup(table), cm.amount, cm.mask, ("mean",))["mean"]
        avg, total = mean[:, :-1], mean[:, -1:]
        parts = {"avg": avg, "frac": avg / total}
        for p in self.props:
            if p not in parts:
                raise HsickitError(f"props may hold 'avg' and 'frac', not {p!r}")
        return np.concatenate([parts[p] for p in self.props], axis=1)

    def feature_labels(self):
        return [f"{p} {o} valence electrons" for p in self.props for o in self.orbitals]


def _neutral_possible(zs, amounts, ox):
    """Can each element take one of its oxidation states so that the charges sum to ~0?

    Same answer as matminer's ``IonProperty(fast=True)`` (``np.isclose(np.dot(ox, amounts), 0)``
    over ``itertools.product``), but over the set of reachable partial sums.
    """
    sums = {0.0}
    last = len(zs) - 1
    for j, (z, a) in enumerate(zip(zs, amounts)):
        states = ox[z]
        if j == last:
            return any(abs(s + a * o) <= 1e-8 for s in sums for o in states)
        sums = {s + a * o for s in sums for o in states}
    return True


class IonProperty(CompositionFeaturizer):
    """Ionic character (Ward et al. 2016; matminer's ``IonProperty(fast=True)``, pymatgen data).

    Features: "compound possible" (1.0 if a charge-neutral compound exists with every element in
    a single common oxidation state), "max ionic char" and "avg ionic char", where the ionic
    character of a pair is 1 - exp(-(X_A - X_B)^2 / 4) with Pauling electronegativities X.

    Example
    -------
    >>> IonProperty().featurize("NaCl").round(4).tolist()
    [1.0, 0.7115, 0.1779]
    """

    def __init__(self, impute_nan=True):
        self.impute_nan = impute_nan

    def _from_matrix(self, cm):
        n = len(cm)
        x = cm.lookup(_el.electronegativity(self.impute_nan))
        f = cm.fractions
        m = cm.mask
        pair = m[:, :, None] & m[:, None, :] & np.triu(np.ones((m.shape[1],) * 2, dtype=bool), 1)[None]
        ic = 1.0 - np.exp(-0.25 * (x[:, :, None] - x[:, None, :]) ** 2)
        avg = np.where(pair, f[:, :, None] * f[:, None, :] * ic, 0.0).sum((1, 2))
        mx = np.where(pair, ic, -np.inf).max((1, 2))
        n_el = m.sum(1)
        single = n_el < 2
        mx[single] = 0.0
        avg[single] = 0.0
        possible = np.ones(n)
        ox = _el.oxidation_states()
        cache = {}
        for i in np.flatnonzero(~single):
            k = n_el[i]
            key = (tuple(cm.z[i, :k]), tuple(cm.amount[i, :k]))
            if key not in cache:
                cache[key] = _neutral_possible(key[0], key[1], ox)
            possible[i] = float(cache[key])
        return np.stack([possible, mx, avg], axis=1)

    def feature_labels(self):
        return ["compound possible", "max ionic char", "avg ionic char"]


class Concatenation(CompositionFeaturizer):
    """Several featurisers side by side: their columns concatenated, labels and citations joined.

    Example
    -------
    >>> Concatenation([Stoichiometry(), ElementFraction()]).featurize("NaCl").shape
    (124,)
    """

    def __init__(self, featurizers=()):
        self.featurizers = featurizers

    def _parts(self):
        return list(self.featurizers)

    def _from_matrix(self, cm):
        return np.concatenate([p._from_matrix(cm) for p in self._parts()], axis=1)

    def feature_labels(self):
        return [label for p in self._parts() for label in p.feature_labels()]

    def citations(self):
        return list(dict.fromkeys(c for p in self._parts() for c in p.citations()))


class WardAttributes(Concatenation):
    """The 145 composition attributes of Ward et al. (2016) that IRNet uses.

    6 stoichiometric p-norms, 132 Magpie statistics (22 properties x minimum, maximum, range,
    mean, avg_dev, mode), 4 valence-orbital fractions, 3 ionic-character features, in that
    order (labels as matminer's).

    Example
    -------
    >>> WardAttributes().featurize_many(["Fe2O3", "NaCl"]).shape
    (2, 145)
    """

    def __init__(self, impute_nan=True):
        self.impute_nan = impute_nan

    def _parts(self):
        return [Stoichiometry(), ElementProperty.from_preset("magpie", impute_nan=self.impute_nan),
                ValenceOrbital(props=("frac",), impute_nan=self.impute_nan), IonProperty(impute_nan=self.impute_nan)]


#: Featuriser names accepted by the estimators and the CLI.
FEATURIZERS = {
    "ward145": lambda: WardAttributes(),
    "elemnet86": lambda: ElementFraction("elemnet"),
    "fractions118": lambda: ElementFraction("all"),
}


def get_featurizer(name):
    """A featuriser by name: ``"ward145"``, ``"elemnet86"``, ``"fractions118"``, or several
    joined by ``+`` (e.g. ``"ward145+fractions118"``: 263 columns side by side)."""
    if isinstance(name, CompositionFeaturizer):
        return name
    names = str(name).split("+")
    unknown = [n for n in names if n not in FEATURIZERS]
    if unknown:
        raise HsickitError(f"unknown features {unknown[0]!r}; choose one of {sorted(FEATURIZERS)} "
                           "or several joined by '+', e.g. 'ward145+fractions118'")
    if len(names) == 1:
        return FEATURIZERS[name]()
    return Concatenation([FEATURIZERS[n]() for n in names])
