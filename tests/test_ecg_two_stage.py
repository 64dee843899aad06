import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils.class_weight import compute_sample_weight

from hsickit.apps.ecg.two_stage import VentricularFirst, continue_boosting
from hsickit.core.errors import HsickitError
from hsickit.core.serialization import load_sklearn, save_sklearn


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.where(X[:, 3] > 1.0, "V", np.where(X[:, 0] > 0.8, "S", "N"))
    return X, y


def test_stages_compose_probabilities_and_the_second_never_reads_ventricular_columns():
    X, y = _data()
    clf = VentricularFirst(ventricular_columns=[3], random_state=0).fit(X, y)
    p = clf.predict_proba(X)
    assert clf.classes_.tolist() == ["N", "S", "V"]
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert (clf.predict(X) == y).mean() > 0.9
    shuffled = X.copy()
    shuffled[:, 3] = np.random.default_rng(1).permutation(X[:, 3])
    q = clf.predict_proba(shuffled)
    # N vs S is decided without column 3: their ratio does not move when it is shuffled
    np.testing.assert_allclose(p[:, 0] / (p[:, 0] + p[:, 1]), q[:, 0] / (q[:, 0] + q[:, 1]), rtol=1e-5)
    assert not np.allclose(p[:, 2], q[:, 2])


def test_the_first_stage_reads_only_its_columns():
    X, y = _data()
    clf = VentricularFirst(first_columns=[3], ventricular_columns=[3], n_seeds=1, random_state=0).fit(X, y)
    assert clf.first_columns_.tolist() == [3] and clf.columns_.tolist() == [0, 1, 2]
    p = clf.predict_proba(X)
    moved = X.copy()
    moved[:, :3] = np.random.default_rng(1).normal(size=(len(X), 3))
    np.testing.assert_allclose(clf.predict_proba(moved)[:, 2], p[:, 2])  # P(V) from column 3 alone
    assert (clf.predict(X) == y).mean() > 0.9


def test_without_ventricular_beats_the_second_stage_is_the_model_and_bad_weights_are_refused():
    X, y = _data()
    keep = y != "V"
    clf = VentricularFirst(ventricular_columns=[3], random_state=0).fit(X[keep], y[keep])
    assert all(first is None for first, _ in clf.members_) and clf.classes_.tolist() == ["N", "S"] and clf.predict_proba(X).shape == (len(X), 2)
    with pytest.raises(HsickitError, match="class_weight"):
        VentricularFirst(class_weight="sqrt").fit(X, y)
    with pytest.raises(HsickitError, match="only 'V'"):
        VentricularFirst().fit(X[y == "V"], y[y == "V"])
    with pytest.raises(HsickitError, match="n_seeds"):
        VentricularFirst(n_seeds=0).fit(X, y)


@pytest.mark.slow
def test_seeds_are_averaged_and_a_warm_refit_grows_every_member():
    X, y = _data(n=12000)  # early stopping (and its random validation tenth) is on above 10,000 rows
    kw = dict(ventricular_columns=[3], warm_iterations=7)
    clf = VentricularFirst(n_seeds=3, random_state=4, **kw).fit(X, y)
    singles = [VentricularFirst(n_seeds=1, random_state=s, **kw).fit(X, y) for s in (4, 5, 6)]
    probas = [m.predict_proba(X) for m in singles]
    assert not np.allclose(probas[0], probas[1])  # the seeds differ
    np.testing.assert_allclose(clf.predict_proba(X), np.mean(probas, axis=0), atol=1e-12)
    iterations = [(a.n_iter_, b.n_iter_) for a, b in clf.members_]
    clf.set_params(warm_start=True).fit(X[:3000], y[:3000])
    assert [(a.n_iter_, b.n_iter_) for a, b in clf.members_] == [(a + 7, b + 7) for a, b in iterations]


@pytest.mark.slow
def test_saved_with_skops_only_when_trusted_by_name(tmp_path):
    X, y = _data()
    clf = VentricularFirst(ventricular_columns=[3], random_state=0).fit(X, y)
    save_sklearn(tmp_path / "m.skops", clf)
    with pytest.raises(HsickitError, match="refusing"):
        load_sklearn(tmp_path / "m.skops")
    back = load_sklearn(tmp_path / "m.skops", trusted=["hsickit.apps.ecg.two_stage.VentricularFirst"])
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X))


def test_continue_boosting_keeps_the_known_classes_on_new_beats_without_one():
    for seed in range(3):
        rng = np.random.default_rng(seed)
        X, y = _data(seed=seed)
        est = HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=0)
        est.fit(X, y, sample_weight=compute_sample_weight("balanced", y))
        new = rng.normal(size=(300, 4)); new[:, 3] = np.minimum(new[:, 3], 0.9)  # a hospital without V beats
        y_new = np.where(new[:, 0] > 0.8, "S", "N")
        w = np.append(compute_sample_weight("balanced", y_new), 0.0)  # zero-weight placeholder keeps V a class
        continue_boosting(est, 20).fit(np.vstack([new, new[:1]]), np.append(y_new, "V"), sample_weight=w)
        assert est.n_iter_ == 220 and est.l2_regularization == 1.0
        X_test, y_test = _data(n=2000, seed=10 + seed)
        rest = y_test != "V"
        assert (est.predict(X_test[rest]) == y_test[rest]).mean() > 0.97  # unregularised: 0.18 and 0.95 for seeds 0 and 1


def test_one_class_besides_v_gives_a_second_stage_of_probability_one(tmp_path):
    X, y = _data()
    y = np.where(y == "S", "N", y)  # N and V only (MIT-BIH 119 alone)
    clf = VentricularFirst(ventricular_columns=[3], n_seeds=2, random_state=0).fit(X, y)
    p = clf.predict_proba(X)
    assert clf.classes_.tolist() == ["N", "V"] and p.shape == (len(X), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[:, 0], 1 - np.mean([f.predict_proba(X.astype(np.float32))[:, 1] for f, _ in clf.members_], axis=0))
    assert (clf.predict(X) == y).mean() > 0.9
    clf.set_params(warm_start=True).fit(X[:300], y[:300])  # a warm refit keeps the one-class stage
    save_sklearn(tmp_path / "m.skops", clf)
    back = load_sklearn(tmp_path / "m.skops", trusted=["hsickit.apps.ecg.two_stage.VentricularFirst"])
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X))
