"""DeepLab's input preprocessing, as the original input_preprocess.py / preprocess_utils.py.

docs/compatibility.md: resize_to_range (optional), random scale (training), pad bottom/right
to the crop size with the mean pixel (labels with ignore_label), random crop with the same
offsets for image and label (training), left-right flip with p=0.5 (training). Evaluation pads
only. Mean/std normalisation is not done here: the network does it.

Every random op takes an optional `seed`: None uses stateful ops like the original; a
shape-[2] int tensor uses stateless ops, so a seeded pipeline gives the same crops whatever
the map parallelism.
"""

from typing import List, Optional, Sequence, Tuple

from deeplab import config
from deeplab.compat import tf
from deeplab.errors import ConfigError

PROB_OF_FLIP = 0.5

# Offsets that give each random op of one example its own stateless stream.
_SCALE, _CROP_H, _CROP_W, _FLIP = 1, 2, 3, 4


def _uniform(shape, minval, maxval, dtype, seed, stream: int):
  if seed is None:
    return tf.random_uniform(shape, minval=minval, maxval=maxval, dtype=dtype)
  seed = tf.cast(seed, tf.int64) + tf.constant([0, 1 << 20], tf.int64) * stream
  return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval, dtype=dtype)


def resolve_shape(tensor, rank: int) -> List:
  """Static dimensions where known, dynamic ones elsewhere."""
  static = tensor.get_shape().with_rank(rank).as_list()
  dynamic = tf.unstack(tf.shape(tensor), rank)
  return [s if s is not None else d for s, d in zip(static, dynamic)]


def _resize_label(label, size, align_corners: bool = True):
  # Labels are class indices: nearest neighbour, never interpolated.
  # raw_ops: the same kernels as tf.image.resize_* (align_corners) without deprecation noise.
  return tf.raw_ops.ResizeNearestNeighbor(
      images=label[tf.newaxis], size=size, align_corners=align_corners)[0]


def _resize_image(image, size, align_corners: bool = True):
  return tf.raw_ops.ResizeBilinear(
      images=image[tf.newaxis], size=size, align_corners=align_corners)[0]


def resize_to_range(image, label=None, min_size=None, max_size=None, factor=None,
                    keep_aspect_ratio: bool = True, align_corners: bool = True):
  """Resizes so the short side is `min_size` unless the long side would exceed `max_size`.

  Then the long side is `max_size`. With `factor`, both sides become a multiple of factor plus
  one (and `max_size` is first reduced to that form). `keep_aspect_ratio=False` squares the
  output to its longer side. Without `min_size` (the original requires it) only images whose
  long side exceeds `max_size` shrink.

  Args:
    image: [H, W, C] float image.
    label: optional [H, W, 1] int label, resized with nearest neighbour.
    min_size, max_size, factor: ints or None.
    keep_aspect_ratio: see above.
    align_corners: passed to the resize ops (DeepLab uses True).

  Returns:
    [resized_image, resized_label or None].
  """
  if max_size is not None:
    max_size = float(max_size)
    if factor is not None:
      max_size = max_size - (max_size - 1) % factor
  height, width, _ = resolve_shape(image, 3)
  height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  if min_size is not None:
    large_scale = float(min_size) / tf.minimum(height, width)
    large_size = tf.stack([tf.cast(tf.floor(height * large_scale), tf.int32),
                           tf.cast(tf.floor(width * large_scale), tf.int32)])
  else:
    large_size = tf.cast(tf.stack([height, width]), tf.int32)
  new_size = large_size
  if max_size is not None:
    small_scale = max_size / tf.maximum(height, width)
    small_size = tf.stack([tf.cast(tf.floor(height * small_scale), tf.int32),
                           tf.cast(tf.floor(width * small_scale), tf.int32)])
    new_size = tf.cond(tf.cast(tf.reduce_max(large_size), tf.float32) > max_size,
                       lambda: small_size, lambda: large_size)
  if factor is not None:
    new_size += (factor - (new_size - 1) % factor) % factor
  if not keep_aspect_ratio:
    side = tf.reduce_max(new_size)
    new_size = tf.stack([side, side])
  resized_image = _resize_image(image, new_size, align_corners)
  resized_label = None if label is None else _resize_label(label, new_size, align_corners)
  return [resized_image, resized_label]


def get_random_scale(min_scale_factor: float, max_scale_factor: float, step_size: float,
                     seed=None):
  """A constant, uniform in [min, max), or a random pick among the steps from min to max."""
  if min_scale_factor < 0 or min_scale_factor > max_scale_factor:
    raise ConfigError(f"unexpected scale range [{min_scale_factor}, {max_scale_factor}]: "
                     "need 0 <= min_scale_factor <= max_scale_factor")
  if min_scale_factor == max_scale_factor:
    return tf.cast(min_scale_factor, tf.float32)
  if step_size == 0:
    return _uniform([], min_scale_factor, max_scale_factor, tf.float32, seed, _SCALE)
  num_steps = int((max_scale_factor - min_scale_factor) / step_size + 1)
  scales = tf.lin_space(float(min_scale_factor), float(max_scale_factor), num_steps)
  # Same distribution as the original's random_shuffle(scales)[0].
  return scales[_uniform([], 0, num_steps, tf.int32, seed, _SCALE)]


def randomly_scale_image_and_label(image, label=None, scale=1.0):
  """Scales by `scale`: image bilinear, label nearest neighbour, new size int(H*s, W*s)."""
  if isinstance(scale, float) and scale == 1.0:
    return image, label
  shape = tf.shape(image)
  new_size = tf.cast(tf.cast(tf.stack([shape[0], shape[1]]), tf.float32) * scale, tf.int32)
  image = _resize_image(image, new_size)
  if label is not None:
    label = _resize_label(label, new_size)
  return image, label


def pad_to_bounding_box(image, offset_height, offset_width, target_height, target_width,
                        pad_value):
  """Pads a [H, W, C] image or a [B, H, W, C] batch to the target size with `pad_value`.

  Like the original, a tensor of another rank is refused: at graph construction when its rank
  is known, else when it runs (its rank is checked before anything reads its shape).

  Raises:
    ValueError: the image's static rank is neither 3 nor 4.
  """
  image = tf.convert_to_tensor(image)
  ndims = image.get_shape().ndims
  if ndims is not None and ndims not in (3, 4):
    raise ValueError(f"pad_to_bounding_box: the image tensor has rank {ndims} (shape "
                     f"{image.get_shape()}); expected 3 ([height, width, channels]) or 4 "
                     "([batch, height, width, channels])")
  dtype = image.dtype
  work = image if dtype in (tf.float32, tf.float64) else tf.cast(image, tf.int32)
  rank_check = tf.debugging.Assert(
      tf.logical_or(tf.equal(tf.rank(work), 3), tf.equal(tf.rank(work), 4)),
      ["pad_to_bounding_box: wrong image tensor rank; expected 3 ([height, width, channels]) "
       "or 4 ([batch, height, width, channels]), got shape", tf.shape(work)])
  with tf.control_dependencies([rank_check]):
    work = tf.identity(work)
  is_batch = ndims == 4
  if not is_batch:
    work = tf.expand_dims(work, 0)
    if ndims is None:
      work.set_shape([None] * 4)
  pad_value = tf.cast(pad_value, work.dtype)
  _, height, width, _ = resolve_shape(work, 4)
  after_h = target_height - offset_height - height
  after_w = target_width - offset_width - width
  check = tf.debugging.Assert(
      tf.logical_and(tf.greater_equal(after_h, 0), tf.greater_equal(after_w, 0)),
      ["target size smaller than the image plus offsets", height, width, target_height,
       target_width])
  with tf.control_dependencies([check]):
    paddings = tf.stack([tf.constant([0, 0]), tf.stack([offset_height, after_h]),
                         tf.stack([offset_width, after_w]), tf.constant([0, 0])])
  # Shift so that padding with zeros pads with pad_value.
  padded = tf.pad(work - pad_value, paddings) + pad_value
  if not is_batch:
    padded = tf.squeeze(padded, [0])
  return tf.cast(padded, dtype) if padded.dtype != dtype else padded


def _crop(image, offset_height, offset_width, crop_height: int, crop_width: int):
  shape = tf.shape(image)
  channels = image.get_shape().as_list()[2]
  check = tf.debugging.Assert(
      tf.logical_and(tf.greater_equal(shape[0], crop_height),
                     tf.greater_equal(shape[1], crop_width)),
      ["crop size greater than the image size", shape, crop_height, crop_width])
  size = tf.stack([crop_height, crop_width, shape[2]])
  with tf.control_dependencies([check]):
    image = tf.slice(image, tf.stack([offset_height, offset_width, 0]), size)
  image = tf.reshape(image, size)
  image.set_shape([crop_height, crop_width, channels])
  return image


def random_crop(image_list: Sequence, crop_height: int, crop_width: int, seed=None) -> List:
  """Crops every tensor at the same random offsets (they share height and width)."""
  if not image_list:
    raise ValueError("random_crop needs at least one tensor")
  shape = tf.shape(image_list[0])
  checks = [tf.debugging.Assert(tf.reduce_all(tf.equal(tf.shape(t)[:2], shape[:2])),
                                ["random_crop tensors differ in height/width"])
            for t in image_list[1:]]
  with tf.control_dependencies(checks):
    max_off_h = tf.reshape(shape[0] - crop_height + 1, [])
    max_off_w = tf.reshape(shape[1] - crop_width + 1, [])
  off_h = _uniform([], 0, max_off_h, tf.int32, seed, _CROP_H)
  off_w = _uniform([], 0, max_off_w, tf.int32, seed, _CROP_W)
  return [_crop(t, off_h, off_w, crop_height, crop_width) for t in image_list]


def flip_dim(tensor_list: Sequence, prob: float = PROB_OF_FLIP, dim: int = 1, seed=None):
  """Reverses every tensor along `dim` together with probability `prob`.

  Returns:
    The (maybe flipped) tensors followed by the boolean `is_flipped`.
  """
  is_flipped = tf.less_equal(_uniform([], 0.0, 1.0, tf.float32, seed, _FLIP), prob)
  tensors = list(tensor_list)
  outputs = tf.cond(is_flipped, lambda: [tf.reverse(t, [dim]) for t in tensors],
                    lambda: [tf.identity(t) for t in tensors])
  outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
  for out, t in zip(outputs, tensors):
    out.set_shape(t.get_shape())
  return outputs + [is_flipped]


def preprocess_image_and_label(image, label, crop_height: int, crop_width: int,
                               min_resize_value: Optional[int] = None,
                               max_resize_value: Optional[int] = None,
                               resize_factor: Optional[int] = None,
                               min_scale_factor: float = 1., max_scale_factor: float = 1.,
                               scale_factor_step_size: float = 0., ignore_label: int = 255,
                               is_training: bool = True, model_variant: Optional[str] = None,
                               keep_aspect_ratio: bool = True,
                               seed=None) -> Tuple:
  """The original input_preprocess.preprocess_image_and_label.

  Args:
    image: [H, W, 3] image (any dtype).
    label: [H, W, 1] label or None (allowed only when not training).
    crop_height, crop_width: output size; at eval the image must not be larger.
    min_resize_value, max_resize_value, resize_factor, keep_aspect_ratio: resize_to_range.
    min_scale_factor, max_scale_factor, scale_factor_step_size: training random scale.
    ignore_label: label padding value.
    is_training: random scale/crop/flip when True; pad only when False.
    model_variant: picks the image padding value (deeplab.config.mean_pixel).
    seed: None (stateful random ops) or a shape-[2] int tensor (stateless, reproducible).

  Returns:
    (original_image, processed_image float32 [crop_h, crop_w, 3], label int32 or None).
  """
  if is_training and label is None:
    raise ValueError("training preprocessing needs a label")
  original_image = image
  processed = tf.cast(image, tf.float32)
  if label is not None:
    label = tf.cast(label, tf.int32)
  if min_resize_value or max_resize_value:
    processed, label = resize_to_range(
        processed, label, min_size=min_resize_value or None, max_size=max_resize_value or None,
        factor=resize_factor or None, keep_aspect_ratio=keep_aspect_ratio, align_corners=True)
    original_image = tf.identity(processed)
  if is_training:
    scale = get_random_scale(min_scale_factor, max_scale_factor, scale_factor_step_size, seed)
    if min_scale_factor == max_scale_factor:
      scale = float(min_scale_factor)  # A constant: 1.0 skips the (identity) resize.
    processed, label = randomly_scale_image_and_label(processed, label, scale)
    processed.set_shape([None, None, 3])
  shape = tf.shape(processed)
  height, width = shape[0], shape[1]
  target_height = height + tf.maximum(crop_height - height, 0)
  target_width = width + tf.maximum(crop_width - width, 0)
  mean = tf.reshape(tf.constant(config.mean_pixel(model_variant), tf.float32), [1, 1, 3])
  processed = pad_to_bounding_box(processed, 0, 0, target_height, target_width, mean)
  if label is not None:
    label = pad_to_bounding_box(label, 0, 0, target_height, target_width, ignore_label)
  if is_training:
    processed, label = random_crop([processed, label], crop_height, crop_width, seed)
  else:
    # The original only sets the static shape here; a larger image would break batching later.
    check = tf.debugging.Assert(
        tf.logical_and(tf.less_equal(height, crop_height), tf.less_equal(width, crop_width)),
        ["image (after any resize) is larger than the eval crop size; pass a crop size at "
         "least the largest image size (height, width, crop):", height, width, crop_height,
         crop_width])
    with tf.control_dependencies([check]):
      processed = tf.identity(processed)
  processed.set_shape([crop_height, crop_width, 3])
  if label is not None:
    label.set_shape([crop_height, crop_width, 1])
  if is_training:
    processed, label, _ = flip_dim([processed, label], PROB_OF_FLIP, dim=1, seed=seed)
  return original_image, processed, label
