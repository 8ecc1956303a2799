"""The gate's cost: the paired bootstrap, the per-image confusion file, the champion evaluation.

Prints ONE JSON object:
* bootstrap_seconds: compare.compare() for 1,500 images x 21 classes (PASCAL VOC val size),
  1,000 resamples (median of --repeats). Target < 2 s.
* per_image_npz_bytes / dense_uint32_bytes: the stored per-image confusion file for those
  images (each image touching 2-4 classes, as VOC images do) vs a dense uint32 [N, C, C].
* per_image_update_ms: collecting one 513x513 image's confusion matrix during evaluation.
* champion_eval_share (with --run_id): evaluate_champion's share of a finished DAG run's wall
  time (sum of its task durations), read from the Airflow metadata DB of scripts/airflow_env.sh.

Usage: .venv/bin/python benchmarks/bench_gate.py [--repeats 3] [--run_id manual__...]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "dags"), os.path.join(REPO, "scripts")]

from deeplab.evaluation import compare, per_image  # noqa: E402

NUM_IMAGES, NUM_CLASSES, PIXELS = 1500, 21, 500 * 375


def voc_like(seed: int, shift: int = 0):
  """Per-image confusion matrices [N, C, C] of a plausible model: background plus 1-3 objects
  per image, 60-95 % of each class's pixels right."""
  rng = np.random.default_rng(seed)
  mats = np.zeros((NUM_IMAGES, NUM_CLASSES, NUM_CLASSES), np.int64)
  for i in range(NUM_IMAGES):
    classes = np.concatenate([[0], rng.choice(np.arange(1, NUM_CLASSES), rng.integers(1, 4),
                                              replace=False)])
    share = rng.dirichlet(np.ones(len(classes))) * PIXELS
    for c, n in zip(classes, share.astype(np.int64)):
      hit = int(n * rng.uniform(0.6 + 0.01 * shift, 0.95))
      mats[i, c, c] += hit
      mats[i, c, rng.choice(classes)] += n - hit
  return mats


def file_size(mats) -> int:
  collector = per_image.PerImageConfusion(NUM_CLASSES)
  for i, m in enumerate(mats):
    collector.add(f"2008_{i:06d}", m)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, per_image.PER_IMAGE_NPZ)
    collector.save(path)
    names, dense = per_image.load(path)
    assert (dense == mats).all()
    return os.path.getsize(path)


def update_ms(runs: int = 20) -> float:
  rng = np.random.default_rng(0)
  labels = rng.integers(0, NUM_CLASSES, (1, 513, 513, 1))
  preds = rng.integers(0, NUM_CLASSES, (1, 513, 513))
  collector = per_image.PerImageConfusion(NUM_CLASSES)
  times = []
  for _ in range(runs):
    t = time.perf_counter()
    collector.update([b"x"], labels, preds)
    times.append(time.perf_counter() - t)
  return 1000 * statistics.median(times)


def champion_share(run_id: str) -> dict:
  from demo import airflow_env
  os.environ.update(airflow_env())  # before Airflow is imported: the demo's metadata DB
  from demo import task_times
  times = task_times("deeplab_retrain", run_id)
  total = sum(t for _, t in times.values())
  champ = times.get("evaluate_champion", ("absent", 0.0))
  return {"run_id": run_id, "evaluate_champion_state": champ[0],
          "evaluate_champion_seconds": round(champ[1], 2),
          "run_task_seconds": round(total, 2),
          "champion_eval_share": round(champ[1] / total, 4) if total else None}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--run_id", default="")
  args = ap.parse_args()
  cand, champ = voc_like(0, shift=1), voc_like(0)
  names = [f"class_{i}" for i in range(NUM_CLASSES)]
  times, result = [], None
  for _ in range(args.repeats):
    t = time.perf_counter()
    result = compare.compare(cand, champ, names)
    times.append(time.perf_counter() - t)
  out = {"images": NUM_IMAGES, "classes": NUM_CLASSES, "resamples": compare.RESAMPLES,
         "bootstrap_seconds": round(statistics.median(times), 4),
         "bootstrap_target_seconds": 2.0,
         "delta": round(result["delta"], 5), "delta_ci": [round(v, 5) for v in result["delta_ci"]],
         "per_image_npz_bytes": file_size(cand),
         "dense_uint32_bytes": NUM_IMAGES * NUM_CLASSES * NUM_CLASSES * 4,
         "per_image_update_ms": round(update_ms(), 3)}
  if args.run_id:
    out.update(champion_share(args.run_id))
  print(json.dumps(out))


if __name__ == "__main__":
  main()
