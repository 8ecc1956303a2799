"""Candidate vs champion on the same images: ΔmIoU, a paired bootstrap interval, per-class deltas.

Pure numpy. The mIoU of a set of images comes from the sum of their confusion matrices (as
evaluate computes it); the bootstrap resamples images with replacement, the same draw for both
models (paired), and recomputes both mIoUs from the resampled sums: the interval holds the
image-to-image variation of the difference. Identical predictions give exactly 0 in every
resample, so the interval of a model against itself is exactly [0, 0].
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from deeplab.errors import UserInputError

RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95


def class_stats(matrices: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(true positives, union) per image and class, float64 [N, C] each, from [N, C, C]."""
  m = np.asarray(matrices, dtype=np.float64)
  tp = np.diagonal(m, axis1=1, axis2=2)
  return tp, m.sum(axis=2) + m.sum(axis=1) - tp


def iou(tp: np.ndarray, union: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(per-class IoU with NaN where the class is absent, mIoU over present classes); any
  leading shape."""
  present = union > 0
  per_class = np.where(present, tp / np.where(present, union, 1.0), np.nan)
  count = present.sum(axis=-1)
  miou = np.where(count > 0, np.where(present, per_class, 0.0).sum(axis=-1)
                  / np.maximum(count, 1), np.nan)
  return per_class, miou


def resample_weights(num_images: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
  """How often each image is drawn in each resample: float64 [resamples, N]."""
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, num_images, size=(resamples, num_images))
  flat = draws + (np.arange(resamples) * num_images)[:, None]
  return np.bincount(flat.ravel(), minlength=resamples * num_images).reshape(
      resamples, num_images).astype(np.float64)


def align(names_a: Sequence[str], a: np.ndarray, names_b: Sequence[str],
          b: np.ndarray) -> np.ndarray:
  """`b` reordered to `names_a`'s order.

  Raises:
    UserInputError: the two evaluations did not see the same images.
  """
  if list(names_a) == list(names_b):
    return b
  if len(set(names_a)) == len(names_a) and sorted(names_a) == sorted(names_b):
    where = {n: i for i, n in enumerate(names_b)}
    return b[[where[n] for n in names_a]]
  only_a = sorted(set(names_a) - set(names_b))[:5]
  only_b = sorted(set(names_b) - set(names_a))[:5]
  raise UserInputError(
      f"the two evaluations are not over the same images ({len(names_a)} vs {len(names_b)}; "
      f"only in the first: {only_a}, only in the second: {only_b}); evaluate both on the same "
      "split of the same dataset fingerprint")


def _opt(v: float) -> Optional[float]:
  return None if np.isnan(v) else float(v)


def compare(candidate: np.ndarray, champion: np.ndarray, class_names: Sequence[str],
            resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE) -> dict:
  """The paired comparison of two per-image confusion stacks [N, C, C] over the same images.

  Returns:
    A JSON-ready dict: candidate_miou, champion_miou, delta (candidate − champion),
    delta_ci [low, high], per_class (class, candidate_iou, champion_iou, delta; None where a
    class is absent for either model), and the bootstrap's settings.
  """
  cand, champ = np.asarray(candidate), np.asarray(champion)
  if cand.shape != champ.shape or cand.ndim != 3 or cand.shape[1] != cand.shape[2]:
    raise UserInputError(f"per-image confusion matrices differ in shape: {cand.shape} vs "
                         f"{champ.shape}; both models must be evaluated on the same split with "
                         "the same number of classes")
  n, c = cand.shape[0], cand.shape[1]
  if n == 0:
    raise UserInputError("no images to compare: the evaluated split is empty")
  if len(class_names) != c:
    raise ValueError(f"{len(class_names)} class names for {c} classes")
  tp_a, un_a = class_stats(cand)
  tp_b, un_b = class_stats(champ)
  iou_a, miou_a = iou(tp_a.sum(axis=0), un_a.sum(axis=0))
  iou_b, miou_b = iou(tp_b.sum(axis=0), un_b.sum(axis=0))
  w = resample_weights(n, resamples, seed)
  _, boot_a = iou(w @ tp_a, w @ un_a)
  _, boot_b = iou(w @ tp_b, w @ un_b)
  tail = 100 * (1 - confidence) / 2
  low, high = np.percentile(boot_a - boot_b, [tail, 100 - tail])
  per_class = []
  for i, name in enumerate(class_names):
    a, b = _opt(iou_a[i]), _opt(iou_b[i])
    per_class.append({"class": str(name), "candidate_iou": a, "champion_iou": b,
                      "delta": None if a is None or b is None else a - b})
  return {
      "candidate_miou": _opt(miou_a), "champion_miou": _opt(miou_b),
      "delta": float(miou_a - miou_b), "delta_ci": [float(low), float(high)],
      "confidence": confidence, "resamples": resamples, "seed": seed, "num_images": n,
      "per_class": per_class,
  }


def image_deltas(candidate: np.ndarray, champion: np.ndarray) -> np.ndarray:
  """Each image's own mIoU, candidate − champion: float64 [N] (NaN when undefined)."""
  _, a = iou(*class_stats(candidate))
  _, b = iou(*class_stats(champion))
  return a - b


def most_different(candidate: np.ndarray, champion: np.ndarray, k: int) -> List[int]:
  """Indices of the `k` images where the two models' per-image mIoUs differ most."""
  d = np.nan_to_num(np.abs(image_deltas(candidate, champion)), nan=0.0)
  order = np.argsort(-d, kind="stable")
  return [int(i) for i in order[:k] if d[i] > 0]
