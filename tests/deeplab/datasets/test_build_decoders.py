"""The fast label decode (zlib-ng + C) and Pillow's give the same shards; files are read once."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from deeplab import native
from deeplab.datasets import fingerprint, validate
from tests.deeplab.datasets.test_build_trees import (
    convert, make_ade, make_cityscapes, make_folder, make_voc, manifest)


def _shards(out):
  return {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))
          if f.endswith(".tfrecord")}


def _comparable(m):
  return {k: v for k, v in m.items() if k != "created_at"}


@pytest.mark.parametrize("fmt,make,kw", [
    ("voc", make_voc, {}),
    ("voc", lambda r: make_voc(r, palette=True), {}),  # palette PNGs re-labelled as grey
    ("cityscapes", lambda r: make_cityscapes(r, train_ids=False), {}),  # labelIds mapped
    ("ade20k", make_ade, {}),
    ("folder", make_folder, {}),
])
def test_both_decoders_write_identical_datasets(tmp_path, monkeypatch, fmt, make, kw):
  assert native.library() is not None, "the C helpers did not build"
  src = make(str(tmp_path / "src"))
  fast = convert(fmt, src, str(tmp_path / "fast"), workers=2, **kw)
  monkeypatch.setattr(native, "library", lambda: None)
  slow = convert(fmt, src, str(tmp_path / "slow"), workers=2, **kw)
  assert _shards(str(tmp_path / "fast")) == _shards(str(tmp_path / "slow"))
  assert _comparable(manifest(str(tmp_path / "fast"))) == _comparable(
      manifest(str(tmp_path / "slow")))
  assert fast["fingerprint"] == slow["fingerprint"]


def test_a_conversion_reads_each_source_file_once(tmp_path, monkeypatch):
  src = make_voc(str(tmp_path / "src"))
  hashed = []
  real = fingerprint.file_crc32c
  monkeypatch.setattr(fingerprint, "file_crc32c", lambda p: hashed.append(p) or real(p))
  result = convert("voc", src, str(tmp_path / "out"), workers=0)
  # Images and labels are hashed by the workers from the bytes they convert; the parent reads
  # only what no worker reads (the split lists).
  assert sorted(os.path.basename(p) for p in hashed) == ["train.txt", "val.txt"]
  monkeypatch.setattr(fingerprint, "file_crc32c", real)
  assert result["fingerprint"] == fingerprint.compute_fingerprint("voc", src, {})


def test_known_digests_are_used_only_while_the_size_matches(tmp_path):
  src = make_voc(str(tmp_path / "src"))
  files = fingerprint.list_source_files("voc", src)
  rel, size, digest = next(f for f in files if f[0].endswith(".jpg"))

  def digest_of(known=None, defer=frozenset()):
    return {r: d for r, _, d in fingerprint.list_source_files("voc", src, known, defer)}[rel]
  assert digest_of({rel: (size, "AAAAAA==")}) == "AAAAAA=="
  assert digest_of({rel: (size + 1, "AAAAAA==")}) == digest  # changed since: hashed again
  assert digest_of(defer={rel}) is None
  deferred = fingerprint.list_source_files("voc", src, defer={rel})
  assert fingerprint.fill_digests(deferred, src) == files


def test_fingerprint_alongside_matches_a_fresh_one(tmp_path):
  src = make_folder(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  result = convert("folder", src, out, workers=2)
  assert result["fingerprint"] == fingerprint.compute_fingerprint("folder", src, {})


@pytest.mark.parametrize("decoder", ["fast", "pillow"])
def test_a_mapped_palette_label_keeps_the_mapping(monkeypatch, decoder):
  if decoder == "pillow":
    monkeypatch.setattr(native, "library", lambda: None)
  raw = np.array([[7, 8, 0], [26, 7, 7]], np.uint8)  # Cityscapes labelIds: road, sidewalk, ...
  img = Image.fromarray(raw, mode="L").convert("P")
  img.putpalette(list(range(256)) * 3)
  buf = io.BytesIO()
  img.save(buf, format="PNG")
  lut = [-1] * 256
  lut[0], lut[7], lut[8], lut[26] = 255, 0, 1, 13
  rules = validate.LabelRules(19, 255, tuple(lut), "Cityscapes labelId")
  data, hist, converted = validate.check_label(buf.getvalue(), "l.png", (3, 2), rules, "i.png")
  assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))),
                        [[0, 1, 255], [13, 0, 0]])
  assert hist[0] == 3 and hist[13] == 1 and converted == "palette"
