"""Input pipeline throughput in training mode; prints ONE JSON object.

Generates its own TFRecords (VOC-like ~500x375 JPEGs + PNG labels for the 513x513 crop, 64x64
images for the demo crop), then times `build_dataset(..., is_training=True)` with train.py's
augmentation (random scale 0.5-2.0 step 0.25, pad, crop, flip) and reports batches/s and
images/s, plus images per CPU-second (robust when other work shares the machine).

    .venv/bin/python benchmarks/bench_input.py [--batches 30] [--cores 2]

Target (issue 2): at least 3x the CPU training step rate measured by the training benchmark.
"""

import argparse
import io
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeplab.compat import tf  # noqa: E402
from deeplab.datasets import features, input_pipeline  # noqa: E402


def _encode(array, fmt, **kwargs):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format=fmt, **kwargs)
  return buf.getvalue()


def _scene(rng, h, w, num_classes=21):
  """Smooth background, a few textured rectangles, their class-index mask."""
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  image = np.stack([yy / h * 120 + 60, xx / w * 120 + 60, (yy + xx) / (h + w) * 200], -1)
  label = np.zeros((h, w), np.uint8)
  for _ in range(rng.randint(1, 5)):
    y0, x0 = rng.randint(0, h // 2), rng.randint(0, w // 2)
    y1, x1 = y0 + rng.randint(h // 8, h // 2), x0 + rng.randint(w // 8, w // 2)
    cls = rng.randint(1, num_classes)
    image[y0:y1, x0:x1] = rng.randint(0, 255, 3)
    label[y0:y1, x0:x1] = cls
  image += rng.normal(0, 12, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8), label


def _example(image, label, name):
  b = lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))  # noqa: E731
  i = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))  # noqa: E731
  return tf.train.Example(features=tf.train.Features(feature={
      features.IMAGE_ENCODED: b(_encode(image, "JPEG", quality=90)),
      features.IMAGE_FILENAME: b(name.encode()), features.IMAGE_FORMAT: b(b"jpeg"),
      features.IMAGE_HEIGHT: i(image.shape[0]), features.IMAGE_WIDTH: i(image.shape[1]),
      features.IMAGE_CHANNELS: i(3), features.LABEL_ENCODED: b(_encode(label, "PNG")),
      features.LABEL_FORMAT: b(b"png")})).SerializeToString()


def write_dataset(folder, num_images, sizes, num_shards=4, seed=0):
  """`train-*` shards of generated scenes; `sizes` is a list of (h, w) to cycle through."""
  rng = np.random.RandomState(seed)
  os.makedirs(folder, exist_ok=True)
  total = 0
  per_shard = -(-num_images // num_shards)
  for shard in range(num_shards):
    path = os.path.join(folder, features.shard_name("train", shard, num_shards))
    with tf.io.TFRecordWriter(path) as writer:
      for k in range(shard * per_shard, min(num_images, (shard + 1) * per_shard)):
        h, w = sizes[k % len(sizes)]
        writer.write(_example(*_scene(rng, h, w), f"{k:06d}"))
    total += os.path.getsize(path)
  return total


def _cpu_seconds():
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def measure(folder, crop, batch_size, warmup, batches, cores):
  with tf.Graph().as_default():
    ds = input_pipeline.build_dataset(
        folder, "train", batch_size=batch_size, crop_size=crop, is_training=True,
        model_variant="mobilenet_v2", min_scale_factor=0.5, max_scale_factor=2.0,
        scale_factor_step_size=0.25, num_readers=4, should_shuffle=True, should_repeat=True)
    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    ds = ds.with_options(options)
    nxt = tf.data.make_one_shot_iterator(ds).get_next()
    # Only the batch is fetched: the training step would consume it in-graph.
    fetch = [nxt["image"], nxt["label"]]
    session_config = tf.ConfigProto(intra_op_parallelism_threads=cores,
                                    inter_op_parallelism_threads=cores)
    with tf.Session(config=session_config) as sess:
      for _ in range(warmup):
        sess.run(fetch)
      cpu0, t0 = _cpu_seconds(), time.perf_counter()
      for _ in range(batches):
        sess.run(fetch)
      wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
  images = batches * batch_size
  return {"crop_size": list(crop), "batch_size": batch_size, "batches": batches,
          "seconds": round(wall, 3), "batches_per_sec": round(batches / wall, 2),
          "images_per_sec": round(images / wall, 1),
          "images_per_cpu_sec": round(images / cpu, 1) if cpu > 0 else None}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", type=int, default=30)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--cores", type=int, default=2)
  parser.add_argument("--voc_images", type=int, default=64)
  parser.add_argument("--work_dir", default=None, help="keep generated TFRecords here")
  args = parser.parse_args()
  if hasattr(os, "sched_setaffinity"):
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, available[:args.cores])
  work = args.work_dir or tempfile.mkdtemp(prefix="bench_input-")
  voc_dir, demo_dir = os.path.join(work, "voc"), os.path.join(work, "demo")
  voc_bytes = write_dataset(voc_dir, args.voc_images, [(375, 500), (500, 375), (333, 500)])
  demo_bytes = write_dataset(demo_dir, 64, [(64, 64)], num_shards=2)
  result = {
      "benchmark": "input_pipeline_training_mode",
      "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "augmentation": "scale 0.5-2.0 step 0.25, pad, random crop, flip (train.py defaults)",
      "voc_like": {"images": args.voc_images, "image_size": "~500x375 JPEG + PNG label",
                   "tfrecord_mb": round(voc_bytes / 2**20, 2),
                   **measure(voc_dir, (513, 513), 8, args.warmup, args.batches, args.cores)},
      "demo": {"images": 64, "image_size": "64x64 JPEG + PNG label",
               "tfrecord_mb": round(demo_bytes / 2**20, 2),
               **measure(demo_dir, (65, 65), 8, args.warmup, args.batches * 4, args.cores)},
      "load_average_1m": round(os.getloadavg()[0], 2),
  }
  print(json.dumps(result))


if __name__ == "__main__":
  main()
