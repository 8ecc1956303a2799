"""Image sizes from headers without Pillow, and None wherever Pillow must look instead."""

import io

import numpy as np
import pytest
from PIL import Image

from deeplab.datasets import image_headers


def _encode(mode, fmt, size=(37, 23), **save):
  img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3),
                                                          dtype=np.uint8)).convert(mode)
  buf = io.BytesIO()
  img.save(buf, format=fmt, **save)
  return buf.getvalue()


@pytest.mark.parametrize("save", [{}, {"progressive": True}, {"quality": 10},
                                  {"exif": b"Exif\x00\x00" + bytes(64)},
                                  {"icc_profile": bytes(300)}, {"subsampling": 0}])
def test_rgb_jpeg_size_like_pillow(save):
  data = _encode("RGB", "JPEG", **save)
  assert image_headers.rgb_header(data) == ("jpeg", 23, 37)
  assert Image.open(io.BytesIO(data)).size == (37, 23)


def test_rgb_png_size():
  assert image_headers.rgb_header(_encode("RGB", "PNG", size=(5, 300))) == ("png", 300, 5)


@pytest.mark.parametrize("mode,fmt", [("L", "JPEG"), ("CMYK", "JPEG"), ("L", "PNG"),
                                      ("RGBA", "PNG"), ("P", "PNG"), ("LA", "PNG")])
def test_anything_but_8_bit_rgb_is_left_to_pillow(mode, fmt):
  assert image_headers.rgb_header(_encode(mode, fmt)) is None


def test_damaged_or_foreign_headers_are_left_to_pillow():
  jpeg = _encode("RGB", "JPEG")
  sof = jpeg.index(b"\xff\xc0")
  assert image_headers.rgb_header(jpeg[:sof]) is None  # cut before the frame header
  assert image_headers.rgb_header(jpeg[:2] + b"\x00" + jpeg[3:]) is None  # not a marker
  assert image_headers.rgb_header(b"GIF89a" + bytes(20)) is None
  assert image_headers.rgb_header(b"") is None
  zero_height = jpeg[:sof + 5] + b"\x00\x00" + jpeg[sof + 7:]  # DNL-defined height
  assert image_headers.rgb_header(zero_height) is None
