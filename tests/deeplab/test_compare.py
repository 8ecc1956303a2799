"""The paired comparison: per-image confusion files, ΔmIoU, the bootstrap interval, alignment."""

import io

import numpy as np
import pytest

from deeplab.errors import UserInputError
from deeplab.evaluation import compare, metrics, per_image

NAMES = ["background", "a", "b"]


def _stack(seed, n=40, c=3, hurt_class=None):
  """Per-image matrices of a plausible model; `hurt_class` moves most of its hits elsewhere."""
  rng = np.random.default_rng(seed)
  out = np.zeros((n, c, c), np.int64)
  for i in range(n):
    for t in range(c):
      hits = int(rng.integers(50, 200))
      out[i, t, t] = hits
      out[i, t, (t + 1) % c] = int(rng.integers(0, 30))
      if t == hurt_class:
        out[i, t, (t + 1) % c] += hits - hits // 4
        out[i, t, t] = hits // 4
  return out


def test_per_image_file_round_trips_and_sums_to_the_split_matrix(tmp_path):
  c = 3
  rng = np.random.default_rng(1)
  labels = rng.integers(0, c, (2, 6, 7, 1))
  labels[0, :, :2, 0] = 255
  preds = rng.integers(0, c, (2, 6, 7))
  collector = per_image.PerImageConfusion(c, 255)
  collector.update([b"img_0", b"img_1"], labels, preds)
  collector.update([b"img_2"], labels[:1], preds[:1])
  path = str(tmp_path / per_image.PER_IMAGE_NPZ)
  collector.save(path)
  names, dense = per_image.load(path)
  assert names == ["img_0", "img_1", "img_2"]
  np.testing.assert_array_equal(dense[1], metrics.confusion_matrix(labels[1], preds[1], c))
  whole = metrics.confusion_matrix(labels, preds, c) + metrics.confusion_matrix(
      labels[:1], preds[:1], c)
  np.testing.assert_array_equal(dense.sum(axis=0), whole)
  # Also readable from bytes (gs:// objects are read that way).
  with open(path, "rb") as f:
    names2, dense2 = per_image.load(io.BytesIO(f.read()), "gs://b/x.npz")
  np.testing.assert_array_equal(dense2, dense)


def test_unreadable_file_names_itself(tmp_path):
  bad = tmp_path / "per_image_confusion.npz"
  bad.write_bytes(b"not a zip")
  with pytest.raises(UserInputError, match="per_image_confusion.npz is not a readable"):
    per_image.load(str(bad))


def test_same_predictions_give_exactly_zero_and_interval_zero():
  m = _stack(0)
  r = compare.compare(m, m.copy(), NAMES)
  assert r["delta"] == 0.0 and r["delta_ci"] == [0.0, 0.0]
  assert all(p["delta"] == 0.0 for p in r["per_class"])
  assert r["resamples"] == compare.RESAMPLES and r["num_images"] == 40


def test_mious_match_evaluate_and_the_interval_brackets_the_delta():
  cand, champ = _stack(0), _stack(0, hurt_class=2)
  r = compare.compare(cand, champ, NAMES)
  for key, m in (("candidate_miou", cand), ("champion_miou", champ)):
    assert r[key] == pytest.approx(metrics.compute_metrics(m.sum(axis=0))["miou"], abs=1e-12)
  assert r["delta"] > 0 and r["delta_ci"][0] <= r["delta"] <= r["delta_ci"][1]
  assert r["delta_ci"][0] > 0  # a large, consistent gain is significant
  worst = min(r["per_class"], key=lambda p: -p["delta"])
  assert worst["class"] == "b"
  # Fixed seed: the same inputs give the same interval.
  assert compare.compare(cand, champ, NAMES)["delta_ci"] == r["delta_ci"]


def test_noise_gives_an_interval_around_zero():
  a, b = _stack(1), _stack(2)
  r = compare.compare(a, b, NAMES)
  assert r["delta_ci"][0] < r["delta"] < r["delta_ci"][1]
  assert r["delta_ci"][0] < 0 < r["delta_ci"][1]


def test_align_reorders_by_name_and_refuses_other_images():
  m = _stack(0, n=3)
  assert (compare.align(["x", "y", "z"], m, ["z", "x", "y"], m[[2, 0, 1]]) == m).all()
  with pytest.raises(UserInputError, match="not over the same images"):
    compare.align(["x", "y", "z"], m, ["x", "y", "w"], m)


def test_different_class_counts_are_refused():
  with pytest.raises(UserInputError, match="same number of classes"):
    compare.compare(_stack(0, c=3), _stack(0, c=4), NAMES)


def test_resample_weights_draw_each_image_n_times_in_total():
  w = compare.resample_weights(7, resamples=5, seed=3)
  assert w.shape == (5, 7) and (w.sum(axis=1) == 7).all()


def test_most_different_lists_the_changed_images_first():
  cand = _stack(0, n=5)
  champ = cand.copy()
  champ[3] = _stack(9, n=1, hurt_class=1)[0]
  assert compare.most_different(cand, champ, 3) == [3]
