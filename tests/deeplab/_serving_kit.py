"""Serving an export as a user would: the frozen graph on every image of a split at its own
size, and the mIoU of its predictions recomputed in plain numpy."""

import os

import numpy as np


def numpy_miou(predictions, labels, num_classes: int, ignore_label: int = 255) -> float:
  """Mean IoU over the classes present in truth or prediction, ignored pixels excluded."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  for pred, label in zip(predictions, labels):
    keep = label != ignore_label
    np.add.at(matrix, (label[keep].astype(np.int64), pred[keep].astype(np.int64)), 1)
  tp = np.diag(matrix)
  union = matrix.sum(0) + matrix.sum(1) - tp
  return float(np.mean(tp[union > 0] / union[union > 0]))


def frozen_graph_on_split(export_dir: str, dataset_dir: str, split: str):
  """(examples, predictions): the exported frozen graph on every image of a local split,
  each fed at its own size, as a user serving the model would."""
  from deeplab.compat import tf
  from deeplab.evaluation import split_reader
  from deeplab.exporting import graph as eg
  examples = split_reader.read_examples(dataset_dir, split, 1 << 30)
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(eg.read_frozen_graph(os.path.join(export_dir, eg.FROZEN_GRAPH)), name="")
  with tf.Session(graph=graph) as sess:
    predictions = [sess.run("SemanticPredictions:0", {"ImageTensor:0": image[None]})[0]
                   for _, image, _ in examples]
  return examples, predictions


def rolled_logits_checkpoint(ckpt: str, folder) -> str:
  """A copy of `ckpt`'s run whose logits weights are rolled by one class: a different model
  with the same variables (what an export of the wrong checkpoint serves). Returns its prefix."""
  import shutil
  from deeplab.compat import tf
  shutil.copytree(os.path.dirname(ckpt), folder)
  reader = tf.train.load_checkpoint(ckpt)
  with tf.Graph().as_default():
    variables = []
    for name in sorted(reader.get_variable_to_shape_map()):
      value = reader.get_tensor(name)
      if name == "logits/semantic/weights":
        value = np.roll(value, 1, axis=-1)
      variables.append(tf.Variable(value, name=name))
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      prefix = os.path.join(str(folder), os.path.basename(ckpt))
      tf.train.Saver(variables).save(sess, prefix, write_meta_graph=False)
  return prefix
