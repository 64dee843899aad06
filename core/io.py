"""Files, model serialisation and run folders under the one name they had before they were split.

The code lives in three modules, one idea each: :mod:`hsickit.core.files` (atomic writes, JSON),
:mod:`hsickit.core.serialization` (models, checkpoints, scikit-learn estimators: safetensors,
skops, nothing unpickled) and :mod:`hsickit.core.runs` (run folders, locks, resuming a training);
:func:`markdown_table` is in :mod:`hsickit.core.report`. hsickit imports them from there; this
module keeps ``from hsickit.core.io import ...`` working for code written before.

Examples
--------
>>> from hsickit.core import io, runs
>>> io.RunFolder is runs.RunFolder
True
"""
from __future__ import annotations

from hsickit.core.files import atomic_write, file_digest, jsonable, read_json, write_json
from hsickit.core.report import markdown_table
from hsickit.core.runs import (RUN_FORMAT, RUN_MARKER, TRAINING_MARKER, RunFolder, check_output_file,
                               check_output_folder, check_run_app, evaluation_folder, finish_training_run, fit_or_load,
                               lock_run, mark_run, open_output_folder, read_run_marker, resumable_training, run_lock,
                               staged_folder, start_training_run, unfinished_runs, unlock_run, versions)
from hsickit.core.serialization import (SKLEARN_TYPES, load_checkpoint, load_model, load_sklearn, load_state_into,
                                        save_checkpoint, save_model, save_sklearn, saved_params)

__all__ = ["RUN_FORMAT", "RUN_MARKER", "SKLEARN_TYPES", "TRAINING_MARKER", "RunFolder", "atomic_write",
           "check_output_file", "check_output_folder", "check_run_app", "evaluation_folder", "file_digest",
           "finish_training_run", "fit_or_load", "jsonable", "load_checkpoint", "load_model", "load_sklearn",
           "load_state_into", "lock_run", "mark_run", "markdown_table", "open_output_folder", "read_json",
           "read_run_marker", "resumable_training", "run_lock", "save_checkpoint", "save_model", "save_sklearn",
           "saved_params", "staged_folder", "start_training_run", "unfinished_runs", "unlock_run", "versions",
           "write_json"]
