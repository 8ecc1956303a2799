"""Evaluation throughput with and without the metric, and the exported graph's latency.

Prints ONE JSON object:
* eval_images_per_sec_with_metric / eval_images_per_sec_bare: the same evaluation graph
  (input pipeline + mobilenet_v2 DeepLab, 513x513 crop) with the streaming confusion matrix
  and overlay collection on, and with predictions fetched only; steps alternate between the
  two so load from other processes hits both alike (medians). Target: metric_overhead_pct < 5.
* metric_update_ms_per_image: the confusion-matrix update alone on a 513x513 image, and
  metric_update_pct_of_bare_step: that cost relative to a bare evaluation step (a load-immune
  estimate of the overhead; the measured A/B figure is noisy on a shared machine).
* frozen_graph_latency_ms_*: single-image latency of frozen_inference_graph.pb at 513x513.
* own_size: each image at its own size (issue "a prediction depends only on its own image"):
  - split_small / split_with_4000x3000: `evaluate` of 8 PASCAL-sized images, without and with
    one 4000x3000 photo, each in its own process: seconds of the pass per megapixel (of the
    original images) and the process's peak RSS; target: within 1.3x of each other. The photo
    runs resized into the default long-side bound (2049); a third row bounds it at 1025
    (--inference_max_size): the network's memory grows with the pixels it is run on.
  - demo_split: the demo's 64x64 eval split (32 images) before (every image padded to the
    old 513x513 floor) and after (own size), images/s; target >= 24 img/s after.
  - saved_model_latency_ms: the own-size SavedModel's serving_default on 96x96, 513x513 and
    4000x3000 requests (median of a few runs after a warm-up).

Usage: .venv/bin/python benchmarks/bench_eval.py [--steps 20] [--latency_runs 10]
The model is randomly initialised (mobilenet_v2 with the default ModelConfig, 21 classes):
speed does not depend on the weights.
"""

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeplab import config as dl_config  # noqa: E402
from deeplab import export, model
from deeplab.evaluation import eval_pass, input_size, metrics  # noqa: E402
from deeplab.exporting import graph as eg  # noqa: E402
from deeplab.compat import tf  # noqa: E402
from deeplab.datasets import features  # noqa: E402

CROP = (513, 513)
# A smaller long-side bound (--inference_max_size) than the default 2049, for the memory row.
SMALL_BOUND = 1025


def _feature(value):
  if isinstance(value, int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _png(array):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format="PNG")
  return buf.getvalue()


def write_split(folder, count, num_classes, seed=0):
  """PASCAL-sized synthetic images (500x375 / 375x500) with random class rectangles."""
  rng = np.random.RandomState(seed)
  os.makedirs(folder, exist_ok=True)
  with tf.io.TFRecordWriter(os.path.join(folder, features.shard_name("val", 0, 1))) as w:
    for i in range(count):
      h, w_ = (375, 500) if i % 2 else (500, 375)
      image = rng.randint(0, 255, (h, w_, 3)).astype(np.uint8)
      label = np.zeros((h, w_), np.uint8)
      for c in range(1, 6):
        y, x = rng.randint(0, h - 60), rng.randint(0, w_ - 60)
        label[y:y + 120, x:x + 120] = rng.randint(1, num_classes)
      label[:, :3] = 255
      feats = {features.IMAGE_ENCODED: _feature(_png(image)),
               features.IMAGE_FILENAME: _feature(f"b{i:04d}".encode()),
               features.IMAGE_FORMAT: _feature(b"png"), features.IMAGE_HEIGHT: _feature(h),
               features.IMAGE_WIDTH: _feature(w_), features.LABEL_ENCODED: _feature(_png(label)),
               features.LABEL_FORMAT: _feature(b"png")}
      w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
  return folder


def write_run(folder, model_cfg):
  os.makedirs(folder, exist_ok=True)
  with tf.Graph().as_default():
    model.predict_labels(tf.placeholder(tf.float32, [1, CROP[0], CROP[1], 3]), model_cfg, CROP)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      prefix = tf.train.Saver().save(sess, os.path.join(folder, "model.ckpt"), global_step=1)
  cfg = dl_config.TrainConfig(model=model_cfg, train_crop_size=CROP, train_logdir=folder)
  with open(os.path.join(folder, "config.json"), "w") as f:
    f.write(dl_config.dumps(cfg))
  return prefix


def bench_eval(data, ckpt, model_cfg, steps):
  """Per-image step times, alternating metric-on and bare steps on one session.

  Other processes share this machine's cores: alternating step by step and taking medians
  lets slow drifts in their load hit both modes alike. A metric-on step is exactly what
  eval_pass.run_pass does per batch: fetch predictions, labels and overlay inputs, update
  the confusion matrix, keep overlay candidates.
  """
  policy = input_size.make_policy(model_cfg, CROP)
  graph = eval_pass.EvalGraph(data, "val", 1, policy, 255, repeat=True)
  b = graph.batch
  fetch_metric = {"pred": graph.predictions, "label": b["label"]}
  fetch_bare = {"pred": graph.predictions}
  stream = metrics.StreamingConfusionMatrix(model_cfg.num_classes, 255)
  times = {True: [], False: []}
  with graph.session(ckpt) as sess:
    for step in range(2 * steps + 4):
      metric_on = step % 2 == 0
      start = time.perf_counter()
      out = sess.run(fetch_metric if metric_on else fetch_bare)
      if metric_on:
        stream.update(out["label"], out["pred"])
      if step >= 4:  # the first steps build and optimise one executor per fetch set
        times[metric_on].append(time.perf_counter() - start)
  return 1 / statistics.median(times[True]), 1 / statistics.median(times[False])


def bench_metric_update(num_classes, runs=20):
  rng = np.random.RandomState(0)
  label = rng.randint(0, num_classes, (1, CROP[0], CROP[1], 1)).astype(np.int32)
  pred = rng.randint(0, num_classes, (1, CROP[0], CROP[1])).astype(np.int64)
  stream = metrics.StreamingConfusionMatrix(num_classes)
  start = time.perf_counter()
  for _ in range(runs):
    stream.update(label, pred)
  return 1000 * (time.perf_counter() - start) / runs


def bench_frozen(ckpt, export_dir, runs):
  export.export(ckpt, export_dir, num_check_images=1, crop_size=CROP)
  graph_def = eg.read_frozen_graph(os.path.join(export_dir, eg.FROZEN_GRAPH))
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(graph_def, name="")
  image = np.random.RandomState(1).randint(0, 255, (1, CROP[0], CROP[1], 3)).astype(np.uint8)
  times = []
  with tf.Session(graph=graph) as sess:
    for i in range(runs + 2):
      start = time.perf_counter()
      sess.run("SemanticPredictions:0", {"ImageTensor:0": image})
      if i >= 2:  # the first runs pay for graph optimisation and allocation
        times.append(1000 * (time.perf_counter() - start))
  return statistics.median(times), min(times), os.path.getsize(
      os.path.join(export_dir, eg.FROZEN_GRAPH))


def write_sized_split(folder, sizes, num_classes, seed=0):
  """Smooth synthetic images of the given sizes (cheap to encode even at 4000x3000)."""
  rng = np.random.RandomState(seed)
  os.makedirs(folder, exist_ok=True)
  with tf.io.TFRecordWriter(os.path.join(folder, features.shard_name("val", 0, 1))) as w:
    for i, (h, w_) in enumerate(sizes):
      yy, xx = np.mgrid[0:h, 0:w_]
      image = np.stack([yy * 255 // h, xx * 255 // w_, np.full_like(yy, 100)], -1).astype(np.uint8)
      label = np.zeros((h, w_), np.uint8)
      for c in range(1, 6):
        y, x = rng.randint(0, h // 2), rng.randint(0, w_ // 2)
        label[y:y + h // 4, x:x + w_ // 4] = c
        image[y:y + h // 4, x:x + w_ // 4] = (40 * c, 200 - 30 * c, 25 * c)
      feats = {features.IMAGE_ENCODED: _feature(_png(image)),
               features.IMAGE_FILENAME: _feature(f"s{i:04d}".encode()),
               features.IMAGE_FORMAT: _feature(b"png"), features.IMAGE_HEIGHT: _feature(h),
               features.IMAGE_WIDTH: _feature(w_), features.LABEL_ENCODED: _feature(_png(label)),
               features.LABEL_FORMAT: _feature(b"png")}
      w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
  with open(os.path.join(folder, features.MANIFEST), "w") as f:
    json.dump({"format_version": 1, "name": "bench", "fingerprint": "bench",
               "num_classes": num_classes, "ignore_label": 255,
               "splits": {"val": {"num_examples": len(sizes)}}}, f)
  return folder


def child_evaluate(data, ckpt, crop, max_size=None):
  """Runs in its own process: one `evaluate` pass; prints seconds, megapixels, peak RSS."""
  from benchmarks._memory import peak_rss_mb
  from deeplab import evaluate
  cfg = dl_config.ModelConfig(num_classes=21)
  sizes = eval_pass_sizes(data)
  with tempfile.TemporaryDirectory() as out:
    summary = evaluate.evaluate(evaluate.EvalSpec(dataset_dir=data, checkpoint=ckpt,
                                                  eval_logdir=out, model=cfg,
                                                  eval_crop_size=crop, num_overlays=0,
                                                  inference_max_size=max_size))
  # The pass itself (evaluate's own timing): graph building and restore excluded.
  secs = summary["num_images"] / summary["images_per_sec"]
  print(json.dumps({"seconds": secs, "images": len(sizes),
                    "megapixels": float(sum(h * w for h, w in sizes)) / 1e6,
                    "peak_rss_mb": peak_rss_mb()}))


def eval_pass_sizes(data):
  from deeplab.evaluation import split_reader
  return [tuple(int(v) for v in s) for s in split_reader.scan_sizes(data, "val")]


def run_child(data, ckpt, crop=None, max_size=None):
  import subprocess
  argv = [sys.executable, os.path.abspath(__file__), "--child_eval", data, ckpt,
          f"{crop[0]},{crop[1]}" if crop else "own", str(max_size or 0)]
  proc = subprocess.run(argv, capture_output=True, text=True,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  if proc.returncode:
    raise RuntimeError(proc.stderr[-3000:])
  return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_own_size(tmp, ckpt, model_cfg, runs):
  """The own-size figures (see the module docstring)."""
  pascal = [(375, 500) if i % 2 else (500, 375) for i in range(8)]
  small = write_sized_split(os.path.join(tmp, "small"), pascal, model_cfg.num_classes)
  big = write_sized_split(os.path.join(tmp, "big"), pascal + [(3000, 4000)],
                          model_cfg.num_classes)
  demo = write_sized_split(os.path.join(tmp, "demo"), [(64, 64)] * 32, model_cfg.num_classes)
  out = {}
  for name, data, max_size in (("split_small", small, None), ("split_with_4000x3000", big, None),
                               (f"split_with_4000x3000_max_size_{SMALL_BOUND}", big,
                                SMALL_BOUND)):
    r = run_child(data, ckpt, max_size=max_size)
    out[name] = {"images": r["images"], "megapixels": round(r["megapixels"], 2),
                 "seconds": round(r["seconds"], 2),
                 "seconds_per_megapixel": round(r["seconds"] / r["megapixels"], 2),
                 "peak_rss_mb": round(r["peak_rss_mb"])}
  a, b = out["split_small"], out["split_with_4000x3000"]
  out["seconds_per_megapixel_ratio"] = round(b["seconds_per_megapixel"] /
                                             a["seconds_per_megapixel"], 2)
  out["peak_rss_ratio"] = round(b["peak_rss_mb"] / a["peak_rss_mb"], 2)
  c = out[f"split_with_4000x3000_max_size_{SMALL_BOUND}"]
  out[f"peak_rss_ratio_max_size_{SMALL_BOUND}"] = round(c["peak_rss_mb"] / a["peak_rss_mb"], 2)
  out["ratio_target"] = 1.3
  before, after = run_child(demo, ckpt, CROP), run_child(demo, ckpt)
  out["demo_split_64x64"] = {
      "images_per_sec_before_513_floor": round(before["images"] / before["seconds"], 1),
      "images_per_sec_own_size": round(after["images"] / after["seconds"], 1),
      "note": "the evaluation pass (evaluate's images_per_sec): graph building excluded",
      "target_images_per_sec": 24}
  export_dir = os.path.join(tmp, "export_own")
  export.export(ckpt, export_dir, num_check_images=1)
  graph = tf.Graph()
  latency = {}
  with tf.Session(graph=graph) as sess:
    meta = tf.saved_model.loader.load(sess, ["serve"], os.path.join(export_dir, "saved_model"))
    sig = meta.signature_def["serving_default"]
    feed, fetch = sig.inputs["images"].name, sig.outputs["semantic_predictions"].name
    for h, w in ((96, 96), (513, 513), (3000, 4000)):
      image = np.random.RandomState(2).randint(0, 255, (1, h, w, 3)).astype(np.uint8)
      times = []
      for i in range(runs + 1):
        start = time.perf_counter()
        sess.run(fetch, {feed: image})
        if i:
          times.append(1000 * (time.perf_counter() - start))
      latency[f"{w}x{h}" if h == 3000 else f"{h}x{w}"] = round(statistics.median(times), 1)
  out["saved_model_latency_ms_median"] = latency
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=20, help="timed images per mode")
  parser.add_argument("--latency_runs", type=int, default=10)
  parser.add_argument("--own_size_latency_runs", type=int, default=3)
  parser.add_argument("--child_eval", nargs="+", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child_eval:
    data, ckpt, crop, max_size = args.child_eval
    crop = None if crop == "own" else tuple(int(v) for v in crop.split(","))
    return child_evaluate(data, ckpt, crop, int(max_size) or None)
  model_cfg = dl_config.ModelConfig(num_classes=21)  # mobilenet_v2, OS 16: the defaults
  with tempfile.TemporaryDirectory() as tmp:
    data = write_split(os.path.join(tmp, "data"), 8, model_cfg.num_classes)
    ckpt = write_run(os.path.join(tmp, "train"), model_cfg)
    with_metric, bare = bench_eval(data, ckpt, model_cfg, args.steps)
    latency_median, latency_min, pb_bytes = bench_frozen(ckpt, os.path.join(tmp, "export"),
                                                         args.latency_runs)
    own_size = bench_own_size(tmp, ckpt, model_cfg, args.own_size_latency_runs)
  update_ms = bench_metric_update(model_cfg.num_classes)
  print(json.dumps({
      "model": "mobilenet_v2 (default ModelConfig, random weights), 21 classes",
      "crop": list(CROP), "eval_batch_size": 1,
      "eval_images_per_sec_with_metric": round(with_metric, 3),
      "eval_images_per_sec_bare": round(bare, 3),
      "metric_overhead_pct": round(100 * (bare / with_metric - 1), 2),
      "metric_overhead_target_pct": 5,
      "metric_update_ms_per_image": round(update_ms, 3),
      # The same overhead computed from the metric's own cost: immune to the machine's load.
      "metric_update_pct_of_bare_step": round(100 * update_ms * bare / 1000, 2),
      "frozen_graph_latency_ms_median": round(latency_median, 1),
      "frozen_graph_latency_ms_min": round(latency_min, 1),
      "frozen_graph_bytes": pb_bytes,
      "own_size": own_size,
      "timed_images_per_mode": args.steps,
      "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
  }))


if __name__ == "__main__":
  main()
