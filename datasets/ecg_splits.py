"""Standard record splits of MIT-BIH: de Chazal's inter-patient DS1/DS2, a validation set
inside DS1, and patient-wise k-fold.

Beats of one patient are strongly correlated, so every split here is by record (patient),
never by beat. Records 201 and 202 come from the same subject and are kept in one group.

Example
-------
>>> split = inter_patient_split()
>>> len(split.train), len(split.validation), len(split.test)
(17, 5, 22)
>>> [len(test) for _, test in patient_kfold(DS1, n_splits=2, random_state=0)]
[11, 11]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from sklearn.model_selection import GroupKFold

from hsickit.core.errors import HsickitError

__all__ = ["DS1", "DS2", "PACED", "DS1_VALIDATION", "RecordSplit", "inter_patient_split", "patient_kfold", "subject_of"]

#: de Chazal et al. 2004 training half (22 records).
DS1: tuple[str, ...] = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
                        "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
#: de Chazal et al. 2004 test half (22 records): never used for model selection.
DS2: tuple[str, ...] = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
                        "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")
#: Paced records, excluded from both halves (AAMI).
PACED: tuple[str, ...] = ("102", "104", "107", "217")
#: Suggested validation records inside DS1 (N 9,947 · S 237 · V 957 · F 6).
DS1_VALIDATION: tuple[str, ...] = ("106", "118", "124", "207", "215")

_SAME_SUBJECT = {"202": "201"}


def subject_of(record: str) -> str:
    """The subject (patient) a MIT-BIH record belongs to (201 and 202 are one subject)."""
    return _SAME_SUBJECT.get(str(record), str(record))


@dataclass(frozen=True)
class RecordSplit:
    """Record names of a train / validation / test split."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]


def inter_patient_split(validation: Sequence[str] = DS1_VALIDATION) -> RecordSplit:
    """de Chazal's inter-patient split with ``validation`` records taken out of DS1."""
    validation = tuple(str(r) for r in validation)
    unknown = [r for r in validation if r not in DS1]
    if unknown:
        raise HsickitError(f"validation record(s) {', '.join(unknown)} are not in DS1; choose validation records from DS1 only")
    return RecordSplit(tuple(r for r in DS1 if r not in validation), validation, DS2)


def patient_kfold(
    records: Sequence[str], n_splits: int = 5, *, random_state: int | None = 0
) -> Iterator[tuple[list[str], list[str]]]:
    """Yield ``(train_records, test_records)`` for patient-wise k-fold over ``records``.

    Uses :class:`sklearn.model_selection.GroupKFold` (shuffled groups with ``random_state``);
    records of the same subject stay in one fold.
    """
    records = [str(r) for r in records]
    groups = np.array([subject_of(r) for r in records])
    if len(set(groups)) < n_splits:
        raise HsickitError(f"{len(set(groups))} patients cannot make {n_splits} folds; lower n_splits")
    kfold = GroupKFold(n_splits=n_splits, shuffle=random_state is not None, random_state=random_state)
    for tr, te in kfold.split(records, groups=groups):
        yield [records[i] for i in tr], [records[i] for i in te]
