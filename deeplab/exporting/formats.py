"""The export's formats: which exist, their file names, and the device conversions.

Every device format is converted from the frozen GraphDef (`ImageTensor` uint8 [1, H, W, 3]
of any height and width -> `SemanticPredictions` int32 [1, H, W] and
`SemanticProbabilities` float32 [1, H, W, C]), so it holds the very inference policy the
frozen graph holds (padding, resize into range, pooling over the valid region) and is scored
against it by the self-check (deeplab/exporting/scoring.py):

- `tflite`: TFLite float32, standard ops only (no TF Select), run by LiteRT.
- `tflite_float16`: weights stored as float16 (half the size; computed in float32 on CPU).
- `tflite_int8`: integer quantization: int8 weights and activations, ranges calibrated on
  images of the calibration split (the train split, never the eval split), ops without an
  int8 kernel falling back to float; or, for a quantization-aware-trained model (its frozen
  graph holds FakeQuant ops), the ranges learned in training, without calibration.
- `onnx`: tf2onnx, dynamic height and width, run by onnxruntime.
- `tflite_mobile`: the original's mobile form (deeplab/exporting/mobile.py), the one format
  not converted from the frozen graph: the sub-graph from the backbone's normalised input to
  the logits at one fixed size, float32, for apps that do their own pre- and post-processing.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

# No numpy or TensorFlow at module level: deeplab.config imports the names below and must stay
# importable on the Airflow side.
log = logging.getLogger(__name__)

FROZEN = "frozen"
SAVED_MODEL = "saved_model"
TFLITE_FLOAT32 = "tflite"
TFLITE_FLOAT16 = "tflite_float16"
TFLITE_INT8 = "tflite_int8"
ONNX = "onnx"
TFLITE_MOBILE = "tflite_mobile"
FORMATS = (FROZEN, SAVED_MODEL, TFLITE_FLOAT32, TFLITE_FLOAT16, TFLITE_INT8, ONNX,
           TFLITE_MOBILE)
# Today's export, cheap: device formats are converted and scored only when asked for.
DEFAULT_FORMATS = (FROZEN, SAVED_MODEL)
DEVICE_FILES = {TFLITE_FLOAT32: "deeplab_float32.tflite",
                TFLITE_FLOAT16: "deeplab_float16.tflite",
                TFLITE_INT8: "deeplab_int8.tflite",
                ONNX: "deeplab.onnx",
                TFLITE_MOBILE: "deeplab_mobile.tflite"}
DEVICE_FORMATS = tuple(DEVICE_FILES)
# Formats whose weights or activations are rounded to fewer bits: judged by their mIoU drop
# (max_quantized_miou_drop). The others compute in float32 and must agree with the frozen
# graph pixel for pixel, up to FLOAT_MIN_AGREEMENT (see scoring.py).
QUANTIZED_FORMATS = (TFLITE_FLOAT16, TFLITE_INT8)
# Judged like the quantized ones: the mobile form computes in float32, but at its fixed crop
# with the app's pre-processing, which differ from the frozen graph's policy by design
# (pooling over the padded crop, resizing a larger image to fit).
MIOU_RULE_FORMATS = QUANTIZED_FORMATS + (TFLITE_MOBILE,)
ONNX_OPSET = 17
Image = Tuple[str, Any]  # (name, uint8 numpy array [H, W, 3])


def format_problems(formats: Sequence[str]) -> List[str]:
  """Why a --formats value cannot be exported (empty when it can)."""
  out = []
  unknown = [f for f in formats if f not in FORMATS]
  if unknown:
    out.append(f"--formats has unknown format(s) {unknown}; choose from {list(FORMATS)}")
  if FROZEN not in formats:
    out.append(f"--formats must include '{FROZEN}': every other format is converted from the "
               f"frozen graph and scored against it (got {list(formats)})")
  if len(set(formats)) != len(formats):
    out.append(f"--formats names a format twice: {list(formats)}")
  return out


# The device formats of a quantization-aware-trained model (its frozen graph holds FakeQuant
# ops): the int8 file. Converted as float, the fake-quant ops become quantize/dequantize pairs
# (tflite, tflite_float16: 99.87% agreement, under FLOAT_MIN_AGREEMENT) or QLinearConv nodes
# that onnxruntime refuses for dilated SAME convs (onnx); the mobile form has no int8 variant.
QAT_DEVICE_FORMATS = (TFLITE_INT8,)


def qat_format_problems(formats: Sequence[str]) -> List[str]:
  """Why these formats cannot be exported from a quantization-aware-trained model."""
  refused = [f for f in device_formats(formats) if f not in QAT_DEVICE_FORMATS]
  if not refused:
    return []
  return [f"--formats {refused} of a quantization-aware-trained model (quantize_delay_step >= "
          f"0 in its config.json) are not supported: its device format is "
          f"{', '.join(QAT_DEVICE_FORMATS)} (docs/export.md); leave {refused} out"]


def device_formats(formats: Iterable[str]) -> List[str]:
  """The requested device formats, in FORMATS order."""
  wanted = set(formats)
  return [f for f in DEVICE_FORMATS if f in wanted]


def tflite_model(frozen_graph_path: str, fmt: str,
                 calibration: Optional[Sequence[Image]] = None) -> bytes:
  """Converts the frozen graph into TFLite flatbuffer bytes of one variant.

  Args:
    frozen_graph_path: a local frozen_inference_graph.pb.
    fmt: TFLITE_FLOAT32, TFLITE_FLOAT16 or TFLITE_INT8.
    calibration: images for the int8 ranges (each at its own size); required for int8.
  """
  from deeplab.compat import tf
  from deeplab.exporting import graph as eg
  converter = tf.lite.TFLiteConverter.from_frozen_graph(
      frozen_graph_path, [eg.INPUT_NAME], list(eg.OUTPUT_NODES),
      input_shapes={eg.INPUT_NAME: [1, None, None, 3]})
  if fmt == TFLITE_FLOAT16:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  elif fmt == TFLITE_INT8 and has_fake_quant(frozen_graph_path):
    # Quantization-aware training: every conv's weights and output already carry their int8
    # range (FakeQuant* nodes); the converter turns each into the tensor's int8 scale and zero
    # point and drops it. No calibration: the learned ranges are the ranges.
    converter.inference_type = tf.int8
    converter.quantized_input_stats = {eg.INPUT_NAME: (0.0, 1.0)}  # uint8 input: unused
  elif fmt == TFLITE_INT8:
    if not calibration:
      raise ValueError("int8 quantization needs calibration images")
    import numpy as np
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    images = list(calibration)
    converter.representative_dataset = lambda: ([img[np.newaxis]] for _, img in images)
  elif fmt != TFLITE_FLOAT32:
    raise KeyError(f"{fmt!r} is not a TFLite format; choose from {list(QUANTIZED_FORMATS)}"
                   f" or {TFLITE_FLOAT32!r}")
  return converter.convert()


def has_fake_quant(frozen_graph_path: str) -> bool:
  """Whether the frozen graph was built for quantization-aware training (fake-quant ops)."""
  from deeplab.exporting import graph as eg
  return any(node.op.startswith("FakeQuant")
             for node in eg.read_frozen_graph(frozen_graph_path).node)


def onnx_model(frozen_graph_path: str) -> bytes:
  """Converts the frozen graph into an ONNX model (dynamic height and width)."""
  import tf2onnx
  from deeplab.exporting import graph as eg
  proto, _ = tf2onnx.convert.from_graph_def(
      eg.read_frozen_graph(frozen_graph_path), input_names=[eg.INPUT_NAME + ":0"],
      output_names=[n + ":0" for n in eg.OUTPUT_NODES], opset=ONNX_OPSET)
  return proto.SerializeToString()


def write_device_formats(frozen_graph_path: str, folder: str, formats: Sequence[str],
                         calibration: Optional[Sequence[Image]] = None,
                         mobile_source: Optional[Tuple[Any, Tuple[int, int], str]] = None
                         ) -> Dict[str, str]:
  """Writes each requested device format into `folder`; returns {format: file name}.

  mobile_source: (model config, crop, local checkpoint) of the mobile form, when asked for.
  """
  out = {}
  for fmt in device_formats(formats):
    if fmt == TFLITE_MOBILE:
      from deeplab.exporting import mobile
      data = mobile.tflite_model(*mobile_source)
    elif fmt == ONNX:
      data = onnx_model(frozen_graph_path)
    else:
      data = tflite_model(frozen_graph_path, fmt, calibration)
    with open(os.path.join(folder, DEVICE_FILES[fmt]), "wb") as f:
      f.write(data)
    out[fmt] = DEVICE_FILES[fmt]
    log.info("wrote %s (%d bytes)", DEVICE_FILES[fmt], len(data))
  return out


def predictor(fmt: str, path: str, model_variant: Optional[str] = None
              ) -> Callable[[Any], Any]:
  """A function uint8 [H, W, 3] -> int32 [H, W] class map (numpy), running one device format.

  model_variant: the mobile form's (its app-side normalisation depends on it).
  """
  import numpy as np
  from deeplab.exporting import graph as eg
  if fmt == TFLITE_MOBILE:
    from deeplab.exporting import mobile
    return mobile.predictor(path, model_variant)
  if fmt == ONNX:
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    out_name = eg.PREDICTIONS_NAME + ":0"
    in_name = session.get_inputs()[0].name
    return lambda image: session.run([out_name], {in_name: image[np.newaxis]})[0][0]
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=path)
  inp = interpreter.get_input_details()[0]
  out = next(d for d in interpreter.get_output_details()
             if d["name"] == eg.PREDICTIONS_NAME)

  def run(image):
    interpreter.resize_tensor_input(inp["index"], [1, *image.shape])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], image[np.newaxis])
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])[0]
  return run
