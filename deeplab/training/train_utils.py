"""Training helpers: gradient multipliers and the original's TensorBoard summaries.

The original's train_utils also held the loss, the learning-rate policies and the checkpoint
initialisation; here they are training/losses.py, learning_rate.py and checkpoint_init.py.
"""

from __future__ import annotations

from typing import Sequence

from deeplab import model
from deeplab.compat import tf
from deeplab.training.deployment import scalar_summary


def extra_layer_scopes(last_layers_contain_logits_only: bool) -> list:
  """['logits'] or the whole DeepLab head (the original model.get_extra_layer_scopes)."""
  return list(model.get_extra_layer_scopes(last_layers_contain_logits_only))


def get_model_gradient_multipliers(last_layers: Sequence[str],
                                   last_layer_gradient_multiplier: float,
                                   variables: Sequence = None) -> dict:
  """{variable op name: multiplier}: biases x2, last layers x multiplier (biases x2 of it).

  Matching is by substring of the variable name, as the original.
  """
  if variables is None:
    variables = tf.model_variables()
  multipliers = {}
  for var in variables:
    name = var.op.name
    if "biases" in name:
      multipliers[name] = 2.0
    for layer in last_layers:
      if layer in name:
        multipliers[name] = (2.0 if "biases" in name else 1.0) * last_layer_gradient_multiplier
        break
  return multipliers


def multiply_gradients(grads_and_vars: list, multipliers: dict) -> list:
  """Scales each gradient by multipliers[var.op.name] (or by multipliers[var])."""
  out = []
  for grad, var in grads_and_vars:
    key = var if var in multipliers else var.op.name
    if grad is not None and key in multipliers and multipliers[key] != 1.0:
      scale = tf.constant(multipliers[key], dtype=grad.dtype)
      if isinstance(grad, tf.IndexedSlices):
        grad = tf.IndexedSlices(grad.values * scale, grad.indices, grad.dense_shape)
      else:
        grad = grad * scale
    out.append((grad, var))
  return out


def add_model_summaries(first_clone_scope: str, learning_rate, total_loss,
                        images=None, labels=None, predictions=None, num_classes: int = 0,
                        ) -> "tf.Tensor":
  """The original's summaries (reference §2.6), merged into one op.

  Histograms of the model variables; scalars losses/<name> of the first clone,
  learning_rate and total_loss (model_deploy's clone_loss/regularization_loss are already
  in the collection); with images: samples/image, samples/label, samples/semantic.
  """
  summaries = set(tf.get_collection(tf.GraphKeys.SUMMARIES))
  # Explicit tags (raw ops): tf.summary.* would uniquify 'logits/semantic/weights' into
  # 'logits/semantic/weights_1' next to the variable of the same name.
  with tf.name_scope(None):
    for var in tf.model_variables():
      summaries.add(tf.raw_ops.HistogramSummary(tag=var.op.name, values=var, name="summary"))
  for loss in tf.get_collection(tf.GraphKeys.LOSSES, first_clone_scope):
    summaries.add(scalar_summary("losses/%s" % loss.op.name, loss))
  summaries.add(scalar_summary("learning_rate", learning_rate))
  summaries.add(scalar_summary("total_loss", total_loss))
  if images is not None:
    pixel_scaling = max(1, 255 // max(num_classes, 1))
    samples = [("samples/image", images)]
    if labels is not None:
      samples.append(("samples/label", tf.cast(labels, tf.int32) * pixel_scaling))
    if predictions is not None:
      samples.append(("samples/semantic",
                      tf.expand_dims(tf.cast(predictions, tf.int32), -1) * pixel_scaling))
    with tf.name_scope(None):
      for tag, value in samples:
        value = tf.cast(tf.clip_by_value(tf.cast(value, tf.float32), 0, 255), tf.uint8)
        summaries.add(tf.raw_ops.ImageSummary(tag=tag, tensor=value, max_images=3,
                                              name="summary"))
  return tf.summary.merge(sorted(summaries, key=lambda t: t.name), name="summary_op")
