"""PNG chunks, and a fast decode of label masks: 8-bit grey or palette PNGs, as nearly all are.

Pillow spends ~0.4 ms on a 500x375 mask, most of it in zlib's inflate of long runs; zlib-ng
inflates the same stream ~15x faster, and the C helper (deeplab/native) unfilters the rows and
counts the values in one pass. That is what lets the converter check every label value and
still run 10x faster than the original's.

`read_header` parses the chunk list (pure Python). `decode_fast` returns the pixel values and
their histogram for the common case, or None for anything else (other bit depths, interlacing,
a corrupt stream, no C helper): the caller then decodes with Pillow, which also words the
errors. Both give identical values; tests check that for every PNG filter type.
"""

import ctypes
import dataclasses
import struct
import zlib
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

from deeplab import native

SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY, PALETTE = 0, 3  # IHDR colour types


@dataclasses.dataclass
class PngHeader:
  width: int
  height: int
  bit_depth: int
  color_type: int
  interlaced: bool
  idat: List[Tuple[int, int]]  # (start, end) of each IDAT chunk's data


def read_header(data: bytes) -> Optional[PngHeader]:
  """The IHDR fields and IDAT positions, or None if `data` is not a well-formed PNG."""
  if not data.startswith(SIGNATURE):
    return None
  pos, header, idat = 8, None, []
  while pos + 8 <= len(data):
    length, kind = struct.unpack_from(">I4s", data, pos)
    start, end = pos + 8, pos + 8 + length
    if end + 4 > len(data):
      return None
    if kind == b"IHDR":
      if length != 13 or zlib.crc32(data[pos + 4:end]) != struct.unpack_from(">I", data, end)[0]:
        return None
      w, h, depth, ctype, _, _, interlace = struct.unpack_from(">IIBBBBB", data, start)
      header = PngHeader(w, h, depth, ctype, interlace != 0, idat)
    elif kind == b"IDAT":
      idat.append((start, end))
    elif kind == b"IEND":
      break
    pos = end + 4
  return header if header is not None and idat else None


def decode_fast(data: bytes, header: PngHeader,
                pixels: bool = True) -> Optional[Tuple[Optional[bytearray], List[int]]]:
  """(pixel values row-major, 256-bin histogram) of an 8-bit grey/palette PNG, else None.

  With pixels=False only the histogram is computed (the values are None): no mask-sized copy.
  """
  if header.bit_depth != 8 or header.color_type not in (GREY, PALETTE) or header.interlaced:
    return None
  if header.width * header.height > 2 * Image.MAX_IMAGE_PIXELS:
    return None  # what Pillow refuses as a decompression bomb: let it say so
  lib = native.library()
  if lib is None:
    return None
  w, h = header.width, header.height
  stream = b"".join(data[s:e] for s, e in header.idat)
  try:
    # One byte of slack: with an exact bufsize zlib-ng grows the buffer to look for the end
    # (6x slower).
    rows = zlib_ng.decompress(stream, bufsize=h * (w + 1) + 1)
  except zlib_ng.error:
    return None  # Pillow decodes it again and reports the damage in its words.
  if len(rows) != h * (w + 1):
    return None
  values = bytearray(w * h) if pixels else None
  out = (ctypes.c_char * len(values)).from_buffer(values) if pixels else None
  hist = (ctypes.c_uint64 * 256)()
  if lib.deeplab_unfilter_8bit(rows, out, h, w, hist) != 0:
    return None
  return values, hist[:]  # slicing: 10x faster than list() on a ctypes array


def _chunk(kind: bytes, body: bytes) -> bytes:
  return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def palette_as_grey(data: bytes, header: PngHeader) -> Optional[bytes]:
  """An 8-bit palette PNG re-labelled as 8-bit grey without re-encoding, else None.

  Palette indices and grey values are filtered and compressed identically at 8 bits, so the
  IDAT data carry over unchanged and the result decodes to the indices.
  """
  if header.bit_depth != 8 or header.color_type != PALETTE or header.interlaced:
    return None
  ihdr = struct.pack(">IIBBBBB", header.width, header.height, 8, GREY, 0, 0, 0)
  idat = b"".join(data[s:e] for s, e in header.idat)
  return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def encode_grey(pixels: bytes, width: int, height: int) -> bytes:
  """An 8-bit grey PNG of `pixels` (row-major), for masks whose values were converted.

  Every row uses the Up filter, which turns a mask into runs of zeros, and zlib-ng deflates
  them: ~10x faster than Pillow's encoder on a Cityscapes mask, and the bytes depend only on
  the pixels (and the pinned zlib-ng), whichever decoder produced them.
  """
  rows = np.frombuffer(bytes(pixels), np.uint8).reshape(height, width)
  filtered = np.empty((height, width + 1), np.uint8)
  filtered[:, 0] = 2  # Up; the first row's "up" is zeros, so it is stored as is
  filtered[0, 1:] = rows[0]
  np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
  ihdr = struct.pack(">IIBBBBB", width, height, 8, GREY, 0, 0, 0)
  idat = zlib_ng.compress(filtered.tobytes(), 6)
  return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
