"""Label colormaps (PASCAL, Cityscapes, ADE20K) and Cityscapes trainId -> evalId.

Same colours as the original `utils/get_dataset_colormap.py`, so images made here look like
the ones users know from DeepLab. Pure numpy.
"""

from __future__ import annotations

import numpy as np

PASCAL = "pascal"
CITYSCAPES = "cityscapes"
ADE20K = "ade20k"
COLORMAPS = (PASCAL, CITYSCAPES, ADE20K)

# Number of usable entries of each colormap (the original _DATASET_MAX_ENTRIES).
MAX_ENTRIES = {PASCAL: 512, CITYSCAPES: 256, ADE20K: 151}

# The original vis.py `_CITYSCAPES_TRAIN_ID_TO_EVAL_ID`: raw Cityscapes predictions are
# written with the official evaluation ids.
CITYSCAPES_TRAIN_ID_TO_EVAL_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27,
                                  28, 31, 32, 33)

_CITYSCAPES_COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32))

# ADE20K benchmark colours, index 0 = "other" (black); hex RGB, 10 per line.
_ADE20K_HEX = " ".join((
    "000000 787878 b47878 06e6e6 503232 04c803 787850 8c8c8c cc05ff e6e6e6",
    "04fa07 e005ff ebff07 96053d 787846 08ff33 ff0652 8fff8c ccff04 ff3307",
    "cc4603 0066c8 3de6fa ff0633 0b66ff ff0747 ff09e0 0907e6 dcdcdc ff095c",
    "7009ff 08ffd6 07ffe0 ffb806 0aff47 ff290a 07ffff e0ff08 6608ff ff3d06",
    "ffc207 ff7a08 00ff14 ff0829 ff0599 0633ff eb0cff a09614 00a3ff 8c8c8c",
    "fa0a0f 14ff00 1fff00 ff1f00 ffe000 99ff00 0000ff ff4700 00ebff 00adff",
    "1f00ff 0bc8c8 ff5200 00fff5 003dff 00ff70 00ff85 ff0000 ffa300 ff6600",
    "c2ff00 008fff 33ff00 0052ff 00ff29 00ffad 0a00ff adff00 00ff99 ff5c00",
    "ff00ff ff00f5 ff0066 ffad00 ff0014 ffb8b8 001fff 00ff3d 0047ff ff00cc",
    "00ffc2 00ff52 000aff 0070ff 3300ff 00c2ff 007aff 00ffa3 ff9900 00ff0a",
    "ff7000 8fff00 5200ff a3ff00 ffeb00 08b8aa 8500ff 00ff5c b800ff ff001f",
    "00b8ff 00d6ff ff0070 5cff00 00e0ff 70e0ff 46b8a0 a300ff 9900ff 47ff00",
    "ff00a3 ffcc00 ff008f 00ffeb 85ff00 ff00eb f500ff ff007a fff500 0abed4",
    "d6ff00 00ccff 1400ff ffff00 0099ff 0029ff 00ffcc 2900ff 29ff00 ad00ff",
    "00f5ff 4700ff 7a00ff 00ffb8 005cff b8ff00 0085ff ffd600 19c2c2 66ff00",
    "5c00ff"))


def pascal_colormap() -> np.ndarray:
  """PASCAL VOC colours: the bits of the label index spread over R, G and B."""
  cmap = np.zeros((MAX_ENTRIES[PASCAL], 3), dtype=np.int64)
  ind = np.arange(MAX_ENTRIES[PASCAL], dtype=np.int64)
  for shift in reversed(range(8)):
    for channel in range(3):
      cmap[:, channel] |= ((ind >> channel) & 1) << shift
    ind >>= 3
  return cmap.astype(np.uint8)


def cityscapes_colormap() -> np.ndarray:
  cmap = np.zeros((MAX_ENTRIES[CITYSCAPES], 3), dtype=np.uint8)
  cmap[:len(_CITYSCAPES_COLORS)] = _CITYSCAPES_COLORS
  return cmap


def ade20k_colormap() -> np.ndarray:
  values = [int(h, 16) for h in _ADE20K_HEX.split()]
  return np.array([[(v >> 16) & 255, (v >> 8) & 255, v & 255] for v in values], dtype=np.uint8)


def create_label_colormap(name: str = PASCAL) -> np.ndarray:
  """Returns the [N, 3] uint8 colormap for `name` (pascal, cityscapes or ade20k).

  Raises:
    KeyError: unknown colormap name (the message lists the valid ones).
  """
  makers = {PASCAL: pascal_colormap, CITYSCAPES: cityscapes_colormap, ADE20K: ade20k_colormap}
  if name not in makers:
    raise KeyError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
  return makers[name]()


def label_to_color_image(label: np.ndarray, name: str = PASCAL,
                         ignore_label: int | None = None,
                         ignore_color=(255, 255, 255)) -> np.ndarray:
  """Colours a 2-D label map; returns uint8 [H, W, 3].

  Args:
    label: integer array [H, W].
    name: colormap name.
    ignore_label: pixels with this value are painted `ignore_color` (e.g. 255 in ground truth).
    ignore_color: RGB for ignored pixels.

  Raises:
    ValueError: label is not 2-D or holds a value the colormap cannot show.
  """
  label = np.asarray(label)
  if label.ndim != 2:
    raise ValueError(f"expected a 2-D label map, got shape {label.shape}")
  cmap = create_label_colormap(name)
  ignored = (label == ignore_label) if ignore_label is not None else None
  values = np.where(ignored, 0, label) if ignored is not None else label
  if values.size and (values.min() < 0 or values.max() >= len(cmap)):
    raise ValueError(f"label value {int(values.max())} is outside the {name} colormap "
                     f"(0..{len(cmap) - 1})")
  out = cmap[values]
  if ignored is not None:
    out[ignored] = ignore_color
  return out


def convert_train_id_to_eval_id(prediction: np.ndarray,
                                train_id_to_eval_id=CITYSCAPES_TRAIN_ID_TO_EVAL_ID) -> np.ndarray:
  """Maps Cityscapes trainIds (0..18) to evalIds; other values become 0 (as the original)."""
  prediction = np.asarray(prediction)
  out = np.zeros(prediction.shape, dtype=np.int64)
  for train_id, eval_id in enumerate(train_id_to_eval_id):
    out[prediction == train_id] = eval_id
  return out
