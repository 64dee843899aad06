"""ECG arrhythmia classification from a multi-resolution representation (Wang et al. 2020).

Python API:

- records -> beats: :func:`load_beats`, :class:`BeatConfig`, :class:`BeatSet`
  (reading itself is :mod:`hsickit.datasets.ecg`);
- signal functions: :func:`resample`, :func:`bandpass`, :func:`remove_baseline`,
  :func:`detect_rpeaks`, :func:`select_leads`;
- features: :class:`BeatFeaturizer`, :func:`rr_features`, :func:`qrs_features`,
  :func:`template_features`, :func:`neighbour_features`, :func:`wavelet_coefficients`, :func:`hrv_features`;
- median-beat measurements: :func:`qrs_axis`, :func:`qrs_duration`, :func:`record_measurements`;
- models: :class:`ChannelNetwork` (beat, rhythm, wavelet, rr), :class:`MultiResolutionClassifier`
  (fusion + downstream classifier), :class:`VentricularFirst` (its default two-stage
  downstream), :class:`RecordClassifier` (multi-label records);
- metrics: :func:`beat_metrics`, :func:`record_metrics`, :func:`metrics_dataset`;
- pipelines: :func:`train_beats`, :func:`evaluate_beats`, :func:`predict_beats`, :func:`finetune_beats`; for record
  models :func:`train_records`, :func:`evaluate_records`, :func:`predict_records`, :func:`finetune_records`;
  for either kind, as ``hsickit ecg`` runs them: :mod:`hsickit.apps.ecg.pipelines`.

Example
-------
>>> from hsickit.apps.ecg import write_synthetic_records, load_beats, MultiResolutionClassifier, beat_metrics
>>> import tempfile
>>> bs = load_beats(write_synthetic_records(tempfile.mkdtemp(), 3, 30, random_state=0), verbose=0)
>>> clf = MultiResolutionClassifier(channels=("rr",), channel_epochs=2, epochs=3, random_state=0)
>>> m = beat_metrics(bs.y, clf.fit(bs).predict(bs))
>>> 0.0 <= m["accuracy"] <= 1.0
True
"""
from hsickit.core.lazy import lazy_api

__all__ = [
    "BeatConfig", "BeatSet", "beats_from_record", "load_beats",
    "resample", "bandpass", "remove_baseline", "detect_rpeaks", "select_leads", "conform",
    "BeatFeaturizer", "rr_features", "rr_sequence", "qrs_features", "template_features", "neighbour_features",
    "wavelet_coefficients", "hrv_features", "qrs_axis", "qrs_duration", "record_measurements",
    "CHANNELS", "ChannelNetwork", "channel_input", "MultiResolutionClassifier", "VentricularFirst", "RecordClassifier",
    "beat_metrics", "beat_confusion", "record_metrics", "metrics_dataset",
    "train_beats", "evaluate_beats", "predict_beats", "finetune_beats", "load_run",
    "train_records", "evaluate_records", "predict_records", "finetune_records", "load_record_set", "write_synthetic_records",
]


def _api() -> dict:
    # imported on first use, so that `hsickit ecg --help` (which imports this package) does not import torch
    from hsickit.apps.ecg.api import evaluate_beats, finetune_beats, load_run, predict_beats, train_beats
    from hsickit.apps.ecg.beats import BeatConfig, BeatSet, beats_from_record, load_beats
    from hsickit.apps.ecg.channels import CHANNELS, ChannelNetwork, channel_input
    from hsickit.apps.ecg.features import (BeatFeaturizer, hrv_features, neighbour_features, qrs_features, rr_features, rr_sequence,
                                          template_features, wavelet_coefficients)
    from hsickit.apps.ecg.fusion import MultiResolutionClassifier
    from hsickit.apps.ecg.measurements import qrs_axis, qrs_duration, record_measurements
    from hsickit.apps.ecg.metrics import beat_confusion, beat_metrics, metrics_dataset, record_metrics
    from hsickit.apps.ecg.records import (RecordClassifier, evaluate_records, finetune_records, load_record_set, predict_records,
                                         train_records)
    from hsickit.apps.ecg.signal import bandpass, conform, detect_rpeaks, remove_baseline, resample, select_leads
    from hsickit.apps.ecg.synthetic import write_synthetic_records
    from hsickit.apps.ecg.two_stage import VentricularFirst
    return locals()


__getattr__, __dir__ = lazy_api(__name__, __all__, _api)
