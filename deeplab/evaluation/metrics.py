"""Segmentation metrics from a streaming confusion matrix (pure numpy).

Rows are ground truth, columns are predictions. Ignored pixels never enter the matrix.
Per-class IoU = TP / (TP + FP + FN); a class absent from both truth and prediction has no
IoU (None), is reported as absent and is left out of the mean, as tf.metrics.mean_iou does.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from deeplab.errors import UserInputError

_CHUNK_PIXELS = 1 << 20  # pixels per confusion-matrix update step


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                     ignore_label: Optional[int] = 255) -> np.ndarray:
  """Counts (truth, prediction) pairs over all non-ignored pixels; int64 [C, C].

  Raises:
    UserInputError: a label outside [0, num_classes) that is not the ignore label (usually a
      colour-coded mask or a wrong num_classes).
  """
  labels = np.asarray(labels).reshape(-1)
  predictions = np.asarray(predictions).reshape(-1)
  if labels.shape != predictions.shape:
    raise ValueError(f"labels and predictions differ in size: {labels.size} vs {predictions.size}")
  # In chunks: the int64 temporaries of a 12-megapixel photo would take ~200 MB at once.
  matrix = np.zeros((num_classes, num_classes), np.int64)
  for start in range(0, labels.size, _CHUNK_PIXELS):
    end = start + _CHUNK_PIXELS
    matrix += _confusion_chunk(labels[start:end], predictions[start:end], num_classes,
                               ignore_label)
  return matrix


def _confusion_chunk(labels, predictions, num_classes, ignore_label) -> np.ndarray:
  c2 = num_classes * num_classes
  # Fast path (no boolean compaction): ignored pixels go to an extra bin that is dropped.
  valid = labels != ignore_label if ignore_label is not None else np.ones(labels.shape, bool)
  try:
    index = labels.astype(np.int64, copy=False) * num_classes + predictions
    counts = np.bincount(np.where(valid, index, c2), minlength=c2 + 1)
  except ValueError:  # a negative value: let the checks below name it
    counts = np.zeros(0, np.int64)
  if counts.size == c2 + 1 and counts[:c2].sum() == np.count_nonzero(valid):
    return counts[:c2].reshape(num_classes, num_classes)
  return _checked_confusion_matrix(labels[valid].astype(np.int64),
                                   predictions[valid].astype(np.int64), num_classes, ignore_label)


def _checked_confusion_matrix(labels, predictions, num_classes, ignore_label):
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    bad = int(labels[(labels < 0) | (labels >= num_classes)][0])
    raise UserInputError(
        f"ground-truth label value {bad} is outside 0..{num_classes - 1} and is not the "
        f"ignore label {ignore_label}; fix the masks (class indices, not colours) or the "
        "dataset's num_classes")
  if predictions.size and (predictions.min() < 0 or predictions.max() >= num_classes):
    raise ValueError(f"prediction value outside 0..{num_classes - 1}")
  flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
  return flat.reshape(num_classes, num_classes)


class StreamingConfusionMatrix:
  """Accumulates a confusion matrix batch by batch over a whole split."""

  def __init__(self, num_classes: int, ignore_label: Optional[int] = 255):
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

  def update(self, labels: np.ndarray, predictions: np.ndarray) -> None:
    self.matrix += confusion_matrix(labels, predictions, self.num_classes, self.ignore_label)

  def result(self, class_names: Optional[Sequence[str]] = None) -> dict:
    return compute_metrics(self.matrix, class_names)


def _ratio(num: float, den: float) -> Optional[float]:
  return float(num) / float(den) if den > 0 else None


def _mean(values) -> Optional[float]:
  present = [v for v in values if v is not None]
  return float(np.mean(present)) if present else None


def compute_metrics(matrix: np.ndarray, class_names: Optional[Sequence[str]] = None) -> dict:
  """mIoU, per-class IoU, pixel accuracy and mean class accuracy from a confusion matrix.

  Args:
    matrix: int [C, C], rows = truth, columns = prediction.
    class_names: optional names, one per class (default "class_<c>").

  Returns:
    A JSON-ready dict. Lists are indexed by class; None marks a class without a value
    (IoU: absent from truth and prediction; accuracy: absent from truth).
  """
  m = np.asarray(matrix, dtype=np.int64)
  c = m.shape[0]
  names = list(class_names) if class_names else [f"class_{i}" for i in range(c)]
  if len(names) != c:
    raise ValueError(f"{len(names)} class names for a {c}-class confusion matrix")
  tp = np.diag(m)
  gt = m.sum(axis=1)
  pred = m.sum(axis=0)
  union = gt + pred - tp
  iou = [_ratio(tp[i], union[i]) for i in range(c)]
  acc = [_ratio(tp[i], gt[i]) for i in range(c)]
  total = int(m.sum())
  return {
      "miou": _mean(iou),
      "pixel_accuracy": _ratio(tp.sum(), total),
      "mean_class_accuracy": _mean(acc),
      "per_class_iou": iou,
      "per_class_accuracy": acc,
      "class_names": names,
      "absent_classes": [names[i] for i in range(c) if iou[i] is None],
      "num_present_classes": sum(v is not None for v in iou),
      "ground_truth_pixels": [int(v) for v in gt],
      "predicted_pixels": [int(v) for v in pred],
      "evaluated_pixels": total,
      "confusion_matrix": m.tolist(),
  }


def tensorboard_scalars(metrics: dict, tag: str) -> dict:
  """The original eval.py tags: eval/<tag>_overall and eval/<tag>_class_<c> (absent skipped)."""
  out = {}
  if metrics["miou"] is not None:
    out[f"eval/{tag}_overall"] = metrics["miou"]
  for i, v in enumerate(metrics["per_class_iou"]):
    if v is not None and not math.isnan(v):
      out[f"eval/{tag}_class_{i}"] = v
  return out


def metric_tag(eval_scales: Sequence[float], add_flipped_images: bool) -> str:
  """'miou_1.0', 'miou_0.5_1.0_flipped' … as the original eval.py builds it."""
  tag = "miou"
  for s in eval_scales:
    tag += "_" + str(float(s))
  if add_flipped_images:
    tag += "_flipped"
  return tag
