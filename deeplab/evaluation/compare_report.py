"""The comparison report: compare.md, per-class IoU of both models side by side, and the images
where they differ most (matplotlib Agg, as report.py)."""

from __future__ import annotations

import os
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from deeplab.evaluation import compare
from deeplab.evaluation.report import _fmt, _pyplot, _tick_step

COMPARE_MD = "compare.md"
CLASS_PNG = "per_class_iou_compare.png"
IMAGES_PNG = "most_different_images.png"
NUM_IMAGES_LISTED = 10


def save_class_png(comparison: Mapping, path: str) -> None:
  """Grouped horizontal bars: per-class IoU of the candidate beside the champion's."""
  plt = _pyplot()
  rows = comparison["per_class"]
  n = len(rows)
  fig, ax = plt.subplots(figsize=(8, min(2 + 0.45 * n, 40)))
  y = np.arange(n)
  for offset, key, label, color in ((-0.2, "candidate_iou", "candidate", "#3b75af"),
                                    (0.2, "champion_iou", "champion", "#bbbbbb")):
    ax.barh(y + offset, [r[key] or 0.0 for r in rows], height=0.4, label=label, color=color)
  for i, r in enumerate(rows):
    if r["delta"] is not None:
      ax.text(max(r["candidate_iou"], r["champion_iou"]) + 0.01, i, f"{r['delta']:+.3f}",
              va="center", fontsize=8, color="#d62728" if r["delta"] < 0 else "black")
  step = _tick_step(n)
  ax.set_yticks(y[::step])
  ax.set_yticklabels([rows[i]["class"] for i in range(0, n, step)], fontsize=8)
  ax.invert_yaxis()
  ax.set_xlim(0, 1.15)
  ax.set_xlabel("IoU on this run's split")
  ax.set_title(f"Per-class IoU, candidate vs champion (ΔmIoU {comparison['delta']:+.4f})")
  ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_images_png(names: Sequence[str], deltas: Sequence[float], path: str) -> None:
  """Bars of per-image ΔmIoU for the images where the models differ most."""
  plt = _pyplot()
  n = max(1, len(names))
  fig, ax = plt.subplots(figsize=(8, 1.5 + 0.35 * n))
  ax.barh(np.arange(len(names)), deltas,
          color=["#d62728" if d < 0 else "#2ca02c" for d in deltas])
  ax.set_yticks(np.arange(len(names)))
  ax.set_yticklabels(names, fontsize=8)
  ax.invert_yaxis()
  ax.axvline(0, color="black", linewidth=0.8)
  ax.set_xlabel("image mIoU, candidate − champion")
  ax.set_title("Images where the two models differ most")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(out_dir: str, comparison: Mapping, candidate: np.ndarray, champion: np.ndarray,
          image_names: Sequence[str], verdict: Optional[Mapping] = None,
          reports: Optional[Mapping[str, str]] = None,
          overlays: Sequence[Tuple[int, str, str]] = (), drift: str = "") -> List[str]:
  """Writes compare.md and its PNGs into a local folder; returns the files written.

  Args:
    out_dir: local folder.
    comparison: compare.compare(candidate, champion, ...).
    candidate, champion: per-image confusion matrices [N, C, C], same image order.
    image_names: the images' names, in that order.
    verdict: the gate's decision ("verdict", "reason"), shown at the top when given.
    reports: label -> where each model's own evaluation report is.
    overlays: (image index, candidate overlay, champion overlay): the overlays both
      evaluations drew of the same image (links relative to `out_dir`).
    drift: where the drift report of this run's dataset against the champion's is ("": none).
  """
  os.makedirs(out_dir, exist_ok=True)
  save_class_png(comparison, os.path.join(out_dir, CLASS_PNG))
  _, own_a = compare.iou(*compare.class_stats(candidate))
  _, own_b = compare.iou(*compare.class_stats(champion))
  top = compare.most_different(candidate, champion, NUM_IMAGES_LISTED)
  files = [COMPARE_MD, CLASS_PNG]
  if top:
    save_images_png([image_names[i] for i in top], [own_a[i] - own_b[i] for i in top],
                    os.path.join(out_dir, IMAGES_PNG))
    files.append(IMAGES_PNG)
  low, high = comparison["delta_ci"]
  lines = ["# Candidate vs champion on the same images", ""]
  if verdict:
    lines += [f"**{verdict.get('verdict')}**: {verdict.get('reason')}", ""]
  lines += [
      "| | mIoU |", "|---|---:|",
      f"| candidate | {_fmt(comparison['candidate_miou'])} |",
      f"| champion (this split) | {_fmt(comparison['champion_miou'])} |",
      f"| Δ (candidate − champion) | {comparison['delta']:+.4f} |",
      f"| {round(100 * comparison['confidence'])}% interval | [{low:+.4f}, {high:+.4f}] |", "",
      f"Paired bootstrap over {comparison['num_images']} images: {comparison['resamples']} "
      f"resamples with replacement (seed {comparison['seed']}), the same draw for both models.",
      ""]
  for label, uri in (reports or {}).items():
    lines.append(f"- {label} evaluation report: `{uri}`")
  if drift:
    lines.append(f"- dataset drift against the champion's data: `{drift}`")
  lines += ["", "## Per class", "", "| class | candidate IoU | champion IoU | Δ |",
            "|---|---:|---:|---:|"]
  for r in comparison["per_class"]:
    delta = "n/a" if r["delta"] is None else f"{r['delta']:+.4f}"
    lines.append(f"| {r['class']} | {_fmt(r['candidate_iou'])} | {_fmt(r['champion_iou'])} | "
                 f"{delta} |")
  lines += ["", f"![Per-class IoU]({CLASS_PNG})", ""]
  if top:
    lines += ["## Images where the two differ most", "",
              "| image | candidate mIoU | champion mIoU | Δ |", "|---|---:|---:|---:|"]
    lines += [f"| {image_names[i]} | {own_a[i]:.4f} | {own_b[i]:.4f} | "
              f"{own_a[i] - own_b[i]:+.4f} |" for i in top]
    lines += ["", f"![Most different images]({IMAGES_PNG})", ""]
  else:
    lines += ["The two models' predictions give the same per-image confusion on every image.",
              ""]
  if overlays:
    lines += ["## Overlays (image | truth | prediction), candidate above champion", "",
              "The evaluations draw their first images; sorted here by how much the two differ.",
              ""]
    for i, cand_png, champ_png in sorted(overlays, key=lambda o: -abs(np.nan_to_num(
        own_a[o[0]] - own_b[o[0]]))):
      lines += [f"### {image_names[i]}: candidate {own_a[i]:.4f}, champion {own_b[i]:.4f}", "",
                f"![candidate]({cand_png})", "", f"![champion]({champ_png})", ""]
  with open(os.path.join(out_dir, COMPARE_MD), "w") as f:
    f.write("\n".join(lines))
  return files
