"""Colormaps match the original get_dataset_colormap values; Cityscapes trainId -> evalId."""

import numpy as np
import pytest

from deeplab.evaluation import colormap


def test_pascal_colormap_known_entries():
  cmap = colormap.create_label_colormap("pascal")
  assert cmap.shape == (512, 3)
  # VOC: background black, aeroplane maroon, bicycle green, person (15) pinkish.
  assert cmap[0].tolist() == [0, 0, 0]
  assert cmap[1].tolist() == [128, 0, 0]
  assert cmap[2].tolist() == [0, 128, 0]
  assert cmap[15].tolist() == [192, 128, 128]


def test_cityscapes_and_ade20k_entries():
  city = colormap.create_label_colormap("cityscapes")
  assert city[0].tolist() == [128, 64, 128] and city[18].tolist() == [119, 11, 32]
  ade = colormap.create_label_colormap("ade20k")
  assert ade.shape == (151, 3)
  assert ade[1].tolist() == [120, 120, 120] and ade[150].tolist() == [92, 0, 255]


def test_label_to_color_image_paints_ignored_pixels():
  label = np.array([[0, 1], [255, 2]])
  out = colormap.label_to_color_image(label, "pascal", ignore_label=255)
  assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
  assert out[1, 0].tolist() == [255, 255, 255]
  with pytest.raises(ValueError, match="outside"):
    colormap.label_to_color_image(np.array([[200]]), "ade20k")
  with pytest.raises(KeyError, match="pascal"):
    colormap.create_label_colormap("nope")


def test_train_id_to_eval_id():
  pred = np.array([[0, 1, 18], [5, 10, 200]])
  out = colormap.convert_train_id_to_eval_id(pred)
  assert out.tolist() == [[7, 8, 33], [17, 23, 0]]
