"""Per-sample representation metrics: pure maths plus thin Lightning callbacks.

``per_sample``        per-sample files ``per_sample/<stage>.npz``: paths, the rank-0 write, the base callback
``arrays``            de-duplicate / merge / read / write the per-sample ``.npz`` arrays
``collector``         :class:`PerSampleCollector`: per batch on each rank, then gathered across ranks
``logs``              epoch scalars and W&B media (no-ops without W&B)
``predictions``       :class:`PerSamplePredictions` (index, label, pred, logits; confusion matrix)
``confusion``         confusion matrix and per-class accuracy
``q_score``           :func:`q_score` and :class:`QScore`
``prediction_depth``  :func:`knn_predict`, :func:`prediction_depth` (pure; the probes' forward pass in
                      ``probe_extraction``) and :class:`PredictionDepth` (``prediction_depth_callback``,
                      its progress display in ``stage_progress``)
``umap``              :class:`UMAPPlot`

The names below are imported on first use (:func:`common.lazy.lazy_exports`).
"""

from __future__ import annotations

from common.lazy import lazy_exports

_PER_SAMPLE = "callbacks.metrics.per_sample"
_ARRAYS = "callbacks.metrics.arrays"
_CONFUSION = "callbacks.metrics.confusion"
_DEPTH = "callbacks.metrics.prediction_depth"
_Q = "callbacks.metrics.q_score"
_EXPORTS = {
    "PerSampleCollector": "callbacks.metrics.collector",
    "dedup_sort": _ARRAYS,
    "merge_into_npz": _ARRAYS,
    "per_sample_path": _PER_SAMPLE,
    "read_npz": _ARRAYS,
    "PerSamplePredictions": "callbacks.metrics.predictions",
    "confusion_matrix": _CONFUSION,
    "per_class_accuracy": _CONFUSION,
    "QScore": _Q,
    "q_score": _Q,
    "PredictionDepth": "callbacks.metrics.prediction_depth_callback",
    "knn_predict": _DEPTH,
    "prediction_depth": _DEPTH,
    "UMAPPlot": "callbacks.metrics.umap",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
