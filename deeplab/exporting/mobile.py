"""The original's mobile form: a TFLite model from the backbone's input to the logits, at one size.

Google's published DeepLab TFLite file (deeplabv3_257_mv_gpu.tflite) and the original's
quantize.md conversion (input array `MobilenetV2/MobilenetV2/input`, 1x513x513x3) keep only
the network: the app resizes, normalises and pads the image itself, and takes the argmax of
the logits itself. This form does the same:

- input `MobileInput`: float32 [1, crop_h, crop_w, 3], the image already normalised as the
  backbone expects (`normalize`: (2/255)*pixel - 1, or pixel - ImageNet mean for the plain
  ResNets), padded bottom and right with 0 (the mean pixel, normalised) up to the crop;
- output `SemanticLogits`: float32 [1, crop_h, crop_w, num_classes], the logits resized
  (bilinear) to the crop, as the published file's output.

Its crop is the export's fixed crop (--crop_size, or the crop evaluate recorded), else
DEFAULT_CROP. The functions `prepare` and `labels_from_logits` are the app-side pre- and
post-processing in numpy: the self-check scores the form through them, and an app can copy
them (docs/export.md). Numpy and TensorFlow are imported inside functions: deeplab.config
imports this package's format names on the Airflow side.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Tuple

from deeplab.config import MEAN_RGB, MEAN_SUBTRACTED_VARIANTS
from deeplab.errors import UserInputError

MOBILE_INPUT = "MobileInput"
MOBILE_OUTPUT = "SemanticLogits"
# The original export_model.py's --crop_size default and quantize.md's input shape.
DEFAULT_CROP = (513, 513)
_RAW_LOGITS = "MobileRawLogits"


def normalization(model_variant: str) -> str:
  """How the app normalises uint8 RGB pixels for this variant (export_result.json, docs)."""
  if model_variant in MEAN_SUBTRACTED_VARIANTS:
    return f"pixel - {list(MEAN_RGB)} (RGB)"
  return "(2/255) * pixel - 1"


def normalize(image: Any, model_variant: str) -> Any:
  """uint8 [H, W, 3] -> float32 [H, W, 3] as the backbone reads it (feature_extractor.preprocess)."""
  import numpy as np
  x = image.astype(np.float32)
  if model_variant in MEAN_SUBTRACTED_VARIANTS:
    return x - np.asarray(MEAN_RGB, np.float32)
  return np.float32(2.0 / 255.0) * x - np.float32(1.0)


def prepare(image: Any, crop: Tuple[int, int], model_variant: str) -> Tuple[Any, Tuple[int, int]]:
  """The app's pre-processing: (float32 [1, crop_h, crop_w, 3] input, (h, w) of the image in it).

  An image larger than the crop is first resized (bilinear, aspect ratio kept) so that it
  fits; then normalised and padded bottom and right with 0.
  """
  import numpy as np
  h, w = image.shape[:2]
  if h > crop[0] or w > crop[1]:
    from PIL import Image as PILImage
    scale = min(crop[0] / h, crop[1] / w)
    size = (min(crop[0], max(1, int(h * scale + 0.5))), min(crop[1], max(1, int(w * scale + 0.5))))
    image = np.asarray(PILImage.fromarray(image).resize((size[1], size[0]),
                                                        PILImage.BILINEAR))
  vh, vw = image.shape[:2]
  out = np.zeros((1, crop[0], crop[1], 3), np.float32)
  out[0, :vh, :vw] = normalize(image, model_variant)
  return out, (vh, vw)


def labels_from_logits(logits: Any, valid: Tuple[int, int], size: Tuple[int, int]) -> Any:
  """The app's post-processing: argmax of [crop_h, crop_w, C] logits, the image's region cut
  out and resized back to `size` (nearest neighbour, aligned corners); int32 [h, w]."""
  import numpy as np
  labels = np.argmax(logits, axis=-1)[:valid[0], :valid[1]].astype(np.int32)
  if (valid[0], valid[1]) == tuple(size):
    return labels

  def index(n_out, n_in):  # align_corners: the first and last pixels map onto each other
    if n_out == 1:
      return np.zeros(1, np.int64)
    return np.floor(np.arange(n_out) * (n_in - 1) / (n_out - 1) + 0.5).astype(np.int64)
  return labels[index(size[0], valid[0])][:, index(size[1], valid[1])]


def crop_for(policy) -> Tuple[int, int]:
  """The mobile form's size: the export's fixed crop, else DEFAULT_CROP."""
  return tuple(policy.crop_size) if policy.fixed else DEFAULT_CROP


def frozen_graph(model_cfg, crop: Tuple[int, int], checkpoint_local: str):
  """The frozen sub-graph MobileInput -> SemanticLogits (variables from the checkpoint).

  The full fixed-crop model is built on raw pixels and frozen; it is then imported again with
  the backbone's input (feature_extractor.BACKBONE_INPUT) replaced by the MobileInput
  placeholder, and everything before it (the normalisation) is cut away.

  Raises:
    UserInputError: the model predicts from several scales (image_pyramid), which no single
      normalised input can feed.
  """
  from deeplab import model
  from deeplab.compat import tf
  from deeplab.core.feature_extractor import BACKBONE_INPUT
  from deeplab.evaluation import inference
  if len(model_cfg.image_pyramid or [1.0]) != 1:
    raise UserInputError(f"tflite_mobile takes one normalised image, but the model predicts "
                         f"from the image pyramid {list(model_cfg.image_pyramid)}; leave "
                         "tflite_mobile out of --formats (tflite holds the whole graph)")
  shape = [1, crop[0], crop[1], 3]
  graph = tf.Graph()
  with graph.as_default():
    raw = tf.placeholder(tf.float32, shape, name="MobileRawImage")
    logits = model.multi_scale_logits(raw, model_cfg, tuple(crop), image_pyramid=[1.0])
    logits = logits[model.OUTPUT_TYPE][model.MERGED_LOGITS_SCOPE]
    tf.identity(model.resize_bilinear(logits, list(crop), tf.float32), name=_RAW_LOGITS)
    saver = inference.restore_saver()
    with tf.Session(graph=graph) as sess:
      inference.restore(saver, sess, checkpoint_local)
      frozen = tf.graph_util.convert_variables_to_constants(
          sess, graph.as_graph_def(), [_RAW_LOGITS])
  (backbone_input,) = [n.name for n in frozen.node if n.name.split("/")[-1] == BACKBONE_INPUT]
  sub = tf.Graph()
  with sub.as_default():
    placeholder = tf.placeholder(tf.float32, shape, name=MOBILE_INPUT)
    (out,) = tf.import_graph_def(frozen, input_map={backbone_input + ":0": placeholder},
                                 return_elements=[_RAW_LOGITS + ":0"], name="mobile")
    tf.identity(out, name=MOBILE_OUTPUT)
  graph_def = sub.as_graph_def()
  for node in graph_def.node:
    node.device = ""
  return tf.graph_util.extract_sub_graph(graph_def, [MOBILE_OUTPUT])


def tflite_model(model_cfg, crop: Tuple[int, int], checkpoint_local: str) -> bytes:
  """The mobile form as float32 TFLite flatbuffer bytes (standard ops only)."""
  from deeplab.compat import tf
  graph_def = frozen_graph(model_cfg, crop, checkpoint_local)
  with tempfile.TemporaryDirectory(prefix="deeplab-mobile-") as tmp:
    path = os.path.join(tmp, "mobile.pb")
    with open(path, "wb") as f:
      f.write(graph_def.SerializeToString())
    converter = tf.lite.TFLiteConverter.from_frozen_graph(path, [MOBILE_INPUT],
                                                          [MOBILE_OUTPUT])
    return converter.convert()


def describe(model_cfg, crop: Tuple[int, int], file: str) -> dict:
  """What an app needs to run the file (export_result.json's `mobile_form`)."""
  return {"file": file, "input": MOBILE_INPUT, "input_dtype": "float32",
          "input_shape": [1, crop[0], crop[1], 3],
          "normalization": normalization(model_cfg.model_variant),
          "padding": "bottom and right, value 0 (after normalisation)",
          "output": MOBILE_OUTPUT, "output_dtype": "float32",
          "output_shape": [1, crop[0], crop[1], model_cfg.num_classes],
          "post_processing": "argmax over classes, cut the image's region, resize back "
                             "(nearest neighbour)"}


def file_crop(path: str) -> Tuple[int, int]:
  """The (height, width) a mobile-form file takes, read from its input tensor."""
  from ai_edge_litert.interpreter import Interpreter
  shape = Interpreter(model_path=path).get_input_details()[0]["shape"]
  return int(shape[1]), int(shape[2])


def predictor(path: str, model_variant: str) -> Callable[[Any], Any]:
  """uint8 [H, W, 3] -> int32 [H, W]: the mobile form run by LiteRT between the app-side
  pre- and post-processing. The crop is read from the model's own input shape."""
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=path)
  interpreter.allocate_tensors()
  inp = interpreter.get_input_details()[0]
  out = interpreter.get_output_details()[0]
  crop = tuple(int(d) for d in inp["shape"][1:3])

  def run(image):
    x, valid = prepare(image, crop, model_variant)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return labels_from_logits(interpreter.get_tensor(out["index"])[0], valid, image.shape[:2])
  return run
