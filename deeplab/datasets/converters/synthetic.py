"""A seeded, learnable shapes dataset, generated as a `folder` tree and converted like one.

Class 0 is a noisy, textured background; every other class is one shape (circle, square,
triangle, diamond, ring, ...) with its own colour family and texture (stripes, checks, dots,
plain). Colour and shape both identify a class, so a small DeepLab learns it in a few hundred
CPU steps; jitter, noise and overlaps keep it from being trivial. The same seed and sizes
always give the same files.
"""

import io
import json
import os
from typing import List

from deeplab.datasets.converters import folder
from deeplab.datasets.converters.base import ConvertOptions, DatasetSpec
from deeplab.errors import UserInputError

SHAPES = ("circle", "square", "triangle", "diamond", "ring", "cross")
COLOURS = ((210, 50, 45), (45, 175, 60), (45, 80, 215), (225, 200, 40), (200, 60, 200),
           (40, 200, 210))
TEXTURES = ("stripes", "checks", "dots", "plain", "stripes", "checks")


def class_names(num_classes: int) -> List[str]:
  return ["background"] + list(SHAPES[:num_classes - 1])


def _shape_mask(np, kind: str, yy, xx, cy: float, cx: float, r: float):
  dy, dx = yy - cy, xx - cx
  if kind == "circle":
    return dy * dy + dx * dx <= r * r
  if kind == "square":
    return (abs(dy) <= r * 0.85) & (abs(dx) <= r * 0.85)
  if kind == "triangle":
    return (dy <= r * 0.7) & (dy >= -r) & (abs(dx) <= (dy + r) * 0.6)
  if kind == "diamond":
    return abs(dy) + abs(dx) <= r
  if kind == "ring":
    d = dy * dy + dx * dx
    return (d <= r * r) & (d >= (0.55 * r) ** 2)
  return ((abs(dy) <= r * 0.3) & (abs(dx) <= r)) | ((abs(dx) <= r * 0.3) & (abs(dy) <= r))


def _texture(np, kind: str, yy, xx, rng):
  period = rng.uniform(3.0, 6.0)
  if kind == "stripes":
    return np.sin((xx + yy * rng.uniform(-0.5, 0.5)) * (2 * np.pi / period))[..., None] * 30
  if kind == "checks":
    return (((xx // period).astype(int) + (yy // period).astype(int)) % 2 * 2 - 1)[..., None] * 25.
  if kind == "dots":
    return -40. * ((np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period)) > 0.6)[
        ..., None]
  return 0.


def generate_example(seed: int, index: int, size: int, num_classes: int):
  """One (image uint8 [H,W,3], label uint8 [H,W]) pair; pure function of its arguments."""
  import numpy as np
  rng = np.random.default_rng([seed, index])
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  base = rng.uniform(70, 150) + rng.uniform(-20, 20, size=3)
  angle = rng.uniform(0, np.pi)
  wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * rng.uniform(0.15, 0.5))
  image = base + 15 * wave[..., None] + rng.normal(0, 10, (size, size, 3))
  label = np.zeros((size, size), np.uint8)
  for _ in range(rng.integers(1, 4)):
    cls = int(rng.integers(1, num_classes))
    r = rng.uniform(0.12, 0.28) * size
    cy, cx = rng.uniform(r * 0.5, size - r * 0.5, size=2)
    mask = _shape_mask(np, SHAPES[(cls - 1) % len(SHAPES)], yy, xx, cy, cx, r)
    colour = np.array(COLOURS[(cls - 1) % len(COLOURS)], np.float32) + rng.uniform(-25, 25, 3)
    fill = colour + _texture(np, TEXTURES[(cls - 1) % len(TEXTURES)], yy, xx, rng)
    fill = fill + rng.normal(0, 8, (size, size, 3))
    image = np.where(mask[..., None], fill, image)
    label[mask] = cls
  return np.clip(image, 0, 255).astype(np.uint8), label


def generate(dest: str, opts: ConvertOptions) -> None:
  """Writes images/*.jpg, masks/*.png, splits/{train,val}.txt and classes.json into `dest`."""
  from PIL import Image
  k, size = opts.synthetic_num_classes, opts.synthetic_image_size
  if not 2 <= k <= len(SHAPES) + 1:
    raise UserInputError(f"--synthetic_num_classes is {k}; expected 2..{len(SHAPES) + 1}")
  if size < 16 or opts.synthetic_num_train < 1 or opts.synthetic_num_val < 0:
    raise UserInputError("--synthetic_image_size must be >= 16, --synthetic_num_train >= 1 and "
                         "--synthetic_num_val >= 0")
  for sub in ("images", "masks", "splits"):
    os.makedirs(os.path.join(dest, sub), exist_ok=True)
  index = 0
  for split, count in (("train", opts.synthetic_num_train), ("val", opts.synthetic_num_val)):
    if not count:
      continue
    stems = []
    for i in range(count):
      stem = f"{split}_{i:05d}"
      image, label = generate_example(opts.seed, index, size, k)
      index += 1
      buf = io.BytesIO()
      Image.fromarray(image).save(buf, format="JPEG", quality=92)
      _write(os.path.join(dest, "images", stem + ".jpg"), buf.getvalue())
      buf = io.BytesIO()
      Image.fromarray(label).save(buf, format="PNG")
      _write(os.path.join(dest, "masks", stem + ".png"), buf.getvalue())
      stems.append(stem)
    _write(os.path.join(dest, "splits", split + ".txt"), ("\n".join(stems) + "\n").encode())
  classes = {"class_names": class_names(k), "ignore_label": 255}
  _write(os.path.join(dest, "classes.json"), json.dumps(classes, indent=1).encode())


def _write(path: str, data: bytes) -> None:
  with open(path, "wb") as f:
    f.write(data)


def describe(source: str, opts: ConvertOptions) -> DatasetSpec:
  """Generates into `source` (a fresh or reused folder) and lists it like the folder format."""
  generate(source, opts)
  spec = folder.describe(source, opts)
  spec.name = opts.dataset_name or "synthetic"
  spec.notes.append(f"generated {opts.synthetic_num_train}+{opts.synthetic_num_val} "
                    f"{opts.synthetic_image_size}px examples with seed {opts.seed}")
  return spec
