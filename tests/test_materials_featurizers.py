"""Featurisers: shapes, labels, hand-checked values, sklearn API, and equality with matminer."""
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from hsickit import HsickitError
from hsickit.apps.materials.featurizers import (
    ELEMNET_ELEMENTS, ElementFraction, ElementProperty, IonProperty, Stoichiometry, ValenceOrbital,
    WardAttributes, get_featurizer,
)

pytest.importorskip("matminer", reason="the Magpie element tables ship with matminer")

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "materials" / "matbench_v0.1_composition"


def test_elemnet_86_elements():
    assert len(ELEMNET_ELEMENTS) == 86
    ef = ElementFraction("elemnet")
    labels = ef.feature_labels()
    assert labels[0] == "H" and labels[-1] == "Pu" and "He" not in labels and "Rn" not in labels
    x = ef.featurize_many(["Fe2O3", "NaCl"])
    assert x.shape == (2, 86)
    assert x[0, labels.index("Fe")] == pytest.approx(0.4) and x[0, labels.index("O")] == pytest.approx(0.6)
    with pytest.raises(HsickitError, match="He, which is not among ElemNet's 86"):
        ef.featurize_many(["NaCl", "HeH"])
    full = ElementFraction("all")
    assert len(full.feature_labels()) == 118 and full.feature_labels()[-1] == "Og"
    assert full.featurize("HeH")[1] == pytest.approx(0.5)


def test_hand_checked_values():
    st = Stoichiometry().featurize("Fe2O3")
    assert st[0] == 2 and st[1] == pytest.approx(np.sqrt(0.4 ** 2 + 0.6 ** 2))
    ep = ElementProperty.from_preset("magpie")
    labels = ep.feature_labels()
    v = ep.featurize("Fe2O3")
    get = dict(zip(labels, v))
    assert get["MagpieData minimum Number"] == 8 and get["MagpieData maximum Number"] == 26
    assert get["MagpieData range Number"] == 18
    assert get["MagpieData mean Number"] == pytest.approx(0.4 * 26 + 0.6 * 8)
    assert get["MagpieData avg_dev Number"] == pytest.approx(0.4 * abs(26 - 15.2) + 0.6 * abs(8 - 15.2))
    assert get["MagpieData mode Number"] == 8  # O is the most abundant
    assert dict(zip(labels, ep.featurize("NaCl")))["MagpieData mode Number"] == 11  # tie -> min value
    ion = IonProperty().featurize_many(["NaCl", "Na2Cl", "Fe3O4", "Fe"])
    assert ion[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]  # fast mode: Fe in one state only
    assert ion[3, 1:].tolist() == [0.0, 0.0]


def test_ward145_layout_and_equivalence_of_inputs():
    from pymatgen.core import Composition

    w = WardAttributes()
    labels = w.feature_labels()
    assert len(labels) == 145 and len(set(labels)) == 145
    assert labels[:6] == ["0-norm", "2-norm", "3-norm", "5-norm", "7-norm", "10-norm"]
    assert labels[-7:-3] == [f"frac {o} valence electrons" for o in "spdf"]
    assert labels[-3:] == ["compound possible", "max ionic char", "avg ionic char"]
    a = w.featurize_many(["Fe2O3", "Ag(AuS)2"])
    b = w.featurize_many([Composition("Fe4O6"), Composition("AgAu2S2")])
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(w.featurize("Fe2O3"), a[0])


def test_sklearn_transformer_and_errors():
    w = get_featurizer("ward145")
    pipe = make_pipeline(clone(w))
    X = pipe.fit_transform(["NaCl", "MgO", "Fe2O3"])
    assert X.shape == (3, 145)
    assert list(w.get_feature_names_out()[:2]) == ["0-norm", "2-norm"]
    with pytest.raises(HsickitError, match=r"entry 1 \('Xx2O'\).*not a chemical element"):
        w.featurize_many(["NaCl", "Xx2O"])
    Y = w.featurize_many(["NaCl", "Xx2O", "MgO"], ignore_errors=True)
    assert np.isnan(Y[1]).all() and np.isfinite(Y[[0, 2]]).all()
    with pytest.raises(HsickitError, match="unknown features"):
        get_featurizer("magpie999")
    assert ElementFraction("elemnet").citations()[0].startswith("@article{jha2018elemnet")


def test_features_joined_by_plus():
    both = get_featurizer("ward145+fractions118")
    X = both.featurize_many(["NaCl", "Fe2O3"])
    assert X.shape == (2, 263) and len(both.feature_labels()) == 263
    np.testing.assert_array_equal(X[:, :145], get_featurizer("ward145").featurize_many(["NaCl", "Fe2O3"]))
    np.testing.assert_array_equal(X[:, 145:], get_featurizer("fractions118").featurize_many(["NaCl", "Fe2O3"]))
    assert both.feature_labels()[145:147] == ["H", "He"]
    assert len(both.citations()) == 2
    with pytest.raises(HsickitError, match="unknown features 'magpie'.*joined by"):
        get_featurizer("ward145+magpie")


def _real_formulas(n_per_task=40):
    if not SHARED.exists():
        pytest.skip("shared Matbench data absent")
    out = []
    for task in ["expt_gap", "steels", "glass", "mp_gap"]:
        df = pd.read_csv(SHARED / f"matbench_{task}.csv", nrows=3000)
        out += df["formula"].sample(n_per_task, random_state=1).tolist()
    return out


def test_equal_to_matminer_on_real_formulas():
    """Values equal matminer's featurisers to 1e-6 on 160 real Matbench formulas."""
    from pymatgen.core import Composition
    import matminer.featurizers.composition as mc

    formulas = _real_formulas()
    assert len(formulas) >= 100
    comps = [Composition(f) for f in formulas]
    pairs = [
        (Stoichiometry(), mc.Stoichiometry()),
        (ElementProperty.from_preset("magpie"), mc.ElementProperty.from_preset("magpie")),
        (ValenceOrbital(), mc.ValenceOrbital()),
        (IonProperty(), mc.IonProperty(fast=True)),
        (ElementFraction(), mc.ElementFraction()),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mine, ref in pairs:
            assert mine.feature_labels() == ref.feature_labels()
            ours = mine.featurize_many(formulas)
            theirs = np.array([ref.featurize(c) for c in comps], dtype=float)
            np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6, err_msg=type(mine).__name__)
