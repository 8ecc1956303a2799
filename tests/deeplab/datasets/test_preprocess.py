"""deeplab.datasets.preprocess: DeepLab's resize/scale/pad/crop/flip (docs/compatibility.md)."""

import numpy as np
import pytest

from deeplab import config
from deeplab.compat import tf
from deeplab.datasets import preprocess


def _run(fetches, feed=None):
  with tf.Session() as sess:
    return sess.run(fetches, feed)


def _image(h, w, c=3):
  return tf.zeros([h, w, c], tf.float32)


# Golden sizes: the first six are the upstream preprocess_utils_test.testResizeTensorsToRange*
# cases (min 50, max 100, with and without factor 8); the others follow the §4.4 rules by hand
# (375x500 VOC image at 513: 513/500*375 = 384.75 -> 384; factor 16 rounds to 16k+1).
@pytest.mark.parametrize("shape,min_size,max_size,factor,keep,expected", [
    ((60, 40), 50, 100, None, True, (75, 50)),
    ((15, 30), 50, 100, None, True, (50, 100)),
    ((15, 50), 50, 100, None, True, (30, 100)),
    ((60, 40), 50, 100, 8, True, (81, 57)),
    ((15, 30), 50, 100, 8, True, (49, 97)),
    ((15, 50), 50, 100, 8, True, (33, 97)),
    ((375, 500), 513, 513, None, True, (384, 513)),
    ((375, 500), 513, 513, 16, True, (385, 513)),
    ((375, 500), 513, 513, None, False, (513, 513)),
    ((50, 80), 100, None, None, True, (100, 160)),
    ((50, 80), None, 40, None, True, (25, 40)),
    ((20, 30), None, 40, None, True, (20, 30)),
])
def test_resize_to_range_golden(shape, min_size, max_size, factor, keep, expected):
  label = tf.zeros(list(shape) + [1], tf.int32)
  image, label = preprocess.resize_to_range(_image(*shape), label, min_size, max_size, factor,
                                            keep_aspect_ratio=keep)
  image_shape, label_shape = _run([tf.shape(image), tf.shape(label)])
  assert tuple(image_shape) == expected + (3,)
  assert tuple(label_shape) == expected + (1,)


def test_resize_label_is_nearest_neighbour():
  label = tf.constant(np.array([[0, 1], [2, 255]], np.int32)[:, :, None])
  image = tf.zeros([2, 2, 3])
  _, resized = preprocess.resize_to_range(image, label, min_size=5, max_size=None)
  out = _run(resized)
  assert out.shape == (5, 5, 1) and set(np.unique(out)) == {0, 1, 2, 255}
  # align_corners=True keeps the corner pixels.
  assert out[0, 0, 0] == 0 and out[0, -1, 0] == 1 and out[-1, 0, 0] == 2 and out[-1, -1, 0] == 255


def test_random_scale_values():
  constant = preprocess.get_random_scale(1.5, 1.5, 0.25)
  steps = preprocess.get_random_scale(0.5, 2.0, 0.25)
  uniform = preprocess.get_random_scale(0.5, 2.0, 0.)
  with tf.Session() as sess:
    assert sess.run(constant) == 1.5
    picks = {round(float(sess.run(steps)), 4) for _ in range(200)}
    draws = [float(sess.run(uniform)) for _ in range(50)]
  assert picks == {0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}
  assert all(0.5 <= d < 2.0 for d in draws)
  with pytest.raises(ValueError):
    preprocess.get_random_scale(2.0, 1.0, 0.)


def test_stateless_seed_is_reproducible():
  seed = tf.placeholder(tf.int64, [2])
  scale = preprocess.get_random_scale(0.5, 2.0, 0.25, seed=seed)
  with tf.Session() as sess:
    a = [sess.run(scale, {seed: [7, i]}) for i in range(20)]
    b = [sess.run(scale, {seed: [7, i]}) for i in range(20)]
  assert a == b and len(set(a)) > 1


def test_randomly_scale_size():
  image, label = preprocess.randomly_scale_image_and_label(
      _image(30, 40), tf.zeros([30, 40, 1], tf.int32), tf.constant(0.75))
  assert tuple(_run(tf.shape(image))) == (22, 30, 3)
  assert tuple(_run(tf.shape(label))) == (22, 30, 1)


@pytest.mark.parametrize("variant", ["mobilenet_v2", "resnet_v1_50", None])
def test_eval_pads_with_mean_pixel_and_ignore_label(variant):
  image = tf.fill([20, 30, 3], 7.0)
  label = tf.fill([20, 30, 1], 3)
  original, out, out_label = preprocess.preprocess_image_and_label(
      tf.cast(image, tf.uint8), label, 33, 45, ignore_label=255, is_training=False,
      model_variant=variant)
  original, out, out_label = _run([original, out, out_label])
  assert original.shape == (20, 30, 3) and original.dtype == np.uint8
  assert out.shape == (33, 45, 3) and out.dtype == np.float32
  assert out_label.shape == (33, 45, 1) and out_label.dtype == np.int32
  assert (out[:20, :30] == 7).all() and (out_label[:20, :30] == 3).all()
  mean = np.array(config.mean_pixel(variant), np.float32)
  assert np.allclose(out[20:], mean) and np.allclose(out[:, 30:], mean)
  assert (out_label[20:] == 255).all() and (out_label[:, 30:] == 255).all()


def test_eval_without_label_and_too_large_image():
  _, out, label = preprocess.preprocess_image_and_label(
      tf.zeros([10, 10, 3], tf.uint8), None, 17, 17, is_training=False)
  assert label is None and _run(out).shape == (17, 17, 3)
  image = tf.placeholder(tf.uint8, [None, None, 3])  # Decoded images have dynamic shapes.
  _, too_big, _ = preprocess.preprocess_image_and_label(image, None, 17, 17, is_training=False)
  with pytest.raises(tf.errors.InvalidArgumentError, match="eval crop size"):
    _run(too_big, {image: np.zeros([20, 10, 3], np.uint8)})


def test_training_crop_keeps_image_and_label_aligned():
  h, w = 30, 40
  index = np.arange(h * w, dtype=np.int32).reshape(h, w, 1)
  image = tf.constant(np.repeat(index, 3, axis=2).astype(np.float32))
  seed = tf.placeholder(tf.int64, [2])
  _, out, label = preprocess.preprocess_image_and_label(
      image, tf.constant(index), 17, 19, is_training=True, seed=seed)
  assert out.shape.as_list() == [17, 19, 3] and label.shape.as_list() == [17, 19, 1]
  flipped = 0
  with tf.Session() as sess:
    for i in range(12):
      img, lab = sess.run([out, label], {seed: [3, i]})
      assert (img[:, :, 0] == lab[:, :, 0]).all()
      rows, cols = np.divmod(lab[:, :, 0], w)
      assert (np.diff(rows, axis=0) == 1).all()  # A contiguous window of the source.
      flipped += int(cols[0, 0] > cols[0, -1])
  assert 0 < flipped < 12  # Flipped sometimes, not always (p = 0.5).


def test_training_pads_small_images_before_crop():
  _, out, label = preprocess.preprocess_image_and_label(
      tf.fill([10, 12, 3], 200.0), tf.fill([10, 12, 1], 1), 17, 17, ignore_label=255,
      is_training=True, model_variant="xception_65")
  out, label = _run([out, label])
  assert out.shape == (17, 17, 3)
  assert set(np.unique(label)) == {1, 255}
  assert set(np.unique(out)) == {200.0, 127.5}
  assert ((label == 255)[..., 0] == (out[..., 0] == 127.5)).all()


def test_training_needs_label():
  with pytest.raises(ValueError, match="label"):
    preprocess.preprocess_image_and_label(_image(5, 5), None, 3, 3, is_training=True)


def test_pad_to_bounding_box_rejects_smaller_target():
  image = tf.placeholder(tf.float32, [None, None, 3])
  padded = preprocess.pad_to_bounding_box(image, 0, 0, 4, 6, 0.)
  with pytest.raises(tf.errors.InvalidArgumentError, match="target size smaller"):
    _run(padded, {image: np.zeros([5, 5, 3], np.float32)})


def test_pad_to_bounding_box_accepts_a_batch_as_the_original():
  image = np.arange(2 * 2 * 2 * 2, dtype=np.float32).reshape(2, 2, 2, 2)
  padded = _run(preprocess.pad_to_bounding_box(tf.constant(image), 2, 1, 5, 5, 255.))
  assert padded.shape == (2, 5, 5, 2)
  expected = np.full((2, 5, 5, 2), 255., np.float32)
  expected[:, 2:4, 1:3] = image
  np.testing.assert_array_equal(padded, expected)
  # The same with the batch's shape known only when it runs.
  batch = tf.placeholder(tf.int32, [None, None, None, 2])
  padded = _run(preprocess.pad_to_bounding_box(batch, 0, 0, 3, 4, 9),
                {batch: image.astype(np.int32)})
  assert padded.shape == (2, 3, 4, 2) and (padded[:, 2:] == 9).all()


def test_pad_to_bounding_box_rejects_rank_2_with_a_clear_message():
  grey = np.array([[5, 6], [9, 0]], np.float32)
  with pytest.raises(ValueError, match="rank 2.*expected 3"):
    preprocess.pad_to_bounding_box(tf.constant(grey), 0, 0, 2, 2, 255.)
  unknown_rank = tf.placeholder(tf.float32)  # as the original's test: rank known only at run
  padded = preprocess.pad_to_bounding_box(unknown_rank, 0, 0, 2, 2, 255.)
  with pytest.raises(tf.errors.InvalidArgumentError, match="wrong image tensor rank"):
    _run(padded, {unknown_rank: grey})
  # A 3-D image through the same unknown-rank graph still pads.
  assert _run(padded, {unknown_rank: grey[:, :, None]}).shape == (2, 2, 1)
