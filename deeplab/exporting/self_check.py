"""Export's self-check: the exported forms must predict exactly what evaluation predicts.

The reference is the evaluation path, rebuilt on its own: the inference policy's functions
(`inference.prepare`, `predict`, `restore_size`) with variables restored from the checkpoint.
The exported forms (the frozen GraphDef, the SavedModel's uint8 signature and its
encoded-bytes signature fed PNG bytes) run on the same real images of the split, each at its
own size (always including the split's tallest and widest image); every pixel must agree. A
frozen graph or SavedModel that was altered, or a checkpoint that changed after export,
fails; an image a fixed-crop export cannot serve (larger than its crop) is a user error
naming the image.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np

from deeplab.exporting import graph as eg
from deeplab.evaluation import inference
from deeplab.compat import tf
from deeplab.evaluation.input_size import InferencePolicy
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)
Image = Tuple[str, np.ndarray]  # (name, uint8 [H, W, 3])
CROP_ADVICE = ("leave --crop_size unset (the default export takes any height and width), "
               "pass a larger --crop_size, or pass --max_resize_value so that larger inputs "
               "are resized")


def exact_session_config() -> "tf.ConfigProto":
  """A session config without graph rewrites (Grappler, constant folding, CSE).

  Freezing turns variables into constants, which lets the optimisers fold batch norm into
  the convolutions: the same model then rounds differently and argmax near-ties can flip a
  pixel. Comparing without rewrites makes the check exact and deterministic: any difference
  is a difference in the exported model, not in floating-point rounding.
  """
  config = tf.ConfigProto()
  config.graph_options.rewrite_options.disable_meta_optimizer = True
  opts = config.graph_options.optimizer_options
  opts.opt_level = tf.OptimizerOptions.L0
  opts.do_constant_folding = False
  opts.do_common_subexpression_elimination = False
  opts.do_function_inlining = False
  return config


def synthetic_images(crop_size: Tuple[int, int], count: int = 3, seed: int = 0) -> List[Image]:
  """Deterministic test images (gradients + random rectangles) no larger than the crop."""
  rng = np.random.RandomState(seed)
  ch, cw = crop_size
  sizes = [(ch, cw), (max(8, ch * 2 // 3), max(8, cw // 2 + 1)), (max(8, ch // 2 + 3), cw)]
  out = []
  for i in range(count):
    h, w = sizes[i % len(sizes)]
    h, w = min(h, ch), min(w, cw)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([255 * yy / max(h - 1, 1), 255 * xx / max(w - 1, 1),
                    np.full((h, w), 128.0)], axis=-1)
    for _ in range(4):
      y0, x0 = rng.randint(0, h), rng.randint(0, w)
      img[y0:y0 + rng.randint(2, max(3, h // 2)), x0:x0 + rng.randint(2, max(3, w // 2))] = \
          rng.randint(0, 256, size=3)
    out.append((f"synthetic_{i}", img.astype(np.uint8)))
  return out


def pick_indices(sizes: np.ndarray, count: int) -> List[int]:
  """Stored-order indices to check: the tallest and the widest image, then the first ones.

  The largest images decide whether the crop serves the split, so they are always checked
  (even beyond `count`); the first images of the split fill up to `count`.
  """
  if not len(sizes):
    return []
  largest = {int(np.lexsort((sizes[:, 1], sizes[:, 0]))[-1]),   # tallest (then widest)
             int(np.lexsort((sizes[:, 0], sizes[:, 1]))[-1])}   # widest (then tallest)
  rest = [i for i in range(len(sizes)) if i not in largest][:max(0, count - len(largest))]
  return sorted(largest.union(rest))


def split_images(dataset_dir: str, split: str, count: int) -> Tuple[List[Image], np.ndarray]:
  """(images at their own size, every image's (height, width)) of a split: see pick_indices."""
  from deeplab.evaluation import split_reader
  from deeplab.evaluation.eval_pass import stage_split
  local = stage_split(dataset_dir, split)
  sizes = split_reader.scan_sizes(local, split)
  examples = split_reader.read_examples(local, split, count, with_label=False,
                                        indices=pick_indices(sizes, count))
  return [(name, img) for name, img, _ in examples], sizes


def too_large(images: Sequence[Image], policy: InferencePolicy) -> List[str]:
  """Why each image cannot be served: only a fixed crop without resize_to_range refuses."""
  if not policy.fixed or policy.model.min_resize_value or policy.model.max_resize_value:
    return []  # own size serves anything; resized first: the graph's own check decides
  crop = policy.crop_size
  return [f"image {name!r} is {img.shape[0]}x{img.shape[1]}, larger than the export crop "
          f"{crop[0]}x{crop[1]}" for name, img in images
          if img.shape[0] > crop[0] or img.shape[1] > crop[1]]


def reference_predictions(policy: InferencePolicy, checkpoint_local: str,
                          images: Sequence[Image]) -> List[np.ndarray]:
  """Evaluation-path predictions (variables from the checkpoint) at each image's size.

  Raises:
    UserInputError: an image is larger than a fixed crop after any resize (cannot be served).
  """
  graph = tf.Graph()
  with graph.as_default():
    image = tf.placeholder(tf.uint8, [None, None, 3])
    prepared, valid = inference.prepare(image, policy)
    labels, _ = inference.predict(prepared[tf.newaxis], valid[tf.newaxis], policy)
    labels_back = inference.restore_size(labels[0], valid, tf.shape(image)[:2])
    saver = inference.restore_saver()
    with tf.Session(graph=graph, config=exact_session_config()) as sess:
      inference.restore(saver, sess, checkpoint_local)
      out = []
      for name, img in images:
        try:
          out.append(sess.run(labels_back, {image: img}))
        except tf.errors.InvalidArgumentError as e:  # the fixed crop's size check
          if inference.TOO_LARGE not in str(e):
            raise
          crop = policy.crop_size
          raise UserInputError(
              f"the export cannot serve image {name!r} ({img.shape[0]}x{img.shape[1]}): after "
              f"any resize it is larger than the crop {crop[0]}x{crop[1]}; "
              + CROP_ADVICE) from e
      return out


def frozen_predictions(graph_def, images: Sequence[Image]) -> List[np.ndarray]:
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(graph_def, name="")
  feed = graph.get_tensor_by_name(eg.INPUT_NAME + ":0")
  fetch = graph.get_tensor_by_name(eg.PREDICTIONS_NAME + ":0")
  with tf.Session(graph=graph, config=exact_session_config()) as sess:
    return [sess.run(fetch, {feed: img[None]})[0] for _, img in images]


def saved_model_predictions(export_dir: str, images: Sequence[Image],
                            encoded: bool = False) -> List[np.ndarray]:
  """Runs a SavedModel signature (by its tensor names): serving_default on the uint8 image,
  or with `encoded` the bytes signature on the image's PNG encoding (lossless)."""
  graph = tf.Graph()
  with tf.Session(graph=graph, config=exact_session_config()) as sess:
    meta = tf.saved_model.loader.load(sess, [tf.saved_model.tag_constants.SERVING], export_dir)
    key, name = ((eg.BYTES_SIGNATURE, eg.BYTES_INPUT) if encoded
                 else ("serving_default", eg.SIGNATURE_INPUT))
    sig = meta.signature_def[key]
    feed = graph.get_tensor_by_name(sig.inputs[name].name)
    fetch = graph.get_tensor_by_name(sig.outputs["semantic_predictions"].name)
    return [sess.run(fetch, {feed: [png_bytes(img)] if encoded else img[None]})[0]
            for _, img in images]


def png_bytes(image: np.ndarray) -> bytes:
  import io
  from PIL import Image as PILImage
  buf = io.BytesIO()
  PILImage.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


def _compare(ref: np.ndarray, got: np.ndarray) -> int:
  """Number of differing pixels (all of them when the shapes differ)."""
  if ref.shape != got.shape:
    return int(ref.size)
  return int(np.count_nonzero(ref != got))


def check_export(frozen_graph_path: str, saved_model_dir: Optional[str], checkpoint_local: str,
                 policy: InferencePolicy, images: Sequence[Image], source: str) -> dict:
  """Compares every exported form with the evaluation path on `images`.

  Returns:
    {'passed': bool, 'source', 'num_images', 'images': [{name, height, width,
    frozen_graph_differing_pixels, saved_model_differing_pixels,
    saved_model_bytes_differing_pixels}], 'failures': [str]}.

  Raises:
    UserInputError: an image is larger than a fixed crop after any resize (cannot be served).
  """
  ref = reference_predictions(policy, checkpoint_local, images)
  forms = (("frozen graph", "frozen_graph_differing_pixels",
            frozen_predictions(eg.read_frozen_graph(frozen_graph_path), images)),)
  if saved_model_dir:  # None: --formats left the SavedModel out
    forms += (("SavedModel", "saved_model_differing_pixels",
               saved_model_predictions(saved_model_dir, images)),
              ("SavedModel's encoded-image signature", "saved_model_bytes_differing_pixels",
               saved_model_predictions(saved_model_dir, images, encoded=True)))
  rows, failures = [], []
  for i, ((name, img), r) in enumerate(zip(images, ref)):
    row = {"name": name, "height": int(img.shape[0]), "width": int(img.shape[1]),
           "classes_predicted": sorted(int(c) for c in np.unique(r))}
    for form, key, got in forms:
      row[key] = _compare(r, got[i])
      if row[key]:
        failures.append(f"image {name!r} ({row['height']}x{row['width']}): the {form} differs "
                        f"from the evaluation graph in {row[key]} of {r.size} pixels")
    rows.append(row)
  for msg in failures:
    log.error("export self-check: %s", msg)
  log.info("export self-check on %d %s image(s): %s", len(rows), source,
           "passed" if not failures else "FAILED")
  return {"passed": not failures and bool(rows), "source": source, "num_images": len(rows),
          "mode": "every pixel identical; graph rewrites disabled on both sides",
          "images": rows, "failures": failures}
