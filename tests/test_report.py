"""The table commands print for people (core/report.py)."""
import json

from hsickit.core.report import metrics_table, print_metrics


def test_table_rows_units_and_intervals():
    m = {"accuracy": 0.912345, "accuracy_low": 0.8812, "accuracy_high": 0.9433, "sensitivity_S": float("nan"),
         "ppv_S": None, "n_samples": 812, "split": "validation"}
    lines = metrics_table(m, ["accuracy", "sensitivity_S", "ppv_S", "f1_S", "n_samples"], {"n_samples": "beats"}).splitlines()
    assert lines[0].split() == ["metric", "value", "unit", "95", "%", "interval"]
    assert lines[1].split() == ["accuracy", "0.9123", "[0.881,", "0.943]"]
    assert lines[2].split() == ["sensitivity_S", "n/a"] and lines[3].split() == ["ppv_S", "n/a"]
    assert lines[4].split() == ["n_samples", "812", "beats"] and len(lines) == 5  # f1_S is not there: left out
    default = metrics_table(m)  # every number, bounds in their row, no text fields
    assert "accuracy_low" not in default and "split" not in default and "sensitivity_S" in default


def test_no_empty_columns():
    assert metrics_table({"mae": 0.5, "r2": 0.75}).splitlines() == ["metric  value", "mae     0.5", "r2      0.75"]


def test_print_metrics_json_or_table(capsys):
    m = {"mae": 0.62871, "rmse": float("nan"), "n_samples": 20}
    print_metrics(m, units={"mae": "eV"}, written="RUN/eval-test")
    out = capsys.readouterr().out
    assert "0.6287  eV" in out and out.rstrip().endswith("written: RUN/eval-test")
    print_metrics(m, written="RUN/eval-test", as_json=True)
    assert json.loads(capsys.readouterr().out) == {"mae": 0.62871, "rmse": None, "n_samples": 20}
