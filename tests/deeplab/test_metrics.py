"""Confusion-matrix metrics against hand-computed values (ignored pixels, absent classes)."""

import math

import numpy as np
import pytest

from deeplab.evaluation import metrics
from deeplab.errors import UserInputError


def test_confusion_matrix_excludes_ignored_pixels():
  labels = np.array([[0, 0, 1, 255], [2, 2, 255, 1]])
  preds = np.array([[0, 1, 1, 2], [2, 0, 0, 1]])
  m = metrics.confusion_matrix(labels, preds, num_classes=4, ignore_label=255)
  # rows = truth, columns = prediction; the two 255 pixels are dropped whatever was predicted.
  expected = np.array([[1, 1, 0, 0],
                       [0, 2, 0, 0],
                       [1, 0, 1, 0],
                       [0, 0, 0, 0]])
  np.testing.assert_array_equal(m, expected)


def test_metrics_hand_computed_with_absent_class():
  # Class 3 never occurs in truth or prediction: absent (None), not 0, and not in the mean.
  m = np.array([[1, 1, 0, 0],
                [0, 2, 0, 0],
                [1, 0, 1, 0],
                [0, 0, 0, 0]])
  r = metrics.compute_metrics(m, ["bg", "a", "b", "c"])
  # IoU = TP / (TP + FP + FN): bg 1/(1+1+1), a 2/(2+1+0), b 1/(1+0+1).
  assert r["per_class_iou"][:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
  assert r["per_class_iou"][3] is None
  assert r["absent_classes"] == ["c"]
  assert r["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
  assert r["pixel_accuracy"] == pytest.approx(4 / 6)
  # Class accuracy = TP / truth pixels: bg 1/2, a 2/2, b 1/2.
  assert r["per_class_accuracy"][:3] == pytest.approx([0.5, 1.0, 0.5])
  assert r["per_class_accuracy"][3] is None
  assert r["mean_class_accuracy"] == pytest.approx(2 / 3)
  assert r["ground_truth_pixels"] == [2, 2, 2, 0]
  assert r["predicted_pixels"] == [2, 3, 1, 0]


def test_predicted_but_not_in_truth_is_zero_not_absent():
  m = np.array([[3, 1], [0, 0]])  # class 1 predicted once, never true
  r = metrics.compute_metrics(m)
  assert r["per_class_iou"] == [pytest.approx(0.75), 0.0]
  assert r["per_class_accuracy"][1] is None
  assert r["miou"] == pytest.approx(0.375)
  assert r["class_names"] == ["class_0", "class_1"]


def test_streaming_equals_one_shot():
  rng = np.random.RandomState(0)
  labels = rng.randint(0, 5, size=(6, 9, 11))
  labels[rng.rand(*labels.shape) < 0.1] = 255
  preds = rng.randint(0, 5, size=labels.shape)
  stream = metrics.StreamingConfusionMatrix(5)
  for i in range(6):
    stream.update(labels[i], preds[i])
  np.testing.assert_array_equal(stream.matrix, metrics.confusion_matrix(labels, preds, 5))
  assert stream.matrix.sum() == int((labels != 255).sum())


def test_a_photo_sized_map_counts_every_pixel_once_across_chunks():
  # More pixels than one update step holds, with a chunk border mid-row: numpy's histogram2d
  # of the same pixels is the expected matrix.
  rng = np.random.RandomState(1)
  side = int(np.sqrt(metrics._CHUNK_PIXELS * 2.5))
  labels = rng.randint(0, 6, size=(side, side + 7))
  labels[rng.rand(*labels.shape) < 0.05] = 255
  preds = rng.randint(0, 6, size=labels.shape)
  keep = labels != 255
  expected, _, _ = np.histogram2d(labels[keep], preds[keep], bins=6, range=[[0, 6], [0, 6]])
  np.testing.assert_array_equal(metrics.confusion_matrix(labels, preds, 6), expected)


def test_a_bad_label_past_the_first_chunk_is_named():
  labels = np.zeros(metrics._CHUNK_PIXELS + 10, np.int64)
  labels[-1] = 9
  with pytest.raises(UserInputError, match="label value 9"):
    metrics.confusion_matrix(labels, np.zeros_like(labels), num_classes=3)


def test_bad_label_is_user_error():
  with pytest.raises(UserInputError, match="label value 7"):
    metrics.confusion_matrix(np.array([0, 7]), np.array([0, 1]), num_classes=3)


def test_empty_matrix_has_no_values():
  r = metrics.compute_metrics(np.zeros((3, 3), np.int64))
  assert r["miou"] is None and r["pixel_accuracy"] is None
  assert r["absent_classes"] == ["class_0", "class_1", "class_2"]


def test_tensorboard_tags_follow_the_original():
  assert metrics.metric_tag([1.0], False) == "miou_1.0"
  assert metrics.metric_tag([0.5, 1.0], True) == "miou_0.5_1.0_flipped"
  r = metrics.compute_metrics(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]]))
  tags = metrics.tensorboard_scalars(r, "miou_1.0")
  assert tags == {"eval/miou_1.0_overall": 1.0, "eval/miou_1.0_class_0": 1.0,
                  "eval/miou_1.0_class_1": 1.0}
  assert not any(math.isnan(v) for v in tags.values())
