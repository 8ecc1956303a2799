"""The mobile form's app-side pre- and post-processing (numpy, no TensorFlow).

Expected values come from the original's input normalisation (feature_extractor.py:
(2/255)*x - 1 for MobileNet/Xception, x - ImageNet mean for the plain ResNets) and from
padding with the mean pixel, which normalises to 0.
"""

import numpy as np
import pytest

from deeplab.exporting import formats as fm
from deeplab.exporting import mobile

IMAGENET_MEAN = (123.15, 115.90, 103.06)  # the original's _MEAN_RGB


def _image(h, w, seed=0):
  return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def test_a_small_image_is_normalised_and_padded_with_zero():
  img = _image(5, 7)
  x, valid = mobile.prepare(img, (9, 11), "mobilenet_v2")
  assert x.shape == (1, 9, 11, 3) and x.dtype == np.float32 and valid == (5, 7)
  np.testing.assert_allclose(x[0, :5, :7], img / 127.5 - 1.0, atol=1e-6)
  assert not x[0, 5:].any() and not x[0, :, 7:].any()


def test_the_plain_resnets_subtract_the_imagenet_mean():
  img = _image(4, 4, seed=1)
  x, _ = mobile.prepare(img, (4, 4), "resnet_v1_50")
  np.testing.assert_allclose(x[0], img - np.array(IMAGENET_MEAN), atol=1e-4)
  assert "123.15" in mobile.normalization("resnet_v1_50")
  assert mobile.normalization("mobilenet_v2") == "(2/255) * pixel - 1"


def test_a_larger_image_is_resized_to_fit_keeping_its_aspect_ratio():
  x, valid = mobile.prepare(_image(40, 20), (10, 10), "mobilenet_v2")
  assert x.shape == (1, 10, 10, 3) and valid == (10, 5)
  assert not x[0, :, 5:].any()


def test_the_labels_are_the_argmax_of_the_image_region_at_its_size():
  logits = np.zeros((6, 8, 3), np.float32)
  logits[..., 0] = 1
  logits[:2, :3, 2] = 5  # class 2 in the top-left of the image's region
  logits[:, 4:, 1] = 9   # class 1 only in the padding, cut away
  labels = mobile.labels_from_logits(logits, (4, 4), (4, 4))
  want = np.zeros((4, 4), np.int32)
  want[:2, :3] = 2
  np.testing.assert_array_equal(labels, want)
  # Resized back (nearest neighbour, corners aligned) to an image twice the size.
  big = mobile.labels_from_logits(logits, (4, 4), (7, 7))
  assert big.shape == (7, 7) and big[0, 0] == 2 and big[-1, -1] == 0
  assert set(np.unique(big)) == {0, 2}


def test_the_mobile_form_is_a_device_format_judged_by_its_miou_drop():
  assert fm.TFLITE_MOBILE in fm.FORMATS and fm.TFLITE_MOBILE in fm.device_formats(fm.FORMATS)
  assert fm.DEVICE_FILES[fm.TFLITE_MOBILE] == "deeplab_mobile.tflite"
  assert fm.TFLITE_MOBILE in fm.MIOU_RULE_FORMATS
  assert mobile.DEFAULT_CROP == (513, 513)


@pytest.mark.parametrize("crop", [(1, 1), (3, 2)])
def test_labels_of_a_tiny_region(crop):
  logits = np.random.RandomState(0).rand(3, 3, 4).astype(np.float32)
  out = mobile.labels_from_logits(logits, crop, crop)
  np.testing.assert_array_equal(out, np.argmax(logits, -1)[:crop[0], :crop[1]])
