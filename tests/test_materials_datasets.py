"""Tests for hsickit.datasets.materials: strict parsing, bad rows, rejects, duplicates, Matbench folds."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hsickit import HsickitError
from hsickit.datasets.materials import (
    load_leaderboard, load_matbench, matbench_folds, matbench_kfold, parse_formula, read_formula_table,
)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "materials" / "matbench_v0.1_composition"


@pytest.mark.parametrize("text,needle", [
    ("", "empty formula"),
    ("   ", "empty formula"),
    ("NaCl(", "NaCl("),
    ("Xx2O", "'Xx' is not a chemical element"),
    ("Qz3Fe", "'Qz' is not a chemical element"),
    ("Na0Cl", "amount 0 is zero"),
    ("NaCl0.0", "amount 0.0 is zero"),
    ("Na-1Cl", "amount -1 is negative"),
    ("(NaCl)0", "is zero"),
    ("nacl", "cannot be parsed"),
])
def test_parse_formula_rejects(text, needle):
    with pytest.raises(HsickitError, match=None) as info:
        parse_formula(text)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_formula_accepts_real_formulas():
    assert parse_formula("Ag(AuS)2").get_el_amt_dict() == {"Ag": 1.0, "Au": 2.0, "S": 2.0}
    assert parse_formula(" Fe2O3 ").get_el_amt_dict() == {"Fe": 2.0, "O": 3.0}
    c = parse_formula("Fe0.620C0.000953Ni0.192")
    assert c["C"] == pytest.approx(0.000953)
    assert parse_formula("D2O").get_el_amt_dict() == {"H": 2.0, "O": 1.0}


def _bad_csv(tmp_path):
    p = tmp_path / "data.csv"
    p.write_text(
        "formula,target\n"
        "NaCl,5.0\n"          # row 1 ok
        ",1.0\n"              # row 2 empty formula
        "NaCl(,1.0\n"         # row 3
        "Xx2O,1.0\n"          # row 4 placeholder
        "Fe2O3,abc\n"         # row 5 non-numeric target
        "Na0Cl,2\n"           # row 6 zero amount
        "Na-1Cl,2\n"          # row 7 negative amount
        "Zz,2\n"              # row 8 unknown element
        "MgO,\n"              # row 9 missing target
        "Fe2O3,2.2\n"         # row 10 ok
    )
    return p


def test_bad_rows_all_listed_with_row_number_and_text(tmp_path):
    p = _bad_csv(tmp_path)
    with pytest.raises(HsickitError) as info:
        read_formula_table(p)
    msg = str(info.value)
    assert "8 invalid row(s)" in msg
    for row, text in [(2, "empty formula"), (3, "'NaCl('"), (4, "'Xx2O'"), (5, "'abc' is not a number"),
                      (6, "'Na0Cl'"), (7, "'Na-1Cl'"), (8, "'Zz'"), (9, "is missing")]:
        line = [ln for ln in msg.splitlines() if ln.strip().startswith(f"row {row},")]
        assert line and text in line[0], (row, text, msg)
    assert "--skip-invalid" in msg
    assert "row 1," not in msg and "row 10," not in msg


def test_skip_invalid_writes_rejects(tmp_path):
    p = _bad_csv(tmp_path)
    rej = tmp_path / "out" / "rejects.csv"
    rej.parent.mkdir()
    t = read_formula_table(p, skip_invalid=True, rejects_path=rej)
    assert t.formulas == ["NaCl", "Fe2O3"]
    assert t.rows.tolist() == [1, 10]
    np.testing.assert_allclose(t.y, [5.0, 2.2])
    r = pd.read_csv(rej, keep_default_na=False)
    assert sorted(r["row"].tolist()) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert r.loc[r.row == 5, "value"].item() == "abc"
    assert r.loc[r.row == 5, "column"].item() == "target"
    assert r.loc[r.row == 4, "value"].item() == "Xx2O"


def test_skip_invalid_without_path_warns():
    df = pd.DataFrame({"formula": ["NaCl", "Xx2O"], "target": [1.0, 2.0]})
    with pytest.warns(UserWarning, match="skipped 1 invalid"):
        t = read_formula_table(df, skip_invalid=True)
    assert len(t) == 1 and len(t.rejects) == 1


def test_lowercase_symbols_get_a_capitalisation_hint():
    with pytest.raises(HsickitError, match=r"capital letter: 'Fe2O3', not 'fe2o3'"):
        parse_formula("fe2o3")
    with pytest.raises(HsickitError) as info:
        parse_formula("Fe2O3*H2O")
    assert "capital" not in str(info.value)


def test_class_labels_as_text_or_numbers():
    df = pd.DataFrame({"formula": ["Fe", "NaCl", "Cu", "MgO"], "target": ["metal", "nonmetal", " metal", ""]})
    with pytest.raises(HsickitError, match=r"'abc' is not a number.*--task classification"):
        read_formula_table(df.assign(target=["1", "abc", "2", "3"]))
    with pytest.raises(HsickitError, match=r"row 4.*class label in column 'target' is missing"):
        read_formula_table(df, target_type="label")
    for kind in ("label", "auto"):
        t = read_formula_table(df.head(3), target_type=kind)
        assert t.y.tolist() == ["metal", "nonmetal", "metal"]
    t = read_formula_table(df.head(3).assign(target=["1", "0", "1"]), target_type="label")
    assert t.y.dtype.kind == "i" and t.y.tolist() == [1, 0, 1]
    assert read_formula_table(df.head(3).assign(target=["1", "0", "1"]), target_type="auto").y.dtype.kind == "f"
    with pytest.raises(HsickitError, match="holds class labels"):
        read_formula_table(df.head(3).assign(formula=["Fe", "NaCl", "Fe"]), target_type="label", duplicates="mean")


def test_missing_columns_named():
    df = pd.DataFrame({"composition": ["NaCl"], "gap": [1.0]})
    with pytest.raises(HsickitError, match=r"formula column\(s\) \['formula'\] not found.*composition"):
        read_formula_table(df)
    t = read_formula_table(df, formula_col="composition", target_cols="gap")
    assert t.y.tolist() == [1.0]


def test_multiple_targets_and_no_target():
    df = pd.DataFrame({"formula": ["NaCl", "MgO"], "a": [1, 2], "b": [3, 4]})
    t = read_formula_table(df, target_cols=["a", "b"])
    assert t.y.shape == (2, 2)
    t = read_formula_table(df, target_cols=None)
    assert t.y is None and t.formulas == ["NaCl", "MgO"]


@pytest.mark.parametrize("policy,expected", [
    ("keep", [1.0, 2.0, 3.0, 4.0]),
    ("mean", [8.0 / 3.0, 2.0]),
    ("min", [1.0, 2.0]),
])
def test_duplicates_policy(policy, expected):
    # NaCl, Na2Cl2 and ClNa are one composition; MgO is another
    df = pd.DataFrame({"formula": ["NaCl", "MgO", "Na2Cl2", "ClNa"], "target": [1.0, 2.0, 3.0, 4.0]})
    t = read_formula_table(df, duplicates=policy)
    assert len(t.duplicates) == 1
    assert t.duplicates["rows"].item() == "1 3 4"
    if policy == "keep":
        assert t.y.tolist() == expected
    else:
        assert t.formulas == ["NaCl", "MgO"]
        assert t.y.tolist() == pytest.approx(expected)
    with pytest.raises(HsickitError, match="not a policy"):
        read_formula_table(df, duplicates="max")


def test_matbench_folds_from_column_and_regenerated():
    df = pd.DataFrame({"formula": ["NaCl", "MgO", "Fe2O3", "Al2O3", "SiO2"] * 4,
                       "target": np.arange(20.0), "fold": [0, 1, 2, 3, 4] * 4})
    t = read_formula_table(df)
    folds = matbench_folds(t)
    assert len(folds) == 5
    for k, (tr, te) in enumerate(folds):
        assert (t.frame["fold"].astype(int).to_numpy()[te] == k).all()
        assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 20
    regen = matbench_kfold(np.arange(20.0))
    assert sorted(np.concatenate([te for _, te in regen]).tolist()) == list(range(20))


@pytest.mark.skipif(not (SHARED / "matbench_steels.csv").exists(), reason="shared Matbench data absent")
def test_official_files_folds_match_kfold_seed():
    t = load_matbench("matbench_steels", SHARED)
    assert len(t) == 312 and len(t.rejects) == 0
    stored = matbench_folds(t)
    regen = matbench_kfold(t.y)
    for (_, te1), (_, te2) in zip(stored, regen):
        assert sorted(te1.tolist()) == sorted(te2.tolist())
    lb = load_leaderboard(SHARED, "steels")
    assert "MODNet (v0.1.12)" in lb["algorithm"].tolist()


def test_unknown_task():
    with pytest.raises(HsickitError, match="unknown Matbench task"):
        load_matbench("nope", ".")
