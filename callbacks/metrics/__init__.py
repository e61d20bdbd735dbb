"""Per-sample representation metrics: pure maths plus thin Lightning callbacks.

``per_sample``        gather / de-duplicate / merge per-sample arrays into ``per_sample/<stage>.npz``
``predictions``       :class:`PerSamplePredictions` (index, label, pred, logits; confusion matrix)
``confusion``         confusion matrix and per-class accuracy
``q_score``           :func:`q_score` and :class:`QScore`
``prediction_depth``  :func:`knn_predict`, :func:`prediction_depth` and :class:`PredictionDepth`
``umap``              :class:`UMAPPlot`
"""

from callbacks.metrics.confusion import confusion_matrix, per_class_accuracy
from callbacks.metrics.per_sample import PerSampleCollector, dedup_sort, merge_into_npz, per_sample_path, read_npz
from callbacks.metrics.prediction_depth import PredictionDepth, knn_predict, prediction_depth
from callbacks.metrics.predictions import PerSamplePredictions
from callbacks.metrics.q_score import QScore, q_score
from callbacks.metrics.umap import UMAPPlot

__all__ = [
    "PerSampleCollector",
    "dedup_sort",
    "merge_into_npz",
    "per_sample_path",
    "read_npz",
    "PerSamplePredictions",
    "confusion_matrix",
    "per_class_accuracy",
    "QScore",
    "q_score",
    "PredictionDepth",
    "knn_predict",
    "prediction_depth",
    "UMAPPlot",
]
