"""Tests for hsickit.datasets.plants: taxonomy validation and specimen readers."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hsickit import HsickitError
from hsickit.datasets.plants import (
    Taxonomy,
    load_leaf99,
    read_feature_table,
    read_image_folder,
    read_image_index,
    read_image_npz,
    read_images,
    read_taxonomy,
)

LEAF = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "plants" / "leaf-classification-99"
needs_leaf = pytest.mark.skipif(not (LEAF / "taxonomy.csv").exists(), reason="shared leaf data not present")

TAX = """species,genus,family,order
Quercus robur,Quercus,Fagaceae,Fagales
Quercus ilex,Quercus,Fagaceae,Fagales
Fagus sylvatica,Fagus,Fagaceae,Fagales
Acer opalus,Acer,Sapindaceae,Sapindales
Acer mono,Acer,Sapindaceae,Sapindales
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_taxonomy_levels_maps_and_distance(tmp_path):
    tax = read_taxonomy(write(tmp_path, "t.csv", TAX))
    assert tax.levels == ("species", "genus", "family", "order")
    assert tax.key == "species"
    assert tax.n_leaves == 5
    assert tax.names("genus") == ["Quercus", "Fagus", "Acer"]
    assert [m.tolist() for m in tax.group_maps()] == [[0, 0, 1, 2, 2], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]
    assert tax.distance(0, [0, 1, 2, 3]).tolist() == [0, 1, 2, 4]  # no shared rank: len(levels)
    assert tax.lineage(3) == {"species": "Acer opalus", "genus": "Acer", "family": "Sapindaceae", "order": "Sapindales"}
    again = Taxonomy.from_dict(tax.to_dict())
    assert again.leaves.tolist() == tax.leaves.tolist() and again.levels == tax.levels


def test_taxonomy_extra_ranks_and_label_key(tmp_path):
    text = "label,species,genus,family,kingdom,note\nQ_r,Quercus robur,Quercus,Fagaceae,Plantae,\nA_o,Acer opalus,Acer,Sapindaceae,Plantae,x\n"
    tax = read_taxonomy(write(tmp_path, "t.csv", text))
    assert tax.levels == ("species", "genus", "family", "kingdom")
    assert tax.key == "label"
    # samples may use the key, the species name, or either with other case / underscores
    assert tax.index_of(["Q_r", "Acer opalus", "quercus_robur", "q r"]).tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize("text, message", [
    (TAX + "Quercus robur,Quercus,Fagaceae,Fagales\n", r"row 1, row 6 are duplicates of 'Quercus robur' \(rows numbered from 1 after the header\)"),
    (TAX + "Quercus robur,Quercus,Betulaceae,Fagales\n", r"'Quercus robur' appears in conflicting rows \(row 1, row 6; rows numbered"),
    (TAX + "Quercus alba,Quercus,Betulaceae,Fagales\n", r"genus 'Quercus' is placed in more than one family.*'Betulaceae' \(row 6\) \(rows numbered"),
    (TAX + "Alnus glutinosa,Alnus,Betulaceae,\n", r"empty cells \(row 6 column 'order'; rows numbered from 1 after the header\)"),
    ("species,genus\nA b,A\n", r"no column\(s\) \['family'\]"),
])
def test_taxonomy_errors_name_the_row_and_the_fix(tmp_path, text, message):
    with pytest.raises(HsickitError, match=message) as err:
        read_taxonomy(write(tmp_path, "t.csv", text))
    assert "t.csv" in str(err.value)


def test_species_in_two_genera_mentions_binomials(tmp_path):
    text = "species,genus,family\nalba,Quercus,Fagaceae\nalba,Salix,Salicaceae\n"
    # same species key twice with different rows -> conflicting rows
    with pytest.raises(HsickitError, match="conflicting"):
        read_taxonomy(write(tmp_path, "t.csv", text))
    text = "label,species,genus,family\nQa,alba,Quercus,Fagaceae\nSa,alba,Salix,Salicaceae\n"
    with pytest.raises(HsickitError, match="species 'alba' is placed in more than one genus.*full binomial"):
        read_taxonomy(write(tmp_path, "t2.csv", text))


def test_extend_keeps_old_indices_and_rejects_conflicts(tmp_path):
    tax = read_taxonomy(write(tmp_path, "t.csv", TAX))
    more = read_taxonomy(write(tmp_path, "m.csv", "species,genus,family,order\nAcer mono,Acer,Sapindaceae,Sapindales\n"
                                                  "Acer rubrum,Acer,Sapindaceae,Sapindales\nAlnus glutinosa,Alnus,Betulaceae,Fagales\n"))
    big = tax.extend(more)
    assert big.leaves.tolist()[:5] == tax.leaves.tolist()
    assert big.leaves.tolist()[5:] == ["Acer rubrum", "Alnus glutinosa"]
    assert big.group_index("genus")[5] == big.group_index("genus")[3]
    bad = read_taxonomy(write(tmp_path, "b.csv", "species,genus,family,order\nAcer rubrum,Acer,Aceraceae,Sapindales\n"))
    with pytest.raises(HsickitError, match="genus 'Acer' is placed in more than one family"):
        tax.extend(bad)
    bad2 = read_taxonomy(write(tmp_path, "b2.csv", "species,genus,family\nAcer mono,Acer,Sapindaceae\n"))
    with pytest.raises(HsickitError, match=r"lacks the level\(s\) \['order'\]"):
        tax.extend(bad2)


def test_feature_table_join_split_and_prefixes(tmp_path):
    tax = read_taxonomy(write(tmp_path, "t.csv", TAX))
    csv = "id,species,shape1,shape2,margin1,note,split\n1,Quercus robur,0.1,0.2,0.3,a,train\n2,Acer mono,1,2,3,b,test\n3,Fagus sylvatica,4,5,6,c,train\n"
    s = read_feature_table(write(tmp_path, "f.csv", csv), tax)
    assert s.feature_names == ["shape1", "shape2", "margin1"]
    assert s.y.tolist() == [0, 4, 2]
    assert s.X.dtype == np.float32
    only = read_feature_table(write(tmp_path, "f.csv", csv), tax, feature_cols="shape", split="train")
    assert only.feature_names == ["shape1", "shape2"] and only.ids.tolist() == ["1", "3"]
    with pytest.raises(HsickitError, match="no feature column 'texture'"):
        read_feature_table(write(tmp_path, "f.csv", csv), tax, feature_cols=["texture"])
    splits = write(tmp_path, "s.csv", "id,split\n1,val\n2,val\n3,test\n")
    assert read_feature_table(tmp_path / "f.csv", tax, splits=splits, split="val").ids.tolist() == ["1", "2"]


def test_feature_table_unknown_label_and_bad_value(tmp_path):
    tax = read_taxonomy(write(tmp_path, "t.csv", TAX))
    csv = "id,species,f1,f2\n1,Quercus robur,0.1,0.2\n2,Quercus rubra,1,2\n3,Acer mono,x,5\n4,Acer mono,1,1\n"
    path = write(tmp_path, "f.csv", csv)
    with pytest.raises(HsickitError, match=r"f.csv \(rows numbered from 1 after the header\): row 3: column 'f1' has a non-numeric "
                                          r"or missing value 'x'.*--skip-invalid"):
        read_feature_table(path, tax)
    path = write(tmp_path, "g.csv", csv.replace(",x,", ",3,"))
    with pytest.raises(HsickitError, match=r"'Quercus rubra' \(1 samples of .*g.csv, first at row 2\).*add a row"):
        read_feature_table(path, tax)
    with pytest.warns(UserWarning, match="skipped 2 bad row"):
        s = read_feature_table(write(tmp_path, "f.csv", csv), tax, ignore_errors=True)
    assert s.ids.tolist() == ["1", "4"]
    assert s.skipped == ["row 3: column 'f1' has a non-numeric or missing value 'x'",
                         "row 2: label 'Quercus rubra' is not in the taxonomy"]


def test_feature_table_without_labels_reads_for_prediction(tmp_path):
    s = read_feature_table(write(tmp_path, "f.csv", "id,f1\n1,0.5\n"))
    assert s.labels is None and s.y is None
    with pytest.raises(HsickitError, match="no label column 'species'"):
        read_feature_table(tmp_path / "f.csv", require_labels=True)


def _png(path, w, h, value=255):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), value, np.uint8)).save(path)


def test_image_folder_index_and_npz(tmp_path):
    tax = read_taxonomy(write(tmp_path, "t.csv", TAX))
    _png(tmp_path / "imgs" / "Acer mono" / "a.png", 40, 20)
    _png(tmp_path / "imgs" / "Quercus robur" / "b.png", 10, 30)
    s = read_image_folder(tmp_path / "imgs", tax, size=16)
    assert s.X.shape == (2, 1, 16, 16) and s.kind == "images"
    assert s.y.tolist() == [4, 0]
    # aspect ratio kept, centred: a 40x20 image fills all columns and the middle 8 rows
    assert s.X[0, 0, :, 8].tolist() == [0.0] * 4 + [1.0] * 8 + [0.0] * 4
    idx = write(tmp_path / "imgs", "index.csv", "path,species\nAcer mono/a.png,Acer mono\nQuercus robur/b.png,Quercus robur\n")
    assert read_images(idx, tax, size=16).y.tolist() == [4, 0]
    np.savez(tmp_path / "x.npz", images=np.zeros((3, 8, 8), np.uint8), ids=np.array([7, 8, 9]))
    lab = write(tmp_path, "labels.csv", "id,label,split\n7,Acer mono,train\n8,Fagus sylvatica,test\n9,Acer opalus,train\n")
    s = read_image_npz(tmp_path / "x.npz", tax, labels=lab, split="train")
    assert s.ids.tolist() == ["7", "9"] and s.y.tolist() == [4, 3]
    np.savez(tmp_path / "y.npz", images=np.zeros((1, 8, 8), np.uint8), labels=np.array(["Acer nope"]))
    with pytest.raises(HsickitError, match="'Acer nope'"):
        read_images(tmp_path / "y.npz", tax)
    (tmp_path / "imgs" / "Acer mono" / "broken.png").write_text("not an image")
    with pytest.raises(HsickitError, match="broken.png cannot be read"):
        read_image_folder(tmp_path / "imgs", tax)
    with pytest.raises(HsickitError, match=r"index.csv row 1 \(rows numbered.*\): image .*missing.png"):
        read_image_index(write(tmp_path / "imgs", "index.csv", "path,species\nmissing.png,Acer mono\n"), tax)


@needs_leaf
def test_shared_leaf_data_reads_as_shipped():
    tax = read_taxonomy(LEAF / "taxonomy.csv")
    assert [len(tax.names(lvl)) for lvl in tax.levels] == [99, 34, 24, 16]
    train = load_leaf99(LEAF, "all", split="train")
    assert train.X.shape == (594, 192)
    shape = load_leaf99(LEAF, "shape", split=["val", "test"])
    assert shape.X.shape == (396, 64) and all(c.startswith("shape") for c in shape.feature_names)
    img = load_leaf99(LEAF, "images", split="test")
    assert img.X.shape == (198, 1, 128, 128)
    assert np.bincount(img.y, minlength=99).tolist() == [2] * 99
    # same ids, same labels in both readers
    feats = read_feature_table(LEAF / "train.csv", tax, splits=LEAF / "labels.csv", split="test")
    order = {i: k for k, i in enumerate(feats.ids)}
    assert (feats.y[[order[i] for i in img.ids]] == img.y).all()
    labels = pd.read_csv(LEAF / "labels.csv")
    fam = dict(zip(labels.id.astype(str), labels.family))
    assert all(tax.lineage(y)["family"] == fam[i] for i, y in zip(img.ids, img.y))
