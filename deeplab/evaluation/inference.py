"""The one prediction function that evaluate, vis and export share.

Export's self-check compares the exported graph with exactly this function's output, so
evaluation, visualisation and the exported model can never drift apart.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from deeplab import model
from deeplab.compat import tf
from deeplab.config import ModelConfig
from deeplab.errors import UserInputError


def is_multi_scale(scales: Sequence[float], add_flipped_images: bool) -> bool:
  return tuple(float(s) for s in scales) != (1.0,) or bool(add_flipped_images)


def predict(images: tf.Tensor, model_config: ModelConfig,
            crop_size: Optional[Tuple[int, int]], scales: Sequence[float] = (1.0,),
            add_flipped_images: bool = False) -> Tuple[tf.Tensor, tf.Tensor]:
  """Class map and probabilities for a batch of crop-sized images, as the original eval.py.

  Args:
    images: float32 [B, crop_h, crop_w, 3], raw pixels padded with the mean pixel.
    model_config: the run's model configuration.
    crop_size: (crop_h, crop_w), or None for a dynamic size.
    scales: eval/inference scales; (1.0,) without flips uses `model.predict_labels`.
    add_flipped_images: also average over left-right flipped inputs.

  Returns:
    (int64 labels [B, H, W], float32 probabilities [B, H, W, num_classes]).
  """
  if is_multi_scale(scales, add_flipped_images):
    out = model.predict_labels_multi_scale(images, model_config, crop_size,
                                           eval_scales=list(scales),
                                           add_flipped_images=add_flipped_images)
  else:
    out = model.predict_labels(images, model_config, crop_size,
                               image_pyramid=model_config.image_pyramid)
  return out[model.OUTPUT_TYPE], out[model.OUTPUT_TYPE + model.PROB_SUFFIX]


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
