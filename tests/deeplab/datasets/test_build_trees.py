"""Tiny generated source trees of every layout, and one conversion test per format.

The helpers are imported by the other test_build_* files.
"""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from deeplab.datasets import build
from deeplab.datasets.converters import cityscapes
from deeplab.datasets.converters.base import ConvertOptions

H, W = 25, 33  # tiny and odd on purpose


def image_array(seed: int, h: int = H, w: int = W) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def label_array(seed: int, num_classes: int, h: int = H, w: int = W, ignore=None) -> np.ndarray:
  lab = np.random.default_rng(seed + 1000).integers(0, num_classes, (h, w), dtype=np.uint8)
  if ignore is not None:
    lab[0, :] = ignore
  return lab


def save(path: str, array: np.ndarray, fmt: str = None, mode: str = None, palette=None) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  img = Image.fromarray(array, mode) if mode else Image.fromarray(array)
  if palette is not None:
    img = img.convert("L")
    img = Image.frombytes("P", img.size, img.tobytes())
    img.putpalette(palette)
  fmt = fmt or ("JPEG" if path.endswith(".jpg") else "PNG")
  buf = io.BytesIO()
  img.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
  with open(path, "wb") as f:
    f.write(buf.getvalue())
  return path


def voc_palette():
  pal = []
  for i in range(256):
    c, r, g, b = i, 0, 0, 0
    for j in range(8):
      r |= ((c >> 0) & 1) << (7 - j)
      g |= ((c >> 1) & 1) << (7 - j)
      b |= ((c >> 2) & 1) << (7 - j)
      c >>= 3
    pal += [r, g, b]
  return pal


def make_voc(root: str, palette: bool = False, splits=None) -> str:
  """VOCdevkit/VOC2012 with train (3) and val (2) lists; returns the VOCdevkit folder."""
  voc = os.path.join(root, "VOCdevkit", "VOC2012")
  splits = splits or {"train": ["2007_000001", "2007_000002", "2007_000003"],
                      "val": ["2008_000001", "2008_000002"]}
  label_dir = "SegmentationClass" if palette else "SegmentationClassRaw"
  for i, stem in enumerate(sorted({s for v in splits.values() for s in v})):
    save(os.path.join(voc, "JPEGImages", stem + ".jpg"), image_array(i))
    save(os.path.join(voc, label_dir, stem + ".png"), label_array(i, 21, ignore=255),
         palette=voc_palette() if palette else None)
  os.makedirs(os.path.join(voc, "ImageSets", "Segmentation"), exist_ok=True)
  for split, stems in splits.items():
    with open(os.path.join(voc, "ImageSets", "Segmentation", split + ".txt"), "w") as f:
      f.write("\n".join(stems) + "\n")
  return os.path.join(root, "VOCdevkit")


def make_cityscapes(root: str, train_ids: bool = True) -> str:
  for split, cities in (("train", ("aachen", "bochum")), ("val", ("frankfurt",))):
    for c, city in enumerate(cities):
      stem = f"{city}_000000_0000{c}9"
      save(os.path.join(root, "leftImg8bit", split, city, stem + "_leftImg8bit.png"),
           image_array(c))
      if train_ids:
        save(os.path.join(root, "gtFine", split, city, stem + "_gtFine_labelTrainIds.png"),
             label_array(c, 19, ignore=255))
      else:
        lab = label_array(c, 34)  # labelIds 0..33
        save(os.path.join(root, "gtFine", split, city, stem + "_gtFine_labelIds.png"), lab)
      save(os.path.join(root, "gtFine", split, city, stem + "_gtFine_color.png"), image_array(9))
  return root


def make_ade(root: str) -> str:
  ade = os.path.join(root, "ADEChallengeData2016")
  for split, folder, n in (("train", "training", 3), ("val", "validation", 2)):
    for i in range(n):
      stem = f"ADE_{split}_{i:08d}"
      save(os.path.join(ade, "images", folder, stem + ".jpg"), image_array(i))
      save(os.path.join(ade, "annotations", folder, stem + ".png"), label_array(i, 151))
  return ade


def make_folder(root: str, n: int = 6, lists: bool = True, num_classes: int = 3,
                classes_json: bool = True) -> str:
  for i in range(n):
    save(os.path.join(root, "images", f"img{i}.png" if i % 2 else f"img{i}.jpg"), image_array(i))
    save(os.path.join(root, "masks", f"img{i}.png"), label_array(i, num_classes))
  if lists:
    os.makedirs(os.path.join(root, "splits"), exist_ok=True)
    with open(os.path.join(root, "splits", "train.txt"), "w") as f:
      f.write("\n".join(f"img{i}" for i in range(n - 2)) + "\n")
    with open(os.path.join(root, "splits", "val.txt"), "w") as f:
      f.write("\n".join(f"img{i}" for i in range(n - 2, n)) + "\n")
  if classes_json:
    with open(os.path.join(root, "classes.json"), "w") as f:
      json.dump({"class_names": ["bg", "cat", "dog"][:num_classes], "ignore_label": 255}, f)
  return root


def convert(fmt: str, source: str, out: str, workers: int = 0, **kw):
  return build.build_tfrecords(ConvertOptions(format=fmt, source=source, **kw), out, workers)


def read_records(path: str):
  """Raw TFRecord payloads, framing checked with the pure-Python reader below."""
  import struct
  out = []
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    (n,) = struct.unpack("<Q", data[pos:pos + 8])
    out.append(data[pos + 12:pos + 12 + n])
    pos += 12 + n + 4
  return out


def manifest(out: str) -> dict:
  with open(os.path.join(out, "manifest.json")) as f:
    return json.load(f)


def test_voc_raw_labels(tmp_path):
  src = make_voc(str(tmp_path / "src"))
  res = convert("voc", src, str(tmp_path / "out"))
  m = manifest(str(tmp_path / "out"))
  assert res["splits"] == {"train": 3, "val": 2} and m["num_classes"] == 21
  assert m["name"] == "pascal_voc_seg" and m["class_names"][15] == "person"
  assert [s["name"] for s in m["splits"]["train"]["shards"]] == [
      f"train-0000{i}-of-00004.tfrecord" for i in range(4)]
  assert m["splits"]["train"]["ignored_pixels"] == 3 * W
  assert sum(m["splits"]["train"]["class_pixel_counts"]) == 3 * (H - 1) * W


def test_voc_palette_labels_become_indices(tmp_path):
  raw = make_voc(str(tmp_path / "raw"))
  pal = make_voc(str(tmp_path / "pal"), palette=True)
  convert("voc", raw, str(tmp_path / "o1"))
  convert("voc", pal, str(tmp_path / "o2"))
  m1, m2 = manifest(str(tmp_path / "o1")), manifest(str(tmp_path / "o2"))
  for split in ("train", "val"):
    assert m1["splits"][split]["class_pixel_counts"] == m2["splits"][split]["class_pixel_counts"]
  # The stored label is a plain 8-bit index PNG equal to the raw one.
  label = Image.open(io.BytesIO(_label_bytes(str(tmp_path / "o2" / "val-00000-of-00004.tfrecord"))))
  assert label.mode == "L"
  np.testing.assert_array_equal(np.asarray(label), label_array(3, 21, ignore=255))


def _label_bytes(shard: str) -> bytes:
  from deeplab.datasets.features import LABEL_ENCODED
  rec = read_records(shard)[0]
  key = LABEL_ENCODED.encode()
  # The label is the value that follows its key in the serialized map entry: find the PNG.
  start = rec.index(b"\x89PNG", rec.index(key))
  end = rec.index(b"IEND", start) + 8
  return rec[start:end]


def test_cityscapes_train_ids(tmp_path):
  src = make_cityscapes(str(tmp_path / "cs"))
  res = convert("cityscapes", src, str(tmp_path / "out"))
  m = manifest(str(tmp_path / "out"))
  assert res["splits"] == {"train_fine": 2, "val_fine": 1}
  assert m["num_classes"] == 19 and m["ignore_label"] == 255
  assert len(m["splits"]["train_fine"]["shards"]) == 10
  assert "labelIds" not in " ".join(m["notes"])


def test_cityscapes_label_ids_are_mapped_to_train_ids(tmp_path):
  src = make_cityscapes(str(tmp_path / "cs"), train_ids=False)
  convert("cityscapes", src, str(tmp_path / "out"), num_shards=1)
  m = manifest(str(tmp_path / "out"))
  lut = np.array([max(v, 0) for v in cityscapes.LABEL_ID_TO_TRAIN_ID], np.uint8)
  want = np.zeros(256, np.int64)
  for c in range(2):
    np.add.at(want, lut[label_array(c, 34)].ravel(), 1)
  assert m["splits"]["train_fine"]["class_pixel_counts"] == want[:19].tolist()
  assert m["splits"]["train_fine"]["ignored_pixels"] == want[255]
  stored = Image.open(io.BytesIO(_label_bytes(str(tmp_path / "out" /
                                                  "val_fine-00000-of-00001.tfrecord"))))
  np.testing.assert_array_equal(np.asarray(stored), lut[label_array(0, 34)])


def test_ade20k_ignore_label_zero(tmp_path):
  src = make_ade(str(tmp_path / "ade"))
  res = convert("ade20k", src, str(tmp_path / "out"))
  m = manifest(str(tmp_path / "out"))
  assert res["splits"] == {"train": 3, "val": 2}
  assert (m["num_classes"], m["ignore_label"], len(m["class_names"])) == (151, 0, 151)
  counts = m["splits"]["train"]["class_pixel_counts"]
  assert counts[0] == 0 and m["splits"]["train"]["ignored_pixels"] > 0
  # Deterministic sorted order (the original shuffled).
  recs = read_records(str(tmp_path / "out" / "train-00000-of-00004.tfrecord"))
  assert b"ADE_train_00000000" in recs[0]


def test_folder_with_list_files(tmp_path):
  src = make_folder(str(tmp_path / "f"))
  res = convert("folder", src, str(tmp_path / "out"))
  m = manifest(str(tmp_path / "out"))
  assert res["splits"] == {"train": 4, "val": 2}
  assert m["class_names"] == ["bg", "cat", "dog"] and m["image_format"] == "mixed"
  assert len(m["splits"]["train"]["shards"]) == 1


def test_folder_with_seeded_ratio_and_flags(tmp_path):
  src = make_folder(str(tmp_path / "f"), n=10, lists=False, classes_json=False)
  kw = dict(val_ratio=0.3, seed=3, class_names=("a", "b", "c"), num_shards=2)
  r1 = convert("folder", src, str(tmp_path / "o1"), **kw)
  r2 = convert("folder", src, str(tmp_path / "o2"), **kw)
  assert r1["splits"] == {"train": 7, "val": 3} and r1["fingerprint"] == r2["fingerprint"]
  r3 = convert("folder", src, str(tmp_path / "o3"), **dict(kw, seed=4))
  assert r3["fingerprint"] != r1["fingerprint"]
  assert manifest(str(tmp_path / "o1"))["class_names"] == ["a", "b", "c"]


def test_folder_needs_num_classes(tmp_path):
  from deeplab.errors import UserInputError
  src = make_folder(str(tmp_path / "f"), classes_json=False)
  with pytest.raises(UserInputError, match="--num_classes"):
    convert("folder", src, str(tmp_path / "out"))


def test_synthetic_is_seeded_and_labelled(tmp_path):
  kw = dict(synthetic_num_train=6, synthetic_num_val=2, synthetic_image_size=32, seed=1)
  r1 = build.build_tfrecords(ConvertOptions(format="synthetic", source=None, **kw),
                             str(tmp_path / "o1"), 0)
  r2 = build.build_tfrecords(ConvertOptions(format="synthetic", source=str(tmp_path / "s"), **kw),
                             str(tmp_path / "o2"), 0)
  assert r1["fingerprint"] == r2["fingerprint"] and r1["splits"] == {"train": 6, "val": 2}
  for name in ("train-00000-of-00001.tfrecord", "val-00000-of-00001.tfrecord"):
    assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()
  m = manifest(str(tmp_path / "o1"))
  assert m["num_classes"] == 5 and m["class_names"][0] == "background"
  assert all(c > 0 for c in m["splits"]["train"]["class_pixel_counts"][:2])


def test_synthetic_classes_are_separable():
  """Guards the generator's purpose: colour alone separates the classes well (a small DeepLab,
  which also sees shape and texture, learns it in a few hundred CPU steps)."""
  from deeplab.datasets.converters.synthetic import generate_example

  def data(indices):
    xs, ys = zip(*[generate_example(0, i, 32, 5) for i in indices])
    return np.stack(xs).astype(np.float32), np.stack(ys)

  x, y = data(range(40))
  assert all((y == c).any() for c in range(5))
  means = np.stack([x[y == c].mean(0) for c in range(5)])
  xv, yv = data(range(40, 50))
  pred = ((xv[..., None, :] - means) ** 2).sum(-1).argmin(-1)
  ious = [((pred == c) & (yv == c)).sum() / max(1, ((pred == c) | (yv == c)).sum())
          for c in range(5) if (yv == c).any()]
  assert np.mean(ious) > 0.8
