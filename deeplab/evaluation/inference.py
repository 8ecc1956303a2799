"""The prediction functions that evaluate, vis, the export and its self-check share.

An image goes through three steps, each one function here, so that every stage builds the
very same ops (export's self-check compares them pixel for pixel):

1. `prepare`: [H, W, 3] image -> network input (resized into range when the policy says so,
   padded with the mean pixel to its own output_stride*k+1, or to the fixed crop) and the
   size of the image inside it.
2. `predict`: a batch of prepared inputs of one size -> class map and probabilities at that
   size (image pooling over each image's valid region at its own size).
3. `restore_size`: the valid region of one class map, resized back (nearest neighbour) to
   the original image size: what metrics, vis and the exported model's
   `SemanticPredictions` hold.
"""

from __future__ import annotations

from typing import Tuple

from deeplab import config, model
from deeplab.compat import tf
from deeplab.datasets import preprocess
from deeplab.errors import UserInputError
from deeplab.evaluation.input_size import InferencePolicy

# The fixed-crop preprocessing check's message (preprocess.py): an image larger than the crop.
TOO_LARGE = "larger than the eval crop size"


def is_multi_scale(policy: InferencePolicy) -> bool:
  return tuple(policy.scales) != (1.0,) or bool(policy.add_flipped_images)


def padded_side(side, output_stride: int):
  """The smallest output_stride*k+1 >= side (a scalar int32 tensor)."""
  return (side + output_stride - 2) // output_stride * output_stride + 1


def prepare(image, policy: InferencePolicy) -> Tuple[tf.Tensor, tf.Tensor]:
  """(float32 [h', w', 3] network input, int32 [2] size of the image inside it).

  Raises (when run):
    InvalidArgumentError: fixed crop only, an image larger than the crop after any resize.
  """
  m = policy.model
  if policy.fixed:
    resized, processed, _ = preprocess.preprocess_image_and_label(
        image, None, policy.crop_size[0], policy.crop_size[1],
        min_resize_value=m.min_resize_value, max_resize_value=m.max_resize_value,
        resize_factor=m.resize_factor, keep_aspect_ratio=m.keep_aspect_ratio,
        is_training=False, model_variant=m.model_variant)
    return processed, tf.shape(resized)[:2]
  processed = tf.cast(image, tf.float32)
  lo, hi = policy.resize_bounds()
  if lo or hi:
    processed, _ = preprocess.resize_to_range(
        processed, None, min_size=lo, max_size=hi, factor=m.resize_factor or None,
        keep_aspect_ratio=m.keep_aspect_ratio, align_corners=True)
  size = tf.shape(processed)[:2]
  mean = tf.reshape(tf.constant(config.mean_pixel(m.model_variant), tf.float32), [1, 1, 3])
  processed = preprocess.pad_to_bounding_box(
      processed, 0, 0, padded_side(size[0], m.output_stride),
      padded_side(size[1], m.output_stride), mean)
  processed.set_shape([None, None, 3])
  return processed, size


def predict(images, valid_size, policy: InferencePolicy) -> Tuple[tf.Tensor, tf.Tensor]:
  """Class map and probabilities for a batch of prepared inputs of one size.

  Args:
    images: float32 [B, h', w', 3] from `prepare` (one size per batch).
    valid_size: int32 [B, 2] from `prepare`.
    policy: the inference policy.

  Returns:
    (int64 labels [B, h', w'], float32 probabilities [B, h', w', num_classes]).
  """
  m = policy.model
  crop = tuple(policy.crop_size) if policy.fixed else None
  # A fixed crop keeps the original's ops exactly (pooling over the crop, as the model zoo).
  valid = None if policy.fixed else valid_size
  if is_multi_scale(policy):
    out = model.predict_labels_multi_scale(images, m, crop, eval_scales=list(policy.scales),
                                           add_flipped_images=policy.add_flipped_images,
                                           valid_size=valid)
  else:
    out = model.predict_labels(images, m, crop, image_pyramid=m.image_pyramid,
                               valid_size=valid)
  return out[model.OUTPUT_TYPE], out[model.OUTPUT_TYPE + model.PROB_SUFFIX]


def restore_size(labels, valid_size, original_size):
  """int32 [h, w]: one [h', w'] class map's valid region, resized back to the original size.

  Nearest neighbour with aligned corners (the original export_model.py's _resize_label): an
  identity when nothing was resized.
  """
  valid = labels[:valid_size[0], :valid_size[1]]
  if valid.dtype == tf.int64:  # argmax's class ids: half the bytes at the original size
    valid = tf.cast(valid, tf.int32)
  # expand_dims, not [tf.newaxis, ...]: TFLite has no kernel for a slice adding axes.
  resized = tf.image.resize_nearest_neighbor(tf.expand_dims(tf.expand_dims(valid, 0), -1),
                                             original_size, align_corners=True)
  return tf.cast(resized[0, :, :, 0], tf.int32)


def restore_probabilities(probabilities, valid_size, original_size):
  """float32 [1, h, w, C]: the valid region of [1, h', w', C], resized back (bilinear)."""
  valid = probabilities[:, :valid_size[0], :valid_size[1], :]
  return tf.image.resize_bilinear(valid, original_size, align_corners=True)


def restore_saver() -> tf.train.Saver:
  """A Saver over the graph's global variables (the model; no optimizer slots exist here)."""
  return tf.train.Saver(tf.global_variables())


def restore(saver, sess, checkpoint_local: str) -> None:
  """saver.restore with a message that names the likely cause of a mismatch."""
  try:
    saver.restore(sess, checkpoint_local)
  except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as e:
    first = str(e).strip().splitlines()[0][:400]
    raise UserInputError(
        f"checkpoint {checkpoint_local} does not fit the model built from the run's settings "
        f"({first}); the model settings (config.json or model flags) must match training") from e
