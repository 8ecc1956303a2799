"""Strict checks of one image/label pair, cheap enough to run on every example.

Images are never decoded: their size and channel count come from the file header
(image_headers for 8-bit RGB, else PIL's `Image.open`, which reads only the header), and
truncation is detected from the end markers (a JPEG ends with its EOI marker FFD9 after the
last scan, a PNG with its IEND chunk). Labels are decoded, because every pixel value must be
checked against num_classes (pngfile's fast path for 8-bit masks, Pillow for the rest); the
per-class pixel counts for the manifest fall out of the same histogram.

Every problem raises `UserInputError` with a message naming the file, the value found, what
was expected and how to fix it.
"""

import dataclasses
import io
import os
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image

from deeplab.datasets import image_headers, pngfile
from deeplab.errors import UserInputError
from deeplab.storage.gcs import bytes_crc32c

# PIL mode -> channel count for images we accept (possibly after conversion to RGB).
_IMAGE_CHANNELS = {"RGB": 3, "YCbCr": 3, "P": 3, "L": 1, "1": 1, "LA": 2, "RGBA": 4, "CMYK": 4,
                   "PA": 4}
_CONVERT_TO_RGB = {"L", "1", "LA", "RGBA", "CMYK", "PA"}
_SIXTEEN_BIT = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_FORMATS = {"JPEG": "jpeg", "PNG": "png"}
_PNG_IEND = b"IEND\xaeB`\x82"


@dataclasses.dataclass(frozen=True)
class LabelRules:
  """What a label must look like.

  Attributes:
    num_classes: valid class indices are 0..num_classes-1.
    ignore_label: the one value >= num_classes (or any value) that marks ignored pixels.
    label_map: optional 256-entry lookup table applied to raw label values before checking
      (e.g. Cityscapes labelIds -> trainIds); -1 marks values that must not occur.
    label_map_name: what the raw values are, for messages ("Cityscapes labelId").
  """

  num_classes: int
  ignore_label: int
  label_map: Optional[Tuple[int, ...]] = None
  label_map_name: str = ""


@dataclasses.dataclass
class CheckedExample:
  """A validated example, ready to encode."""

  stem: str
  image_bytes: bytes
  image_format: str                 # 'jpeg' or 'png' (what the bytes are)
  height: int
  width: int
  label_bytes: bytes                # an 8-bit single-channel PNG of class indices
  histogram: List[int]              # 256 counts of label values (after label_map)
  channel_conversion: Optional[Dict] = None
  label_converted: str = ""         # '', 'palette' or 'label_map'
  # (display path, size, crc32c) of the source files as read: the fingerprint reuses them.
  source_digests: Tuple[Tuple[str, int, str], ...] = ()


def read_file(path: str, role: str, display: str) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read()
  except FileNotFoundError:
    raise UserInputError(f"{role} '{display}' does not exist; add the file or remove its stem "
                         "from the split list") from None
  except OSError as e:
    raise UserInputError(f"{role} '{display}' cannot be read ({e}); check the file "
                         "permissions") from None


def check_not_truncated(data: bytes, fmt: str, role: str, display: str) -> None:
  """Raises unless `data` ends like a complete JPEG/PNG file (no decoding)."""
  if fmt == "jpeg":
    # FF D9 cannot occur inside entropy-coded data (FF is always stuffed), so a complete file
    # has an EOI marker after its last start-of-scan marker (FF DA); trailing bytes are allowed.
    eoi = data.rfind(b"\xff\xd9")
    if eoi < 2 or data.find(b"\xff\xda", eoi) >= 0:
      raise UserInputError(
          f"{role} '{display}' is truncated: the JPEG has no end-of-image marker (FFD9) after "
          f"its last scan ({len(data)} bytes); re-download or re-export the file")
  elif fmt == "png":
    if data.rfind(_PNG_IEND, max(0, len(data) - 64)) < 0:
      raise UserInputError(
          f"{role} '{display}' is truncated: the PNG has no IEND chunk at its end "
          f"({len(data)} bytes); re-download or re-export the file")


def _open(data: bytes, role: str, display: str) -> Image.Image:
  try:
    img = Image.open(io.BytesIO(data))
  except Exception as e:  # PIL raises several types for garbage input.
    raise UserInputError(f"{role} '{display}' is not a readable image ({type(e).__name__}: {e}); "
                         "expected a JPEG or PNG file") from None
  if img.format not in _FORMATS:
    raise UserInputError(f"{role} '{display}' is a {img.format} file; expected JPEG or PNG: "
                         "convert it first")
  return img


def _image_to_rgb(img: Image.Image, role: str, display: str) -> bytes:
  try:
    rgb = img.convert("RGB")
  except Exception as e:
    raise UserInputError(f"{role} '{display}' cannot be decoded ({type(e).__name__}: {e}); "
                         "re-export the file") from None
  buf = io.BytesIO()
  # PNG: lossless, so the conversion changes nothing but the channel count.
  rgb.save(buf, format="PNG", compress_level=6)
  return buf.getvalue()


def check_image(data: bytes, display: str) -> Tuple[str, int, int, Optional[bytes], Optional[Dict]]:
  """Header-only checks of an image.

  Returns:
    (format, height, width, converted_bytes or None, channel_conversion record or None).
  """
  fast = image_headers.rgb_header(data)
  if fast is not None:
    check_not_truncated(data, fast[0], "image", display)
    return fast[0], fast[1], fast[2], None, None
  img = _open(data, "image", display)
  fmt = _FORMATS[img.format]
  check_not_truncated(data, fmt, "image", display)
  width, height = img.size
  if img.mode in _SIXTEEN_BIT:
    raise UserInputError(f"image '{display}' has 16-bit/float pixels (mode {img.mode}); DeepLab "
                         "reads 8-bit images: convert it to 8-bit RGB")
  if img.mode not in _IMAGE_CHANNELS:
    raise UserInputError(f"image '{display}' has unsupported pixel mode {img.mode}; expected "
                         "8-bit RGB: convert it")
  if img.mode in _CONVERT_TO_RGB:
    converted = _image_to_rgb(img, "image", display)
    record = {"file": display, "from_channels": _IMAGE_CHANNELS[img.mode], "to_channels": 3,
              "from_mode": img.mode, "encoded_as": "png"}
    return "png", height, width, converted, record
  return fmt, height, width, None, None


def _size_error(display: str, found: Tuple[int, int], size: Tuple[int, int],
                image_display: str) -> UserInputError:
  return UserInputError(
      f"label '{display}' is {found[0]}x{found[1]} (WxH) but its image "
      f"'{image_display}' is {size[0]}x{size[1]}; resize the mask with nearest-neighbour "
      "or fix the image/label pairing")


def _decode_label_pil(data: bytes, display: str, size: Tuple[int, int],
                      image_display: str) -> Tuple[bytes, List[int], bool]:
  """Pillow's decode of any label PNG: (values, 256-bin histogram, was it a palette PNG)."""
  img = _open(data, "label", display)
  if img.format != "PNG":
    raise UserInputError(f"label '{display}' is a {img.format} file; labels must be PNG (JPEG "
                         "compression corrupts class indices): re-export the mask as PNG")
  check_not_truncated(data, "png", "label", display)
  if img.size != tuple(size):
    raise _size_error(display, img.size, size, image_display)
  if img.mode in _SIXTEEN_BIT:
    raise UserInputError(
        f"label '{display}' is a 16-bit PNG (mode {img.mode}); expected an 8-bit single-channel "
        "PNG of class indices: save it as 8-bit (mode 'L') with values < num_classes")
  if img.mode in ("RGB", "RGBA", "LA"):
    raise UserInputError(
        f"label '{display}' is a colour ({img.mode}) PNG; expected a single-channel PNG of class "
        "indices (or a palette PNG): map each colour to its class index, e.g. like "
        "remove_gt_colormap.py")
  if img.mode not in ("L", "P", "1"):
    raise UserInputError(f"label '{display}' has pixel mode {img.mode}; expected an 8-bit "
                         "single-channel PNG of class indices")
  try:
    img.load()
  except Exception as e:
    raise UserInputError(f"label '{display}' cannot be decoded ({type(e).__name__}: {e}); "
                         "re-export the mask") from None
  mode = img.mode
  if mode == "1":
    img = img.convert("L").point(lambda v: v // 255)
  # Palette PNGs (VOC's SegmentationClass) store class indices as palette indices: the values
  # kept are the indices, the colours are dropped (what remove_gt_colormap.py did).
  return img.tobytes(), img.histogram(), mode in ("P", "1")


def _check_values(hist: List[int], rules: LabelRules, display: str) -> None:
  extra = sum(hist[rules.num_classes:])
  if rules.ignore_label >= rules.num_classes:
    extra -= hist[rules.ignore_label]
  if extra:
    bad = [v for v in range(rules.num_classes, 256) if hist[v] and v != rules.ignore_label]
    more = f" (also {', '.join(map(str, bad[1:6]))})" if len(bad) > 1 else ""
    raise UserInputError(
        f"label '{display}' has value {bad[0]}{more} ({hist[bad[0]]} pixels) but the dataset has "
        f"{rules.num_classes} classes (ignore_label {rules.ignore_label}); fix the mask or pass "
        "--num_classes")


def check_label(data: bytes, display: str, size: Tuple[int, int], rules: LabelRules,
                image_display: str) -> Tuple[bytes, List[int], str]:
  """Decodes a label, converts palette/mapped labels and checks every value.

  Args:
    data: the label file's bytes.
    display: the label's path for messages.
    size: (width, height) of the image.
    rules: num_classes, ignore_label, label_map.
    image_display: the image's path for messages.

  Returns:
    (png bytes of class indices, 256-bin histogram after mapping, conversion done: ''|'palette'|
    'label_map').
  """
  header, fast = pngfile.read_header(data), None
  if header is not None:
    check_not_truncated(data, "png", "label", display)
    if (header.width, header.height) != tuple(size):  # before allocating anything that size
      raise _size_error(display, (header.width, header.height), size, image_display)
    fast = pngfile.decode_fast(data, header, rules.label_map is not None)
  if fast is None:
    pixels, hist, palette = _decode_label_pil(data, display, size, image_display)
  else:
    (pixels, hist), palette = fast, header.color_type == pngfile.PALETTE
  converted = "palette" if palette else ""
  if rules.label_map is not None:
    bad = [v for v in range(256) if hist[v] and rules.label_map[v] < 0]
    if bad:
      raise UserInputError(
          f"label '{display}' has value {bad[0]} ({hist[bad[0]]} pixels) which is not a valid "
          f"{rules.label_map_name}; fix the mask or provide the already-mapped label file")
    lut = bytes(max(v, 0) for v in rules.label_map)
    pixels = pixels.translate(lut)
    mapped = [0] * 256
    for v, n in enumerate(hist):
      mapped[lut[v]] += n
    hist, converted = mapped, converted or "label_map"
  _check_values(hist, rules, display)
  if converted == "palette" and rules.label_map is None:
    # Same bytes whichever decoder ran: the output must not depend on the machine.
    grey = pngfile.palette_as_grey(data, header) if header else None
    if grey is not None:
      return grey, hist, converted
  if converted:
    data = pngfile.encode_grey(pixels, size[0], size[1])
  return data, hist, converted


def check_example(stem: str, image_path: str, label_path: str, rules: LabelRules,
                  image_display: str, label_display: str,
                  label_recipe: Optional[object] = None) -> CheckedExample:
  """Reads and checks one pair; raises UserInputError naming the file at fault.

  With a `label_recipe` (annotation formats) the label is drawn from it at the image's size
  (deeplab.datasets.rasterize), then checked like any mask file.
  """
  image = read_file(image_path, "image", image_display)
  fmt, height, width, converted, record = check_image(image, image_display)
  if label_recipe is not None:
    from deeplab.datasets import rasterize
    pixels = rasterize.render(label_recipe, width, height, image_display)
    raw_label = pngfile.encode_grey(pixels.tobytes(), width, height)
    label_digests = ()  # the annotation file is fingerprinted from its own listing
  else:
    raw_label = read_file(label_path, "label", label_display)
    label_digests = ((label_display, len(raw_label), bytes_crc32c(raw_label)),)
  label, hist, label_converted = check_label(raw_label, label_display, (width, height), rules,
                                             image_display)
  digests = ((image_display, len(image), bytes_crc32c(image)),) + label_digests
  return CheckedExample(stem=stem, image_bytes=converted if converted is not None else image,
                        image_format=fmt, height=height, width=width, label_bytes=label,
                        histogram=hist, channel_conversion=record,
                        label_converted=label_converted, source_digests=digests)


class _FileIndex:
  """os.path.isfile for many files in few folders: one scandir per folder, not a stat per file."""

  def __init__(self):
    self.folders: Dict[str, set] = {}

  def __call__(self, path: str) -> bool:
    folder, name = os.path.split(path)
    names = self.folders.get(folder)
    if names is None:
      try:
        with os.scandir(folder or ".") as entries:
          names = {e.name for e in entries if e.is_file()}
      except OSError:
        names = set()
      self.folders[folder] = names
    return name in names


def check_listing(examples: Sequence) -> List[Tuple[object, str]]:
  """Dataset-level checks: missing labels and duplicate stems within a split.

  Args:
    examples: SourceExample-like objects (split, stem, image_path, label_path, image_display,
      label_display).

  Returns:
    (example, reason) pairs for every bad example, in input order.
  """
  problems = []
  seen: Dict[Tuple[str, str], object] = {}
  is_file = _FileIndex()
  for ex in examples:
    key = (ex.split, ex.stem)
    if key in seen:
      first = seen[key]
      problems.append((ex, f"duplicate stem '{ex.stem}' in split '{ex.split}': "
                           f"'{ex.image_display}' and '{first.image_display}' would both be "
                           "stored under that name; rename or remove one of them"))
      continue
    seen[key] = ex
    if not is_file(ex.image_path):
      problems.append((ex, f"image '{ex.image_display}' listed in split '{ex.split}' does not "
                           "exist; add it or remove the stem from the split list"))
    elif not ex.label_path or not is_file(ex.label_path):
      problems.append((ex, f"missing label for image '{ex.image_display}': expected "
                           f"'{ex.label_display}'; add the mask or remove the image"))
  return problems


def check_splits_not_empty(counts: Dict[str, int], source: str) -> None:
  for split, n in counts.items():
    if n == 0:
      raise UserInputError(
          f"split '{split}' of '{source}' is empty (no usable examples); add examples to it, "
          "fix its list file, or leave the split out with --splits")
