"""Labels drawn from annotations: polygons, RLE, circles and colour masks -> class-index pixels.

Runs in the conversion workers, one example at a time, from a `LabelRecipe` a converter built
in its `describe` (plain data, so it pickles to the worker). Polygons and COCO RLE go through
pycocotools (imported here only: the Airflow side never needs it); Label Studio's brush RLE is
its own bit-packed format that pycocotools cannot read (decoded below, see `decode_ls_rle`).

Coordinates are COCO's: the image spans [0, W] x [0, H] and pixel (row i, column j) is the unit
square [j, j+1) x [i, i+1), so an axis-aligned rectangle polygon (x0, y0)-(x1, y1) with integer
corners covers exactly (x1 - x0) * (y1 - y0) pixels.

Overlaps (one rule for every annotation format): crowd regions are painted first (with the
ignore label), then every other shape in order of decreasing area, so where two shapes overlap
the smaller one wins (a person on a road, a hole punched into a region); equal areas keep file
order, the later shape on top.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deeplab.errors import UserInputError

POLYGON, RLE, LS_RLE, CIRCLE = "polygon", "rle", "ls_rle", "circle"


@dataclasses.dataclass(frozen=True)
class Shape:
  """One region of one class.

  Attributes:
    value: the label value painted (a class index, or the ignore label).
    kind: POLYGON (data: tuple of flat [x0, y0, x1, y1, ...] rings, united), RLE (a COCO RLE
      dict, compressed or not), LS_RLE (Label Studio brush RLE: a list of byte values), CIRCLE
      (data: (cx, cy, r)).
    crowd: painted first, under everything else (COCO iscrowd=1).
    what: the shape for messages ("annotation 7", "shape 2 'car'").
  """
  value: int
  kind: str
  data: object
  crowd: bool = False
  what: str = ""


@dataclasses.dataclass(frozen=True)
class LabelRecipe:
  """How to draw one example's label.

  Attributes:
    source: the annotation file, for messages.
    size: (width, height) the annotation declares; checked against the image's header.
    shapes: regions to paint over `background` (shape annotations).
    colour_png: path of a colour-coded mask (CVAT masks, COCO panoptic) instead of shapes.
    colours: colour -> label value of `colour_png`, the colour as the integer R + 256 G + 256² B
      (COCO panoptic's segment id encoding); a colour not listed is an error.
    background: the value of pixels no shape covers.
  """
  source: str
  size: Optional[Tuple[int, int]] = None
  shapes: Tuple[Shape, ...] = ()
  colour_png: Optional[str] = None
  colours: Optional[Dict[int, int]] = None
  background: int = 0


def render(recipe: LabelRecipe, width: int, height: int, image_display: str) -> np.ndarray:
  """The label of `recipe` as uint8 [height, width] for an image of that size.

  Raises:
    UserInputError: the annotation's declared size is not the image's, or a shape or mask
      cannot be decoded; the message names the annotation file and the image.
  """
  if recipe.size is not None and tuple(recipe.size) != (width, height):
    raise UserInputError(
        f"'{recipe.source}' declares {recipe.size[0]}x{recipe.size[1]} (WxH) for image "
        f"'{image_display}', which is {width}x{height}; fix the width/height in the annotation "
        "or export the annotation again for this image")
  if recipe.colour_png is not None:
    return _from_colours(recipe, width, height, image_display)
  label = np.full((height, width), recipe.background, np.uint8)
  masks = []
  for order, shape in enumerate(recipe.shapes):
    mask = _decode(shape, width, height, recipe.source, image_display)
    masks.append((not shape.crowd, -int(mask.sum()), order, mask, shape.value))
  for _, _, _, mask, value in sorted(masks, key=lambda m: m[:3]):
    label[mask] = value
  return label


def _decode(shape: Shape, width: int, height: int, source: str, image: str) -> np.ndarray:
  if shape.kind == CIRCLE:
    cx, cy, r = shape.data
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
  if shape.kind == LS_RLE:
    return decode_ls_rle(shape.data, width, height, f"{shape.what} in '{source}'")
  from pycocotools import mask as coco_mask  # the TensorFlow side only
  try:
    if shape.kind == POLYGON:
      rle = coco_mask.merge(coco_mask.frPyObjects([list(map(float, p)) for p in shape.data],
                                                  height, width))
    else:
      rle = dict(shape.data)
      if isinstance(rle.get("counts"), list):  # uncompressed: pycocotools compresses it
        rle = coco_mask.frPyObjects(rle, height, width)
      elif isinstance(rle.get("counts"), str):
        rle["counts"] = rle["counts"].encode("ascii")
    mask = coco_mask.decode(rle)
  except (TypeError, ValueError, KeyError, UnicodeError) as e:
    raise UserInputError(f"{shape.what} in '{source}' (image '{image}') cannot be decoded "
                         f"({type(e).__name__}: {e}); export the annotation again") from None
  if mask.shape != (height, width):
    raise UserInputError(f"{shape.what} in '{source}' is an RLE of {mask.shape[1]}x"
                         f"{mask.shape[0]} (WxH) but image '{image}' is {width}x{height}; "
                         "export the annotation again for this image")
  return mask.astype(bool)


def _from_colours(recipe: LabelRecipe, width: int, height: int, image: str) -> np.ndarray:
  from PIL import Image
  try:
    with Image.open(recipe.colour_png) as img:
      if img.size != (width, height):
        raise UserInputError(
            f"mask '{recipe.source}' is {img.size[0]}x{img.size[1]} (WxH) but its image "
            f"'{image}' is {width}x{height}; export the mask again for this image")
      rgb = np.asarray(img.convert("RGB"), np.uint32)
  except OSError as e:
    raise UserInputError(f"mask '{recipe.source}' cannot be read ({e}); export it again") \
        from None
  codes = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
  found, inverse = np.unique(codes, return_inverse=True)
  unknown = [int(c) for c in found if int(c) not in recipe.colours]
  if unknown:
    shown = ", ".join(f"({c % 256}, {c // 256 % 256}, {c // 65536})" for c in unknown[:5])
    raise UserInputError(
        f"mask '{recipe.source}' has colours {shown} ({len(unknown)} in all) that no label "
        "maps to; add them to the label map (labelmap.txt / segments_info) or repaint them")
  lut = np.array([recipe.colours[int(c)] for c in found], np.uint8)
  return lut[inverse.reshape(codes.shape)]


def decode_ls_rle(data: Sequence[int], width: int, height: int, what: str) -> np.ndarray:
  """The mask of a Label Studio brush RLE (`value.rle` of a brushlabels result).

  The format (label-studio-converter's brush.py, from thi.ng's rle-pack): a big-endian bit
  stream of a 32-bit value count, 5 bits word size - 1, four 4-bit run-length sizes - 1, then
  runs: 1 bit repeat flag, 2 bits choosing a run-length size, the run length - 1 in that many
  bits, then one value (repeated) or that many literal values. The values are the RGBA bytes of
  a [height, width, 4] image; the alpha channel is the mask.
  """
  try:
    raw = bytes(int(v) & 0xFF for v in data)
  except (TypeError, ValueError):
    raise UserInputError(f"{what}: the brush RLE is not a list of byte values; export the "
                         "project again as JSON") from None
  bits = np.unpackbits(np.frombuffer(raw, np.uint8))
  reader = _BitReader(bits, what)
  num = reader.read(32)
  if num != width * height * 4:
    raise UserInputError(f"{what}: the brush RLE holds {num} values but the image needs "
                         f"{width}x{height}x4 = {width * height * 4}; check original_width/"
                         "original_height or export the project again")
  word = reader.read(5) + 1
  sizes = [reader.read(4) + 1 for _ in range(4)]
  out = np.zeros(num, np.uint32)
  i = 0
  while i < num:
    repeat = reader.read(1)
    j = min(num, i + 1 + reader.read(sizes[reader.read(2)]))
    if repeat:
      out[i:j] = reader.read(word)
    else:
      out[i:j] = [reader.read(word) for _ in range(j - i)]
    i = j
  return out.reshape(height, width, 4)[..., 3] > 0


class _BitReader:
  def __init__(self, bits: np.ndarray, what: str):
    self.bits, self.pos, self.what = bits, 0, what

  def read(self, n: int) -> int:
    end = self.pos + n
    if end > len(self.bits):
      raise UserInputError(f"{self.what}: the brush RLE ends early (truncated export?); "
                           "export the project again")
    value = 0
    for b in self.bits[self.pos:end]:
      value = value << 1 | int(b)
    self.pos = end
    return value


def polygon_bounds_problem(rings: Sequence[Sequence[float]], size: Tuple[int, int],
                           what: str, slack: float = 1.0) -> Optional[str]:
  """Why a polygon cannot be drawn (too few points, a vertex outside the image), or None."""
  width, height = size
  for ring in rings:
    if len(ring) < 6 or len(ring) % 2:
      return (f"{what} has a polygon with {len(ring)} coordinates; a polygon needs at least "
              "3 points (x, y pairs): fix or delete it")
    xs, ys = ring[0::2], ring[1::2]
    for x, y in zip(xs, ys):
      if not (-slack <= x <= width + slack and -slack <= y <= height + slack):
        return (f"{what} has a vertex at ({x:g}, {y:g}) outside the {width}x{height} image; "
                "fix the polygon or the image's width/height")
  return None


def ring_list(points: Sequence[Sequence[float]]) -> List[float]:
  """[[x, y], ...] -> [x0, y0, x1, y1, ...]."""
  return [float(c) for p in points for c in p[:2]]
