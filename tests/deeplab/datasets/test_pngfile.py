"""The fast label decode gives Pillow's values for every PNG filter type, and knows its limits."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from deeplab import native
from deeplab.datasets import pngfile


def _paeth(a, b, c):
  p = a + b - c
  pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
  return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_row(kind, row, prev):
  """PNG filter `kind` applied to one row of 1-byte pixels (spec section 9), in plain Python."""
  out = []
  for x, v in enumerate(row):
    a = row[x - 1] if x else 0
    b = prev[x] if prev is not None else 0
    c = prev[x - 1] if prev is not None and x else 0
    pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
    out.append((v - pred) % 256)
  return bytes([kind] + out)


def _chunk(kind, body):
  return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(values, kinds, color_type=0, palette=None, idat_parts=1):
  """An 8-bit grey/palette PNG whose rows use the given filter types (Pillow picks its own)."""
  h, w = values.shape
  raw = b"".join(_filter_row(kinds[r % len(kinds)], values[r].tolist(),
                             values[r - 1].tolist() if r else None) for r in range(h))
  z = zlib.compress(raw, 9)
  step = -(-len(z) // idat_parts)
  chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))]
  if color_type == 3:
    chunks.append(_chunk(b"PLTE", palette or bytes(range(256)) * 3))
  chunks += [_chunk(b"IDAT", z[i:i + step]) for i in range(0, len(z), step)]
  return pngfile.SIGNATURE + b"".join(chunks) + _chunk(b"IEND", b"")


def _mask(rng, h, w):
  """Runs of class values with a 255 border, plus noise: every predictor gets exercised."""
  m = np.repeat(rng.integers(0, 21, (h, 1)), w, axis=1).astype(np.uint8)
  m[:, w // 3:w // 2] = 255
  noise = rng.random((h, w)) < 0.2
  m[noise] = rng.integers(0, 256, noise.sum())
  return m


@pytest.fixture(autouse=True)
def _needs_native():
  if native.library() is None:
    pytest.fail("the C helpers did not build: is a C compiler installed?")


@pytest.mark.parametrize("kinds", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 3, 2, 1]])
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 9), (13, 31), (64, 100)])
def test_every_filter_type_decodes_like_pillow(kinds, shape):
  rng = np.random.default_rng(shape[0] * 100 + shape[1] + len(kinds))
  values = _mask(rng, *shape)
  data = encode_png(values, kinds, idat_parts=3 if shape[0] > 10 else 1)
  header = pngfile.read_header(data)
  pixels, hist = pngfile.decode_fast(data, header)
  assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), values)  # the encoder is right
  assert bytes(pixels) == values.tobytes()
  assert hist == np.bincount(values.ravel(), minlength=256).tolist()
  assert pngfile.decode_fast(data, header, pixels=False) == (None, hist)


def test_pillow_written_masks_decode_identically():
  rng = np.random.default_rng(0)
  for _ in range(10):
    values = _mask(rng, 37, 53)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="PNG")  # Pillow's adaptive filters
    data = buf.getvalue()
    pixels, hist = pngfile.decode_fast(data, pngfile.read_header(data))
    assert bytes(pixels) == values.tobytes()
    assert hist == Image.open(io.BytesIO(data)).histogram()


def test_palette_png_decodes_to_indices_and_relabels_as_grey():
  values = _mask(np.random.default_rng(1), 20, 30)
  data = encode_png(values, [4, 2], color_type=3)
  header = pngfile.read_header(data)
  pixels, _ = pngfile.decode_fast(data, header)
  assert bytes(pixels) == values.tobytes()
  grey = Image.open(io.BytesIO(pngfile.palette_as_grey(data, header)))
  assert grey.mode == "L" and np.array_equal(np.asarray(grey), values)


def _pillow_png(mode):
  buf = io.BytesIO()
  if mode == "I;16":
    Image.fromarray(np.full((8, 8), 300, np.uint16)).save(buf, format="PNG")
  else:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).convert(mode).save(buf, format="PNG")
  return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "I;16", "1"])
def test_other_pngs_are_left_to_pillow(mode):
  data = _pillow_png(mode)
  header = pngfile.read_header(data)
  assert header is not None and pngfile.decode_fast(data, header) is None


def test_interlaced_is_left_to_pillow():
  data = bytearray(encode_png(np.zeros((4, 4), np.uint8), [0]))
  data[28] = 1  # IHDR interlace method: Adam7
  data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
  header = pngfile.read_header(bytes(data))
  assert header.interlaced and pngfile.decode_fast(bytes(data), header) is None


def test_damaged_streams_are_left_to_pillow():
  values = np.arange(64, dtype=np.uint8).reshape(8, 8)
  good = encode_png(values, [2])
  header = pngfile.read_header(good)
  s, e = header.idat[0]
  corrupt = good[:s] + bytes(e - s) + good[e:]  # zeroed zlib stream
  assert pngfile.decode_fast(corrupt, pngfile.read_header(corrupt)) is None
  short = encode_png(values[:7], [2])  # one row fewer than the header says
  hdr = pngfile.read_header(short)
  hdr.height = 8
  assert pngfile.decode_fast(short, hdr) is None
  bad_filter = zlib.compress(b"".join(b"\x07" + bytes(8) for _ in range(8)))
  data = good[:8] + good[8:33] + _chunk(b"IDAT", bad_filter) + _chunk(b"IEND", b"")
  assert pngfile.decode_fast(data, pngfile.read_header(data)) is None


def test_read_header_rejects_what_is_not_a_whole_png():
  good = encode_png(np.zeros((2, 2), np.uint8), [0])
  assert pngfile.read_header(good).width == 2
  assert pngfile.read_header(b"GIF89a" + good[6:]) is None
  assert pngfile.read_header(good[:40]) is None  # cut inside a chunk
  bad_crc = good[:29] + b"\x00\x00\x00\x00" + good[33:]
  assert pngfile.read_header(bad_crc) is None


def test_without_the_c_helpers_the_caller_falls_back(monkeypatch):
  monkeypatch.setattr(native, "library", lambda: None)
  data = encode_png(np.zeros((2, 2), np.uint8), [0])
  assert pngfile.decode_fast(data, pngfile.read_header(data)) is None


def test_a_decompression_bomb_is_left_to_pillow():
  data = bytearray(encode_png(np.zeros((4, 4), np.uint8), [0]))
  data[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR claims 10^10 pixels
  data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
  header = pngfile.read_header(bytes(data))
  assert header.width == 100_000 and pngfile.decode_fast(bytes(data), header) is None


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (64, 100)])
def test_encode_grey_round_trips(shape):
  values = _mask(np.random.default_rng(shape[1]), *shape)
  data = pngfile.encode_grey(values.tobytes(), shape[1], shape[0])
  img = Image.open(io.BytesIO(data))
  assert img.mode == "L" and np.array_equal(np.asarray(img), values)
  pixels, hist = pngfile.decode_fast(data, pngfile.read_header(data))
  assert bytes(pixels) == values.tobytes()
  assert pngfile.encode_grey(bytearray(values.tobytes()), shape[1], shape[0]) == data
