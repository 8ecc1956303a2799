"""Label Studio JSON exports: brush RLE, polygons, rectangles, converted pixel by pixel."""

import os

import numpy as np
import pytest

from deeplab.errors import UserInputError
from tests.deeplab.datasets import _annotation_kit as kit
from tests.deeplab.datasets.test_build_trees import convert, manifest

H, W = 24, 40
POLY_PCT = [[5.0, 10.0], [60.0, 8.0], [45.0, 90.0], [10.0, 75.0]]


def ls_rle(mask: np.ndarray) -> list:
  """Label Studio's brush RLE of `mask`, written from the format's description (a bit stream:
  32-bit count, 5-bit word size - 1, four 4-bit run sizes - 1, then runs of [repeat bit, 2-bit
  size index, length - 1, value(s)]) over the RGBA bytes, alpha = the mask. Literal runs of
  one value and repeated runs alternate, so both kinds are decoded."""
  values = np.zeros((mask.shape[0], mask.shape[1], 4), np.uint8)
  values[..., 0] = 200  # a colour, which the mask ignores
  values[..., 3] = np.where(mask, 255, 0)
  flat = values.ravel()
  bits = f"{len(flat):032b}" + f"{8 - 1:05b}" + "".join(f"{s - 1:04b}" for s in (3, 4, 8, 16))
  i = 0
  while i < len(flat):
    j = i
    while j < len(flat) and flat[j] == flat[i] and j - i < 1 << 16:
      j += 1
    if j - i == 1:
      bits += "0" + "00" + "000" + f"{flat[i]:08b}"        # a literal run of one value
    else:
      bits += "1" + "11" + f"{j - i - 1:016b}" + f"{flat[i]:08b}"
    i = j
  bits += "0" * (-len(bits) % 8)
  return [int(bits[k:k + 8], 2) for k in range(0, len(bits), 8)]


def brush_mask() -> np.ndarray:
  m = np.zeros((H, W), bool)
  m[3:9, 2:12] = True
  m[15, 30] = True
  return m


def region(kind: str, label: str, value: dict, rid: str) -> dict:
  return {"id": rid, "type": kind, "from_name": "tag", "to_name": "image",
          "original_width": W, "original_height": H, "image_rotation": 0,
          "value": {**value, kind: [label]}}


def make_export(root: str) -> str:
  kit.write_image(os.path.join(root, "images", "1a2b3c4d-street.jpg"), H, W, 1)
  kit.write_image(os.path.join(root, "images", "park.png"), H, W, 2)
  tasks = [
      {"id": 1, "data": {"image": "/data/upload/1/1a2b3c4d-street.jpg"},
       "annotations": [
           {"id": 9, "was_cancelled": True, "result": []},
           {"id": 10, "was_cancelled": False, "result": [
               region("polygonlabels", "road", {"points": POLY_PCT, "closed": True}, "p1"),
               region("brushlabels", "person", {"format": "rle", "rle": ls_rle(brush_mask())},
                      "b1"),
               {"id": "c1", "type": "choices", "value": {"choices": ["day"]}}]}]},
      {"id": 2, "data": {"image": "/data/upload/1/park.png"},
       "annotations": [{"id": 11, "result": [
           region("rectanglelabels", "person",
                  {"x": 25.0, "y": 25.0, "width": 50.0, "height": 50.0, "rotation": 0}, "r1")]}]},
  ]
  kit.write_json(os.path.join(root, "project-1-at-2026-12-01.json"), tasks)
  return root


def test_brush_polygon_and_rectangle_pixel_by_pixel(tmp_path):
  src = make_export(str(tmp_path / "ls"))
  res = convert("label_studio", src, str(tmp_path / "out"), val_ratio=0.0)
  assert res["splits"] == {"train": 2}
  assert manifest(str(tmp_path / "out"))["class_names"] == ["background", "person", "road"]
  got = kit.read_split(str(tmp_path / "out"), "train")
  street = got["1a2b3c4d-street"][1]
  np.testing.assert_array_equal(street == 1, brush_mask())  # the brush: exact
  pts = [(x * W / 100, y * H / 100) for x, y in POLY_PCT]
  kit.assert_polygon_drawn((street == 2) | (brush_mask() & kit.inside(pts, H, W)), pts)
  park = got["park"][1]
  want = np.zeros((H, W), np.uint8)
  want[6:18, 10:30] = 1  # 25 %..75 % of 24 x 40
  np.testing.assert_array_equal(park, want)


def test_bad_regions_are_all_listed(tmp_path):
  src = make_export(str(tmp_path / "ls"))
  tasks = [{"id": 3, "data": {"image": "/data/upload/1/nowhere.jpg"}, "annotations": []},
           {"id": 4, "data": {"image": "/data/upload/1/park.png"}, "annotations": [{"result": [
               region("rectanglelabels", "person", {"x": 1, "y": 1, "width": 5, "height": 5,
                                                    "rotation": 30}, "r9"),
               region("brushlabels", "person", {"format": "rle", "rle": ls_rle(
                   np.zeros((H, W - 1), bool))}, "b9")]}]}]
  os.remove(os.path.join(src, "project-1-at-2026-12-01.json"))
  kit.write_json(os.path.join(src, "export.json"), tasks)
  with pytest.raises(UserInputError) as e:
    convert("label_studio", src, str(tmp_path / "out"), val_ratio=0.0)
  msg = str(e.value)
  assert "'export.json' task 3: image 'nowhere.jpg' is not in images/" in msg
  assert "region r9 (person) is a rectangle rotated by 30 degrees" in msg
  assert f"region b9 (person) is a brush mask of {H * (W - 1) * 4} RGBA values" in msg
