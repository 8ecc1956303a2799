"""The model-zoo inference graph, its frozen GraphDef and the SavedModel built from it.

Graph (the original export_model.py, docs/export.md): uint8 `ImageTensor` [1, H, W, 3] of any
height and width -> `inference.prepare` (resize into range when the policy says so; pad to
the image's own output_stride*k+1, or to the fixed crop of a --crop_size export) ->
`inference.predict` -> `RawSemanticPredictions` / `RawSemanticProbabilities` at the network
size -> the valid region resized back to the input size: `SemanticPredictions` (int32
[1, H, W], nearest neighbour) and `SemanticProbabilities` (float32 [1, H, W, C], bilinear).

The SavedModel adds a second way in: `EncodedImageBytes` (string [1], JPEG or PNG bytes),
decoded into the same graph, for clients (TF Serving REST, Vertex AI, KServe) that send
encoded images.
"""

from __future__ import annotations

import os

from deeplab.evaluation import inference
from deeplab.evaluation.input_size import InferencePolicy
from deeplab.compat import tf

INPUT_NAME = "ImageTensor"
PREDICTIONS_NAME = "SemanticPredictions"
PROBABILITIES_NAME = "SemanticProbabilities"
RAW_PREDICTIONS_NAME = "RawSemanticPredictions"
RAW_PROBABILITIES_NAME = "RawSemanticProbabilities"
OUTPUT_NODES = (PREDICTIONS_NAME, PROBABILITIES_NAME)
FROZEN_GRAPH = "frozen_inference_graph.pb"
SAVED_MODEL_DIR = "saved_model"
# The SavedModel's signatures: serving_default takes a uint8 image; BYTES_SIGNATURE takes
# encoded bytes (TF Serving's REST API base64-decodes inputs whose name ends in "_bytes").
SIGNATURE_INPUT = "images"
BYTES_SIGNATURE = "encoded_image"
BYTES_INPUT = "image_bytes"
BYTES_TENSOR_NAME = "EncodedImageBytes"
SERVING_IMAGE_NAME = "ServingImage"  # the SavedModel's image input, in front of ImageTensor
# TF Serving's REST API computes and returns every output of the signature it is sent (no
# output filter), so the two serving signatures give the class map only: the probabilities of
# a 4000x3000 photo are 1 GB of float32. PROBABILITIES_SIGNATURE adds them, on request.
SIGNATURE_OUTPUTS = {"semantic_predictions": PREDICTIONS_NAME}
PROBABILITIES_SIGNATURE = "probabilities"
PROBABILITIES_OUTPUTS = {**SIGNATURE_OUTPUTS, "semantic_probabilities": PROBABILITIES_NAME}


def build_inference_graph(policy: InferencePolicy) -> tf.Graph:
  """A new graph holding the inference graph (variables not yet restored)."""
  graph = tf.Graph()
  with graph.as_default():
    image_tensor = tf.placeholder(tf.uint8, [1, None, None, 3], name=INPUT_NAME)
    original_size = tf.shape(image_tensor)[1:3]
    prepared, valid = inference.prepare(image_tensor[0], policy)
    labels, probs = inference.predict(prepared[tf.newaxis], valid[tf.newaxis], policy)
    # The model zoo's float32 raw map (exact for class ids), which the output is cut from.
    raw_predictions = tf.identity(tf.cast(labels, tf.float32), name=RAW_PREDICTIONS_NAME)
    raw_probabilities = tf.identity(probs, name=RAW_PROBABILITIES_NAME)
    predictions = inference.restore_size(raw_predictions[0], valid, original_size)
    tf.identity(predictions[tf.newaxis], name=PREDICTIONS_NAME)
    tf.identity(inference.restore_probabilities(raw_probabilities, valid, original_size),
                name=PROBABILITIES_NAME)
  return graph


def freeze(graph: tf.Graph, checkpoint_local: str) -> "tf.GraphDef":
  """Restores the checkpoint into `graph` and folds all variables into constants."""
  with graph.as_default():
    saver = inference.restore_saver()
    with tf.Session(graph=graph) as sess:
      inference.restore(saver, sess, checkpoint_local)
      graph_def = graph.as_graph_def()
      for node in graph_def.node:  # clear_devices=True, as the original freeze_graph call
        node.device = ""
      frozen = tf.graph_util.convert_variables_to_constants(sess, graph_def, list(OUTPUT_NODES))
  return tf.graph_util.extract_sub_graph(frozen, list(OUTPUT_NODES))


def write_frozen_graph(graph_def, path: str) -> None:
  with open(path, "wb") as f:
    f.write(graph_def.SerializeToString())


def read_frozen_graph(path: str):
  graph_def = tf.GraphDef()
  with open(path, "rb") as f:
    graph_def.ParseFromString(f.read())
  return graph_def


def write_saved_model(graph_def, export_dir: str) -> None:
  """A SavedModel of the same frozen GraphDef with two signatures.

  `serving_default`: {images: uint8 [1, H, W, 3]}; `encoded_image`: {image_bytes: string
  [1]} (JPEG/PNG). Both give {semantic_predictions}; `probabilities` takes `images` and also
  gives semantic_probabilities. The bytes are
  decoded into a placeholder_with_default in front of the frozen graph's input, so the
  weights are stored once and feeding `images` never touches the decoder. Built with the v1
  builder because this process runs in graph mode; TF2's `tf.saved_model.load(path)
  .signatures[...]` and TF Serving load it.
  """
  from deeplab.datasets.input_pipeline import decode_image
  graph = tf.Graph()
  with graph.as_default():
    encoded = tf.placeholder_with_default(tf.constant([""]), [1], name=BYTES_TENSOR_NAME)
    decoded = decode_image(encoded[0], channels=3)[tf.newaxis]
    images = tf.placeholder_with_default(decoded, [1, None, None, 3], name=SERVING_IMAGE_NAME)
    tf.import_graph_def(graph_def, name="", input_map={INPUT_NAME + ":0": images})
    def outputs(names):
      return {k: graph.get_tensor_by_name(v + ":0") for k, v in names.items()}
    build = tf.saved_model.signature_def_utils.predict_signature_def
    signatures = {
        "serving_default": build({SIGNATURE_INPUT: images}, outputs(SIGNATURE_OUTPUTS)),
        BYTES_SIGNATURE: build({BYTES_INPUT: encoded}, outputs(SIGNATURE_OUTPUTS)),
        PROBABILITIES_SIGNATURE: build({SIGNATURE_INPUT: images},
                                       outputs(PROBABILITIES_OUTPUTS))}
    builder = tf.saved_model.Builder(export_dir)
    with tf.Session(graph=graph) as sess:
      builder.add_meta_graph_and_variables(
          sess, [tf.saved_model.tag_constants.SERVING], signature_def_map=signatures,
          strip_default_attrs=True)
    builder.save()


def file_sizes(folder: str) -> list:
  """[{'path': relative POSIX path, 'bytes': size, 'sha256'}] of every file under `folder`."""
  import hashlib
  out = []
  for root, _, files in os.walk(folder):
    for name in files:
      full = os.path.join(root, name)
      digest = hashlib.sha256()
      with open(full, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
      out.append({"path": os.path.relpath(full, folder).replace(os.sep, "/"),
                  "bytes": os.path.getsize(full), "sha256": digest.hexdigest()})
  return sorted(out, key=lambda e: e["path"])
