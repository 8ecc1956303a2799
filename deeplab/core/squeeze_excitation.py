"""The ASPP's image-level branch as a squeeze-and-excitation gate (MobileNet-v3's head).

With ``aspp_with_squeeze_and_excitation`` the original's ``image_pooling`` 1x1 conv has no
batch norm (so it carries biases) and a sigmoid (``image_se_uses_qsigmoid``: the hard
sigmoid relu6(x + 3) · 0.16667) instead of BN + ReLU, and its output multiplies the ASPP
output instead of being concatenated as one more branch.
"""

from __future__ import annotations

from deeplab.compat import slim, tf
from deeplab.config import ModelConfig
from deeplab.core.mobilenet_v3 import hard_sigmoid


def gates(model_options: ModelConfig) -> bool:
  """True when the image-level feature multiplies the ASPP output (not concatenated)."""
  return bool(model_options.add_image_level_feature
              and model_options.aspp_with_squeeze_and_excitation)


def image_pooling_conv_args(model_options: ModelConfig) -> dict:
  """activation_fn and normalizer_fn of the ``image_pooling`` conv."""
  if not model_options.aspp_with_squeeze_and_excitation:
    return {"activation_fn": tf.nn.relu, "normalizer_fn": slim.batch_norm}
  gate = hard_sigmoid if model_options.image_se_uses_qsigmoid else tf.nn.sigmoid
  return {"activation_fn": gate, "normalizer_fn": None}
