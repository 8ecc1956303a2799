"""The request check: the pushed version, loaded as a server loads it, answers a client's
REST body with exactly evaluation's predictions.

The version folder is loaded with the SavedModel loader (tag `serve`) from where it will be
served; each check image is sent twice as TF Serving's row-format predict body: its PNG bytes
(`{"b64": ...}`) to the `encoded_image` signature and its uint8 pixels to `serving_default`.
The body is parsed the way the server parses it (deeplab.serving.rest), the answer serialised
to JSON and read back, and every pixel compared with the evaluation path's prediction for the
same checkpoint (deeplab.exporting.self_check.reference_predictions). Graph rewrites are off on
both sides, as in the export's self-check, so any difference is a difference in the model.
"""

from __future__ import annotations

import logging
from typing import List, Sequence

import numpy as np

from deeplab.compat import tf
from deeplab.exporting import graph as eg
from deeplab.exporting import self_check
from deeplab.serving import rest

log = logging.getLogger(__name__)
OUTPUT = "semantic_predictions"


class RestServer:
  """A loaded SavedModel answering predict bodies (one session, signatures by name)."""

  def __init__(self, export_dir: str):
    self.graph = tf.Graph()
    self.session = tf.Session(graph=self.graph, config=self_check.exact_session_config())
    self.meta = tf.saved_model.loader.load(self.session, [tf.saved_model.tag_constants.SERVING],
                                           export_dir)

  def predict(self, body: str) -> str:
    request = rest.read_body(body)
    sig = self.meta.signature_def[request["signature_name"]]
    (name, info), = sig.inputs.items()  # both signatures take one input
    feed = self.graph.get_tensor_by_name(info.name)
    values = request["instances"]
    if feed.dtype != tf.string:
      values = values.astype(feed.dtype.as_numpy_dtype)
    fetch = {k: self.graph.get_tensor_by_name(v.name) for k, v in sig.outputs.items()}
    return rest.response_body(self.session.run(fetch, {feed: values}))

  def close(self) -> None:
    self.session.close()


def request_predictions(export_dir: str, images: Sequence[self_check.Image]) -> dict:
  """{'encoded': [...], 'uint8': [...]}: each image's prediction through both REST bodies."""
  server = RestServer(export_dir)
  try:
    out = {"encoded": [], "uint8": []}
    for _, img in images:
      for form, body in (
          ("encoded", rest.predict_body(eg.BYTES_SIGNATURE, self_check.png_bytes(img))),
          ("uint8", rest.predict_body(rest.DEFAULT_SIGNATURE, img))):
        out[form].append(rest.read_predictions(server.predict(body), OUTPUT)[0])
    return out
  finally:
    server.close()


def check_version(export_dir: str, reference: Sequence[np.ndarray],
                  images: Sequence[self_check.Image]) -> dict:
  """Compares both request forms with `reference` (evaluation's predictions) on `images`.

  Returns:
    {'passed', 'num_images', 'images': [{name, height, width, encoded_differing_pixels,
    uint8_differing_pixels}], 'failures': [str]}.
  """
  got = request_predictions(export_dir, images)
  rows: List[dict] = []
  failures: List[str] = []
  for i, ((name, img), ref) in enumerate(zip(images, reference)):
    row = {"name": name, "height": int(img.shape[0]), "width": int(img.shape[1])}
    for form in ("encoded", "uint8"):
      pred = got[form][i]
      diff = int(ref.size) if pred.shape != ref.shape else int(np.count_nonzero(pred != ref))
      row[f"{form}_differing_pixels"] = diff
      if diff:
        failures.append(f"image {name!r} ({row['height']}x{row['width']}): the {form} request "
                        f"differs from evaluation in {diff} of {ref.size} pixels")
    rows.append(row)
  for msg in failures:
    log.error("request check: %s", msg)
  log.info("request check on %d image(s): %s", len(rows), "passed" if not failures else "FAILED")
  return {"passed": bool(rows) and not failures, "num_images": len(rows), "images": rows,
          "failures": failures,
          "requests": "TF Serving REST row format: {'instances': [{'b64': PNG}]} to "
                      f"{eg.BYTES_SIGNATURE}, uint8 pixels to {rest.DEFAULT_SIGNATURE}"}
