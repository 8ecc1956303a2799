"""Per-image confusion matrices: what a paired comparison of two models needs (pure numpy).

Stored as `per_image_confusion.npz` in the eval folder, sparse: one row per non-zero cell
(image, truth * C + prediction, count). A segmentation image touches a few classes, so the file
stays small (1,500 VOC-like images x 21 classes: about 36 KB instead of 2.6 MB dense uint32;
benchmarks/bench_gate.py).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from deeplab.errors import UserInputError
from deeplab.evaluation import metrics

PER_IMAGE_NPZ = "per_image_confusion.npz"
FORMAT_VERSION = 1


class PerImageConfusion:
  """Collects one confusion matrix per image, in reading order, during an evaluation pass."""

  def __init__(self, num_classes: int, ignore_label: int = 255):
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.names: List[str] = []
    self._cells: List[np.ndarray] = []   # flat cell index per non-zero cell
    self._counts: List[np.ndarray] = []
    self._images: List[np.ndarray] = []

  def update(self, names: Sequence[bytes], labels: np.ndarray, predictions: np.ndarray) -> None:
    """Adds each image of a batch (labels [B, H, W(, 1)], predictions [B, H, W])."""
    for i, raw in enumerate(names):
      self.add(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw),
               metrics.confusion_matrix(labels[i], predictions[i], self.num_classes,
                                        self.ignore_label))

  def add(self, name: str, matrix: np.ndarray) -> None:
    """Adds one image's confusion matrix [C, C]."""
    m = np.asarray(matrix).reshape(-1)
    cells = np.flatnonzero(m)
    self._images.append(np.full(cells.size, len(self.names), np.uint32))
    self._cells.append(cells.astype(np.uint32))
    self._counts.append(m[cells].astype(np.uint32))
    self.names.append(name)

  def dense(self) -> np.ndarray:
    """int64 [N, C, C]."""
    return to_dense(self._arrays(), len(self.names), self.num_classes)

  def _arrays(self):
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)
    return (cat(self._images, np.uint32), cat(self._cells, np.uint32),
            cat(self._counts, np.uint32))

  def save(self, path: str) -> None:
    image, cell, count = self._arrays()
    np.savez_compressed(path, format_version=FORMAT_VERSION, num_classes=self.num_classes,
                        names=np.array(self.names, dtype=str), image=image, cell=cell,
                        count=count)


def to_dense(arrays, num_images: int, num_classes: int) -> np.ndarray:
  image, cell, count = arrays
  out = np.zeros((num_images, num_classes * num_classes), np.int64)
  out[image.astype(np.int64), cell.astype(np.int64)] = count
  return out.reshape(num_images, num_classes, num_classes)


def load(path, what: Optional[str] = None):
  """(image names, int64 [N, C, C]) from a per_image_confusion.npz.

  Args:
    path: a local path or a binary file object (e.g. io.BytesIO of storage.read_bytes(uri)).
    what: the name used in errors (default: `path`).

  Raises:
    UserInputError: the file is not a per-image confusion file this code can read.
  """
  what = what or str(path)
  try:
    with np.load(path, allow_pickle=False) as z:
      version = int(z["format_version"])
      if version != FORMAT_VERSION:
        raise UserInputError(f"{what}: format_version {version}, expected {FORMAT_VERSION}; "
                             "evaluate the checkpoint again with this version")
      names = [str(n) for n in z["names"]]
      dense = to_dense((z["image"], z["cell"], z["count"]), len(names), int(z["num_classes"]))
  except (OSError, KeyError, ValueError) as e:
    raise UserInputError(f"{what} is not a readable {PER_IMAGE_NPZ} ({e}); evaluate the "
                         "checkpoint again") from e
  return names, dense
