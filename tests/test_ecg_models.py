"""Channel networks, fusion, save/load and fine-tuning of hsickit.apps.ecg (small synthetic records)."""
import dataclasses

import numpy as np
import pytest
import torch

from hsickit import HsickitError
from hsickit.apps.ecg.beats import load_beats
from hsickit.apps.ecg.channels import CHANNELS, ChannelNetwork, channel_input, class_weights
from hsickit.apps.ecg.features import VENTRICULAR_LABELS
from hsickit.apps.ecg.fusion import MultiResolutionClassifier
from hsickit.apps.ecg.synthetic import write_synthetic_records
from hsickit.apps.ecg.two_stage import VentricularFirst

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def beats(tmp_path_factory):
    d = write_synthetic_records(tmp_path_factory.mktemp("ecg"), n_records=4, duration=60, random_state=7)
    bs = load_beats(d, verbose=0)
    return bs.records(["s00", "s01", "s02"]), bs.records(["s03"])


def test_four_channels_at_different_resolutions(beats):
    train, _ = beats
    shapes = {name: channel_input(name, train).shape for name in CHANNELS}
    assert len(CHANNELS) >= 4
    assert shapes["beat"][1:] == (2, 252) and shapes["rhythm"][1:] == (2, 240)  # lead + lead minus record median
    x = channel_input("beat", train)
    for r in set(train.record):
        m = train.record == r
        np.testing.assert_allclose(x[m, 1], train.beat[m, 0] - np.median(train.beat[m, 0], axis=0), atol=1e-6)
    assert len(shapes["wavelet"]) == 2 and shapes["rr"][1:] == (16,)
    with pytest.raises(HsickitError, match="unknown channel"):
        channel_input("spectrogram", train)


@pytest.mark.parametrize("name", list(CHANNELS))
def test_each_channel_trains_alone_and_embeds(beats, name):
    train, test = beats
    net = ChannelNetwork(name, epochs=3, random_state=0).fit(train, test)
    emb = net.transform(test)
    assert emb.shape[0] == len(test) and emb.ndim == 2 and np.isfinite(emb).all()
    assert set(net.predict(test)) <= set(train.y)
    assert net.predict_proba(test).shape == (len(test), len(net.classes_))


def test_channel_trains_with_hsic(beats):
    train, test = beats
    net = ChannelNetwork("rr", training="hsic", epochs=2, hsic_params={"format_epochs": 2}, random_state=0).fit(train)
    assert net.estimator_.train_config_["mode"] == "hsic"
    assert (net.estimator_.train_config_["format_epochs"], net.estimator_.train_config_["sigma"]) == (2, 5.0)
    assert net.transform(test).shape == (len(test), 32)


def test_rr_channel_learns_premature_beats(beats):
    train, test = beats
    net = ChannelNetwork("rr", epochs=15, lr=3e-3, random_state=0).fit(train)
    pred = net.predict(test)
    s = test.y == "S"
    assert (pred[s] != "N").mean() > 0.5  # premature beats are not taken for normal ones


def test_fusion_concatenates_embeddings_and_features(beats, tmp_path):
    train, test = beats
    clf = MultiResolutionClassifier(channels=("beat", "rr"), stacking="holdout", downstream="residual_mlp", class_weight="sqrt",
                                    channel_epochs=3, epochs=8, random_state=0).fit(train, test)
    Z = clf.representation(test)
    assert Z.shape == (len(test), 32 + 32 + train.features.shape[1])
    acc = (clf.predict(test) == test.y).mean()
    assert acc > 0.8
    clf.save(tmp_path / "m")
    back = MultiResolutionClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_proba(test), clf.predict_proba(test), atol=1e-5)
    assert back.channels == ("beat", "rr")


def test_fusion_with_sklearn_downstream_and_hsic(beats, tmp_path):
    from sklearn.linear_model import LogisticRegression

    train, test = beats
    clf = MultiResolutionClassifier(channels=(), downstream=LogisticRegression(max_iter=500), class_weight="balanced")
    clf.fit(train)
    plain = MultiResolutionClassifier(channels=(), downstream=LogisticRegression(max_iter=500), class_weight=None).fit(train)
    p_s = lambda m: m.predict_proba(test)[:, list(m.classes_).index("S")].mean()  # noqa: E731
    assert p_s(clf) > p_s(plain)  # class weighting reaches the scikit-learn classifier (as sample weights)
    assert (clf.predict(test) == test.y).mean() > 0.8
    with pytest.raises(HsickitError, match="cannot be saved; name it instead"):
        clf.save(tmp_path / "x")
    h = MultiResolutionClassifier(channels=("rr",), downstream="residual_mlp", training="hsic", channel_epochs=2, epochs=2,
                                  random_state=0).fit(train)
    assert h.downstream_.train_config_["mode"] == "hsic"
    assert (h.downstream_.train_config_["sigma"], h.downstream_.train_config_["format_epochs"]) == (5.0, 3)
    with pytest.raises(HsickitError, match="training='hsic' trains a residual_mlp or mlp downstream"):
        MultiResolutionClassifier(channels=(), training="hsic").fit(train)
    with pytest.raises(HsickitError, match="unknown channel"):
        MultiResolutionClassifier(channels=("nope",)).fit(train)


def test_finetune_warm_start_keeps_classes_and_freezes_blocks(beats):
    train, test = beats
    clf = MultiResolutionClassifier(channels=("rr",), downstream="residual_mlp", channel_epochs=2, epochs=2, random_state=0).fit(train)
    first = clf.downstream_.model_.blocks[0].linear.weight.detach().clone()
    n_hist = len(clf.downstream_.history_)
    clf.set_params(warm_start=True, frozen_blocks=1, epochs=2, channel_epochs=2)
    clf.fit(test)
    assert torch.equal(first, clf.downstream_.model_.blocks[0].linear.weight)
    assert len(clf.downstream_.history_) > n_hist
    bad = test.subset(np.arange(len(test)))
    bad.y = bad.y.copy()
    bad.y[0] = "Q"
    assert "Q" not in clf.classes_
    with pytest.raises(HsickitError, match="classes \\['Q'\\]"):  # by default Q beats are left out; with every class kept, refused
        clf.set_params(classes=None).fit(bad)


def test_a_model_saved_with_flat_hsic_params_loads_and_predicts_the_same(beats, tmp_path):
    """fusion.json and channel.json of an older hsickit hold beta and sigma as flat keywords."""
    import json

    train, test = beats
    clf = MultiResolutionClassifier(channels=("rr",), downstream="residual_mlp", training="hsic", channel_epochs=1,
                                    epochs=1, hsic_params={"beta": 20.0}, random_state=0).fit(train)
    clf.save(tmp_path / "m")
    for name in ("fusion.json", "channels/rr/channel.json"):
        meta = json.loads((tmp_path / "m" / name).read_text())
        hsic = meta["params"].pop("hsic_params")
        meta["params"].update(beta=hsic["beta"], sigma=5.0)
        if name.startswith("channels"):
            meta["params"]["format_epochs"] = 3
        (tmp_path / "m" / name).write_text(json.dumps(meta))
    back = MultiResolutionClassifier.load(tmp_path / "m")
    assert back.hsic_params == {"beta": 20.0, "sigma": 5.0} and back.channels_["rr"].hsic_params["format_epochs"] == 3
    np.testing.assert_array_equal(back.predict_proba(test), clf.predict_proba(test))


def test_class_weights_modes():
    y = np.array(["N"] * 90 + ["S"] * 10)
    b, s = class_weights(y, "balanced"), class_weights(y, "sqrt")
    assert b["S"] == pytest.approx(5.0) and s["S"] == pytest.approx(np.sqrt(5.0))
    assert class_weights(y, None) is None
    with pytest.raises(HsickitError):
        class_weights(y, "inverse")


def test_holdout_stacking_keeps_downstream_records_away_from_channels(beats, monkeypatch):
    from hsickit.apps.ecg.fusion import holdout_records

    seen = []
    original = ChannelNetwork.fit
    monkeypatch.setattr(ChannelNetwork, "fit", lambda self, b, v=None: (seen.append(set(b.record)), original(self, b, v))[1])

    train, _ = beats
    held = holdout_records(train, 0.3, random_state=0)
    assert len(held) == 1 and held[0] in set(train.record)
    assert {"S", "V"} <= set(train.records(held).y)  # the held-out side has the rare classes too
    assert holdout_records(train.records(["s00", "s01"]), 0.3) == []  # too few records: in-sample
    clf = MultiResolutionClassifier(channels=("rr",), stacking="holdout", channel_epochs=1, epochs=1, random_state=0).fit(train)
    assert clf.holdout_records_ == held
    assert seen[-1] == set(train.record) - set(held)  # the channel never saw the downstream's records
    insample = MultiResolutionClassifier(channels=("rr",), stacking="insample", channel_epochs=1, epochs=1).fit(train)
    assert insample.holdout_records_ == []
    with pytest.raises(HsickitError, match="stacking"):
        MultiResolutionClassifier(channels=("rr",), stacking="oof").fit(train)


def test_tune_class_bias_trades_majority_for_minority():
    from hsickit.apps.ecg.fusion import tune_class_bias

    rng = np.random.default_rng(0)
    y = np.array(["N"] * 200 + ["S"] * 40)
    p_s = np.r_[rng.uniform(0.0, 0.25, 200), rng.uniform(0.3, 0.45, 40)]  # S beats score higher, but below 0.5
    proba = np.c_[1 - p_s, p_s]
    bias = tune_class_bias(proba, y, np.array(["N", "S"]))
    assert bias[0] == 0 and bias[1] > 0
    pred = np.array(["N", "S"])[(np.log(proba) + bias).argmax(1)]
    assert (pred == y).all()
    assert not tune_class_bias(proba, y, np.array(["N", "S"]), min_support=100).any()  # too few S beats: no tuning


@pytest.mark.slow
def test_crossfit_stacking_scores_every_record_out_of_group(beats, tmp_path, monkeypatch):
    seen = []
    original = ChannelNetwork.fit
    monkeypatch.setattr(ChannelNetwork, "fit", lambda self, b, v=None: (seen.append((set(b.record), set(v.record) if v is not None else set())),
                                                                        original(self, b, v))[1])
    train, test = beats
    clf = MultiResolutionClassifier(channels=("rr", "beat"), stacking="crossfit", crossfit_folds=3, downstream="gradient_boosting",
                                    class_weight="balanced", channel_epochs=2, random_state=0).fit(train)
    records = set(train.record)
    inner = seen[:-2]  # 3 groups x 2 channels, then the 2 final channels on every record
    assert len(inner) == 6 and all(not (fit & scored) and fit | scored == records for fit, scored in inner)
    assert {frozenset(scored) for _, scored in inner} == {frozenset({r}) for r in records}  # each record scored once
    assert all(fit == records for fit, _ in seen[-2:])
    n_classes = len(np.unique(train.y))
    assert clf.representation(test).shape == (len(test), 2 * n_classes + train.features.shape[1])
    assert (clf.predict(test) == test.y).mean() > 0.8
    clf.save(tmp_path / "m")
    assert (tmp_path / "m" / "downstream" / "model.skops").exists()
    back = MultiResolutionClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_proba(test), clf.predict_proba(test), atol=1e-6)
    skops_file = tmp_path / "m" / "downstream" / "model.skops"
    skops_file.write_bytes(skops_file.read_bytes()[:100])
    with pytest.raises(HsickitError, match="model.skops is corrupted or truncated"):
        MultiResolutionClassifier.load(tmp_path / "m")
    with pytest.raises(HsickitError, match="gradient_boosting"):
        MultiResolutionClassifier(channels=(), downstream="gbm").fit(train)


def _boosting_iterations(est) -> list[int]:
    return [s.n_iter_ for pair in est.members_ for s in pair] if isinstance(est, VentricularFirst) else [est.n_iter_]


@pytest.mark.parametrize("downstream", ["ventricular_first", "gradient_boosting"])
def test_finetune_gradient_boosting_downstream_adds_trees_and_keeps_classes(beats, downstream):
    train, test = beats
    clf = MultiResolutionClassifier(channels=("rr",), channel_epochs=2, downstream=downstream, random_state=0).fit(train)
    n_trees, classes = _boosting_iterations(clf.downstream_), clf.classes_.copy()
    mine = test.subset(test.y != "V")  # a hospital's records without V beats
    clf.set_params(warm_start=True, epochs=2, channel_epochs=1).fit(mine)
    assert _boosting_iterations(clf.downstream_) == [n + 20 for n in n_trees]
    assert list(clf.classes_) == list(classes) and clf.predict_proba(test).shape == (len(test), len(classes))
    assert "V" in set(clf.predict(test))  # the class absent from the new beats is still predicted


@pytest.mark.slow
def test_ventricular_first_is_the_default_and_keeps_its_columns_apart(beats, tmp_path):
    train, test = beats
    clf = MultiResolutionClassifier(channels=("beat", "rr"), channel_epochs=2, random_state=0).fit(train)
    assert isinstance(clf.downstream_, VentricularFirst)
    Z = clf.representation(test)
    n_channel = Z.shape[1] - len(clf.feature_labels_)
    beat_width = clf.channel_widths_[0]
    assert clf.channel_widths_ == [beat_width, n_channel - beat_width] and beat_width > 0
    first = clf.downstream_.first_columns_.tolist()  # the V stage: the rr channel's outputs and every feature
    assert first == list(range(beat_width, Z.shape[1]))
    only_first = np.setdiff1d(np.arange(Z.shape[1]), clf.downstream_.columns_)  # every channel output, the V morphology
    assert only_first[:n_channel].tolist() == list(range(n_channel))
    assert [clf.feature_labels_[i - n_channel] for i in only_first[n_channel:]] == [n for n in clf.feature_labels_ if n in VENTRICULAR_LABELS]
    assert "corr_to_regular" in clf.feature_labels_ and "rr_pre_lq90" not in VENTRICULAR_LABELS
    with pytest.raises(HsickitError, match="unknown channel"):
        MultiResolutionClassifier(ventricular_channels=("qrs",)).fit(train)
    # the beat channel feeds no stage, and each channel's seed follows its name: the default (rr alone) predicts alike
    default = MultiResolutionClassifier(channel_epochs=2, random_state=0).fit(train)
    assert default.channels == ("rr",) and list(default.channels_) == ["rr"]
    np.testing.assert_allclose(default.predict_proba(test), clf.predict_proba(test), atol=1e-6)
    clf.save(tmp_path / "m")
    back = MultiResolutionClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_proba(test), clf.predict_proba(test), atol=1e-6)
    with pytest.raises(HsickitError, match="class_weight"):
        MultiResolutionClassifier(channels=(), class_weight="sqrt").fit(train)
    older = dataclasses.replace(test, features=test.features[:, :-1], feature_labels=test.feature_labels[:-1])
    with pytest.raises(HsickitError, match=rf"missing \['{test.feature_labels[-1]}'\].*retrain"):
        back.predict(older)  # beats featurised by another hsickit version
    # a model trained before features were added reads its own columns of newer beats
    old_model = MultiResolutionClassifier(channels=(), random_state=0).fit(
        dataclasses.replace(train, features=train.features[:, :-3], feature_labels=train.feature_labels[:-3]))
    np.testing.assert_array_equal(old_model.predict_proba(test), old_model.predict_proba(
        dataclasses.replace(test, features=test.features[:, :-3], feature_labels=test.feature_labels[:-3])))


@pytest.mark.slow
def test_beats_outside_the_classes_are_left_out_of_training(beats, tmp_path):
    train, test = beats
    y = train.y.copy()
    y[[10, 150]] = "Q"  # two unclassifiable beats, as MIT-BIH 101 and 208 carry
    with_q = dataclasses.replace(train, y=y)
    params = dict(channel_epochs=1, random_state=0)  # the defaults otherwise, as in the README example
    with pytest.warns(UserWarning, match=r"left out 2 beat\(s\).*'Q': 2"):
        clf = MultiResolutionClassifier(**params).fit(with_q)
    assert "Q" not in clf.classes_ and clf.left_out_ == {"Q": 2}
    without = MultiResolutionClassifier(**params).fit(with_q.subset(y != "Q"))
    np.testing.assert_array_equal(clf.predict(test), without.predict(test))
    np.testing.assert_allclose(clf.predict_proba(test), without.predict_proba(test))
    assert MultiResolutionClassifier.load(clf.save(tmp_path / "m")).classes == ("N", "S", "V", "F")
    with pytest.raises(HsickitError, match="none of the classes"):
        MultiResolutionClassifier(channels=(), classes=("X",)).fit(train)


def test_af_rule_gives_the_s_probability_of_beats_in_atrial_fibrillation_to_n(beats, tmp_path):
    from hsickit.apps.ecg.features import atrial_fibrillation
    from hsickit.apps.ecg.fusion import in_atrial_fibrillation
    from hsickit.core.files import read_json, write_json

    train, test = beats
    clf = MultiResolutionClassifier(channels=(), random_state=0).fit(train)
    assert clf.af_rule and not in_atrial_fibrillation(test).any()  # synthetic sinus rhythm, P waves that repeat
    labels = list(test.feature_labels)
    cols = [labels.index(c) for c in ("p_consistency", "lead2_p_consistency")]
    features = test.features.copy()
    features[:, cols] = 0.2  # no P wave that repeats ...
    rr = np.random.default_rng(0).integers(60, 240, len(test))  # ... and a random rhythm: atrial fibrillation
    af = dataclasses.replace(test, features=features, sample=np.cumsum(rr))
    assert in_atrial_fibrillation(af).all()
    classes = list(clf.classes_)
    s, n = classes.index("S"), classes.index("N")
    ruled = clf.predict_proba(af)
    plain = clf.set_params(af_rule=False).predict_proba(af)
    assert (ruled[:, s] == 0).all() and (plain[:, s] > 0.01).any() and "S" not in set(clf.set_params(af_rule=True).predict(af))
    np.testing.assert_allclose(ruled[:, n], plain[:, n] + plain[:, s], atol=1e-6)
    np.testing.assert_allclose(ruled.sum(axis=1), 1.0, atol=1e-6)
    # a model saved before the rule existed predicts as it did
    clf.save(tmp_path / "m")
    meta = read_json(tmp_path / "m" / "fusion.json")
    del meta["params"]["af_rule"]
    write_json(tmp_path / "m" / "fusion.json", meta)
    assert MultiResolutionClassifier.load(tmp_path / "m").af_rule is False
    # beats without the P-wave consistency (feature_set="relative"): an error before any training
    keep = [i for i, c in enumerate(labels) if i not in cols]
    relative = dataclasses.replace(train, features=train.features[:, keep], feature_labels=[labels[i] for i in keep])
    with pytest.raises(HsickitError, match="af_rule needs the P-wave consistency"):
        MultiResolutionClassifier(channels=(), random_state=0).fit(relative)
    with pytest.raises(HsickitError, match="one per beat"):
        atrial_fibrillation(np.zeros(10), np.zeros(9))


def test_record_weights_count_every_record_alike_within_a_class():
    from hsickit.apps.ecg.channels import record_weights

    y = np.array(["S"] * 30 + ["S"] * 3 + ["N"] * 40 + ["N"] * 40)
    records = np.array(["big"] * 30 + ["small"] * 3 + ["big"] * 40 + ["small"] * 40)
    w = record_weights(y, records)
    s_big, s_small = w[:30].sum(), w[30:33].sum()
    assert s_big == pytest.approx(s_small) and w[y == "S"].sum() == pytest.approx(33)  # each class keeps its total
    np.testing.assert_allclose(w[y == "N"], 1.0)  # already alike
    np.testing.assert_allclose(record_weights(y, records, power=0), 1.0)
    half = record_weights(y, records, power=0.5)
    assert s_small / s_big == pytest.approx(1.0) and 1 < half[30] / half[0] < w[30] / w[0]


def test_record_balance_reaches_the_downstream_and_old_models_load_without_it(beats, tmp_path):
    from hsickit.apps.ecg.channels import record_weights
    from hsickit.core.files import read_json, write_json

    train, _ = beats
    seen = {}

    class Recording(VentricularFirst):
        def fit(self, X, y, sample_weight=None):
            seen["w"] = np.asarray(sample_weight)
            return super().fit(X, y, sample_weight=sample_weight)

    known = np.isin(train.y.astype(str), ["N", "S", "V", "F"])
    for power in (1.0, 0.0):
        MultiResolutionClassifier(channels=(), downstream=Recording(n_seeds=1), record_balance=power, random_state=0).fit(train)
        expected = record_weights(train.y[known], train.record[known], power)
        np.testing.assert_allclose(seen["w"], expected)
    assert not np.allclose(record_weights(train.y[known], train.record[known], 1.0), 1.0)  # the synthetic records differ
    clf = MultiResolutionClassifier(channels=(), random_state=0).fit(train)
    assert clf.record_balance == 1.0
    clf.save(tmp_path / "m")
    meta = read_json(tmp_path / "m" / "fusion.json")
    del meta["params"]["record_balance"]
    write_json(tmp_path / "m" / "fusion.json", meta)
    assert MultiResolutionClassifier.load(tmp_path / "m").record_balance == 0.0
    for bad in (-1, 2, "yes"):
        with pytest.raises(HsickitError, match="record_balance"):
            MultiResolutionClassifier(channels=(), record_balance=bad).fit(train)


def test_s_odds_moves_the_s_decision_only_and_old_models_load_with_one(beats, tmp_path):
    from hsickit.core.files import read_json, write_json

    train, test = beats
    clf = MultiResolutionClassifier(channels=(), s_odds=1.0, random_state=0).fit(train)
    proba = clf.predict_proba(test)
    s = list(clf.classes_).index("S")
    assert (clf.predict(test) == clf.classes_[proba.argmax(1)]).all()
    many = clf.set_params(s_odds=1e6).predict(test)
    assert (many == "S").sum() > (proba.argmax(1) == s).sum() > 0
    none, other = clf.set_params(s_odds=1e-9).predict(test), proba.argmax(1) != s
    assert "S" not in set(none) and (none[other] == clf.classes_[proba.argmax(1)][other]).all()
    assert (clf.decide(proba, s_odds=1e6) == many).all() and clf.s_odds == 1e-9  # another operating point, model unchanged
    with pytest.raises(HsickitError, match="s_odds=-1"):
        clf.decide(proba, s_odds=-1)
    clf.set_params(s_odds=3.0).save(tmp_path / "m")
    assert MultiResolutionClassifier.load(tmp_path / "m").s_odds == 3.0
    meta = read_json(tmp_path / "m" / "fusion.json")
    del meta["params"]["s_odds"]
    write_json(tmp_path / "m" / "fusion.json", meta)
    assert MultiResolutionClassifier.load(tmp_path / "m").s_odds == 1.0
    for bad in (0, -2, float("nan"), "high", True):
        with pytest.raises(HsickitError, match="s_odds"):
            MultiResolutionClassifier(channels=(), s_odds=bad).fit(train)
