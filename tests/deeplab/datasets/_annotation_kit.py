"""Shared by the annotation-format tests: read the converted shards back, independently of the
writer (a pure-Python reader of the TFRecord framing and tf.train.Example's wire format), and
small geometry expectations that do not use the code under test."""

import glob
import io
import json
import os
from typing import Dict, Tuple

import numpy as np
from PIL import Image

from deeplab.datasets import features
from tests.deeplab.datasets.test_build_trees import image_array, read_records, save


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
  out = shift = 0
  while True:
    b = buf[pos]
    out |= (b & 0x7F) << shift
    pos += 1
    if b < 0x80:
      return out, pos
    shift += 7


def _fields(buf: bytes):
  pos = 0
  while pos < len(buf):
    tag, pos = _varint(buf, pos)
    number, wire = tag >> 3, tag & 7
    if wire == 2:
      n, pos = _varint(buf, pos)
      yield number, buf[pos:pos + n]
      pos += n
    elif wire == 0:
      v, pos = _varint(buf, pos)
      yield number, v
    else:
      raise ValueError(f"unexpected wire type {wire}")


def parse_example(record: bytes) -> Dict[str, object]:
  """tf.train.Example -> {key: bytes or int} (single values, as DeepLab writes them)."""
  out = {}
  for _, feats in _fields(record):
    for _, entry in _fields(feats):
      parts = dict(_fields(entry))
      key, feature = parts[1].decode(), dict(_fields(parts[2]))
      if 1 in feature:  # bytes_list
        out[key] = dict(_fields(feature[1]))[1]
      else:  # int64_list, packed
        out[key] = _varint(dict(_fields(feature[3]))[1], 0)[0]
  return out


def read_split(out_dir: str, split: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  """stem -> (image [H, W, 3], label [H, W]) of every example of `split` in `out_dir`."""
  out = {}
  for shard in sorted(glob.glob(os.path.join(out_dir, f"{split}-*.tfrecord"))):
    for rec in read_records(shard):
      ex = parse_example(rec)
      image = np.asarray(Image.open(io.BytesIO(ex[features.IMAGE_ENCODED])).convert("RGB"))
      label = np.asarray(Image.open(io.BytesIO(ex[features.LABEL_ENCODED])))
      assert (ex[features.IMAGE_HEIGHT], ex[features.IMAGE_WIDTH]) == label.shape
      out[ex[features.IMAGE_FILENAME].decode()] = (image, label)
  return out


def write_json(path: str, data) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(data, f)
  return path


def write_image(path: str, h: int, w: int, seed: int = 0) -> str:
  return save(path, image_array(seed, h, w))


def boundary_distance(points, h: int, w: int) -> np.ndarray:
  """Distance of every pixel centre (j + 0.5, i + 0.5) to the closed polygon's outline."""
  yy, xx = np.mgrid[0:h, 0:w] + 0.5
  best = np.full((h, w), np.inf)
  pts = np.asarray(points, float)
  for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0)):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    best = np.minimum(best, np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)))
  return best


def inside(points, h: int, w: int) -> np.ndarray:
  """Pixel centres inside the polygon (matplotlib's point-in-polygon, not the converter's)."""
  from matplotlib.path import Path
  yy, xx = np.mgrid[0:h, 0:w] + 0.5
  return Path(points).contains_points(np.c_[xx.ravel(), yy.ravel()]).reshape(h, w)


def assert_polygon_drawn(drawn: np.ndarray, points) -> None:
  """`drawn` (bool) is the polygon: every pixel whose centre is more than one pixel from the
  outline is in exactly when its centre is inside."""
  h, w = drawn.shape
  far = boundary_distance(points, h, w) > 1.0
  want = inside(points, h, w)
  assert far.sum() > 0.5 * h * w
  np.testing.assert_array_equal(drawn[far], want[far])
