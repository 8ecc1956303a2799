"""Large images: resize into range (the default) against sliding windows, measured.

Images above the inference bound can be predicted two ways with bounded memory: resized into
range and their prediction resized back (the original export_model.py, our default), or in
overlapping tiles of the bound whose probabilities are averaged (mmsegmentation's slide mode).
Which is better depends on what "larger" means, so both are measured on two kinds of large
image made from the same synthetic scenes a small model was trained on (64x64):

* zoom: each scene upsampled `--zoom` times (the same scene photographed with more pixels,
  as a phone photo of what a 513 model was trained on);
* mosaic: `--zoom` x `--zoom` scenes side by side (a larger field at the training scale, as an
  aerial or slide-scanner image).

For each kind and each policy (resize, slide, and unbounded `full` as the reference), one child
process predicts every image and reports mIoU against the full-size labels, seconds per
megapixel and its peak RSS. Prints ONE JSON object.

Usage: .venv/bin/python benchmarks/bench_large_images.py [--steps 500] [--images 24]
       [--zoom 4] [--bound 97] [--train_dir DIR (reuse a trained run)]
Training the model takes about 2-4 minutes on 2 CPU cores.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks._cli import run_deeplab  # noqa: E402
from benchmarks._memory import peak_rss_mb  # noqa: E402
from deeplab.datasets.converters import synthetic  # noqa: E402
from deeplab.datasets.converters.base import ConvertOptions  # noqa: E402
from tests.deeplab.test_train_e2e import TRAIN_FLAGS  # noqa: E402

POLICIES = ("resize", "slide", "full")
KINDS = ("native", "zoom", "mosaic")
FIRST_UNSEEN = 100000  # generate_example indices far from the training split's


def _deeplab(*args):
  run_deeplab(*args, env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
                              PYTHONPATH=REPO))


def train(root, steps):
  data, logdir = os.path.join(root, "data"), os.path.join(root, "train")
  _deeplab("build-tfrecords", "--format=synthetic", f"--source={root}/src", f"--output_dir={data}")
  flags = [f for f in TRAIN_FLAGS if not f.startswith("--training_number_of_steps=")]
  _deeplab("train", f"--dataset_dir={data}", f"--train_logdir={logdir}", *flags,
           f"--training_number_of_steps={steps}")
  return logdir


def scenes(count, zoom):
  """{kind: [(image, label)]}: the unseen 64x64 scenes, zoomed, and as mosaics."""
  from PIL import Image
  opts = ConvertOptions()
  size, k = opts.synthetic_image_size, opts.synthetic_num_classes
  native = [synthetic.generate_example(opts.seed, FIRST_UNSEEN + i, size, k) for i in range(count)]
  big = size * zoom
  zoomed = [(np.asarray(Image.fromarray(im).resize((big, big), Image.BILINEAR)),
             np.asarray(Image.fromarray(lb).resize((big, big), Image.NEAREST)))
            for im, lb in native]
  mosaics = []
  per = zoom * zoom
  for start in range(0, count - per + 1, per):
    group = native[start:start + per]
    rows = [np.concatenate([g[0] for g in group[r * zoom:(r + 1) * zoom]], 1) for r in range(zoom)]
    lrows = [np.concatenate([g[1] for g in group[r * zoom:(r + 1) * zoom]], 1) for r in range(zoom)]
    mosaics.append((np.concatenate(rows, 0), np.concatenate(lrows, 0)))
  return {"native": native, "zoom": zoomed, "mosaic": mosaics}, k


def _tiles(side, tile, stride):
  """Tile starts along one side: every pixel covered, the last tile flush with the edge."""
  if side <= tile:
    return [0]
  return sorted(set(list(range(0, side - tile, stride)) + [side - tile]))


def child(train_dir, kind, policy_name, count, zoom, bound, out_json):
  """One policy on one kind of image, in its own process (its peak RSS is its own)."""
  from deeplab.compat import tf
  from deeplab.config import load_train_config
  from deeplab.evaluation import inference, input_size

  images, num_classes = scenes(count, zoom)
  images = images[kind]
  with open(os.path.join(train_dir, "config.json")) as f:
    model_cfg = load_train_config(f.read()).model
  max_size = {"resize": bound, "slide": 0, "full": 0}[policy_name]
  policy = input_size.make_policy(model_cfg, max_size=max_size)
  with tf.Graph().as_default():
    image = tf.placeholder(tf.uint8, [None, None, 3])
    prepared, valid = inference.prepare(image, policy)
    labels, probs = inference.predict(prepared[tf.newaxis], valid[tf.newaxis], policy)
    label_map = inference.restore_size(labels[0], valid, tf.shape(image)[:2])
    prob_map = probs[0, :valid[0], :valid[1]]
    saver = inference.restore_saver()
    with tf.Session() as sess:
      inference.restore(saver, sess, tf.train.latest_checkpoint(train_dir))
      sess.run(label_map, {image: images[0][0][:33, :33]})  # warm-up outside the timing
      confusion = np.zeros((num_classes, num_classes), np.int64)
      start, pixels = time.perf_counter(), 0
      for im, lb in images:
        if policy_name == "slide":
          pred = _slide(sess, image, prob_map, im, num_classes, bound)
        else:
          pred = sess.run(label_map, {image: im})
        confusion += np.bincount(lb.astype(np.int64).ravel() * num_classes + pred.ravel(),
                                 minlength=num_classes ** 2).reshape(num_classes, num_classes)
        pixels += im.shape[0] * im.shape[1]
      seconds = time.perf_counter() - start
  inter = np.diag(confusion)
  union = confusion.sum(0) + confusion.sum(1) - inter
  miou = float(np.mean(inter[union > 0] / union[union > 0]))
  with open(out_json, "w") as f:
    json.dump({"miou": round(miou, 4), "s_per_mp": round(seconds / (pixels / 1e6), 3),
               "images": len(images), "image_size": list(images[0][0].shape[:2]),
               "peak_rss_mb": round(peak_rss_mb())},
              f)


def _slide(sess, image, prob_map, im, num_classes, tile):
  """Overlapping tiles of `tile` pixels (a third overlap), probabilities averaged."""
  h, w = im.shape[:2]
  stride = max(1, math.ceil(tile * 2 / 3))
  total = np.zeros((h, w, num_classes), np.float32)
  count = np.zeros((h, w, 1), np.float32)
  for y in _tiles(h, tile, stride):
    for x in _tiles(w, tile, stride):
      part = im[y:y + tile, x:x + tile]
      total[y:y + part.shape[0], x:x + part.shape[1]] += sess.run(prob_map, {image: part})
      count[y:y + part.shape[0], x:x + part.shape[1]] += 1
  return np.argmax(total / count, -1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=500)
  parser.add_argument("--images", type=int, default=32)
  parser.add_argument("--zoom", type=int, default=4)
  parser.add_argument("--bound", type=int, default=97,
                      help="the long-side bound of resize, and the tile side of slide")
  parser.add_argument("--train_dir", help="a trained run to reuse (trains one otherwise)")
  parser.add_argument("--child", nargs=3, metavar=("KIND", "POLICY", "OUT"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return child(args.train_dir, args.child[0], args.child[1], args.images, args.zoom,
                 args.bound, args.child[2])
  with tempfile.TemporaryDirectory() as root:
    train_dir = args.train_dir or train(root, args.steps)
    out = {"model": "mobilenet_v2 trained on 64x64 synthetic scenes (test_train_e2e's recipe)",
           "steps": args.steps, "zoom": args.zoom, "bound": args.bound}
    for kind in KINDS:
      out[kind] = {}
      for name in (("full",) if kind == "native" else POLICIES):
        result = os.path.join(root, f"{kind}-{name}.json")
        subprocess.run([sys.executable, __file__, "--child", kind, name, result,
                        f"--train_dir={train_dir}", f"--images={args.images}",
                        f"--zoom={args.zoom}", f"--bound={args.bound}"], check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
                       stderr=subprocess.DEVNULL)
        with open(result) as f:
          out[kind][name] = json.load(f)
        print(f"  {kind} {name}: {out[kind][name]}", file=sys.stderr, flush=True)
    out["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(out))


if __name__ == "__main__":
  main()
