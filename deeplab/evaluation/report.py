"""The evaluation report: report.md, confusion.png, per_class_iou.png and overlays/*.png.

Figures use matplotlib's Agg backend (no display needed); overlays are composed with PIL so
every pixel of image, truth and prediction stays exact.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from deeplab.evaluation import colormap as cmaps

CONFUSION_PNG = "confusion.png"
IOU_PNG = "per_class_iou.png"
OVERLAY_DIR = "overlays"
REPORT_MD = "report.md"
# Above this many classes, tick labels would overlap: only every n-th one is written.
_MAX_TICK_LABELS = 40
_MIN_OVERLAY_HEIGHT = 160


def _pyplot():
  import matplotlib
  matplotlib.use("Agg", force=True)
  import matplotlib.pyplot as plt
  return plt


def _tick_step(n: int) -> int:
  return max(1, int(np.ceil(n / _MAX_TICK_LABELS)))


def save_confusion_png(matrix: np.ndarray, class_names: Sequence[str], path: str) -> None:
  """Heat map of the row-normalised confusion matrix (rows: truth, columns: prediction)."""
  plt = _pyplot()
  m = np.asarray(matrix, dtype=np.float64)
  rows = m.sum(axis=1, keepdims=True)
  norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
  n = len(class_names)
  size = min(4 + 0.35 * n, 24)
  fig, ax = plt.subplots(figsize=(size + 1.5, size))
  im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
  step = _tick_step(n)
  ticks = list(range(0, n, step))
  ax.set_xticks(ticks)
  ax.set_yticks(ticks)
  ax.set_xticklabels([class_names[i] for i in ticks], rotation=60, ha="right", fontsize=8)
  ax.set_yticklabels([class_names[i] for i in ticks], fontsize=8)
  ax.set_xlabel("prediction")
  ax.set_ylabel("ground truth")
  ax.set_title("Confusion matrix (rows normalised to 1)")
  if n <= 12:  # values are readable only for small matrices
    for t in range(n):
      for p in range(n):
        if rows[t, 0] > 0:
          ax.text(p, t, f"{norm[t, p]:.2f}", ha="center", va="center", fontsize=7,
                  color="white" if norm[t, p] > 0.5 else "black")
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_iou_png(per_class_iou: Sequence[Optional[float]], class_names: Sequence[str],
                 miou: Optional[float], path: str) -> None:
  """Horizontal bar chart of per-class IoU; absent classes are labelled, not drawn as 0."""
  plt = _pyplot()
  n = len(class_names)
  fig, ax = plt.subplots(figsize=(8, min(2 + 0.3 * n, 40)))
  values = [0.0 if v is None else v for v in per_class_iou]
  colors = ["#bbbbbb" if v is None else "#3b75af" for v in per_class_iou]
  y = np.arange(n)
  ax.barh(y, values, color=colors)
  for i, v in enumerate(per_class_iou):
    ax.text((v or 0.0) + 0.01, i, "absent" if v is None else f"{v:.3f}", va="center",
            fontsize=8, color="#777777" if v is None else "black")
  if miou is not None:
    ax.axvline(miou, color="#d62728", linestyle="--", label=f"mIoU {miou:.3f}")
    ax.legend(loc="lower right")
  step = _tick_step(n)
  ax.set_yticks(y[::step])
  ax.set_yticklabels([class_names[i] for i in range(0, n, step)], fontsize=8)
  ax.invert_yaxis()
  ax.set_xlim(0, 1.1)
  ax.set_xlabel("IoU")
  ax.set_title("Per-class IoU")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def overlay_image(image: np.ndarray, label: np.ndarray, prediction: np.ndarray,
                  colormap: str = cmaps.PASCAL, ignore_label: int = 255,
                  gap: int = 4) -> np.ndarray:
  """image | colour-mapped truth (ignored pixels white) | colour-mapped prediction, side by side."""
  image = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
  h, w = image.shape[:2]
  truth = cmaps.label_to_color_image(np.asarray(label).reshape(h, w), colormap,
                                     ignore_label=ignore_label)
  pred = cmaps.label_to_color_image(np.asarray(prediction).reshape(h, w), colormap)
  # Small images are enlarged (nearest neighbour, an integer factor) so they can be inspected.
  k = int(min(8, max(1, np.ceil(_MIN_OVERLAY_HEIGHT / max(h, 1)))))
  panels = [np.repeat(np.repeat(p, k, axis=0), k, axis=1) for p in (image, truth, pred)]
  sep = np.full((h * k, gap, 3), 255, dtype=np.uint8)
  return np.concatenate([panels[0], sep, panels[1], sep, panels[2]], axis=1)


def safe_stem(name: str) -> str:
  """A file-name-safe stem of an image name ('a/b c.jpg' -> 'b_c')."""
  stem = os.path.splitext(os.path.basename(name))[0]
  return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80] or "image"


def _fmt(v: Optional[float]) -> str:
  return "absent" if v is None else f"{v:.4f}"


def render_markdown(metrics: dict, overlay_files: Sequence[str]) -> str:
  """The report page: headline figures, per-class table, figures and overlays."""
  lines = [
      "# DeepLab evaluation report", "",
      f"- checkpoint: `{metrics.get('checkpoint')}` (step {metrics.get('checkpoint_step')})",
      f"- dataset: `{metrics.get('dataset')}` split `{metrics.get('eval_split')}` "
      f"(fingerprint `{metrics.get('dataset_fingerprint')}`), {metrics.get('num_images')} images",
      f"- eval scales {metrics.get('eval_scales')}, flipped: {metrics.get('add_flipped_images')}, "
      f"input {_input(metrics)}",
      "",
      "| metric | value |", "|---|---|",
      f"| mIoU | {_fmt(metrics.get('miou'))} |",
      f"| pixel accuracy | {_fmt(metrics.get('pixel_accuracy'))} |",
      f"| mean class accuracy | {_fmt(metrics.get('mean_class_accuracy'))} |",
      f"| evaluated pixels | {metrics.get('evaluated_pixels')} |",
      "",
      "## Per class", "",
      "| id | class | IoU | accuracy | truth pixels | predicted pixels |",
      "|---:|---|---:|---:|---:|---:|",
  ]
  for i, name in enumerate(metrics["class_names"]):
    lines.append(f"| {i} | {name} | {_fmt(metrics['per_class_iou'][i])} | "
                 f"{_fmt(metrics['per_class_accuracy'][i])} | "
                 f"{metrics['ground_truth_pixels'][i]} | {metrics['predicted_pixels'][i]} |")
  if metrics.get("absent_classes"):
    lines += ["", "Absent from both truth and prediction (left out of the mean): "
              + ", ".join(metrics["absent_classes"])]
  lines += ["", "## Figures", "", f"![Per-class IoU]({IOU_PNG})", "",
            f"![Confusion matrix]({CONFUSION_PNG})", ""]
  if overlay_files:
    lines += ["## Examples (image | ground truth | prediction)", ""]
    lines += [f"![{os.path.basename(f)}]({f})" for f in overlay_files]
    lines.append("")
  return "\n".join(lines)


def _input(metrics: dict) -> str:
  """The recorded inference policy in words (deeplab/evaluation/input_size.py)."""
  if metrics.get("eval_crop_size"):
    return f"fixed crop {metrics['eval_crop_size']}"
  bound = metrics.get("inference_max_size")
  return "each image at its own size" + (f", long side > {bound} resized" if bound else "")


def write_report(out_dir: str, metrics: dict,
                 examples: Iterable[Tuple[str, np.ndarray, np.ndarray, np.ndarray]] = (),
                 colormap: str = cmaps.PASCAL, ignore_label: int = 255) -> List[str]:
  """Writes the report into a local folder; returns the relative paths written.

  Args:
    out_dir: local folder.
    metrics: dict from metrics.compute_metrics plus run facts (checkpoint, dataset, …).
    examples: (image name, image uint8 [H,W,3], truth [H,W], prediction [H,W]) tuples.
    colormap: colormap name for truth and prediction.
    ignore_label: ground-truth value painted white.
  """
  os.makedirs(os.path.join(out_dir, OVERLAY_DIR), exist_ok=True)
  names = metrics["class_names"]
  save_confusion_png(np.asarray(metrics["confusion_matrix"]), names,
                     os.path.join(out_dir, CONFUSION_PNG))
  save_iou_png(metrics["per_class_iou"], names, metrics.get("miou"),
               os.path.join(out_dir, IOU_PNG))
  overlays = []
  for i, (name, image, label, pred) in enumerate(examples):
    rel = f"{OVERLAY_DIR}/{i:06d}_{safe_stem(name)}.png"
    Image.fromarray(overlay_image(image, label, pred, colormap, ignore_label)).save(
        os.path.join(out_dir, rel))
    overlays.append(rel)
  with open(os.path.join(out_dir, REPORT_MD), "w") as f:
    f.write(render_markdown(metrics, overlays))
  return [REPORT_MD, CONFUSION_PNG, IOU_PNG] + overlays
