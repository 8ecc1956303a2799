"""Size of an image from its header, without Pillow, for the common case: 8-bit RGB.

Opening each image with Pillow only to read its size costs more than the rest of the
conversion of an example (Pillow tries several format plugins per file). `rgb_header` reads a
JPEG's start-of-frame segment or a PNG's IHDR directly and answers only for 8-bit 3-channel
images; for anything else (grey, CMYK, alpha, 16-bit, damaged headers) it returns None and the
caller uses Pillow, which converts or reports the problem.
"""

import struct
from typing import Optional, Tuple

from deeplab.datasets import pngfile

# Start-of-frame markers: every SOFn except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_NO_LENGTH = frozenset(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI, TEM
_SOS = 0xDA
_PNG_RGB = 2


def jpeg_frame(data: bytes) -> Optional[Tuple[int, int, int, int]]:
  """(precision, height, width, components) from a JPEG's SOF segment, or None."""
  if not data.startswith(b"\xff\xd8"):
    return None
  pos, end = 2, len(data)
  while pos + 4 <= end:
    if data[pos] != 0xFF:
      return None
    marker = data[pos + 1]
    if marker == 0xFF:  # fill byte
      pos += 1
      continue
    if marker in _NO_LENGTH:
      pos += 2
      continue
    length = struct.unpack_from(">H", data, pos + 2)[0]
    if marker in _SOF:
      if length < 8 or pos + 10 > end:
        return None
      return struct.unpack_from(">BHHB", data, pos + 4)
    if marker == _SOS or length < 2:
      return None
    pos += 2 + length
  return None


def rgb_header(data: bytes) -> Optional[Tuple[str, int, int]]:
  """('jpeg' | 'png', height, width) of an 8-bit 3-channel JPEG or PNG, else None."""
  frame = jpeg_frame(data)
  if frame is not None:
    precision, height, width, components = frame
    if precision == 8 and components == 3 and height > 0 and width > 0:
      return "jpeg", height, width
    return None
  header = pngfile.read_header(data)
  if header is not None and header.bit_depth == 8 and header.color_type == _PNG_RGB:
    if header.width > 0 and header.height > 0:
      return "png", header.height, header.width
  return None
