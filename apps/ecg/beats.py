"""From WFDB records to the multi-resolution beat inputs: :class:`BeatSet` and :func:`load_beats`.

For every beat of every record, a :class:`BeatSet` holds the views the channel networks
see — the beat at full rate, a multi-beat rhythm context at a lower rate, the RR-interval
sequence — plus the hand-crafted features and the AAMI label. Each record is read with
:func:`hsickit.datasets.ecg.read_record`, brought to the model's leads and sampling rate
(a resampled record is reported), band-pass filtered and scaled by its own median R-peak
amplitude. Beat positions come from the record's annotation file, or from an R-peak
detector when it has none (then labels are unknown, ``None``).

Example
-------
>>> from hsickit.apps.ecg.synthetic import write_synthetic_records
>>> import tempfile
>>> d = write_synthetic_records(tempfile.mkdtemp(), n_records=2, duration=20, random_state=0)
>>> bs = load_beats(d, verbose=0)
>>> bs.beat.shape[1:], bs.rhythm.shape[1:], len(bs) == len(bs.y)
((1, 252), (1, 240), True)
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from hsickit.apps.ecg.features import BeatFeaturizer, rr_sequence
from hsickit.apps.ecg.signal import ALIGN_METHODS, RPEAK_METHODS, align_peaks, conform, detect_rpeaks, drop_extra_peaks, resample
from hsickit.core.errors import HsickitError
from hsickit.core.parallel import map_processes
from hsickit.datasets.ecg import find_records, read_beat_table, read_record

__all__ = ["BeatConfig", "BeatSet", "load_beats", "beats_from_record", "summarise_repairs"]


@dataclass
class BeatConfig:
    """How records become beats (saved with a trained model, so prediction does the same)."""

    sampling_rate: float = 360.0
    leads: tuple[str, ...] = ("MLII",)
    filter: str | None = "bandpass"
    before: float = 0.25
    after: float = 0.45
    rhythm_rate: float = 60.0
    rhythm_before: float = 2.5
    rhythm_after: float = 1.5
    rr_context: int = 8
    feature_set: str = "robust"
    second_lead: str | None = "auto"
    annotation: str = "atr"
    detector: str = "gqrs"
    nan_policy: str = "interpolate"
    flat_policy: str = "raise"
    dropouts: str = "mask"
    lead_fallback: str = "first"
    align: str | None = "template"
    drop_extra_peaks: bool = True

    def __post_init__(self):
        for name, value, allowed in (("align", self.align, (*ALIGN_METHODS, None)), ("detector", self.detector, RPEAK_METHODS)):
            if value not in allowed:
                raise HsickitError(f"BeatConfig({name}={value!r}): use one of {', '.join(map(repr, allowed))}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["leads"] = list(self.leads)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BeatConfig":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "leads" in d:
            d["leads"] = tuple(d["leads"])
        d.setdefault("align", None)  # models saved before alignment cut beats at the marks as given
        d.setdefault("drop_extra_peaks", False)  # ... and kept every detected peak
        return cls(**d)


@dataclass
class BeatSet:
    """Per-beat arrays of the multi-resolution views (first axis = beat)."""

    beat: np.ndarray  # (n, leads, time) full rate
    rhythm: np.ndarray  # (n, leads, time) at rhythm_rate
    rr: np.ndarray  # (n, 2 * rr_context)
    features: np.ndarray  # (n, n_features)
    y: np.ndarray  # (n,) AAMI class or None
    record: np.ndarray  # (n,) record name
    sample: np.ndarray  # (n,) R-peak sample in the record's own sampling rate
    feature_labels: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labelled(self) -> bool:
        return bool(len(self)) and all(v is not None for v in self.y)

    def subset(self, index) -> "BeatSet":
        """Beats selected by a boolean mask or an index array."""
        take = lambda a: a[index]  # noqa: E731
        return BeatSet(take(self.beat), take(self.rhythm), take(self.rr), take(self.features), take(self.y),
                       take(self.record), take(self.sample), list(self.feature_labels), list(self.repairs))

    def records(self, names: Sequence[str]) -> "BeatSet":
        """Beats of the given records."""
        return self.subset(np.isin(self.record, [str(n) for n in names]))

    @staticmethod
    def concat(sets: Sequence["BeatSet"]) -> "BeatSet":
        if not sets:
            raise HsickitError("no beats to concatenate: the record selection is empty")
        cat = lambda name: np.concatenate([getattr(s, name) for s in sets])  # noqa: E731
        return BeatSet(cat("beat"), cat("rhythm"), cat("rr"), cat("features"), cat("y"), cat("record"), cat("sample"),
                       list(sets[0].feature_labels), [r for s in sets for r in s.repairs])

    def table(self) -> pd.DataFrame:
        """The beat table: record, sample and label of every beat."""
        return pd.DataFrame({"record": self.record, "sample": self.sample, "aami": self.y})


def beats_from_record(path: str | os.PathLike, config: BeatConfig | None = None, *, annotated: bool | None = None,
                      name: str | None = None) -> BeatSet:
    """All beats of one record. ``annotated=None`` uses the annotation file when it exists; ``name``
    is the record's id in the beat set (default: its file name).

    The model's leads are taken by name or number; a record without a named lead gives its
    first lead instead (``config.lead_fallback="first"``, reported in ``repairs``). Beat
    annotations outside the signal are left out and reported. With ``config.align`` (default
    "template") the windows, features and RR intervals are cut at the marks moved to the same
    point of every QRS (:func:`~hsickit.apps.ecg.signal.align_peaks`); ``sample`` stays the
    annotation's. A record without annotations gets its beats from ``config.detector``, less the
    small peaks that split one RR interval (``config.drop_extra_peaks``,
    :func:`~hsickit.apps.ecg.signal.drop_extra_peaks`).
    """
    config = config or BeatConfig()
    path = str(path)
    name = name or Path(path).name
    da = read_record(path, nan_policy=config.nan_policy, flat_policy=config.flat_policy, dropouts=config.dropouts)
    fs_orig = float(da.attrs["fs"])
    sig = conform(da, config.sampling_rate, leads=config.leads, filter=config.filter, lead_fallback=config.lead_fallback)
    fs = config.sampling_rate
    x = sig.values  # (lead, time)
    has_ann = Path(f"{path}.{config.annotation}").exists()
    if annotated is None:
        annotated = has_ann
    if annotated:
        table = read_beat_table(path, config.annotation)
        samples_orig = table["sample"].to_numpy()
        labels = table["aami"].to_numpy(dtype=object)
        inside = (samples_orig >= 0) & (samples_orig < da.sizes["time"])
        if not inside.all():
            outside = samples_orig[~inside]
            sig.attrs["repairs"] = [*sig.attrs.get("repairs", []), (
                f"{int((~inside).sum())} beat annotation(s) outside the signal's {da.sizes['time']} samples "
                f"(at sample {', '.join(map(str, outside[:5].tolist()))}{', ...' if len(outside) > 5 else ''}) left out; "
                f"check {Path(path).name}.{config.annotation} against the header's sample count")]
            samples_orig, labels = samples_orig[inside], labels[inside]
    else:
        peaks = detect_rpeaks(x[0], fs, method=config.detector)
        if config.drop_extra_peaks:
            peaks = drop_extra_peaks(x[0], peaks, fs)
        samples_orig = np.round(peaks * fs_orig / fs).astype(np.int64)
        labels = np.full(len(peaks), None, dtype=object)
    if len(samples_orig) < 3:
        raise HsickitError(f"record {name}: only {len(samples_orig)} beats found; a record needs at least 3 beats")
    peaks = np.clip(np.round(samples_orig * fs / fs_orig).astype(np.int64), 0, x.shape[1] - 1)
    if config.align:
        peaks = align_peaks(x[0], peaks, fs, method=config.align)
    scale = float(np.median(np.abs(x[:, peaks]), axis=1).max()) + 1e-6
    x = x / scale
    repairs = [f"{name}: {r}" for r in sig.attrs.get("repairs", [])]
    second, second_name = _second_lead(da, sig, config, repairs, name)
    both = x if second is None else np.vstack([x, second / (np.median(np.abs(second[peaks])) + 1e-6)])
    b, a = int(round(config.before * fs)), int(round(config.after * fs))
    padded = np.pad(both, ((0, 0), (b, a)), mode="edge")
    windows = padded[:, peaks[:, None] + np.arange(a + b)[None, :]].transpose(1, 0, 2)  # (n, lead, time)
    beat = windows[:, :len(x)]
    low = resample(x, fs, config.rhythm_rate)
    rb, ra = int(round(config.rhythm_before * config.rhythm_rate)), int(round(config.rhythm_after * config.rhythm_rate))
    lp = np.pad(low, ((0, 0), (rb, ra)), mode="edge")
    lpk = np.clip(np.round(peaks * config.rhythm_rate / fs).astype(np.int64), 0, low.shape[1] - 1)
    rhythm = lp[:, lpk[:, None] + np.arange(ra + rb)[None, :]].transpose(1, 0, 2)
    featurizer = BeatFeaturizer(sampling_rate=fs, before=config.before, after=config.after, feature_set=config.feature_set)
    feats = featurizer.featurize(x[0], peaks, beats=windows[:, [0, -1]] if second is not None else beat[:, :1])
    rr = rr_sequence(peaks, fs, config.rr_context)
    beats = BeatSet(beat.astype(np.float32), rhythm.astype(np.float32), rr, feats, labels,
                    np.full(len(peaks), name, dtype=object), samples_orig.astype(np.int64),
                    featurizer.feature_labels(), repairs)
    used = {str(n) for n in sig.coords["lead"].values} | {second_name}
    gone = _in_dropouts(peaks / fs, [(s, e) for lead, s, e in da.attrs["dropouts"] if lead in used], config)
    if gone.all():
        raise HsickitError(f"record {name}: every beat lies in a signal dropout {da.attrs['dropouts']}; the record has no usable beats")
    if gone.any():
        repairs.append(f"{name}: {int(gone.sum())} beats in signal dropouts left out")
        beats = beats.subset(~gone)
    return beats


def _in_dropouts(times: np.ndarray, spans, config: BeatConfig) -> np.ndarray:
    """Beats (R-peak times in s) whose window overlaps one of the ``(start_s, end_s)`` spans."""
    gone = np.zeros(len(times), dtype=bool)
    for start, end in spans:
        gone |= (times + config.after > start) & (times - config.before < end)
    return gone


def _second_lead(record, model_leads, config: BeatConfig, repairs: list[str], name: str) -> tuple[np.ndarray | None, str | None]:
    """The filtered ``(time,)`` lead whose morphology gives the ``lead2_*`` features, and its name.

    ``config.second_lead``: "auto" takes the model's second lead, else the record's first lead
    that is not a model lead (a record with one lead repeats the first, reported in
    ``repairs``); a lead name takes that lead; None repeats the first lead.
    """
    if config.second_lead is None:
        return None, None
    if config.second_lead == "auto":
        if model_leads.sizes["lead"] > 1:
            return model_leads.values[1], str(model_leads.coords["lead"].values[1])
        used = {str(n) for n in model_leads.coords["lead"].values}
        others = [str(n) for n in record.coords["lead"].values if str(n) not in used]
        if not others:
            repairs.append(f"{name}: one lead only; the second-lead features repeat the first lead")
            return None, None
        lead = others[0]
    else:
        lead = config.second_lead
    second = conform(record, config.sampling_rate, leads=[lead], filter=config.filter)  # a named second lead must be there
    return second.values[0], str(second.coords["lead"].values[0])


def load_beats(
    directory: str | os.PathLike | Sequence[str | os.PathLike],
    records: Sequence[str] | str | None = None,
    config: BeatConfig | None = None,
    *,
    annotated: bool | None = None,
    n_jobs: int | None = None,
    verbose: int = 1,
) -> BeatSet:
    """Beats of the records in one folder or several (``directory``: a folder, ``"DIR1,DIR2"`` or a
    list); ``records`` selects, as ``--records-list`` does (:func:`~hsickit.datasets.ecg.find_records`).

    Records may differ in sampling rate and lead names: each is brought to ``config``'s rate and
    leads. Repairs (resampling, a lead taken in place of the model's, bridged gaps, beats left
    out) are in ``repairs`` and, with ``verbose``, printed once per kind with the records it
    concerns. ``n_jobs``: processes reading the records (:func:`hsickit.core.parallel.resolve_jobs`;
    None: the ``hsickit`` command's ``--threads``, else 1).
    """
    paths = find_records(directory, records)
    sets = map_processes(partial(_beats_of, config=config, annotated=annotated), paths.items(), n_jobs, desc="records",
                         verbose=verbose)
    beats = BeatSet.concat(sets)
    if verbose:
        for line in summarise_repairs(beats.repairs):
            print(f"repaired: {line}")
    return beats


def _beats_of(item: tuple[str, str], config: BeatConfig | None, annotated: bool | None) -> BeatSet:
    rid, path = item
    return beats_from_record(path, config, annotated=annotated, name=rid)


def summarise_repairs(repairs: Sequence[str]) -> list[str]:
    """``"record: what"`` repairs grouped by what was done, naming the records once per kind.

    >>> summarise_repairs(["800: resampled from 128 Hz", "801: resampled from 128 Hz", "101: 2 beats left out"])
    ['2 records (800, 801): resampled from 128 Hz', '101: 2 beats left out']
    """
    groups: dict[str, list[str]] = {}
    for line in repairs:
        record, _, what = line.partition(": ")
        groups.setdefault(what or record, []).append(record if what else "")
    out = []
    for what, records in groups.items():
        records = [r for r in records if r]
        if len(records) > 1:
            shown = ", ".join(records[:8]) + (f", ... ({len(records) - 8} more)" if len(records) > 8 else "")
            out.append(f"{len(records)} records ({shown}): {what}")
        else:
            out.append(f"{records[0]}: {what}" if records else what)
    return out
