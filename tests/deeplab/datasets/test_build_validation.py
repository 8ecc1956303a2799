"""Each bad-input case fails with a message naming the file, the value and the fix."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from deeplab import native
from deeplab.datasets import fingerprint
from deeplab.errors import UserInputError
from tests.deeplab.datasets.test_build_trees import (
    H, W, convert, image_array, label_array, make_cityscapes, make_folder, make_voc, manifest,
    read_records, save)

STEM = "2007_000002"


@pytest.fixture(autouse=True, params=["fast", "pillow"])
def label_decoder(request, monkeypatch):
  """Every case with the fast label decode and with Pillow's (no C compiler): same messages."""
  if request.param == "pillow":
    monkeypatch.setattr(native, "library", lambda: None)
  return request.param


@pytest.fixture
def voc(tmp_path):
  root = make_voc(str(tmp_path / "src"))
  return root, os.path.join(root, "VOC2012")


def _fails(root, tmp_path, *patterns, fmt="voc", **kw):
  out = str(tmp_path / "out")
  with pytest.raises(UserInputError) as e:
    convert(fmt, root, out, **kw)
  for p in patterns:
    assert p in str(e.value), str(e.value)
  # Nothing a reader could take for a dataset.
  visible = [f for f in os.listdir(out) if not f.startswith(".")] if os.path.isdir(out) else []
  assert visible == []
  return str(e.value)


def test_size_mismatch(voc, tmp_path):
  root, v = voc
  save(os.path.join(v, "SegmentationClassRaw", STEM + ".png"), label_array(1, 21, h=H + 1))
  msg = _fails(root, tmp_path, f"SegmentationClassRaw/{STEM}.png", f"JPEGImages/{STEM}.jpg",
               f"{W}x{H + 1}", f"{W}x{H}")
  assert "resize" in msg


def test_label_value_out_of_range(voc, tmp_path):
  root, v = voc
  lab = label_array(1, 21)
  lab[3, 4] = 37
  save(os.path.join(v, "SegmentationClassRaw", STEM + ".png"), lab)
  _fails(root, tmp_path, f"label 'VOC2012/SegmentationClassRaw/{STEM}.png' has value 37",
         "21 classes (ignore_label 255)", "--num_classes")


def test_truncated_jpeg_image(voc, tmp_path):
  root, v = voc
  path = os.path.join(v, "JPEGImages", STEM + ".jpg")
  data = open(path, "rb").read()
  open(path, "wb").write(data[:len(data) * 2 // 3])
  _fails(root, tmp_path, f"JPEGImages/{STEM}.jpg", "truncated", "FFD9")


def test_truncated_label_png(voc, tmp_path):
  root, v = voc
  path = os.path.join(v, "SegmentationClassRaw", STEM + ".png")
  data = open(path, "rb").read()
  open(path, "wb").write(data[:-20])
  _fails(root, tmp_path, f"SegmentationClassRaw/{STEM}.png", "truncated", "IEND")


def test_unreadable_image(voc, tmp_path):
  root, v = voc
  open(os.path.join(v, "JPEGImages", STEM + ".jpg"), "wb").write(b"not an image at all")
  _fails(root, tmp_path, f"JPEGImages/{STEM}.jpg", "not a readable image", "JPEG or PNG")


def test_missing_label(voc, tmp_path):
  root, v = voc
  os.remove(os.path.join(v, "SegmentationClassRaw", STEM + ".png"))
  _fails(root, tmp_path, "missing label", f"JPEGImages/{STEM}.jpg",
         f"SegmentationClassRaw/{STEM}.png")


def test_rgb_label_is_rejected(voc, tmp_path):
  root, v = voc
  save(os.path.join(v, "SegmentationClassRaw", STEM + ".png"), image_array(5))
  _fails(root, tmp_path, f"SegmentationClassRaw/{STEM}.png", "colour (RGB)", "class index")


def test_16_bit_label_is_rejected(voc, tmp_path):
  root, v = voc
  save(os.path.join(v, "SegmentationClassRaw", STEM + ".png"),
       label_array(1, 21).astype(np.uint16))
  _fails(root, tmp_path, f"SegmentationClassRaw/{STEM}.png", "16-bit", "8-bit")


def test_invalid_cityscapes_label_id(tmp_path):
  root = make_cityscapes(str(tmp_path / "cs"), train_ids=False)
  path = os.path.join(root, "gtFine", "val", "frankfurt",
                      "frankfurt_000000_000009_gtFine_labelIds.png")
  lab = label_array(0, 34)
  lab[0, 0] = 40
  save(path, lab)
  _fails(root, tmp_path, "frankfurt_000000_000009_gtFine_labelIds.png", "value 40",
         "Cityscapes labelId", fmt="cityscapes")


def test_empty_split(voc, tmp_path):
  root, v = voc
  open(os.path.join(v, "ImageSets", "Segmentation", "test.txt"), "w").close()
  _fails(root, tmp_path, "split 'test'", "empty", "--splits")


def test_duplicate_stems(tmp_path):
  root = make_folder(str(tmp_path / "f"))
  save(os.path.join(root, "images", "img0.png"), image_array(0))  # img0.jpg exists too
  _fails(root, tmp_path, "duplicate stem 'img0'", "images/img0.png", "images/img0.jpg",
         fmt="folder")


def test_image_listed_but_missing(voc, tmp_path):
  root, v = voc
  os.remove(os.path.join(v, "JPEGImages", STEM + ".jpg"))
  _fails(root, tmp_path, f"JPEGImages/{STEM}.jpg", "does not exist", "split list")


def test_grey_and_rgba_images_become_rgb(tmp_path):
  root = make_folder(str(tmp_path / "f"))
  save(os.path.join(root, "images", "img1.png"), image_array(1)[..., 0], mode="L")
  rgba = np.concatenate([image_array(3), np.full((H, W, 1), 200, np.uint8)], -1)
  save(os.path.join(root, "images", "img3.png"), rgba, mode="RGBA")
  convert("folder", root, str(tmp_path / "out"))
  m = manifest(str(tmp_path / "out"))
  conv = {c["file"]: (c["from_channels"], c["to_channels"]) for c in m["channel_conversions"]}
  assert conv == {"images/img1.png": (1, 3), "images/img3.png": (4, 3)}
  recs = read_records(str(tmp_path / "out" / "train-00000-of-00001.tfrecord"))
  start = recs[1].index(b"\x89PNG")
  img = Image.open(io.BytesIO(recs[1][start:recs[1].index(b"IEND", start) + 8]))
  assert img.mode == "RGB"
  np.testing.assert_array_equal(np.asarray(img)[..., 2], image_array(1)[..., 0])


def test_skip_converts_the_rest_and_lists_every_bad_file(voc, tmp_path):
  root, v = voc
  lab = label_array(1, 21)
  lab[0, 0] = 99
  save(os.path.join(v, "SegmentationClassRaw", STEM + ".png"), lab)
  os.remove(os.path.join(v, "SegmentationClassRaw", "2008_000001.png"))
  res = convert("voc", root, str(tmp_path / "out"), on_bad_example="skip")
  m = manifest(str(tmp_path / "out"))
  assert res["splits"] == {"train": 2, "val": 1} and res["skipped"] == 2
  skipped = {s["file"]: s["reason"] for s in m["skipped"]}
  assert set(skipped) == {f"VOC2012/JPEGImages/{STEM}.jpg", "VOC2012/JPEGImages/2008_000001.jpg"}
  assert "value 99" in skipped[f"VOC2012/JPEGImages/{STEM}.jpg"]
  assert "missing label" in skipped["VOC2012/JPEGImages/2008_000001.jpg"]
  # The files no worker converted are hashed by the parent: the fingerprint is still whole.
  assert res["fingerprint"] == fingerprint.compute_fingerprint("voc", root,
                                                               {"on_bad_example": "skip"})


def test_skip_still_refuses_an_emptied_split(voc, tmp_path):
  root, v = voc
  for stem in ("2008_000001", "2008_000002"):
    save(os.path.join(v, "SegmentationClassRaw", stem + ".png"), label_array(1, 21, h=3))
  _fails(root, tmp_path, "split 'val'", "empty", on_bad_example="skip")
