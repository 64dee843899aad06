"""Leaf outlines: readers (signature tables, point tables, silhouettes) and their errors, representations and
their invariances, the contour encoder, the classifier on outlines, and ``hsickit plants ... --outlines``."""
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

torch.set_num_threads(1)  # the test machine is shared; small models run faster single-threaded

from hsickit import HsickitError
from hsickit.apps.plants import TaxonomicClassifier
from hsickit.apps.plants.cli import app
from hsickit.apps.plants.encoders import ContourJitter, cyclic_views
from hsickit.apps.plants.outlines import (align_outlines, contour_signals, efd_features, fourier_magnitudes,
                                          mean_outline, represent)
from hsickit.apps.plants.plots import confused_pairs_plot, outline_page
from hsickit.core.models import create_model
from hsickit.datasets.outlines import (centroid_distance, extract_outline, outline_problem, read_image_outlines,
                                       read_outlines, read_point_table, read_signature_table, resample_closed,
                                       signed_area)
from hsickit.datasets.plants import read_taxonomy

TAX = """label,species,genus,family
Q_rob,Quercus robur,Quercus,Fagaceae
Q_ile,Quercus ilex,Quercus,Fagaceae
A_opa,Acer opalus,Acer,Sapindaceae
"""
NEW_TAX = "label,species,genus,family\nA_rub,Acer rubrum,Acer,Sapindaceae\n"
#: species -> (lobes, lobe depth, elongation)
SHAPES = {"Q_rob": (5, 0.25, 0.0), "Q_ile": (0, 0.0, 0.45), "A_opa": (3, 0.35, 0.1), "A_rub": (7, 0.2, 0.2)}
runner = CliRunner()


def leaf(species, rng, m=200, rotate=True):
    """A closed lobed curve (m, 2) of one species, randomly rotated, scaled, shifted and started."""
    lobes, depth, elong = SHAPES[species]
    t = np.linspace(0, 2 * np.pi, m, endpoint=False)
    r = 1 + depth * np.cos(lobes * t) + rng.normal(scale=0.01, size=m)
    xy = np.c_[(1 + elong) * r * np.cos(t), r * np.sin(t)]
    a = rng.uniform(0, 2 * np.pi) if rotate else 0.0
    xy = xy @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T * rng.uniform(5, 20) + rng.normal(size=2) * 50
    return np.roll(xy, rng.integers(m), axis=0)


def leaves(species, n_per, seed, m=200):
    rng = np.random.default_rng(seed)
    curves = [leaf(s, rng, m) for s in species for _ in range(n_per)]
    return curves, np.repeat(species, n_per)


def point_table(curves, labels, ids=None):
    rows = []
    for k, (c, lab) in enumerate(zip(curves, labels)):
        sid = ids[k] if ids is not None else f"s{k}"
        rows += [{"specimen": sid, "point": j, "x": x, "y": y, "species": lab, "split": ["train", "train", "test"][k % 3]}
                 for j, (x, y) in enumerate(c)]
    return pd.DataFrame(rows)


def signature_table(curves, labels, n=32):
    sig = centroid_distance(np.stack([resample_closed(c, n) for c in curves]))
    table = pd.DataFrame(sig, columns=[f"r{j + 1}" for j in range(n)])
    table.insert(0, "species", labels)
    table.insert(0, "id", [f"s{k}" for k in range(len(curves))])
    table["split"] = [["train", "train", "test"][k % 3] for k in range(len(curves))]
    return table


def turn(curves, angle):
    c, s = np.cos(angle), np.sin(angle)
    return curves @ np.array([[c, -s], [s, c]]).T


@pytest.fixture
def tax():
    return read_taxonomy(io.StringIO(TAX))


# --- readers ----------------------------------------------------------------------------------------
def test_point_table_resamples_counter_clockwise_and_joins_taxonomy(tmp_path, tax):
    curves, labels = leaves(["Q_rob", "A_opa"], 3, 0)
    curves[1] = curves[1][::-1]  # one listed clockwise
    table = point_table(curves, labels).sample(frac=1, random_state=0)  # rows in any order: the point column orders
    table.to_csv(tmp_path / "points.csv", index=False)
    s = read_outlines(tmp_path / "points.csv", tax, n_points=64)
    assert s.kind == "outlines" and s.X.shape == (6, 64, 2) and set(s.ids) == {f"s{k}" for k in range(6)}
    assert all(signed_area(o) > 0 for o in s.X)
    k = list(s.ids).index("s1")
    assert np.allclose(s.X[k][0], curves[1][0], atol=1e-4)  # the starting point is kept
    steps = np.linalg.norm(np.diff(np.r_[s.X[k], s.X[k][:1]], axis=0), axis=1)
    assert steps.std() / steps.mean() < 0.05  # equally spaced by arc length
    assert tax.leaves[s.y].tolist() == list(labels[[int(i[1:]) for i in s.ids]])
    assert len(read_point_table(tmp_path / "points.csv", tax, n_points=64, split="test")) == 2


def test_signature_table(tmp_path, tax):
    curves, labels = leaves(["Q_rob", "A_opa"], 3, 0)
    signature_table(curves, labels).to_csv(tmp_path / "sig.csv", index=False)
    s = read_outlines(tmp_path / "sig.csv", tax)
    assert s.kind == "signatures" and s.X.shape == (6, 32) and s.feature_names[:2] == ["r1", "r2"]
    assert len(read_signature_table(tmp_path / "sig.csv", tax, split="train")) == 4
    with pytest.raises(HsickitError, match="32 values, fewer than the 64 required"):
        read_outlines(tmp_path / "sig.csv", tax, n_points=64)


def test_bad_signatures_name_the_specimen(tmp_path, tax):
    curves, labels = leaves(["Q_rob", "A_opa"], 3, 0)
    table = signature_table(curves, labels).astype({"r7": object, "r31": object, "r32": object})
    table.loc[4, ["r31", "r32"]] = ["", ""]  # a shorter signature
    table.loc[2, "r7"] = "nan"
    table.to_csv(tmp_path / "sig.csv", index=False)
    with pytest.raises(HsickitError) as err:
        read_outlines(tmp_path / "sig.csv", tax)
    msg = str(err.value)
    assert "specimen s4: its signature has 30 of 32 values (column 'r31'" in msg
    assert "specimen s2: its signature has 31 of 32 values (column 'r7'" in msg and "--skip-invalid" in msg
    with pytest.warns(UserWarning, match="skipped 2"):
        s = read_outlines(tmp_path / "sig.csv", tax, ignore_errors=True)
    assert s.ids.tolist() == ["s0", "s1", "s3", "s5"]


@pytest.mark.parametrize("defect, message", [
    ("few", "specimen bad: the outline has 20 distinct points, fewer than the 64 required"),
    ("open", "specimen bad: the outline is an open curve"),
    ("cross", "specimen bad: the outline crosses itself"),
    ("nan", "specimen bad: the outline point 5 has a missing or non-numeric coordinate"),
    ("labels", "specimen bad: its points carry different labels"),
])
def test_bad_point_outlines_name_the_specimen(tmp_path, tax, defect, message):
    curves, labels = leaves(["Q_rob", "A_opa"], 2, 0)
    t = np.linspace(0, 2 * np.pi, 100, endpoint=False)
    bad = {"few": np.c_[np.cos(t[::5]), np.sin(t[::5])],
           "open": np.c_[np.cos(t / 2), np.sin(t / 2)],                   # half a circle
           "cross": np.c_[np.sin(t + 0.03), np.sin(t + 0.03) * np.cos(t + 0.03)] * (1 + (t < np.pi))[:, None],  # an 8
           "nan": np.c_[np.cos(t), np.where(np.arange(100) == 4, np.nan, np.sin(t))],
           "labels": np.c_[np.cos(t), np.sin(t)]}[defect]
    table = point_table(curves + [bad], list(labels) + ["Q_rob"], ids=["a", "b", "c", "d", "bad"])
    if defect == "labels":
        table.loc[table.index[-1], "species"] = "A_opa"
    table.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(HsickitError, match=message.replace("(", r"\(")):
        read_outlines(tmp_path / "p.csv", tax, n_points=64)
    with pytest.warns(UserWarning, match="skipped 1"):
        s = read_outlines(tmp_path / "p.csv", tax, n_points=64, ignore_errors=True)
    assert s.ids.tolist() == ["a", "b", "c", "d"] and "specimen bad" in s.skipped[0]


def test_outline_problem_accepts_good_curves_and_closed_listings():
    t = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    circle = np.c_[np.cos(t), np.sin(t)]
    assert outline_problem(circle, 64) is None
    assert outline_problem(np.r_[circle, circle[:1]], 64) is None  # the first point repeated at the end
    line = np.c_[t, 2 * t]
    assert "no area" in outline_problem(np.r_[line, line[-2:0:-1]], 64)  # out along a line and back


def silhouettes(n_per=4, size=48, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    imgs, labels = [], []
    for sp in ("Q_rob", "Q_ile", "A_opa"):
        lobes, depth, elong = SHAPES[sp]
        for _ in range(n_per):
            a = rng.uniform(0, 2 * np.pi)
            th = np.arctan2(yy, xx) + a
            r = np.hypot(xx * (1 - elong / 2), yy) / (size * 0.35)
            img = (r < 1 + depth * np.cos(lobes * th)).astype(np.uint8) * 255
            img[2:4, 2:4] = 255  # a speck: not the largest component
            imgs.append(img)
            labels.append(sp)
    return np.stack(imgs), np.array(labels)


def test_outlines_from_silhouettes(tmp_path, tax):
    imgs, labels = silhouettes()
    imgs[5] = 0  # a blank image
    np.savez(tmp_path / "leaves.npz", images=imgs, ids=np.arange(len(imgs)), labels=labels)
    with pytest.raises(HsickitError, match="specimen 5 has no leaf"):
        read_image_outlines(tmp_path / "leaves.npz", tax, n_points=64)
    with pytest.warns(UserWarning, match="skipped 1"):
        s = read_image_outlines(tmp_path / "leaves.npz", tax, n_points=64, ignore_errors=True)
    assert s.kind == "outlines" and s.X.shape == (11, 64, 2) and "5" not in s.ids.tolist()
    o = extract_outline(imgs[0], 64)
    clean = imgs[0].copy()
    clean[2:4, 2:4] = 0
    assert np.allclose(o, extract_outline(clean, 64))  # the leaf, not the speck in the corner
    assert outline_problem(o, 64) is None and signed_area(o) > 0


# --- representations ------------------------------------------------------------------------------
def test_efd_and_fourier_are_invariant_to_rotation_start_and_size():
    rng = np.random.default_rng(1)
    curves = np.stack([resample_closed(leaf(s, rng, rotate=False), 64) for s in ("Q_rob", "A_opa", "A_rub")])
    efd, fou = efd_features(curves), fourier_magnitudes(curves)
    for angle in (0.3, np.pi / 2, np.pi, 4.0):
        for shift in (1, 7, 32, 45):  # 32 = a start half-way round: the sign ambiguity EFDs must fix
            moved = np.roll(turn(curves, angle) * 3.5 + 10, shift, axis=1)
            assert np.allclose(efd_features(moved), efd, atol=1e-4), (angle, shift)
            assert np.allclose(fourier_magnitudes(moved), fou, atol=1e-5), (angle, shift)
    assert np.allclose(fourier_magnitudes(curves[:, ::-1] * [-1, 1]), fou, atol=1e-5)  # a mirrored leaf
    assert np.abs(efd[0] - efd[1]).max() > 0.05 and np.abs(fou[0] - fou[2]).max() > 0.01  # shapes still differ
    sig = centroid_distance(curves)
    f = fourier_magnitudes(sig)
    assert np.allclose(fourier_magnitudes(np.roll(sig, 9, axis=1) * 2 + 1), f, atol=1e-5)  # signatures: start, affine
    assert efd_features(sig).shape == (3, 77)  # a positive signature is read as a polar curve
    with pytest.raises(HsickitError, match="positive radii"):
        efd_features(sig - sig.mean(1, keepdims=True))


def test_contour_signals_and_alignment():
    rng = np.random.default_rng(2)
    curves = np.stack([resample_closed(leaf("A_opa", rng), 64) for _ in range(3)])
    sig = contour_signals(curves)
    assert sig.shape == (3, 2, 64)
    assert np.allclose(contour_signals(turn(curves, 1.1) * 4), sig, atol=1e-4)  # rotation and size
    assert np.allclose(contour_signals(np.roll(curves, 5, axis=1)), np.roll(sig, 5, axis=-1), atol=1e-5)
    assert abs(sig[0, 1].sum() - 2 * np.pi) < 1e-3  # a closed counter-clockwise curve turns once
    one = contour_signals(centroid_distance(curves))
    assert one.shape == (3, 1, 64) and np.allclose(one.mean(-1), 0, atol=1e-5) and np.allclose(one.std(-1), 1, atol=1e-4)
    with pytest.raises(HsickitError, match="unknown outline representation"):
        represent(curves, "wavelets")
    mean, aligned = mean_outline(curves)
    assert mean.shape == (64, 2) and aligned.shape == curves.shape
    again = align_outlines(np.roll(turn(curves, 2.0), 17, axis=1), reference=aligned[0])
    assert np.allclose(again[0], aligned[0], atol=1e-6)  # the same outline, turned and restarted, falls back in place


def test_contour_encoder_augments_only_while_training_and_averages_over_shifts():
    x = torch.randn(4, 2, 32)
    jit = ContourJitter()
    assert torch.equal(jit.eval()(x), x) and not torch.equal(jit.train()(x), x)
    assert len(cyclic_views(x, 8, reflect=True)) == 16
    net = create_model("contourcnn", in_features=64, out_features=3, signal_shape=(2, 32), channels=(4, 8), width=8,
                       tta_shifts=8).eval()
    with torch.no_grad():
        a, b = net(x.reshape(4, -1)), net(torch.roll(x, 4, dims=-1).reshape(4, -1))  # shift by 32/8 points
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(HsickitError, match="does not match in_features"):
        create_model("contourcnn", in_features=60, out_features=3, signal_shape=(2, 32))


# --- the classifier on outlines ------------------------------------------------------------------
@pytest.mark.parametrize("representation, kind", [("contour", "signatures"), ("contour", "outlines"),
                                                  ("efd", "outlines"), ("fourier", "signatures")])
def test_classifier_learns_outlines(tax, representation, kind):
    curves, labels = leaves(["Q_rob", "Q_ile", "A_opa"], 16, 3)
    X = np.stack([resample_closed(c, 32) for c in curves])
    X = centroid_distance(X) if kind == "signatures" else X
    clf = TaxonomicClassifier(tax, representation=representation, epochs=30, lr=3e-3, patience=None, batch_size=16,
                              random_state=0).fit(X, labels)
    curves_te, labels_te = leaves(["Q_rob", "Q_ile", "A_opa"], 6, 4)
    Xte = np.stack([resample_closed(c, 32) for c in curves_te])
    Xte = centroid_distance(Xte) if kind == "signatures" else Xte
    assert clf.score(Xte, labels_te) > 0.8
    assert clf.net_.model == ("contourcnn" if representation == "contour" else "residual_mlp")
    other = np.stack([resample_closed(c, 32) for c in curves_te]) if kind == "signatures" else centroid_distance(Xte)
    with pytest.raises(HsickitError, match="the model was trained on"):
        clf.predict(other)


@pytest.mark.slow
def test_contour_encoder_hsic_finetune_and_round_trip(tax, tmp_path):
    curves, labels = leaves(["Q_rob", "Q_ile", "A_opa"], 12, 5)
    X = centroid_distance(np.stack([resample_closed(c, 32) for c in curves]))
    clf = TaxonomicClassifier(tax, representation="contour", training="hsic", epochs=3, hsic_params={"format_epochs": 2}, patience=None,
                              batch_size=18, random_state=0).fit(X, labels)
    assert clf.history_[-1]["phase"] == "format" and np.isfinite(clf.predict_proba(X)).all()
    clf = TaxonomicClassifier(tax, representation="contour", epochs=25, lr=3e-3, patience=None, batch_size=16,
                              random_state=0).fit(X, labels)
    back = TaxonomicClassifier.load(clf.save(tmp_path / "m"))
    assert np.allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-5) and back.outline_kind_ == "signatures"
    new_curves, new_labels = leaves(["A_rub"], 10, 6)
    Xn = centroid_distance(np.stack([resample_closed(c, 32) for c in new_curves]))
    back.set_params(warm_start=True, taxonomy=read_taxonomy(io.StringIO(NEW_TAX)), epochs=40, lr=1e-2, frozen_blocks=0,
                    validation_fraction=0.2).fit(np.r_[Xn, X[:10]], np.r_[new_labels, labels[:10]])
    assert back.classes_.tolist()[-1] == "A_rub" and (back.predict(Xn) == "A_rub").mean() > 0.6


def test_outline_plots(tax, tmp_path):
    curves, labels = leaves(["Q_rob", "Q_ile", "A_opa"], 3, 7)
    X = np.stack([resample_closed(c, 32) for c in curves])
    y = tax.index_of(labels)
    assert outline_page(X, y, tax, tmp_path / "o.png").stat().st_size > 1000
    assert outline_page(centroid_distance(X), y, tax, tmp_path / "s.png").exists()
    pred = y.copy()
    pred[:2] = 1
    assert confused_pairs_plot(X, y, pred, tax, tmp_path / "c.png").exists()


# --- command line ---------------------------------------------------------------------------------
def invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.mark.slow
def test_cli_outlines_train_evaluate_predict_finetune(tmp_path):
    (tmp_path / "taxonomy.csv").write_text(TAX)
    (tmp_path / "new_tax.csv").write_text(NEW_TAX)
    curves, labels = leaves(["Q_rob", "Q_ile", "A_opa"], 15, 8)
    signature_table(curves, labels).to_csv(tmp_path / "sig.csv", index=False)
    run = tmp_path / "run"
    invoke(["train", "--outlines", tmp_path / "sig.csv", "--taxonomy", tmp_path / "taxonomy.csv", "--split", "train",
            "--epochs", 30, "--lr", 3e-3, "--batch-size", 16, "--out", run, "--quiet"])
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["classifier"]["representation"] == "contour" and cfg["data"]["kind"] == "signatures"
    assert (run / "plots" / "outlines.png").exists() and "--outlines" in (run / "README.md").read_text()
    invoke(["evaluate", run, "--outlines", tmp_path / "sig.csv", "--split", "test", "--quiet"])
    m = json.loads((run / "eval-sig-test" / "metrics.json").read_text())
    assert m["n_samples"] == 15 and m["accuracy_species"] > 0.7 and "accuracy_family" in m
    assert (run / "eval-sig-test" / "plots" / "confused_pairs_test.png").exists()
    unlabelled = pd.read_csv(tmp_path / "sig.csv").drop(columns=["species"])
    unlabelled.insert(1, "area_cm2", 12.5)  # another numeric column: the run reads its own signature columns
    unlabelled.to_csv(tmp_path / "unlabelled.csv", index=False)
    invoke(["predict", run, "--outlines", tmp_path / "unlabelled.csv", "-o", tmp_path / "pred.csv", "--quiet"])
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 45 and {"species", "genus", "family", "backoff_level"} <= set(pred.columns)

    new_curves, new_labels = leaves(["A_rub", "A_opa"], 10, 9)
    signature_table(new_curves, new_labels).to_csv(tmp_path / "mine.csv", index=False)
    invoke(["finetune", run, "--outlines", tmp_path / "mine.csv", "--taxonomy", tmp_path / "new_tax.csv",
            "--epochs", 20, "--out", tmp_path / "run2", "--quiet"])
    assert json.loads((tmp_path / "run2" / "config.json").read_text())["new_species"] == ["A_rub"]


@pytest.mark.slow
def test_cli_point_tables_images_as_outlines_and_errors(tmp_path):
    (tmp_path / "taxonomy.csv").write_text(TAX)
    curves, labels = leaves(["Q_rob", "Q_ile", "A_opa"], 6, 10)
    point_table(curves, labels).to_csv(tmp_path / "points.csv", index=False)
    invoke(["train", "--outlines", tmp_path / "points.csv", "--taxonomy", tmp_path / "taxonomy.csv", "--n-points", 48,
            "--representation", "efd", "--epochs", 5, "--out", tmp_path / "efd", "--quiet"])
    cfg = json.loads((tmp_path / "efd" / "config.json").read_text())
    assert cfg["classifier"]["representation"] == "efd" and cfg["data"]["n_points"] == 48
    invoke(["predict", tmp_path / "efd", "--outlines", tmp_path / "points.csv", "-o", tmp_path / "p.csv", "--quiet"])
    assert len(pd.read_csv(tmp_path / "p.csv")) == 18

    imgs, img_labels = silhouettes()
    np.savez(tmp_path / "leaves.npz", images=imgs, ids=np.arange(len(imgs)), labels=img_labels)
    invoke(["train", "--images", tmp_path / "leaves.npz", "--as-outlines", "--n-points", 48, "--taxonomy",
            tmp_path / "taxonomy.csv", "--label-col", "label", "--epochs", 3, "--out", tmp_path / "img", "--quiet"])
    assert json.loads((tmp_path / "img" / "config.json").read_text())["data"]["as_outlines"] is True
    invoke(["predict", tmp_path / "img", "--images", tmp_path / "leaves.npz", "-o", tmp_path / "q.csv", "--quiet"])
    assert len(pd.read_csv(tmp_path / "q.csv")) == 12  # read as outlines, as in training

    def error(args):
        return str(runner.invoke(app, [str(a) for a in args]).exception)

    base = ["train", "--taxonomy", tmp_path / "taxonomy.csv", "--out", tmp_path / "x", "--quiet"]
    assert "needs --images" in error(base + ["--outlines", tmp_path / "points.csv", "--as-outlines"])
    assert "unknown --representation 'pixels'" in error(base + ["--outlines", tmp_path / "points.csv", "--representation", "pixels"])
    assert "--representation applies to outlines" in error(base + ["--images", tmp_path / "leaves.npz", "--label-col", "label",
                                                                   "--representation", "efd"])
    assert "exactly one of --table" in error(base + ["--outlines", tmp_path / "points.csv", "--images", tmp_path / "leaves.npz"])


def test_benchmark_chooses_the_default_on_validation_of_the_signature_input():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "plants_outlines.py"
    spec = importlib.util.spec_from_file_location("plants_outlines_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    runs = [{"model": m, "input": i, "loss": loss, "seed": s, "val_accuracy_species": v, "accuracy_species": t,
             **{k: t for k in bench.KEYS}}
            for m, i, v, t in [("fourier", "cd128", 0.5, 0.9), ("contour", "cd128", 0.7, 0.6), ("efd", "xy128", 0.9, 0.9)]
            for loss in ("ce", "taxonomic") for s in (0, 1)]
    choice = bench.select_default(runs)
    assert choice["default"] == "contour" and set(choice["val_accuracy_species"]) == {"fourier", "contour"}  # not test
    rows = bench.summarise(runs)
    paired = [r for r in rows if r["loss"] == "taxonomic-ce" and r["model"] == "contour"]
    assert len(paired) == 1 and paired[0]["accuracy_species"] == 0.0 and paired[0]["seeds"] == 2
