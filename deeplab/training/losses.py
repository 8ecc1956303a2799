"""Softmax cross-entropy for segmentation (docs/compatibility.md).

Pixels labelled ignore_label weigh 0; other pixels weigh label_weights (a float, or one
weight per class). With top_k_percent_pixels < 1 only the hardest pixels count (hard-pixel
mining), the kept fraction annealing from 100% over hard_example_mining_step steps.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from deeplab.compat import tf
from deeplab.errors import ConfigError

Weights = Union[float, Sequence[float]]


def _div_maybe_zero(total_loss, num_present):
  """total_loss / num_present, or 0 when nothing is present (denominator at least 1e-5)."""
  return tf.to_float(num_present > 0) * tf.math.divide(
      total_loss, tf.maximum(1e-5, num_present))


def get_label_weight_mask(labels, ignore_label: int, num_classes: int,
                          label_weights: Weights = 1.0):
  """Per-pixel weights: 0 for ignore_label, else label_weights (float or per-class list).

  Args:
    labels: int tensor of any shape (flattened here).
    ignore_label: the label value to ignore.
    num_classes: number of classes.
    label_weights: a float, or a sequence of num_classes floats.

  Returns:
    float32 tensor [num_pixels].

  Raises:
    ValueError: label_weights is None (as the original: callers pass 1.0 for "no weights"),
      a list of the wrong length or of the wrong type.
  """
  if label_weights is None:
    raise ValueError("label_weights is None; pass 1.0 for equal weights or one float per class "
                     f"({num_classes} classes)")
  if isinstance(label_weights, (list, tuple)) and len(label_weights) == 1:
    label_weights = float(label_weights[0])
  if not isinstance(label_weights, (float, int, list, tuple)):
    raise ConfigError(f"label_weights must be a float or a list of floats, got {label_weights!r}")
  labels = tf.reshape(labels, [-1])
  not_ignore = tf.to_float(tf.not_equal(labels, ignore_label))
  if isinstance(label_weights, (float, int)):
    return not_ignore * float(label_weights)
  if len(label_weights) != num_classes:
    raise ConfigError(f"label_weights has {len(label_weights)} values but there are "
                     f"{num_classes} classes; give one weight per class")
  weights = tf.constant(label_weights, tf.float32)
  # one_hot of an ignored or out-of-range label is all zeros, so its weight is 0 too.
  per_pixel = tf.einsum("...y,y->...", tf.one_hot(labels, num_classes, dtype=tf.float32),
                        weights)
  return not_ignore * per_pixel


def top_k_fraction(top_k_percent_pixels: float, hard_example_mining_step: int, global_step=None):
  """The fraction of pixels kept: anneals linearly from 1 to top_k over the mining steps."""
  if hard_example_mining_step == 0 or top_k_percent_pixels == 1.0:
    return tf.constant(float(top_k_percent_pixels))
  if global_step is None:
    global_step = tf.train.get_or_create_global_step()
  ratio = tf.minimum(1.0, tf.to_float(global_step) / float(hard_example_mining_step))
  return ratio * top_k_percent_pixels + (1.0 - ratio)


def add_softmax_cross_entropy_loss_for_each_scale(
    scales_to_logits: dict, labels, num_classes: int, ignore_label: int,
    loss_weight: Weights = 1.0, upsample_logits: bool = True,
    hard_example_mining_step: int = 0, top_k_percent_pixels: float = 1.0,
    scope: Optional[str] = None, global_step=None) -> list:
  """Adds one softmax cross-entropy loss per scale to tf.GraphKeys.LOSSES.

  Args:
    scales_to_logits: {'merged_logits': [B,h,w,C], 'logits_1.00': …}.
    labels: int [B,H,W,1] (or [B,H,W]) ground truth.
    num_classes: number of classes C.
    ignore_label: label value that does not count.
    loss_weight: float or per-class list (the --label_weights flag).
    upsample_logits: resize logits to the labels (bilinear, align_corners) instead of
      downsampling the labels to the logits (nearest).
    hard_example_mining_step: anneal the kept pixel fraction over this many steps.
    top_k_percent_pixels: fraction of the hardest pixels kept (1.0 = all).
    scope: prefix of the loss names ('semantic' → 'semantic_merged_logits').
    global_step: for the annealing; defaults to the graph's global step.

  Returns:
    The loss tensors, in the order of sorted(scales_to_logits).

  Raises:
    ValueError: labels is None, or loss_weight is None or invalid (see get_label_weight_mask).
  """
  if labels is None:
    raise ValueError("no label for softmax cross entropy loss")
  if labels.shape.ndims == 3:
    labels = tf.expand_dims(labels, -1)
  added = []
  for scale in sorted(scales_to_logits):
    logits = scales_to_logits[scale]
    loss_scope = "%s_%s" % (scope, scale) if scope else None
    if upsample_logits:
      logits = tf.image.resize_bilinear(logits, tf.shape(labels)[1:3], align_corners=True)
      scaled_labels = labels
    else:
      scaled_labels = tf.image.resize_nearest_neighbor(labels, tf.shape(logits)[1:3],
                                                       align_corners=True)
    scaled_labels = tf.reshape(scaled_labels, [-1])
    weights = get_label_weight_mask(scaled_labels, ignore_label, num_classes, loss_weight)
    # Ignored pixels become class 0 for one_hot; their weight is already 0.
    safe_labels = tf.where(tf.equal(scaled_labels, ignore_label),
                           tf.zeros_like(scaled_labels), scaled_labels)
    train_labels = tf.stop_gradient(tf.one_hot(safe_labels, num_classes, dtype=tf.float32))
    with tf.name_scope(loss_scope, "softmax_loss", [logits, train_labels, weights]):
      flat_logits = tf.reshape(logits, [-1, num_classes])
      pixel_losses = tf.nn.softmax_cross_entropy_with_logits_v2(
          labels=train_labels, logits=flat_logits, name="pixel_losses")
      weighted = tf.multiply(pixel_losses, weights)
      if top_k_percent_pixels == 1.0:
        total = tf.reduce_sum(weighted)
        num_present = tf.reduce_sum(tf.to_float(tf.not_equal(weights, 0.0)))
        loss = _div_maybe_zero(total, num_present)
      else:
        num_pixels = tf.to_float(tf.shape(flat_logits)[0])
        fraction = top_k_fraction(top_k_percent_pixels, hard_example_mining_step, global_step)
        k = tf.maximum(1, tf.to_int32(fraction * num_pixels))
        top_k_losses, _ = tf.nn.top_k(weighted, k=k, sorted=True, name="top_k_percent_pixels")
        total = tf.reduce_sum(top_k_losses)
        num_present = tf.reduce_sum(tf.to_float(tf.not_equal(top_k_losses, 0.0)))
        loss = _div_maybe_zero(total, num_present)
      loss = tf.identity(loss, name="loss")
      tf.losses.add_loss(loss)
      added.append(loss)
  return added
