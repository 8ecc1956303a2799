"""The only place that patches tf-slim 1.1.0 for TensorFlow 2.21.

tf-slim's last release predates TF 2.16; two imports it relies on moved:
* ``tensorflow.python.framework.ops.Tensor`` no longer exists: alias it to tf.Tensor.
* ``slim.batch_norm`` imports ``tf_keras.legacy_tf_layers``, which tf-keras 2.21 ships as
  ``tf_keras.src.legacy_tf_layers``: register the module under the old name.

Import ``tf`` (tf.compat.v1 with v2 behaviour disabled) and ``slim`` from here.
"""

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# tf-slim's legacy layers need Keras 2 (tf-keras), not Keras 3.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as _tf  # noqa: E402
from tensorflow.python.framework import ops as _ops  # noqa: E402

if not hasattr(_ops, "Tensor"):
  _ops.Tensor = _tf.Tensor


def _alias_legacy_tf_layers() -> None:
  if "tf_keras.legacy_tf_layers" in sys.modules:
    return
  try:
    importlib.import_module("tf_keras.legacy_tf_layers")
    return
  except ImportError:
    pass
  import tf_keras  # noqa: F401  (fails loudly when tf-keras is missing)
  legacy = importlib.import_module("tf_keras.src.legacy_tf_layers")
  sys.modules["tf_keras.legacy_tf_layers"] = legacy
  for name in ("base", "convolutional", "core", "normalization", "pooling"):
    try:
      sub = importlib.import_module(f"tf_keras.src.legacy_tf_layers.{name}")
    except ImportError:
      continue
    sys.modules[f"tf_keras.legacy_tf_layers.{name}"] = sub


_alias_legacy_tf_layers()

import tf_slim as slim  # noqa: E402

tf = _tf.compat.v1
tf.disable_v2_behavior()

__all__ = ["tf", "slim"]
