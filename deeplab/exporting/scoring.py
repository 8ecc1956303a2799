"""The self-check of the device formats: each one scored on the eval split like the frozen graph.

Every image of the check split (or its first --num_score_images) runs through the frozen
graph and through each device format at its own size. Per format: the fraction of pixels
whose class equals the frozen graph's (agreement) and the format's own mIoU against the
labels. The verdicts:

- A float format (TFLite float32, ONNX) computes what the frozen graph computes with other
  kernels (XNNPACK, MLAS) that sum in another order; a pixel whose two best classes are
  within rounding of each other may flip, nothing else. It must agree on at least
  FLOAT_MIN_AGREEMENT of the pixels (measured: 100% on the test model and on mobilenet_v2 at
  513x513, docs/export.md).
- A quantized format (TFLite float16, int8) rounds weights or activations on purpose: it may
  disagree, but its mIoU may not drop below the frozen graph's by more than
  max_quantized_miou_drop. So may the mobile form (tflite_mobile), run between the app-side
  pre- and post-processing of deeplab/exporting/mobile.py: its fixed crop differs from the
  frozen graph's policy by design, unless the export has the same --crop_size.
"""

from __future__ import annotations

import logging
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np

from deeplab.evaluation import metrics
from deeplab.exporting import formats as fm

log = logging.getLogger(__name__)
FLOAT_MIN_AGREEMENT = 0.999
Example = Tuple[str, np.ndarray, np.ndarray]  # (name, uint8 [H, W, 3], label [H, W])


def _miou(matrix: np.ndarray) -> Optional[float]:
  return metrics.compute_metrics(matrix)["miou"]


class Scores:
  """Accumulates, image by image, the agreement and confusion matrix of each format.

  Args:
    formats: the device formats scored.
    num_classes, ignore_label: the dataset's.
  """

  def __init__(self, formats: Sequence[str], num_classes: int, ignore_label: int):
    self.num_classes, self.ignore_label = num_classes, ignore_label
    self.reference = np.zeros((num_classes, num_classes), np.int64)
    self.matrices = {f: np.zeros_like(self.reference) for f in formats}
    self.differing = {f: 0 for f in formats}
    self.pixels = self.num_images = 0

  def add(self, name: str, label: np.ndarray, reference: np.ndarray,
          predictions: Dict[str, np.ndarray]) -> None:
    """One image: its label, the frozen graph's class map and each format's."""
    self.reference += metrics.confusion_matrix(label, reference, self.num_classes,
                                               self.ignore_label)
    self.pixels += reference.size
    self.num_images += 1
    for fmt, got in predictions.items():
      if got.shape != reference.shape:
        raise ValueError(f"{fmt} predicted shape {got.shape} for image {name!r}, the frozen "
                         f"graph {reference.shape}")
      self.differing[fmt] += int(np.count_nonzero(got != reference))
      self.matrices[fmt] += metrics.confusion_matrix(label, got, self.num_classes,
                                                     self.ignore_label)

  def result(self, max_quantized_miou_drop: float) -> dict:
    """The verdicts (module docstring).

    Returns:
      {'num_images', 'frozen': {'miou'}, 'formats': {format: {'agreement',
      'differing_pixels', 'pixels', 'miou', 'miou_drop', 'rule', 'passed'}}, 'failures'}.
    """
    frozen_miou = _miou(self.reference)
    rows, failures = {}, []
    for fmt, matrix in self.matrices.items():
      agreement = 1.0 - self.differing[fmt] / self.pixels if self.pixels else None
      miou = _miou(matrix)
      drop = (frozen_miou - miou) if frozen_miou is not None and miou is not None else None
      if fmt in fm.MIOU_RULE_FORMATS:
        rule = f"mIoU drop <= {max_quantized_miou_drop}"
        passed = drop is not None and drop <= max_quantized_miou_drop
        why = (f"format {fmt}: mIoU {_fmt(miou)} is {_fmt(drop)} below the float mIoU "
               f"{_fmt(frozen_miou)} of the frozen graph (allowed: --max_quantized_miou_drop="
               f"{max_quantized_miou_drop}); export without it or allow a larger drop")
      else:
        rule = f"agreement >= {FLOAT_MIN_AGREEMENT}"
        passed = agreement is not None and agreement >= FLOAT_MIN_AGREEMENT
        why = (f"format {fmt}: only {_fmt(agreement)} of the pixels agree with the frozen "
               f"graph (needs {FLOAT_MIN_AGREEMENT}); its mIoU {_fmt(miou)}, the frozen "
               f"graph's {_fmt(frozen_miou)}")
      rows[fmt] = {"agreement": agreement, "differing_pixels": self.differing[fmt],
                   "pixels": self.pixels, "miou": miou, "miou_drop": drop, "rule": rule,
                   "passed": bool(passed)}
      if not passed:
        failures.append(why)
    for msg in failures:
      log.error("export self-check: %s", msg)
    return {"num_images": self.num_images, "frozen": {"miou": frozen_miou}, "formats": rows,
            "failures": failures}


def _fmt(value: Optional[float]) -> str:
  return "n/a" if value is None else f"{value:.4f}"


def iter_split(local_dir: str, split: str, limit: int, with_label: bool = True,
               chunk: int = 32) -> Iterator[Example]:
  """The first `limit` examples of a split (0: all), decoded `chunk` at a time (bounded memory)."""
  from deeplab.evaluation import split_reader
  total = len(split_reader.scan_sizes(local_dir, split))
  total = min(total, limit) if limit > 0 else total
  for start in range(0, total, chunk):
    yield from split_reader.read_examples(local_dir, split, chunk, with_label=with_label,
                                          indices=range(start, min(total, start + chunk)))


def score(frozen_graph_path: str, paths: Dict[str, str], examples: Iterable[Example],
          num_classes: int, ignore_label: int, max_quantized_miou_drop: float,
          model_variant: Optional[str] = None) -> dict:
  """Runs the frozen graph and each format on every example; Scores.result().

  model_variant: the model's, for the mobile form's app-side normalisation.
  """
  from deeplab.compat import tf
  from deeplab.exporting import graph as eg
  from deeplab.exporting.self_check import exact_session_config
  scores = Scores(list(paths), num_classes, ignore_label)
  runners = {fmt: fm.predictor(fmt, path, model_variant) for fmt, path in paths.items()}
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(eg.read_frozen_graph(frozen_graph_path), name="")
  feed = graph.get_tensor_by_name(eg.INPUT_NAME + ":0")
  fetch = graph.get_tensor_by_name(eg.PREDICTIONS_NAME + ":0")
  with tf.Session(graph=graph, config=exact_session_config()) as sess:
    for name, image, label in examples:
      reference = sess.run(fetch, {feed: image[np.newaxis]})[0]
      scores.add(name, label, reference, {f: run(image) for f, run in runners.items()})
  return scores.result(max_quantized_miou_drop)
