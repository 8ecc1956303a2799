"""CVAT "Segmentation mask 1.1" exports: colour masks + labelmap.txt, pixel by pixel."""

import glob
import os

import numpy as np
import pytest

from deeplab.errors import UserInputError
from tests.deeplab.datasets import _annotation_kit as kit
from tests.deeplab.datasets.test_build_trees import convert, manifest, save

H, W = 27, 35
# CVAT's labelmap.txt, as it exports it: background first, then the task's labels.
LABELMAP = """# label:color_rgb:parts:actions
background:0,0,0::
cat:250,50,83::
dog:61,245,61::
__ignore__:255,255,255::
"""
COLOURS = np.array([[0, 0, 0], [250, 50, 83], [61, 245, 61], [255, 255, 255]], np.uint8)


def index_mask(seed: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 4, (H, W)).astype(np.uint8)


def make_cvat(root: str, subsets=None) -> str:
  subsets = subsets or {"default": ["frame_000", "frame_001", "frame_002", "frame_003"]}
  with open(os.path.join(os.makedirs(root, exist_ok=True) or root, "labelmap.txt"), "w") as f:
    f.write(LABELMAP)
  os.makedirs(os.path.join(root, "ImageSets", "Segmentation"))
  for i, stem in enumerate(sorted(s for v in subsets.values() for s in v)):
    kit.write_image(os.path.join(root, "JPEGImages", stem + ".jpg"), H, W, i)
    save(os.path.join(root, "SegmentationClass", stem + ".png"), COLOURS[index_mask(i)])
    save(os.path.join(root, "SegmentationObject", stem + ".png"), COLOURS[index_mask(i + 9)])
  for name, stems in subsets.items():
    with open(os.path.join(root, "ImageSets", "Segmentation", name + ".txt"), "w") as f:
      f.write("\n".join(stems) + "\n")
  return root


def test_colours_become_labelmap_indices(tmp_path):
  src = make_cvat(str(tmp_path / "cvat"), {"train": ["a", "b"], "val": ["c"]})
  res = convert("cvat_masks", src, str(tmp_path / "out"))
  assert res["splits"] == {"train": 2, "val": 1}
  m = manifest(str(tmp_path / "out"))
  assert m["class_names"] == ["background", "cat", "dog"]
  got = {**kit.read_split(str(tmp_path / "out"), "train"),
         **kit.read_split(str(tmp_path / "out"), "val")}
  for i, stem in enumerate("abc"):
    want = index_mask(i)
    want[want == 3] = 255  # the __ignore__ colour
    np.testing.assert_array_equal(got[stem][1], want)


def test_default_subset_is_split_and_unknown_colours_are_named(tmp_path):
  src = make_cvat(str(tmp_path / "cvat"))
  res = convert("cvat_masks", src, str(tmp_path / "out"), val_ratio=0.25)
  assert res["splits"] == {"train": 3, "val": 1}
  bad = COLOURS[index_mask(0)]
  bad[0, 0] = (1, 2, 3)
  save(os.path.join(src, "SegmentationClass", "frame_000.png"), bad)
  with pytest.raises(UserInputError, match=r"SegmentationClass/frame_000.png' has colours "
                                           r"\(1, 2, 3\)"):
    convert("cvat_masks", src, str(tmp_path / "out2"), val_ratio=0.25)


@pytest.mark.parametrize("workers", [0, 2])
def test_every_bad_mask_is_listed_not_only_the_first(tmp_path, workers):
  # Colours are checked while the shards are written (in the workers): two bad masks in two
  # splits (two shards) are both named in one error, and nothing is published.
  src = make_cvat(str(tmp_path / "cvat"), {"train": ["a", "b"], "val": ["c"]})
  for i, stem, colour in ((0, "a", (1, 2, 3)), (2, "c", (4, 5, 6))):
    bad = COLOURS[index_mask(i)]
    bad[0, 0] = colour
    save(os.path.join(src, "SegmentationClass", stem + ".png"), bad)
  out = str(tmp_path / "out")
  with pytest.raises(UserInputError) as e:
    convert("cvat_masks", src, out, workers=workers)
  assert str(e.value).startswith("2 problems in the source")
  assert "'SegmentationClass/a.png' has colours (1, 2, 3)" in str(e.value)
  assert "'SegmentationClass/c.png' has colours (4, 5, 6)" in str(e.value)
  assert not glob.glob(os.path.join(out, "manifest.json")) + glob.glob(out + "/*.tfrecord")
