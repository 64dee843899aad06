"""Hostile input through the ``hsickit`` command: nothing lost, no traceback, no silent coercion (issue 21).

Every command runs through the real entry point (``hsickit.core.cli.main``, as the installed
``hsickit`` script does), so each case checks what a user sees: one ``error: ...`` line, exit
code 2, and the files around it untouched.
"""
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from hsickit.core.cli import main
from hsickit.core.errors import HsickitError
from hsickit.core.runs import RUN_MARKER, lock_run, mark_run, unlock_run
from hsickit.core.serialization import load_sklearn, save_sklearn
from hsickit.datasets.materials import demo_table_path

torch.set_num_threads(1)

TAX = ("label,species,genus,family\nQ_rob,Quercus robur,Quercus,Fagaceae\nQ_ile,Quercus ilex,Quercus,Fagaceae\n"
       "A_opa,Acer opalus,Acer,Sapindaceae\nA_mon,Acer mono,Acer,Sapindaceae\n")


def hsickit(capsys, monkeypatch, *args):
    """Run ``hsickit ARGS`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.delenv("HSICKIT_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["hsickit", *map(str, args)])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code, err, *needles):
    """Exit code 2, one ``error:`` line without a traceback, naming every needle."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def data(tmp_path):
    table = pd.read_csv(demo_table_path())[["formula", "target"]].head(60)
    table.to_csv(tmp_path / "gaps.csv", index=False)
    rng = np.random.default_rng(0)
    labels = np.repeat(["Q_rob", "Q_ile", "A_opa", "A_mon"], 12)
    feats = rng.normal(size=(len(labels), 4)) + np.repeat(np.arange(4), 12)[:, None]
    pd.DataFrame({"id": [f"s{i}" for i in range(len(labels))], "species": labels,
                  **{f"f{j}": feats[:, j] for j in range(4)}}).to_csv(tmp_path / "leaves.csv", index=False)
    (tmp_path / "taxonomy.csv").write_text(TAX)
    return tmp_path


def materials_train(data, out, *extra):
    return ["materials", "train", data / "gaps.csv", "--out", out, "--model", "extra_trees", "--quiet", *extra]


def plants_train(data, out, *extra):
    return ["plants", "train", "--table", data / "leaves.csv", "--taxonomy", data / "taxonomy.csv", "--out", out,
            "--epochs", "2", "--quiet", *extra]


def ecg_train(data, out, *extra):
    return ["ecg", "train", "--records", data / "records", "--out", out, "--quiet", *extra]


TRAIN = {"materials": materials_train, "plants": plants_train, "ecg": ecg_train}


@pytest.fixture
def materials_run(data, capsys, monkeypatch):
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, data / "mrun"))
    assert code == 0, err
    return data / "mrun"


@pytest.fixture
def plants_run(data, capsys, monkeypatch):
    code, _, err = hsickit(capsys, monkeypatch, *plants_train(data, data / "prun"))
    assert code == 0, err
    return data / "prun"


# --------------------------------------------------------------------------- data loss
@pytest.mark.parametrize("app", ["materials", "plants", "ecg"])
@pytest.mark.parametrize("name", ["config.json", "training.json"])
def test_overwrite_never_deletes_a_folder_hsickit_did_not_mark(app, name, data, capsys, monkeypatch):
    mine = data / "mine"
    mine.mkdir()
    (mine / name).write_text('{"lab": "my own settings"}')
    (mine / "notes.txt").write_text("irreplaceable")
    code, _, err = hsickit(capsys, monkeypatch, *TRAIN[app](data, mine, "--overwrite"))
    one_error(code, err, str(mine), RUN_MARKER, "rm -r")
    assert (mine / "notes.txt").read_text() == "irreplaceable" and (mine / name).exists()
    code, _, err = hsickit(capsys, monkeypatch, *TRAIN[app](data, mine))  # nor resumes it (no KeyError 'settings')
    one_error(code, err, str(mine))
    assert sorted(p.name for p in mine.iterdir()) == sorted([name, "notes.txt"])


def test_overwrite_replaces_a_marked_run_and_a_run_is_marked(materials_run, data, capsys, monkeypatch):
    marker = json.loads((materials_run / RUN_MARKER).read_text())
    assert marker["app"] == "materials" and marker["command"] == "train" and marker["hsickit_run"] == 1
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, materials_run))
    one_error(code, err, "--overwrite")
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, materials_run, "--overwrite"))
    assert code == 0, err


@pytest.mark.parametrize("how", ["same", "symlink", "exists"])
@pytest.mark.parametrize("app", ["materials", "plants"])
def test_predict_never_overwrites_its_input_or_an_existing_file(app, how, data, request, capsys, monkeypatch):
    run = request.getfixturevalue(f"{app}_run")
    source = data / ("gaps.csv" if app == "materials" else "leaves.csv")
    before = source.read_bytes()
    target = {"same": source, "symlink": data / "link.csv", "exists": data / "old_predictions.csv"}[how]
    if how == "symlink":
        target.symlink_to(source)
    if how == "exists":
        target.write_text("earlier predictions\n")
    args = ["materials", "predict", run, source] if app == "materials" else ["plants", "predict", run, "--table", source]
    code, _, err = hsickit(capsys, monkeypatch, *args, "-o", target, "--quiet")
    one_error(code, err, str(target), "input file" if how != "exists" else "--overwrite")
    assert source.read_bytes() == before
    if how == "exists":
        assert target.read_text() == "earlier predictions\n"
        code, _, err = hsickit(capsys, monkeypatch, *args, "-o", target, "--quiet", "--overwrite")
        assert code == 0 and "earlier" not in target.read_text()
        code, _, err = hsickit(capsys, monkeypatch, *args, "-o", data, "--quiet")  # a folder
        one_error(code, err, "is a folder")


@pytest.mark.slow
def test_a_second_writer_is_refused_naming_the_first(materials_run, data, capsys, monkeypatch):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from hsickit.core.runs import lock_run
        lock_run({str(materials_run)!r}); print("locked", flush=True); time.sleep(60)""")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, materials_run, "--overwrite"))
        one_error(code, err, f"pid {holder.pid}", "another hsickit process")
        assert (materials_run / "model").is_dir()  # the live run was not deleted
    finally:
        holder.kill()
        holder.wait()
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, materials_run, "--overwrite"))
    assert code == 0, err  # the kernel released the dead process's lock


def test_lock_is_reentrant_and_leaves_no_file(tmp_path):
    run = tmp_path / "run"
    lock_run(run)
    lock_run(run)
    unlock_run(run)
    assert (tmp_path / ".run.lock").read_text().strip() == str(os.getpid())
    unlock_run(run)
    assert not (tmp_path / ".run.lock").exists()


# --------------------------------------------------------------------------- no tracebacks
@pytest.mark.parametrize("app", ["materials", "plants", "ecg"])
@pytest.mark.parametrize("option, value", [("--lr", "-1"), ("--validation-fraction", "1.5"), ("--batch-size", "0"),
                                           ("--epochs", "0"), ("--lr", "nan")])
def test_bad_options_are_refused_before_any_folder_is_made(app, option, value, data, capsys, monkeypatch):
    if app == "ecg" and option in ("--validation-fraction", "--batch-size", "--lr"):
        option, value = ("--holdout-fraction", "1.5") if option == "--validation-fraction" else ("--channel-epochs", "0")
    out = data / "run"
    code, _, err = hsickit(capsys, monkeypatch, *TRAIN[app](data, out, option, value))
    if code == 2 and "No such option" in err:
        pytest.skip(f"{app} train has no {option}")
    one_error(code, err, option)
    assert not out.exists() and not (data / ".run.training").exists()


@pytest.mark.parametrize("extra, needle", [pytest.param(["--model", "leafcnn"], "--model 'leafcnn'", marks=pytest.mark.slow),
                                           pytest.param(["--training", "hebbian"], "--training", marks=pytest.mark.slow),
                                           (["--target-type", "ordinal"], "--target-type")])
def test_unknown_choices_leave_no_stub_and_the_fixed_command_runs(extra, needle, data, capsys, monkeypatch):
    out = data / "run"
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, out, *extra))
    one_error(code, err, needle)
    assert not out.exists()
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, out))
    assert code == 0, err


def test_target_beyond_float32_is_a_row_error(data, capsys, monkeypatch):
    table = pd.read_csv(data / "gaps.csv")
    table.loc[7, "target"] = 1e300
    table.to_csv(data / "huge.csv", index=False)
    code, _, err = hsickit(capsys, monkeypatch, "materials", "train", data / "huge.csv", "--out", data / "run")
    one_error(code, err, "huge.csv")
    assert "row 8" in err and "1e+300" in err and not (data / "run").exists()


def test_output_in_a_folder_that_cannot_be_written(data, capsys, monkeypatch):
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, "/sys/hsickit-run"))
    one_error(code, err, "/sys")


@pytest.mark.parametrize("exc, needles", [
    (PermissionError(13, "Permission denied", "/data/run"), ["Permission denied", "/data/run", "permissions"]),
    (IsADirectoryError(21, "Is a directory", "/data/out"), ["/data/out", "not a folder"]),
    (FileNotFoundError(2, "No such file or directory", "/data/x.csv"), ["/data/x.csv", "check the path"]),
    (ValueError("could not convert"), ["ValueError", "--debug"])])
def test_every_error_becomes_one_line_and_debug_shows_the_traceback(exc, needles, capsys, monkeypatch):
    from hsickit.core import cli

    def boom():
        raise exc

    monkeypatch.setattr(cli, "build_app", lambda: boom)
    code, _, err = hsickit(capsys, monkeypatch, "info")
    one_error(code, err, *needles)
    monkeypatch.setenv("HSICKIT_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["hsickit", "info"])
    with pytest.raises(type(exc)):
        main()


def test_debug_option_shows_the_traceback(data, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["hsickit", "--debug", *map(str, materials_train(data, data / "r", "--lr", "-1"))])
    with pytest.raises(HsickitError, match="--lr"):
        main()


def test_edited_run_files_are_errors_naming_the_file(plants_run, data, capsys, monkeypatch):
    meta = json.loads((plants_run / "estimator.json").read_text())
    meta["classes"] = meta["classes"][:-1]
    (plants_run / "estimator.json").write_text(json.dumps(meta))
    code, _, err = hsickit(capsys, monkeypatch, "plants", "predict", plants_run, "--table", data / "leaves.csv",
                           "-o", data / "p.csv")
    one_error(code, err, "estimator.json", "restore it")


def test_edited_feature_list_is_an_error(plants_run, data, capsys, monkeypatch):
    config = json.loads((plants_run / "config.json").read_text())
    config["data"]["feature_names"] = config["data"]["feature_names"][:-1]
    (plants_run / "config.json").write_text(json.dumps(config))
    code, _, err = hsickit(capsys, monkeypatch, "plants", "predict", plants_run, "--table", data / "leaves.csv",
                           "-o", data / "p.csv")
    one_error(code, err, "features")


# --------------------------------------------------------------------------- silent coercions
def test_batch_size_below_two_is_refused_not_replaced():
    from hsickit.apps.ecg.channels import fit_batch_size
    from hsickit.apps.materials import MaterialsRegressor

    with pytest.raises(HsickitError, match="batch_size 0"):
        MaterialsRegressor(model="mlp", batch_size=0, epochs=1).fit(["NaCl", "KCl", "MgO", "CaO"], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(HsickitError, match="batch_size 1"):
        fit_batch_size(1, 100)


@pytest.mark.parametrize("app, column", [("materials", "target"), ("materials", "formula"), ("plants", "f1")])
def test_repeated_column_headers_are_errors_naming_the_column(app, column, data, capsys, monkeypatch):
    source = data / ("gaps.csv" if app == "materials" else "leaves.csv")
    table = pd.read_csv(source)
    text = table.to_csv(index=False).splitlines()
    text[0] += f",{column}"
    text[1:] = [line + "," + str(table[column].iloc[i]) for i, line in enumerate(text[1:])]
    source.write_text("\n".join(text) + "\n")
    code, _, err = hsickit(capsys, monkeypatch, *TRAIN[app](data, data / "run"))
    one_error(code, err, f"column {column!r} appears 2 times")


@pytest.mark.parametrize("formula, needle", [("Fe0.5O1e-320", "negligible"), ("Fe1e308O3", "absurdly large"),
                                             ("NaCl1e-9", "negligible"), ("Fe1e400", "absurdly large")])
def test_formulas_with_absurd_amounts_are_row_errors(formula, needle, data, capsys, monkeypatch):
    table = pd.read_csv(data / "gaps.csv")
    table.loc[4, "formula"] = formula
    table.to_csv(data / "gaps.csv", index=False)
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, data / "run"))
    assert code == 2 and "Traceback" not in err
    assert "row 5" in err and needle in err and formula in err


def test_record_names_stay_inside_the_records_folder(tmp_path, capsys, monkeypatch):
    from hsickit.apps.ecg.synthetic import write_synthetic_records

    write_synthetic_records(tmp_path / "records", 2, 10, random_state=0)
    write_synthetic_records(tmp_path / "elsewhere", 1, 10, random_state=1)
    code, _, err = hsickit(capsys, monkeypatch, "ecg", "train", "--records", tmp_path / "records",
                           "--records-list", "s00,../elsewhere/s00", "--out", tmp_path / "run")
    one_error(code, err, "../elsewhere/s00", "outside the records folder")


@pytest.mark.parametrize("rows, needle", [
    ("species,genus,family\nQuercus robur,Quercus,Quercus\nQuercus ilex,Quercus,Quercus\n", "both a genus and a family"),
    ("species,genus,family\nQuercus,Quercus robur,Fagaceae\nAcer opalus,Acer,Sapindaceae\n", "look swapped")])
def test_odd_taxonomies_are_warned_about(rows, needle, tmp_path):
    from hsickit.datasets.plants import read_taxonomy

    (tmp_path / "t.csv").write_text(rows)
    with pytest.warns(UserWarning, match=needle):
        read_taxonomy(tmp_path / "t.csv")


def test_a_sound_taxonomy_gives_no_warning(tmp_path):
    from hsickit.datasets.plants import read_taxonomy

    (tmp_path / "t.csv").write_text(TAX)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_taxonomy(tmp_path / "t.csv")


# --------------------------------------------------------------------------- unclear errors
@pytest.mark.parametrize("sep, needle", [(";", "';'-separated"), ("\t", "tab-separated"), ("|", "'|'-separated")])
@pytest.mark.parametrize("app", ["materials", "plants"])
def test_other_separators_are_named(app, sep, needle, data, capsys, monkeypatch):
    source = data / ("gaps.csv" if app == "materials" else "leaves.csv")
    pd.read_csv(source).to_csv(source, sep=sep, index=False)
    code, _, err = hsickit(capsys, monkeypatch, *TRAIN[app](data, data / "run"))
    one_error(code, err, source.name, needle)


@pytest.mark.parametrize("app", ["materials", "plants"])
def test_trailing_commas_are_read_as_spreadsheets_write_them(app, data, capsys, monkeypatch):
    source = data / ("gaps.csv" if app == "materials" else "leaves.csv")
    lines = source.read_text().splitlines()
    source.write_text("\n".join([lines[0]] + [line + "," for line in lines[1:]]) + "\n")
    code, _, err = hsickit(capsys, monkeypatch, *TRAIN[app](data, data / "run"))
    assert code == 0, err


@pytest.mark.parametrize("app", ["materials", "plants"])
def test_latin1_files_name_the_row_and_suggest_utf8(app, data, capsys, monkeypatch):
    source = data / ("gaps.csv" if app == "materials" else "leaves.csv")
    raw = source.read_bytes()
    cut = raw.index(b"\n", raw.index(b"\n", raw.index(b"\n") + 1) + 1)  # end of row 2
    source.write_bytes(raw[:cut] + b" caf\xe9" + raw[cut:])  # Latin-1 e-acute at the end of row 2
    code, _, err = hsickit(capsys, monkeypatch, *TRAIN[app](data, data / "run"))
    one_error(code, err, source.name, "row 2", "UTF-8")


@pytest.mark.parametrize("value", ["1", "metal"])
def test_constant_target_is_named_with_the_fix(value, data, capsys, monkeypatch):
    table = pd.read_csv(data / "gaps.csv")
    table["target"] = value
    table.to_csv(data / "gaps.csv", index=False)
    code, _, err = hsickit(capsys, monkeypatch, *materials_train(data, data / "run"))
    line = one_error(code, err, "constant", "'target'")
    assert ("--target-type regression" in line) == (value == "1")
    assert "np.int64" not in line and not (data / "run").exists()


def test_ecg_training_without_some_classes_names_them(tmp_path):
    from hsickit.apps.ecg.api import train_beats
    from hsickit.apps.ecg.synthetic import write_synthetic_records

    records = write_synthetic_records(tmp_path / "r", 2, 20, random_state=0, rates={"S": 0.0, "V": 0.0, "F": 0.0})
    with pytest.raises(HsickitError, match="all of class N; the classes S, V, F are missing"):
        train_beats(records, tmp_path / "run", validation_records="none", channels=(), random_state=0, verbose=0)
    assert not (tmp_path / "run").exists()


def test_header_only_taxonomy(data, capsys, monkeypatch):
    (data / "taxonomy.csv").write_text("species,genus,family\n")
    code, _, err = hsickit(capsys, monkeypatch, *plants_train(data, data / "run"))
    one_error(code, err, "has no rows", "taxonomy.csv")


@pytest.mark.parametrize("marked", [True, False])
def test_ecg_commands_on_another_apps_run_name_it(marked, plants_run, data, capsys, monkeypatch):
    if not marked:
        (plants_run / RUN_MARKER).unlink()  # a run written before runs were marked
    code, _, err = hsickit(capsys, monkeypatch, "ecg", "predict", plants_run, data, "--out", data / "p")
    one_error(code, err, "is a plants run" if marked else "not an ECG run")
    code, _, err = hsickit(capsys, monkeypatch, "materials", "predict", plants_run, data / "gaps.csv", "-o", data / "p.csv")
    if marked:
        one_error(code, err, "is a plants run", "hsickit plants")


@pytest.mark.slow
def test_unmarked_runs_still_load(materials_run, data, capsys, monkeypatch):
    (materials_run / RUN_MARKER).unlink()
    code, _, err = hsickit(capsys, monkeypatch, "materials", "predict", materials_run, data / "gaps.csv",
                           "-o", data / "p.csv", "--quiet")
    assert code == 0, err


@pytest.mark.slow
def test_results_go_only_to_new_or_own_folders(materials_run, data, capsys, monkeypatch):
    mine = data / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    code, _, err = hsickit(capsys, monkeypatch, "materials", "evaluate", materials_run, data / "gaps.csv", "--out", mine)
    one_error(code, err, str(mine))
    assert (mine / "README.md").read_text() == "my notes"
    for _ in range(2):  # an earlier evaluation there is replaced
        code, _, err = hsickit(capsys, monkeypatch, "materials", "evaluate", materials_run, data / "gaps.csv")
        assert code == 0, err
    mark_run(mine, "materials", "train")
    code, _, err = hsickit(capsys, monkeypatch, "materials", "evaluate", materials_run, data / "gaps.csv", "--out", mine)
    one_error(code, err, "materials train")


# --------------------------------------------------------------------------- skops
@pytest.mark.parametrize("make", ["kd_tree", "random_state"])
def test_skops_loads_only_the_types_hsickit_saves(make, tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 2)), np.arange(20) % 2
    obj = (KNeighborsClassifier(algorithm="kd_tree").fit(X, y) if make == "kd_tree"
           else {"state": np.random.RandomState(0), "t": time.struct_time((2026,) * 9)})
    try:
        save_sklearn(tmp_path / "m.skops", obj)
    except Exception:  # skops cannot write this object: the KD-tree case still covers sklearn types
        pytest.skip("skops cannot serialise this object")
    with pytest.raises(HsickitError, match="types hsickit never saves"):
        load_sklearn(tmp_path / "m.skops")


def test_skops_still_loads_hsickit_trees(tmp_path):
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    for est in (ExtraTreesRegressor(n_estimators=3).fit(X, X[:, 0]),
                HistGradientBoostingClassifier(max_iter=3).fit(X, X[:, 0] > 0)):
        save_sklearn(tmp_path / "m.skops", est)
        assert np.allclose(load_sklearn(tmp_path / "m.skops").predict(X), est.predict(X))


@pytest.mark.slow
def test_ecg_predict_keeps_earlier_predictions_without_overwrite(tmp_path, capsys, monkeypatch):
    from hsickit.apps.ecg.api import train_beats
    from hsickit.apps.ecg.synthetic import write_synthetic_records

    records = write_synthetic_records(tmp_path / "r", 2, 20, random_state=0)
    train_beats(records, tmp_path / "run", validation_records="none", channels=(), random_state=0, verbose=0)
    assert json.loads((tmp_path / "run" / RUN_MARKER).read_text())["app"] == "ecg"
    args = ["ecg", "predict", tmp_path / "run", tmp_path / "r" / "s00", "--out", tmp_path / "p", "--quiet"]
    code, _, err = hsickit(capsys, monkeypatch, *args)
    assert code == 0, err
    first = (tmp_path / "p" / "s00_beats.csv").read_text()
    code, _, err = hsickit(capsys, monkeypatch, *args)
    one_error(code, err, "s00_beats.csv", "--overwrite")
    assert (tmp_path / "p" / "s00_beats.csv").read_text() == first
    code, _, err = hsickit(capsys, monkeypatch, *args, "--overwrite")
    assert code == 0, err


def test_edited_materials_feature_list_is_an_error(materials_run, data, capsys, monkeypatch):
    meta = json.loads((materials_run / "model" / "materials.json").read_text())
    meta["feature_mean"] = meta["feature_mean"][:-3]
    (materials_run / "model" / "materials.json").write_text(json.dumps(meta))
    code, _, err = hsickit(capsys, monkeypatch, "materials", "predict", materials_run, data / "gaps.csv",
                           "-o", data / "p.csv")
    one_error(code, err, "materials.json", "restore it")
