"""What changed between two dataset versions: the drift report.

Every conversion records per split (manifest.json): the image count, the image sizes, the
pixels per class and the images per class. `compare` sets two manifests side by side, per split
and per class name (classes are matched by name, so a moved class is still compared with
itself), and flags every change larger than the threshold as a warning: a class whose pixel
share grows or shrinks by more than `factor`, a class that appears or disappears, a split that
shrinks or grows by more than `factor`, a median image area that changes by more than `factor`.

Pure Python (the chart imports matplotlib only when drawn), so resolve_config and the gate can
call it. Written as runs/<run_id>/drift.json, drift.md and drift.png.
"""

from typing import Any, Dict, List, Mapping, Optional

DEFAULT_FACTOR = 2.0


def _names(manifest: Mapping[str, Any]) -> List[str]:
  names = manifest.get("class_names")
  return list(names) if names else [str(i) for i in range(int(manifest["num_classes"]))]


def _shares(split: Mapping[str, Any], names: List[str]) -> Dict[str, float]:
  counts = split.get("class_pixel_counts") or [0] * len(names)
  total = sum(counts) or 1
  return {n: c / total for n, c in zip(names, counts)}


def _median_area(sizes: Mapping[str, int]) -> Optional[float]:
  areas = []
  for key, n in sizes.items():
    h, w = (int(v) for v in key.split("x"))
    areas.extend([h * w] * int(n))
  if not areas:
    return None
  areas.sort()
  return float(areas[len(areas) // 2])


def _ratio_warning(what: str, old: float, new: float, factor: float) -> Optional[str]:
  if old > 0 and new > 0 and max(new / old, old / new) > factor:
    return f"{what} changed {old:.4g} -> {new:.4g} (x{new / old:.2f}, threshold x{factor:g})"
  return None


def compare(old: Mapping[str, Any], new: Mapping[str, Any],
            factor: float = DEFAULT_FACTOR) -> Dict[str, Any]:
  """The drift from manifest `old` (the champion's dataset) to manifest `new` (this run's).

  Returns:
    A JSON-ready dict: old/new fingerprints, factor, splits (per split: num_examples, image
    sizes, median_area, and per class pixel_share and images), warnings (sentences).
  """
  old_names, new_names = _names(old), _names(new)
  warnings: List[str] = []
  for n in old_names:
    if n not in new_names:
      warnings.append(f"class {n!r} is gone from the new dataset")
  for n in new_names:
    if n not in old_names:
      warnings.append(f"class {n!r} is new")
  splits = {}
  old_splits, new_splits = old.get("splits") or {}, new.get("splits") or {}
  for split in sorted(set(old_splits) | set(new_splits)):
    a, b = old_splits.get(split), new_splits.get(split)
    if a is None or b is None:
      warnings.append(f"split {split!r} is {'new' if a is None else 'gone'}")
      continue
    sa, sb = _shares(a, old_names), _shares(b, new_names)
    ia = dict(zip(old_names, a.get("images_per_class") or []))
    ib = dict(zip(new_names, b.get("images_per_class") or []))
    classes = []
    for n in list(dict.fromkeys(old_names + new_names)):
      entry = {"class": n, "pixel_share": [sa.get(n), sb.get(n)], "images": [ia.get(n), ib.get(n)]}
      classes.append(entry)
      w = _ratio_warning(f"{split}: pixel share of class {n!r}", sa.get(n) or 0, sb.get(n) or 0,
                         factor)
      if w:
        warnings.append(w)
      elif n in sa and n in sb and (sa[n] > 0) != (sb[n] > 0):
        warnings.append(f"{split}: class {n!r} {'has no pixels any more' if sa[n] else 'appears'}"
                        f" (pixel share {sa[n]:.4g} -> {sb[n]:.4g})")
    area = [_median_area(a.get("image_sizes") or {}), _median_area(b.get("image_sizes") or {})]
    for w in (_ratio_warning(f"{split}: images", a["num_examples"], b["num_examples"], factor),
              _ratio_warning(f"{split}: median image area (pixels)", area[0] or 0, area[1] or 0,
                             factor)):
      if w:
        warnings.append(w)
    splits[split] = {"num_examples": [a["num_examples"], b["num_examples"]],
                     "image_sizes": [a.get("image_sizes"), b.get("image_sizes")],
                     "median_area": area, "classes": classes}
  return {"old_fingerprint": old.get("fingerprint"), "new_fingerprint": new.get("fingerprint"),
          "factor": factor, "splits": splits, "warnings": warnings}


def _pct(v: Optional[float]) -> str:
  return "-" if v is None else f"{100 * v:.2f}%"


def markdown(report: Mapping[str, Any], chart_png: str = "") -> str:
  """The report as a readable page (warnings first, the chart, tables per split)."""
  lines = [f"# Dataset drift: {report['old_fingerprint']} -> {report['new_fingerprint']}", ""]
  lines += [f"- WARNING: {w}" for w in report["warnings"]] or ["No change beyond "
                                                               f"x{report['factor']:g}."]
  if chart_png:
    lines += ["", f"![Class pixel share before/after and image-area histogram ("
                  f"{next(iter(report['splits']))})]({chart_png})"]
  for split, s in report["splits"].items():
    lines += ["", f"## {split}", "",
              f"images {s['num_examples'][0]} -> {s['num_examples'][1]}; median image area "
              f"{s['median_area'][0]} -> {s['median_area'][1]} pixels", "",
              "| class | pixel share before | after | images before | after |",
              "|---|---|---|---|---|"]
    for c in s["classes"]:
      lines.append(f"| {c['class']} | {_pct(c['pixel_share'][0])} | {_pct(c['pixel_share'][1])} "
                   f"| {c['images'][0] if c['images'][0] is not None else '-'} "
                   f"| {c['images'][1] if c['images'][1] is not None else '-'} |")
  return "\n".join(lines) + "\n"


def chart(report: Mapping[str, Any], path: str, split: Optional[str] = None) -> str:
  """drift.png: class pixel share before/after and the image-area histogram of one split."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  split = split or next(iter(report["splits"]))
  s = report["splits"][split]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
  names = [c["class"] for c in s["classes"]]
  xs = range(len(names))
  for k, (label, offset) in enumerate((("before", -0.2), ("after", 0.2))):
    ax1.bar([x + offset for x in xs], [c["pixel_share"][k] or 0 for c in s["classes"]], 0.4,
            label=label)
  ax1.set_xticks(list(xs), names, rotation=45, ha="right")
  ax1.set_title(f"{split}: class pixel share")
  ax1.legend()
  for k, label in enumerate(("before", "after")):
    sizes = s["image_sizes"][k] or {}
    areas = [int(h) * int(w) for key, n in sizes.items()
             for h, w in [key.split("x")] for _ in range(n)]
    ax2.hist(areas, bins=20, alpha=0.6, label=label)
  ax2.set_title(f"{split}: image area (pixels)")
  ax2.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path


def write(report: Mapping[str, Any], run_dir: str) -> Dict[str, str]:
  """drift.json, drift.md and drift.png into `run_dir` (local or gs://); their URIs."""
  import importlib.util
  import os
  import tempfile

  from deeplab import storage
  out = {"json": storage.join(run_dir, "drift.json"), "md": storage.join(run_dir, "drift.md"),
         "png": storage.join(run_dir, "drift.png")}
  storage.write_json(out["json"], dict(report))
  if report["splits"] and importlib.util.find_spec("matplotlib") is not None:
    # The chart needs the [train] extra's matplotlib; an Airflow-side install gets json + md.
    with tempfile.TemporaryDirectory() as tmp:
      png = chart(report, os.path.join(tmp, "drift.png"))
      with open(png, "rb") as f:
        storage.write_bytes(out["png"], f.read())
  else:
    del out["png"]
  # drift.md last, showing the chart beside it (a relative link) when there is one.
  storage.write_text(out["md"], markdown(report, "drift.png" if "png" in out else ""))
  return out
