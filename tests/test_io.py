"""Run folders, atomic writes and model files."""
import json
import os
import stat

import pytest
import torch

from hsickit import HsickitError
from hsickit.core.files import atomic_write, read_json, write_json
from hsickit.core.report import markdown_table
from hsickit.core.runs import RunFolder, staged_folder
from hsickit.core.serialization import load_model, save_model
from hsickit.core.models import create_model


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(path.parent) == ["a.json"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # honours the umask, not mkstemp's 0600
    with pytest.raises(TypeError):  # fails mid-write: the old file stays whole
        atomic_write(path, object())
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(path.parent) == ["a.json"]


def test_model_round_trip(tmp_path):
    net = create_model("irnet17", in_features=9, out_features=2).eval()
    save_model(net, tmp_path / "m.safetensors", metadata={"note": "x"})
    again, meta = load_model(tmp_path / "m.safetensors", metadata=True)
    x = torch.randn(4, 9)
    torch.testing.assert_close(again.eval()(x), net(x))
    assert meta["note"] == "x" and meta["config"]["architecture"] == "irnet17"


def test_truncated_and_corrupted_files_name_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(create_model("mlp", in_features=3, out_features=2, hidden=(4,)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HsickitError, match=f"{path}.*truncated or corrupted"):
        load_model(path)
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(HsickitError, match="model.safetensors"):
        load_model(tmp_path)
    with pytest.raises(HsickitError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(HsickitError, match="bad.json.*corrupted"):
        read_json(tmp_path / "bad.json")


def test_checkpoint_from_another_architecture(tmp_path):
    from hsickit.core.serialization import load_state_into
    from safetensors.torch import load_file

    save_model(create_model("mlp", in_features=3, out_features=2, hidden=(4,)), tmp_path / "a.safetensors")
    other = create_model("mlp", in_features=3, out_features=2, hidden=(8,))
    with pytest.raises(HsickitError, match="a.safetensors does not match the model architecture"):
        load_state_into(other, load_file(tmp_path / "a.safetensors"), tmp_path / "a.safetensors")


def test_run_folder(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write_config({"lr": 0.1})
    run.write_history([{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4, "val_loss": 0.6}])
    run.write_metrics({"accuracy": 0.75}, split="test", n_samples=8)
    run.write_model_card("A run", {"Data": "toy"}, command="hsickit demo")
    assert run.read_json("config.json")["versions"]["torch"]
    assert (run / "history.csv").read_text().splitlines()[0] == "epoch,train_loss,val_loss"
    assert run.read_json("metrics.json") == {"accuracy": 0.75, "n_samples": 8, "split": "test"}
    card = (run / "README.md").read_text()
    assert "# A run" in card and "hsickit demo" in card and "torch" in card
    with pytest.raises(HsickitError, match="flat"):
        run.write_metrics({"per_class": {"a": 1}}, split="test", n_samples=1)
    run.write_metrics({"ppv": float("nan")}, split="test", n_samples=2, info={"records": "a,b"})
    assert run.read_json("metrics.json") == {"ppv": None, "n_samples": 2, "split": "test", "records": "a,b"}
    assert markdown_table([{"ppv": float("nan"), "se": None}]).splitlines()[-1] == "| n/a | n/a |"


def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with staged_folder(out) as tmp:
            (tmp / "model.bin").write_text("half")
            raise RuntimeError("training failed")
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no folder, no leftovers
    for text in ("first", "second"):  # a run folder is replaced whole, and only with overwrite
        with staged_folder(out, overwrite=True, app="core", command="test") as tmp:
            (tmp / "config.json").write_text(text)
            assert not (out / "config.json").exists() or (out / "config.json").read_text() == "first"
    assert (out / "config.json").read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["run"]
    with pytest.raises(HsickitError, match="holds a finished run; pass --overwrite"):
        with staged_folder(out):
            pass
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # as os.mkdir makes it, not mkdtemp's 0700
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.csv").write_text("x")
    with pytest.raises(HsickitError, match="not empty and holds no hsickit run"):
        with staged_folder(tmp_path / "data", overwrite=True):
            pass
    assert (tmp_path / "data" / "mine.csv").exists()
