"""The streaming confusion matrix and its metrics against plain numpy, computed here.

The reference is one np.bincount over every non-ignored pixel of all batches, and IoU from
its diagonal: nothing from deeplab.evaluation.metrics is used to build the expected values.
"""

import numpy as np
import pytest

from deeplab.evaluation import metrics


def _numpy_confusion(labels, preds, num_classes, ignore_label):
  keep = labels != ignore_label
  pairs = labels[keep].astype(np.int64) * num_classes + preds[keep]
  return np.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _batches(seed, num_classes, ignore_label):
  """Batches of different shapes; skewed so that truth and prediction differ in distribution
  (a transposed matrix cannot equal the right one) and with ignored pixels in each."""
  rng = np.random.RandomState(seed)
  out = []
  for shape in ((2, 7, 9), (1, 13, 5), (3, 4, 11)):
    labels = np.minimum(rng.geometric(0.45, size=shape) - 1, num_classes - 1)
    preds = rng.randint(0, num_classes, size=shape)
    labels[rng.rand(*shape) < 0.15] = ignore_label
    out.append((labels.astype(np.uint8), preds.astype(np.int64)))
  return out


@pytest.mark.parametrize("num_classes,ignore_label", [(5, 255), (6, 0)])
def test_streaming_matrix_equals_a_numpy_bincount(num_classes, ignore_label):
  batches = _batches(1, num_classes, ignore_label)
  stream = metrics.StreamingConfusionMatrix(num_classes, ignore_label)
  for labels, preds in batches:
    stream.update(labels, preds)
  all_labels = np.concatenate([l.ravel() for l, _ in batches])
  all_preds = np.concatenate([p.ravel() for _, p in batches])
  expected = _numpy_confusion(all_labels, all_preds, num_classes, ignore_label)
  assert not np.array_equal(expected, expected.T)
  np.testing.assert_array_equal(stream.matrix, expected)
  assert stream.matrix.sum() == np.count_nonzero(all_labels != ignore_label)


def test_metrics_equal_numpy_iou():
  labels, preds = zip(*_batches(2, 5, 255))
  labels = np.concatenate([l.ravel() for l in labels])
  preds = np.concatenate([p.ravel() for p in preds])
  preds[labels == 4] = 3  # class 4 in truth, never predicted: IoU 0
  stream = metrics.StreamingConfusionMatrix(6, 255)  # class 5: absent from both
  stream.update(labels, preds)
  m = _numpy_confusion(labels, preds, 6, 255)
  tp, truth, predicted = np.diag(m), m.sum(1), m.sum(0)
  union = truth + predicted - tp
  with np.errstate(invalid="ignore", divide="ignore"):
    iou = tp / union
  r = stream.result()
  assert r["per_class_iou"][:5] == pytest.approx(list(iou[:5])) and r["per_class_iou"][4] == 0
  assert r["per_class_iou"][5] is None and r["absent_classes"] == ["class_5"]
  assert r["miou"] == pytest.approx(np.nanmean(iou))
  assert r["pixel_accuracy"] == pytest.approx(tp.sum() / m.sum())
