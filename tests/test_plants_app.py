"""Tests for hsickit.apps.plants: tree-consistent predictions, back-off, metrics, classifier, fine-tuning."""
import io
import json

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # the test machine is shared; small models run faster single-threaded

from hsickit import HsickitError
from hsickit.apps.plants import (
    TaxonomicClassifier,
    back_off,
    hierarchical_prf,
    level_probabilities,
    prediction_table,
    taxonomic_metrics,
    top_k,
)
from hsickit.apps.plants.encoders import LEAFCNN_PRESETS, RandomFlipShift, dihedral_views
from hsickit.apps.plants.plots import level_accuracy_plot, level_confusion_plot
from hsickit.core.models import create_model
from hsickit.datasets.plants import read_taxonomy

TAX = """species,genus,family
Quercus robur,Quercus,Fagaceae
Quercus ilex,Quercus,Fagaceae
Fagus sylvatica,Fagus,Fagaceae
Acer opalus,Acer,Sapindaceae
Acer mono,Acer,Sapindaceae
Acer rubrum,Acer,Sapindaceae
"""


@pytest.fixture
def tax():
    return read_taxonomy(io.StringIO(TAX))


def synthetic(tax, n_per=12, seed=0, noise=0.6, species=None):
    """Features = family centre + genus offset + species offset + noise (nested structure)."""
    rng = np.random.default_rng(seed)
    d = 8
    fam = {f: rng.normal(scale=3, size=d) for f in tax.names("family")}
    gen = {g: rng.normal(scale=1.5, size=d) for g in tax.names("genus")}
    sp = {s: rng.normal(scale=1.0, size=d) for s in tax.leaves}
    X, y = [], []
    for i, s in enumerate(tax.leaves):
        if species is not None and s not in species:
            continue
        lin = tax.lineage(i)
        centre = fam[lin["family"]] + gen[lin["genus"]] + sp[s]
        X.append(centre + rng.normal(scale=noise, size=(n_per, d)))
        y += [s] * n_per
    return np.vstack(X).astype(np.float32), np.array(y, dtype=object)


def test_level_probabilities_are_sums_and_consistent(tax):
    p = np.array([[0.1, 0.2, 0.3, 0.15, 0.15, 0.1]])
    lv = level_probabilities(p, tax)
    assert np.allclose(lv["genus"], [[0.3, 0.3, 0.4]])
    assert np.allclose(lv["family"], [[0.6, 0.4]])
    with pytest.raises(HsickitError, match="6 leaves"):
        level_probabilities(np.ones((1, 4)) / 4, tax)


def test_top_k_and_back_off(tax):
    p = np.array([[0.1, 0.15, 0.35, 0.15, 0.15, 0.1],   # Fagus s. 0.35; genus Acer 0.4 > Fagus 0.35; Fagaceae 0.6
                  [0.9, 0.02, 0.02, 0.02, 0.02, 0.02]])
    idx, pk = top_k(p, 2)
    assert idx.tolist() == [[2, 1], [0, 1]] and np.allclose(pk[1], [0.9, 0.02])
    lv = level_probabilities(p, tax)
    bo = back_off(lv, tax, threshold=0.5)
    assert bo["level"].tolist() == ["family", "species"]
    assert bo["name"].tolist() == ["Fagaceae", "Quercus robur"]
    bo = back_off(lv, tax, threshold=0.3)
    assert bo["level"].tolist() == ["species", "species"] and bo["name"][0] == "Fagus sylvatica"
    # Acer (0.4) is the most probable genus on its own, but it is not in the most probable family
    bo = back_off(lv, tax, threshold=0.38)
    assert bo["name"].tolist() == ["Fagaceae", "Quercus robur"]
    table = prediction_table(p, tax, ids=["a", "b"], k=2, threshold=0.5)
    assert table.loc[0, ["family", "genus", "species"]].tolist() == ["Fagaceae", "Fagus", "Fagus sylvatica"]
    assert table.loc[0, "p_genus"] == pytest.approx(0.35)
    assert table.loc[0, "top2_species"] == "Fagus sylvatica;Quercus ilex"
    assert table.loc[1, "backoff_name"] == "Quercus robur"


def test_back_off_is_undetermined_when_no_level_reaches_the_threshold(tax):
    p = np.array([[0.1, 0.15, 0.35, 0.15, 0.15, 0.1], [0.9, 0.02, 0.02, 0.02, 0.02, 0.02]])
    bo = back_off(level_probabilities(p, tax), tax, threshold=0.95)
    assert bo["level"].tolist() == ["none", "none"] and bo["name"].tolist() == ["", ""]
    assert bo["index"].tolist() == [-1, -1] and bo["depth"].tolist() == [3, 3]
    assert np.allclose(bo["probability"], [0.6, 0.94])  # the lineage's family, the best it offers
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(6, 0.5), size=300)
    for t in (0.3, 0.5, 0.7, 0.9):
        table = prediction_table(p, tax, threshold=t)
        none = table.backoff_level == "none"
        assert (table.backoff_p[~none] >= t).all() and (table.backoff_p[none] < t).all(), t
        assert (table.backoff_name[none] == "").all() and (table.backoff_name[~none] != "").all()
    assert none.any()  # at 0.9 some specimens have no confident level


def test_predicted_lineage_is_consistent(tax):
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(6, 0.3), size=500)
    table = prediction_table(p, tax, threshold=0.4)
    lineage = {tax.lineage(i)["species"]: tax.lineage(i) for i in range(tax.n_leaves)}
    for row in table.itertuples():
        assert lineage[row.species]["genus"] == row.genus and lineage[row.species]["family"] == row.family
        if row.backoff_level != "none":  # the back-off answer lies on the same lineage
            assert getattr(row, row.backoff_level) == row.backoff_name
    assert (table.p_genus >= table.p_species - 1e-12).all() and (table.p_family >= table.p_genus - 1e-12).all()
    # the species is the most probable species, and the metrics read off it score the table's lineage
    assert (table.p_species == p.max(1)).all()
    y = rng.integers(0, 6, size=500)
    m = taxonomic_metrics(y, p, tax)
    assert m["accuracy_genus_from_leaf"] == pytest.approx(np.mean(table.genus.to_numpy() == np.array(
        [tax.lineage(i)["genus"] for i in y])))


def test_metrics_by_hand(tax):
    # truth: 0 (Q. robur), 3 (A. opalus), 3; predicted species: 1 (same genus), 3 (right), 2 (other family)
    proba = np.full((3, 6), 0.02)
    proba[0, 1] = 0.9
    proba[1, 3] = 0.9
    proba[2, 2] = 0.9
    m = taxonomic_metrics([0, 3, 3], proba, tax, k=2, thresholds=(0.5,))
    assert m["accuracy_species"] == pytest.approx(1 / 3)
    assert m["accuracy_genus"] == pytest.approx(2 / 3)
    assert m["accuracy_family"] == pytest.approx(2 / 3)
    # distances: 1 (same genus), 0, 3 (different family) -> severity over mistakes = 2
    assert m["mistake_severity"] == pytest.approx(2.0)
    assert m["mean_tree_distance"] == pytest.approx(4 / 3)
    # node overlaps: 2 + 3 + 0 of 3 per sample -> hP = hR = 5/9
    assert m["hierarchical_f1"] == pytest.approx(5 / 9)
    assert m["top2_species"] == pytest.approx(2 / 3)  # second choice ties at 0.02: index order decides
    assert m["backoff_accuracy@0.5"] == pytest.approx(1 / 3)
    assert m["n_samples"] == 3
    # a back-off answer at genus level: precision counts only the levels predicted
    hp, hr, hf = hierarchical_prf([0], [1], tax, pred_depth=[1])
    assert (hp, hr) == (pytest.approx(1.0), pytest.approx(2 / 3))


def test_classifier_fit_predict_levels_and_losses(tax):
    X, y = synthetic(tax)
    Xt, yt = synthetic(tax, n_per=6, seed=0)
    for loss in ("taxonomic", "ce"):
        clf = TaxonomicClassifier(tax, loss=loss, epochs=40, patience=None, model_params={"hidden": (32, 32)},
                                  random_state=0).fit(X, y)
        assert clf.score(Xt, yt) > 0.8
        proba = clf.predict_proba(Xt)
        assert proba.shape == (len(Xt), 6) and np.allclose(proba.sum(1), 1)
        levels = clf.predict_levels(Xt)
        assert np.allclose(levels["genus"][:, 2], proba[:, 3:].sum(1))
        m = clf.evaluate(Xt, yt)
        assert m["accuracy_family"] >= m["accuracy_species"]
    with pytest.raises(HsickitError, match="loss must be one of"):
        TaxonomicClassifier(tax, loss="hinge").fit(X, y)
    with pytest.raises(HsickitError, match="level_weights has 2 entries"):
        TaxonomicClassifier(tax, level_weights=(1, 1)).fit(X, y)
    with pytest.raises(HsickitError, match="'Acer nova'"):
        TaxonomicClassifier(tax).fit(X, np.where(y == "Acer mono", "Acer nova", y))


def test_same_seed_same_numbers(tax):
    X, y = synthetic(tax, n_per=6)
    a = TaxonomicClassifier(tax, epochs=5, patience=None, model_params={"hidden": (16,)}, random_state=3).fit(X, y)
    b = TaxonomicClassifier(tax, epochs=5, patience=None, model_params={"hidden": (16,)}, random_state=3).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


def test_hsic_training_runs(tax, tmp_path):
    X, y = synthetic(tax, n_per=10)
    clf = TaxonomicClassifier(tax, training="hsic", epochs=15, patience=None, model_params={"hidden": (32, 32)},
                              hsic_params={"format_epochs": 20}, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.5
    assert any("hsic" in k.lower() or "zx" in k.lower() for k in clf.history_[0])
    assert clf.net_.train_config_["format_epochs"] == 20 and clf.net_.train_config_["weight_decay"] == 1e-4
    clf.save(tmp_path / "m")  # the files of an older hsickit held the HSIC and optimiser settings as flat keywords
    meta = json.loads((tmp_path / "m" / "plants.json").read_text())
    meta["params"].pop("hsic_params"), meta["params"].pop("train_params")
    meta["params"].update(beta=100.0, format_epochs=20, weight_decay=1e-4, lr_schedule=None)
    (tmp_path / "m" / "plants.json").write_text(json.dumps(meta))
    back = TaxonomicClassifier.load(tmp_path / "m")
    assert back.hsic_params == {"beta": 100.0, "format_epochs": 20}
    assert back.train_params == {"weight_decay": 1e-4, "lr_schedule": None}
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def test_finetune_grows_output_layer_for_new_species(tax, tmp_path):
    base_species = [s for s in tax.leaves if s != "Acer rubrum"]
    small = read_taxonomy(io.StringIO("".join(l + "\n" for l in TAX.splitlines() if "rubrum" not in l)))
    X, y = synthetic(tax, species=base_species)
    clf = TaxonomicClassifier(small, epochs=30, patience=None, model_params={"hidden": (32, 32)}, random_state=0).fit(X, y)
    old_w = clf.net_.model_.head.weight.detach().clone()
    block0 = clf.net_.model_.blocks[0].linear.weight.detach().clone()
    new_rows = read_taxonomy(io.StringIO("species,genus,family\nAcer rubrum,Acer,Sapindaceae\n"))
    Xn, yn = synthetic(tax, species=["Acer rubrum", "Acer mono", "Quercus robur"], seed=0)
    params = clf.get_params()
    clf.set_params(warm_start=True, taxonomy=new_rows, epochs=60, frozen_blocks=1, lr=3e-3, validation_fraction=0.2)
    clf.fit(Xn, yn)
    assert clf.get_params() == {**params, "warm_start": True, "taxonomy": new_rows, "epochs": 60, "frozen_blocks": 1,
                                "lr": 3e-3, "validation_fraction": 0.2}  # fitting changed no parameter
    assert clf.taxonomy is new_rows and clf.taxonomy_.n_leaves == 6
    assert clf.classes_.tolist()[-1] == "Acer rubrum" and len(clf.classes_) == 6
    assert clf.net_.model_.head.weight.shape[0] == 6
    assert torch.equal(clf.net_.model_.blocks[0].linear.weight, block0)  # frozen block kept
    assert torch.equal(clf.net_.model_.head.weight[:5], old_w)  # known species' rows kept (keep_known)
    assert (clf.predict(Xn) == yn).mean() > 0.8
    assert clf.predict_levels(Xn)["genus"].shape == (len(Xn), 3)
    assert len(clf.validation_index_) == round(0.2 * len(yn))  # held out of the new specimens
    # a conflicting taxonomy row is refused, naming the species
    bad = read_taxonomy(io.StringIO("species,genus,family\nAcer mono,Acer,Aceraceae\n"))
    with pytest.raises(HsickitError, match="Acer mono"):
        clf.set_params(taxonomy=bad).fit(Xn, yn)
    clf.set_params(taxonomy=new_rows)
    # round trip through save / load keeps the grown model
    clf.save(tmp_path / "run")
    again = TaxonomicClassifier.load(tmp_path / "run")
    assert np.allclose(again.predict_proba(Xn), clf.predict_proba(Xn), atol=1e-6)
    assert again.taxonomy_.n_leaves == 6


def test_finetune_defaults_keep_what_the_model_knew(tax):
    """Old behaviour (every block and output row trained at lr 1e-3) forgets the species absent
    from the fine-tuning data; the defaults (frozen encoder, known rows kept) remember them."""
    base_species = [s for s in tax.leaves if s != "Acer rubrum"]
    small = read_taxonomy(io.StringIO("".join(l + "\n" for l in TAX.splitlines() if "rubrum" not in l)))
    X, y = synthetic(tax, species=base_species, noise=1.5)
    new_rows = read_taxonomy(io.StringIO("species,genus,family\nAcer rubrum,Acer,Sapindaceae\n"))
    Xn, yn = synthetic(tax, species=["Acer rubrum", "Acer mono"])
    scores = {}
    for name, kwargs in {"old": dict(frozen_blocks=0, lr=1e-3, keep_known=False), "default": {}}.items():  # the deprecated spelling
        clf = TaxonomicClassifier(small, epochs=40, patience=None, model_params={"hidden": (32, 32)},
                                  random_state=0).fit(X, y)
        held = np.isin(y, ["Quercus robur", "Quercus ilex", "Fagus sylvatica", "Acer opalus"])
        before = clf.score(X[held], y[held])
        with pytest.warns(FutureWarning, match="set_params.warm_start=True"):
            clf.finetune(Xn, yn, taxonomy=new_rows, epochs=60, **kwargs)
        assert clf.taxonomy is small and clf.warm_start is False and clf.taxonomy_.n_leaves == 6  # parameters as they were
        scores[name] = clf.score(X[held], y[held])
    assert before > 0.9
    assert scores["default"] > 0.8 and scores["default"] > scores["old"] + 0.3, scores


def test_images_use_the_cnn_and_round_trip(tax, tmp_path):
    rng = np.random.default_rng(0)
    imgs, y = [], []
    for i, s in enumerate(tax.leaves):  # species i: a bright square of size 4 + 2 i
        for _ in range(6):
            im = np.zeros((1, 24, 24), np.float32)
            k = 4 + 2 * i
            o = rng.integers(0, 24 - k)
            im[0, o:o + k, o:o + k] = 1.0
            imgs.append(im)
            y.append(s)
    X = np.stack(imgs)
    clf = TaxonomicClassifier(tax, epochs=3, patience=None, random_state=0,
                              model_params={"channels": (4, 8), "width": 16, "downsample": 1}).fit(X, y)
    assert clf.net_.model == "leafcnn"
    p = clf.predict_proba(X)
    assert p.shape == (36, 6)
    clf.save(tmp_path / "img")
    assert np.allclose(TaxonomicClassifier.load(tmp_path / "img").predict_proba(X), p, atol=1e-6)
    with pytest.raises(HsickitError, match="images have shape"):
        clf.predict_proba(np.zeros((2, 1, 16, 16), np.float32))


def test_augmentation_only_in_training():
    aug = RandomFlipShift(0.1)
    x = torch.rand(8, 1, 16, 16)
    assert torch.equal(aug.eval()(x), x)
    torch.manual_seed(0)
    assert not torch.equal(aug.train()(x), x)
    with pytest.raises(HsickitError, match="image_shape"):
        create_model("leafcnn", in_features=100, out_features=2, image_shape=(1, 16, 16))



def test_augmentation_rotates_and_scales():
    x = torch.zeros(64, 1, 17, 17)
    x[:, :, 8, 2:15] = 1.0  # a horizontal bar through the centre
    torch.manual_seed(0)
    plain = RandomFlipShift(0.0, 0.0, 0.0).train()(x)  # flips/turns only: the bar stays on the axes
    assert set(plain.sum((1, 2, 3)).tolist()) == {13.0}
    turned = RandomFlipShift(0.0, 0.0, 45.0).train()(x)
    off_axis = (turned[:, 0].sum(1) > 0).sum(1) > 1  # more than one row touched: rotated
    assert off_axis.float().mean() > 0.5


def test_leafcnn_options_tta_and_presets(tax, tmp_path):
    net = create_model("leafcnn", in_features=24 * 24, out_features=6, image_shape=(1, 24, 24), channels=(4, 8, 8),
                       convs_per_block=(1, 2, 2), residual=True, width=16, downsample=1, tta=True)
    assert len(net.blocks) == 4 and net.blocks[2].shortcut is not None
    x = torch.rand(5, 24 * 24)
    out = net.eval()(x)
    assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-5)  # averaged log-probabilities
    # test-time averaging makes eval predictions invariant to flips and turns of the input
    views = [v.reshape(5, -1) for v in dihedral_views(x.reshape(5, 1, 24, 24))]
    assert all(torch.allclose(net(v), out, atol=1e-5) for v in views[1:])
    with pytest.raises(HsickitError, match="convs_per_block"):
        create_model("leafcnn", in_features=64, out_features=2, image_shape=(1, 8, 8), channels=(4, 8), convs_per_block=(1,))
    for name, params in LEAFCNN_PRESETS.items():
        p = sum(q.numel() for q in create_model("leafcnn", in_features=128 * 128, out_features=99, **params).parameters())
        assert 1e5 < p < 5e6, name
    # the options survive save / load, with label smoothing and AdamW
    rng = np.random.default_rng(0)
    X = rng.random((36, 1, 16, 16)).astype(np.float32)
    y = np.repeat(tax.leaves, 6)
    clf = TaxonomicClassifier(tax, epochs=5, patience=None, random_state=0, optimizer="adamw", label_smoothing=0.1,
                              model_params={"channels": (4, 8), "convs_per_block": (1, 2), "residual": True,
                                            "width": 16, "downsample": 1, "max_rotation": 15.0, "tta": True})
    clf.fit(X, y, callbacks=[lambda row: row["epoch"] >= 2])  # a callback stops training (e.g. a time limit)
    assert len(clf.history_) == 2
    assert clf.net_.train_config_["optimizer"] == "adamw" and clf.net_.loss.label_smoothing == 0.1
    clf.save(tmp_path / "tta")
    again = TaxonomicClassifier.load(tmp_path / "tta")
    assert again.label_smoothing == 0.1 and again.net_.model_.config.tta
    assert np.allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)

def test_plots(tax, tmp_path):
    p = np.eye(6)[[0, 1, 3]]
    m = taxonomic_metrics([0, 2, 3], p, tax)
    assert level_accuracy_plot(m, tax, tmp_path / "a.png").stat().st_size > 1000
    assert level_confusion_plot([0, 2, 3], p, tax, tmp_path / "c.png").stat().st_size > 1000
