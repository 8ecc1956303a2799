"""mIoU of a trained model under each image-pooling choice (the measurement behind input_size.py).

Trains mobilenet_v2 briefly on synthetic shapes (96x96 images, 65x65 training crop, through
`python -m deeplab train`), then scores one val split of mixed sizes (48x64 to 97x193) under:

* split_crop_513: the previous rule, every image padded to one crop holding the split's
  largest image, at least 513x513; the image pooling averages over that padded crop.
* split_crop_fit: the same without the 513 floor (crop = the split's largest image).
* fixed_window: the original's Cityscapes way, image_pooling_crop_size = the training crop
  (stride 1), at the split crop.
* own_size_global_mean: each image padded to its own output_stride*k+1, pooled over the
  whole padded map (the original's dynamic-size path).
* own_size_valid_region: each image padded to its own output_stride*k+1, pooled over its own
  cells only (the default now).

Also prints how far the prediction of the same images moves when one 1000x1000 image joins the
split under the split-crop rule (pixels changed), which the own-size choices rule out.

Usage: .venv/bin/python benchmarks/bench_image_pooling.py [--steps 500] [--seed 1]
Prints ONE JSON object. Labels are scored at their original size, ignore label excluded.
"""

import argparse
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from deeplab import model, run_config  # noqa: E402
from deeplab.compat import tf  # noqa: E402
from deeplab.config import load_train_config  # noqa: E402
from deeplab.datasets import features  # noqa: E402
from deeplab.datasets.converters.synthetic import generate_example  # noqa: E402
from deeplab.evaluation import inference, input_size, metrics  # noqa: E402

NUM_CLASSES = 4
TRAIN_CROP = (65, 65)
VAL_SIZES = [(48, 64), (64, 48), (97, 97), (80, 120), (120, 80), (97, 193), (193, 97),
             (65, 65), (72, 96), (96, 72), (56, 150), (150, 56)] * 2


def _feature(value):
  if isinstance(value, int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _encode(array, fmt):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format=fmt)
  return buf.getvalue()


def examples(split, sizes, seed):
  out = []
  for i, (h, w) in enumerate(sizes):
    image, label = generate_example(seed, i, max(h, w), NUM_CLASSES)
    out.append((f"{split}_{i:04d}", image[:h, :w].copy(), label[:h, :w].copy()))
  return out


def write_split(folder, split, items):
  os.makedirs(folder, exist_ok=True)
  with tf.io.TFRecordWriter(os.path.join(folder, features.shard_name(split, 0, 1))) as w:
    for name, image, label in items:
      feats = {features.IMAGE_ENCODED: _feature(_encode(image, "PNG")),
               features.IMAGE_FILENAME: _feature(name.encode()),
               features.IMAGE_FORMAT: _feature(b"png"),
               features.IMAGE_HEIGHT: _feature(image.shape[0]),
               features.IMAGE_WIDTH: _feature(image.shape[1]),
               features.LABEL_ENCODED: _feature(_encode(label, "PNG")),
               features.LABEL_FORMAT: _feature(b"png")}
      w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())


def train(data, logdir, steps, seed):
  subprocess.run([sys.executable, "-m", "deeplab", "train", f"--dataset_dir={data}",
                  f"--train_logdir={logdir}", "--model_variant=mobilenet_v2", "--num_clones=1",
                  "--train_batch_size=8", f"--train_crop_size={TRAIN_CROP[0]},{TRAIN_CROP[1]}",
                  "--output_stride=16", "--batch_norm_decay=0.9", "--backbone_batch_norm_decay=0.9",
                  "--base_learning_rate=0.02",
                  f"--training_number_of_steps={steps}", "--log_steps=100",
                  "--save_summaries_secs=0", f"--seed={seed}"],
                 check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
  return tf.train.latest_checkpoint(logdir)


def predictor(ckpt, policy, global_mean=False):
  """A function image -> labels at the original size under `policy`."""
  graph = tf.Graph()
  with graph.as_default():
    image = tf.placeholder(tf.uint8, [None, None, 3])
    prepared, valid = inference.prepare(image, policy)
    if global_mean:  # own size, pooled over the whole padded map
      labels = model.predict_labels(prepared[tf.newaxis], policy.model)[model.OUTPUT_TYPE]
    else:
      labels, _ = inference.predict(prepared[tf.newaxis], valid[tf.newaxis], policy)
    out = inference.restore_size(labels[0], valid, tf.shape(image)[:2])
    saver = inference.restore_saver()
  sess = tf.Session(graph=graph)
  inference.restore(saver, sess, ckpt)
  return lambda img: sess.run(out, {image: img})


def score(predict, items):
  matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
  preds = []
  for _, image, label in items:
    pred = predict(image)
    preds.append(pred)
    matrix += metrics.confusion_matrix(label, pred, NUM_CLASSES, 255)
  return metrics.compute_metrics(matrix)["miou"], preds


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=500)
  parser.add_argument("--seed", type=int, default=1, help="training seed; data seeds follow")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "data")
    train_items = examples("train", [(96, 96)] * 64, seed=2 * args.seed - 1)
    val_items = examples("val", VAL_SIZES, seed=2 * args.seed)
    write_split(data, "train", train_items)
    write_split(data, "val", val_items)
    with open(os.path.join(data, features.MANIFEST), "w") as f:
      json.dump({"format_version": 1, "name": "shapes", "fingerprint": "bench",
                 "num_classes": NUM_CLASSES, "ignore_label": 255,
                 "splits": {"train": {"num_examples": 64}, "val": {"num_examples": 24}}}, f)
    start = time.time()
    ckpt = train(data, os.path.join(tmp, "train"), args.steps, args.seed)
    train_secs = time.time() - start
    cfg = load_train_config(open(os.path.join(tmp, "train", "config.json")).read()).model
    largest = (max(h for h, _ in VAL_SIZES), max(w for _, w in VAL_SIZES))
    fit = run_config.auto_crop_size(*largest, cfg.output_stride)
    window = dataclasses.replace(cfg, image_pooling_crop_size=TRAIN_CROP)
    choices = {
        "split_crop_513": (input_size.make_policy(cfg, (max(fit[0], 513), max(fit[1], 513))),
                           False),
        "split_crop_fit": (input_size.make_policy(cfg, fit), False),
        "fixed_window": (input_size.make_policy(window, fit), False),
        "own_size_global_mean": (input_size.make_policy(cfg), True),
        "own_size_valid_region": (input_size.make_policy(cfg), False),
    }
    miou, preds = {}, {}
    for name, (policy, global_mean) in choices.items():
      miou[name], preds[name] = score(predictor(ckpt, policy, global_mean), val_items)
    # One 1000x1000 photo joins the split: the split-crop rule's crop becomes 1009x1009.
    big = input_size.make_policy(cfg, run_config.auto_crop_size(1000, 1000, cfg.output_stride))
    small = val_items[:4]
    _, with_big = score(predictor(ckpt, big), small)
    changed = sum(int(np.count_nonzero(a != b)) for a, b in zip(preds["split_crop_513"][:4],
                                                                 with_big))
  print(json.dumps({
      "seed": args.seed,
      "model": f"mobilenet_v2 OS16, {args.steps} steps at {TRAIN_CROP[0]}x{TRAIN_CROP[1]}, "
               f"{NUM_CLASSES} classes, synthetic shapes",
      "train_seconds": round(train_secs, 1), "val_images": len(val_items),
      "val_sizes": sorted(set(VAL_SIZES)), "split_crop_fit": list(fit),
      "miou": {k: round(v, 4) for k, v in miou.items()},
      "split_crop_pixels_changed_on_4_images_when_a_1000x1000_image_joins": changed,
      "pixels_in_those_4_images": int(sum(i.shape[0] * i.shape[1] for _, i, _ in small)),
  }))


if __name__ == "__main__":
  main()
