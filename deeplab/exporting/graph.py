"""The model-zoo inference graph, its frozen GraphDef and the SavedModel built from it.

Graph (the original export_model.py, docs/compatibility.md): uint8 `ImageTensor`
[1, H, W, 3] -> eval preprocessing (resize to range when configured, pad to the crop with
the mean pixel) -> the shared prediction function -> `RawSemanticPredictions` /
`RawSemanticProbabilities` at crop size -> slice the valid region -> resize back to the
input size: `SemanticPredictions` (int32 [1, H, W], nearest neighbour) and
`SemanticProbabilities` (float32 [1, H, W, C], bilinear).
"""

from __future__ import annotations

import os
from typing import Sequence, Tuple

from deeplab.evaluation import inference
from deeplab.compat import tf
from deeplab.config import ModelConfig
from deeplab.datasets import preprocess

INPUT_NAME = "ImageTensor"
PREDICTIONS_NAME = "SemanticPredictions"
PROBABILITIES_NAME = "SemanticProbabilities"
RAW_PREDICTIONS_NAME = "RawSemanticPredictions"
RAW_PROBABILITIES_NAME = "RawSemanticProbabilities"
OUTPUT_NODES = (PREDICTIONS_NAME, PROBABILITIES_NAME)
FROZEN_GRAPH = "frozen_inference_graph.pb"
SAVED_MODEL_DIR = "saved_model"
# Signature keys of the SavedModel's serving_default signature.
SIGNATURE_INPUT = "images"
SIGNATURE_OUTPUTS = {"semantic_predictions": PREDICTIONS_NAME,
                     "semantic_probabilities": PROBABILITIES_NAME}


def resize_label_back(labels, size):
  """Nearest-neighbour resize of [1, h, w] labels to `size`, int32 (the original _resize_label)."""
  resized = tf.image.resize_nearest_neighbor(tf.expand_dims(labels, 3), size, align_corners=True)
  return tf.cast(tf.squeeze(resized, 3), tf.int32)


def preprocess_single(image, model_cfg: ModelConfig, crop_size: Tuple[int, int]):
  """[H, W, 3] image -> (resized image size [2], float32 [1, crop_h, crop_w, 3]) as at eval."""
  resized, processed, _ = preprocess.preprocess_image_and_label(
      image, None, crop_size[0], crop_size[1], min_resize_value=model_cfg.min_resize_value,
      max_resize_value=model_cfg.max_resize_value, resize_factor=model_cfg.resize_factor,
      keep_aspect_ratio=model_cfg.keep_aspect_ratio, is_training=False,
      model_variant=model_cfg.model_variant)
  return tf.shape(resized)[:2], tf.expand_dims(processed, 0)


def build_inference_graph(model_cfg: ModelConfig, crop_size: Tuple[int, int],
                          scales: Sequence[float] = (1.0,),
                          add_flipped_images: bool = False) -> tf.Graph:
  """A new graph holding the model-zoo inference graph (variables not yet restored)."""
  graph = tf.Graph()
  with graph.as_default():
    image_tensor = tf.placeholder(tf.uint8, [1, None, None, 3], name=INPUT_NAME)
    original_size = tf.shape(image_tensor)[1:3]
    resized_size, images = preprocess_single(tf.squeeze(image_tensor, 0), model_cfg, crop_size)
    labels, probs = inference.predict(images, model_cfg, tuple(crop_size), scales,
                                      add_flipped_images)
    raw_predictions = tf.identity(tf.cast(labels, tf.float32), name=RAW_PREDICTIONS_NAME)
    raw_probabilities = tf.identity(probs, name=RAW_PROBABILITIES_NAME)
    predictions = tf.slice(raw_predictions, [0, 0, 0], [1, resized_size[0], resized_size[1]])
    probabilities = tf.slice(raw_probabilities, [0, 0, 0, 0],
                             [-1, resized_size[0], resized_size[1], -1])
    tf.identity(resize_label_back(predictions, original_size), name=PREDICTIONS_NAME)
    tf.image.resize_bilinear(probabilities, original_size, align_corners=True,
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
  """A SavedModel of the same frozen GraphDef with a `serving_default` signature.

  Built with the v1 builder because this process runs in graph mode; TF2's
  `tf.saved_model.load(path).signatures['serving_default'](images=uint8 [1,H,W,3])` loads it.
  """
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(graph_def, name="")
    inputs = {SIGNATURE_INPUT: graph.get_tensor_by_name(INPUT_NAME + ":0")}
    outputs = {k: graph.get_tensor_by_name(v + ":0") for k, v in SIGNATURE_OUTPUTS.items()}
    signature = tf.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
    builder = tf.saved_model.Builder(export_dir)
    with tf.Session(graph=graph) as sess:
      builder.add_meta_graph_and_variables(
          sess, [tf.saved_model.tag_constants.SERVING],
          signature_def_map={"serving_default": signature}, strip_default_attrs=True)
    builder.save()


def file_sizes(folder: str) -> list:
  """[{'path': relative POSIX path, 'bytes': size}] for every file under `folder`, sorted."""
  out = []
  for root, _, files in os.walk(folder):
    for name in files:
      full = os.path.join(root, name)
      out.append({"path": os.path.relpath(full, folder).replace(os.sep, "/"),
                  "bytes": os.path.getsize(full)})
  return sorted(out, key=lambda e: e["path"])
