"""Per-sample representation metrics: pure maths plus thin Lightning callbacks.

``per_sample``        gather / de-duplicate / merge per-sample arrays into ``per_sample/<stage>.npz``
``predictions``       :class:`PerSamplePredictions` (index, label, pred, logits; confusion matrix)
``confusion``         confusion matrix and per-class accuracy
``q_score``           :func:`q_score` and :class:`QScore`
``prediction_depth``  :func:`knn_predict`, :func:`prediction_depth` and :class:`PredictionDepth`
``umap``              :class:`UMAPPlot`

The names below are imported on first use (:func:`common.lazy.lazy_exports`).
"""

from __future__ import annotations

from common.lazy import lazy_exports

_PER_SAMPLE = "callbacks.metrics.per_sample"
_CONFUSION = "callbacks.metrics.confusion"
_DEPTH = "callbacks.metrics.prediction_depth"
_Q = "callbacks.metrics.q_score"
_EXPORTS = {
    "PerSampleCollector": _PER_SAMPLE,
    "dedup_sort": _PER_SAMPLE,
    "merge_into_npz": _PER_SAMPLE,
    "per_sample_path": _PER_SAMPLE,
    "read_npz": _PER_SAMPLE,
    "PerSamplePredictions": "callbacks.metrics.predictions",
    "confusion_matrix": _CONFUSION,
    "per_class_accuracy": _CONFUSION,
    "QScore": _Q,
    "q_score": _Q,
    "PredictionDepth": _DEPTH,
    "knn_predict": _DEPTH,
    "prediction_depth": _DEPTH,
    "UMAPPlot": "callbacks.metrics.umap",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
