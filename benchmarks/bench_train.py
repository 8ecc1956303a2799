"""Training throughput on this CPU: our multi-clone trainer vs a Keras 3 DeepLabV3+.

Prints ONE JSON object. Every configuration runs in its own process (peak resident memory is
per process; Keras 3 cannot share a process with tf-keras/graph mode):
  * ours_1_clone / ours_2_clones: `deeplab.training.trainer.train` (the code behind
    `python -m deeplab train`), mobilenet_v2, crop 321, global batch 4, output stride 16,
    decoder stride 4, momentum; 2 clones run on 2 logical CPU devices, same global batch.
  * keras3: keras.applications.MobileNetV2(weights=None) made output-stride 16 (block 13
    without stride, blocks 14-16 dilated by 2, as DeepLab does) + ASPP (image pooling, 1x1)
    + v3+ decoder (48-channel projection of block_2's depthwise output, two separable convs)
    + logits, trained with model.fit (SGD momentum, sparse cross-entropy on upsampled
    logits) on the same random data. No weight decay on the Keras side.
Images/s exclude the first steps (graph building and optimisation).

Targets (issue 3): ours_1_clone >= keras3; ours_2_clones no more than 10% slower than
ours_1_clone.

"distributed" (issue 19, `run_distributed`): the original's ps/worker mode through the real
CLI and the LocalLauncher on 127.0.0.1, same batch per global step (each worker step is one
global step of `train_batch_size` images): 1 worker alone, 1 ps + 1 worker (the cost of the ps
round trip per step: variables pulled and gradients pushed over gRPC) and 1 ps + 2 workers
(asynchronous). The group's images/s is counted on the global step (the chief logs it each
step) over wall-clock time after a warm-up, so it includes every worker. CPU figures do NOT
predict GPU scaling: here the workers share the same few cores (two workers on 2 cores mostly
take turns), whereas on GPUs each worker has its own accelerator and the ps round trip
(variables over the network) is the cost that matters.

"variants" (issue 24): images/s of mobilenet_v3_large_seg, mobilenet_v3_small_seg
and mobilenet_v2, one clone, the same crop and global batch, each with its model-zoo head
(MobileNet-v3: output stride 32, the Cityscapes sum-merge decoder at stride 8; v2: output
stride 16, decoder stride 4, as above).

Usage: .venv/bin/python benchmarks/bench_train.py [--steps 12] [--warmup 3] [--repeats 3]
       [--sections clones,distributed,variants]
"""

import argparse
import json
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = 321
BATCH = 4
NUM_CLASSES = 21
NUM_IMAGES = 16


def _data(np):
  rng = np.random.RandomState(0)
  images = rng.uniform(0, 255, (NUM_IMAGES, CROP, CROP, 3)).astype(np.float32)
  labels = rng.randint(0, NUM_CLASSES, (NUM_IMAGES, CROP, CROP, 1)).astype(np.int32)
  return images, labels


def _peak_rss_mb() -> float:
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


# Each variant with its model-zoo head (docs/compatibility.md), for mobilenet_variants.
_V3_HEAD = dict(output_stride=32, decoder_output_stride=(8,), aspp_convs_filters=128,
                aspp_with_concat_projection=False, aspp_with_squeeze_and_excitation=True,
                image_se_uses_qsigmoid=True, decoder_use_sum_merge=True,
                decoder_filters=NUM_CLASSES, decoder_output_is_logits=True)
VARIANT_MODELS = {
    "mobilenet_v2": dict(output_stride=16, decoder_output_stride=(4,)),
    "mobilenet_v3_large_seg": _V3_HEAD,
    "mobilenet_v3_small_seg": _V3_HEAD,
}


def run_ours(num_clones: int, steps: int, warmup: int, variant: str = "mobilenet_v2") -> dict:
  sys.path.insert(0, REPO)
  import numpy as np

  from deeplab import config as C
  from deeplab.training import trainer
  from deeplab.compat import tf

  images, labels = _data(np)

  def input_fn(batch_size):
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    return ds.repeat().batch(batch_size, drop_remainder=True).prefetch(2)

  model = C.ModelConfig(model_variant=variant, num_classes=NUM_CLASSES,
                        **VARIANT_MODELS[variant])
  with tempfile.TemporaryDirectory() as logdir:
    cfg = C.TrainConfig(model=model, train_logdir=logdir, dataset_dir="unused",
                        num_clones=num_clones, train_batch_size=BATCH, train_crop_size=(CROP, CROP),
                        training_number_of_steps=steps + warmup, base_learning_rate=0.01,
                        save_interval_secs=0, save_summaries_secs=0, log_steps=1000, seed=0)
    start = time.time()
    result = trainer.train(cfg, input_fn=input_fn)
  return {"images_per_sec": round(result["images_per_sec"], 3), "num_clones": num_clones,
          "model_variant": variant,
          "global_batch": BATCH, "timed_steps": steps + warmup - 2,
          "wall_seconds": round(time.time() - start, 1), "peak_rss_mb": _peak_rss_mb()}


def _keras_model(keras):
  layers = keras.layers
  base = keras.applications.MobileNetV2(weights=None, include_top=False,
                                        input_shape=(CROP, CROP, 3))
  config = base.get_config()
  for layer in config["layers"]:
    name, cfg = layer["config"]["name"], layer["config"]
    if name == "block_13_pad":
      cfg["padding"] = ((0, 0), (0, 0))
    elif name == "block_13_depthwise":
      cfg["strides"] = (1, 1)
      cfg["padding"] = "same"
    elif name in ("block_14_depthwise", "block_15_depthwise", "block_16_depthwise"):
      cfg["dilation_rate"] = (2, 2)
  base = keras.Model.from_config(config)
  high = base.get_layer("block_16_project_BN").output  # OS 16, 320 channels
  low = base.get_layer("block_2_depthwise_relu").output  # OS 4, 144 channels

  def conv_bn(x, filters, kernel=1):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))

  def sep_conv_bn(x, filters):
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    return conv_bn(x, filters)

  size16 = (high.shape[1], high.shape[2])
  pool = layers.GlobalAveragePooling2D(keepdims=True)(high)
  pool = conv_bn(pool, 256)
  pool = layers.Resizing(*size16, interpolation="bilinear")(pool)
  aspp = layers.Concatenate()([pool, conv_bn(high, 256)])
  aspp = layers.Dropout(0.1)(conv_bn(aspp, 256))
  size4 = (low.shape[1], low.shape[2])
  x = layers.Concatenate()([layers.Resizing(*size4, interpolation="bilinear")(aspp),
                            conv_bn(low, 48)])
  x = sep_conv_bn(sep_conv_bn(x, 256), 256)
  x = layers.Conv2D(NUM_CLASSES, 1)(x)
  x = layers.Resizing(CROP, CROP, interpolation="bilinear")(x)
  model = keras.Model(base.input, x)
  model.os16_shape = tuple(high.shape[1:3])
  return model


def run_keras(steps: int, warmup: int) -> dict:
  import keras
  import numpy as np

  images, labels = _data(np)
  images = images / 127.5 - 1.0
  model = _keras_model(keras)
  model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  times = []

  class Timer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
      self.t = time.time()

    def on_train_batch_end(self, batch, logs=None):
      times.append(time.time() - self.t)

  start = time.time()
  total = steps + warmup
  x = np.concatenate([images] * (total * BATCH // NUM_IMAGES + 1))[:total * BATCH]
  y = np.concatenate([labels] * (total * BATCH // NUM_IMAGES + 1))[:total * BATCH]
  model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[Timer()])
  timed = times[warmup:]
  return {"images_per_sec": round(len(timed) * BATCH / sum(timed), 3), "global_batch": BATCH,
          "timed_steps": len(timed), "keras_version": keras.__version__,
          "jit_compile": bool(model.jit_compile), "params": int(model.count_params()),
          "os16_feature_size": list(model.os16_shape),
          "wall_seconds": round(time.time() - start, 1), "peak_rss_mb": _peak_rss_mb()}


def mobilenet_variants(steps: int, warmup: int, repeats: int) -> dict:
  """Images/s of each MobileNet variant (one clone, CROP, BATCH), best of `repeats`, and
  each one's speed relative to mobilenet_v2."""
  runs = {v: [] for v in VARIANT_MODELS}
  for _ in range(repeats):
    for variant in runs:
      runs[variant].append(_child("variant:" + variant, steps, warmup))
  out = {"crop": CROP, "global_batch": BATCH, "num_clones": 1}
  for variant, outs in runs.items():
    ok = [o for o in outs if "images_per_sec" in o]
    best = dict(max(ok, key=lambda o: o["images_per_sec"]) if ok else outs[-1])
    best["images_per_sec_all_runs"] = [o.get("images_per_sec") for o in outs]
    out[variant] = best
  base = out["mobilenet_v2"].get("images_per_sec")
  for variant in VARIANT_MODELS:
    speed = out[variant].get("images_per_sec")
    if base and speed:
      out[variant]["speed_vs_mobilenet_v2"] = round(speed / base, 3)
  return out


def _child(kind: str, steps: int, warmup: int) -> dict:
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
  if kind == "keras3":
    env.pop("TF_USE_LEGACY_KERAS", None)
    env["KERAS_BACKEND"] = "tensorflow"
  proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--steps", str(steps),
                         "--warmup", str(warmup)], env=env, capture_output=True, text=True)
  if proc.returncode != 0:
    return {"error": proc.stderr[-1500:]}
  return json.loads(proc.stdout.strip().splitlines()[-1])


DIST_CROP = 65
DIST_BATCH = 4
DIST_STEPS = 60
DIST_WARMUP_STEPS = 15  # graph building, the first steps' optimisation, startup delays


class _StepClock(logging.Handler):
  """Times the workers' `step N/total` lines as the launcher receives them. N is the global
  step (a worker's step number is its token), so any worker's lines count."""

  PATTERN = re.compile(r"step (\d+)/(\d+): loss")

  def __init__(self):
    super().__init__()
    self.steps = []  # (receive time, global step)

  def emit(self, record):
    m = self.PATTERN.search(record.getMessage())
    if m:
      self.steps.append((time.monotonic(), int(m.group(1))))


def _distributed_dataset(root: str) -> str:
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
  out = os.path.join(root, "ds")
  subprocess.run([sys.executable, "-m", "deeplab", "build-tfrecords", "--format=synthetic",
                  f"--source={os.path.join(root, 'src')}", f"--output_dir={out}",
                  "--synthetic_num_train=16", "--synthetic_num_val=2",
                  f"--synthetic_image_size={DIST_CROP}", "--num_workers=0"],
                 cwd=REPO, env=env, check=True, capture_output=True)
  return out


def _distributed_run(dataset: str, logdir: str, replicas: int, ps: int) -> dict:
  sys.path.insert(0, REPO)
  from operators.launchers.base import ClusterShape
  from operators.launchers.local import LocalLauncher

  log = logging.getLogger(f"bench.distributed.{replicas}.{ps}")
  log.setLevel(logging.INFO)
  log.propagate = False
  clock = _StepClock()
  log.addHandler(clock)
  argv = ["train", f"--dataset_dir={dataset}", f"--train_logdir={logdir}",
          f"--train_crop_size={DIST_CROP},{DIST_CROP}", f"--train_batch_size={DIST_BATCH}",
          "--num_clones=1", "--log_steps=1", "--save_summaries_secs=0",
          "--save_interval_secs=0", "--seed=1", f"--training_number_of_steps={DIST_STEPS}",
          f"--num_replicas={replicas}", f"--num_ps_tasks={ps}", "--startup_delay_steps=0"]
  launcher = LocalLauncher(log=log, env=dict(os.environ, CUDA_VISIBLE_DEVICES="",
                                             TF_CPP_MIN_LOG_LEVEL="3"))
  start = time.monotonic()
  job = launcher.run(argv, cluster=ClusterShape(replicas, ps))
  wall = time.monotonic() - start
  if job.exit_code != 0:
    return {"error": "\n".join(job.tail[-10:])}
  timed = [(t, s) for t, s in clock.steps if s > DIST_WARMUP_STEPS]
  if len(timed) < 2:
    return {"error": f"too few timed steps: {clock.steps[-5:]}"}
  (t0, s0), (t1, s1) = timed[0], timed[-1]
  rate = (s1 - s0) * DIST_BATCH / max(t1 - t0, 1e-9)
  return {"images_per_sec": round(rate, 3), "seconds_per_global_step": round((t1 - t0) /
                                                                             (s1 - s0), 4),
          "timed_global_steps": s1 - s0, "final_step": (job.result or {}).get("final_step"),
          "wall_seconds_with_startup": round(wall, 1)}


def run_distributed(repeats: int) -> dict:
  """1 worker vs 1 ps + 1 worker vs 1 ps + 2 workers, best of `repeats` each (alternating)."""
  shapes = {"one_worker": (1, 0), "ps1_worker1": (1, 1), "ps1_workers2": (2, 1)}
  runs = {k: [] for k in shapes}
  with tempfile.TemporaryDirectory(prefix="bench-dist-") as root:
    dataset = _distributed_dataset(root)
    for r in range(repeats):
      for key, (replicas, ps) in shapes.items():
        runs[key].append(_distributed_run(dataset, os.path.join(root, f"{key}-{r}"),
                                          replicas, ps))
  out = {"model": "mobilenet_v2 (default flags), 1 clone per worker", "crop": DIST_CROP,
         "batch_per_global_step": DIST_BATCH, "steps": DIST_STEPS,
         "warmup_global_steps": DIST_WARMUP_STEPS,
         "note": "CPU figures: the tasks share this machine's cores; they do not predict GPU "
                 "scaling, where each worker has its own GPU and the ps round trip crosses a "
                 "network."}
  for key, outs in runs.items():
    ok = [o for o in outs if "images_per_sec" in o]
    best = dict(max(ok, key=lambda o: o["images_per_sec"]) if ok else outs[-1])
    best["images_per_sec_all_runs"] = [o.get("images_per_sec") for o in outs]
    out[key] = best
  one, ps1, two = (out[k].get("seconds_per_global_step") for k in
                   ("one_worker", "ps1_worker1", "ps1_workers2"))
  if one and ps1:
    out["ps_round_trip_ms_per_step"] = round((ps1 - one) * 1000, 1)
  if one and two:
    out["two_workers_speedup_vs_one"] = round(one / two, 3)
  if ps1 and two:  # what a second worker adds once the variables live on a ps
    out["two_workers_speedup_vs_ps1_worker1"] = round(ps1 / two, 3)
  return out


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=12)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--worker",
                      choices=["ours1", "ours2", "keras3"] + [f"variant:{v}" for v in VARIANT_MODELS])
  parser.add_argument("--sections", default="clones,distributed,variants",
                      help="comma-separated: clones (ours vs keras3), distributed (ps/workers), "
                           "variants (MobileNet-v2/v3 with their heads)")
  args = parser.parse_args()
  sections = set(args.sections.split(","))
  if args.worker:
    if args.worker.startswith("variant:"):
      out = run_ours(1, args.steps, args.warmup, variant=args.worker.split(":", 1)[1])
    elif args.worker == "keras3":
      out = run_keras(args.steps, args.warmup)
    else:
      out = run_ours(int(args.worker[-1]), args.steps, args.warmup)
    print(json.dumps(out))
    return
  results = {
      "benchmark": "deeplab_train_throughput",
      "model": "mobilenet_v2 DeepLabV3+ (OS 16, decoder OS 4)", "crop": CROP,
      "global_batch": BATCH, "num_classes": NUM_CLASSES, "cpu_count": os.cpu_count(),
      "repeats": args.repeats, "load_avg_before": [round(v, 2) for v in os.getloadavg()],
  }
  # The configurations alternate and each keeps its best run: on a shared machine the
  # best of N is the least disturbed measurement.
  runs = {"ours_1_clone": [], "ours_2_clones": [], "keras3": []}
  if "clones" not in sections:
    runs = {}
  kinds = {"ours_1_clone": "ours1", "ours_2_clones": "ours2", "keras3": "keras3"}
  for _ in range(args.repeats):
    for key in runs:
      runs[key].append(_child(kinds[key], args.steps, args.warmup))
  for key, outs in runs.items():
    ok = [o for o in outs if "images_per_sec" in o]
    best = max(ok, key=lambda o: o["images_per_sec"]) if ok else outs[-1]
    best = dict(best)
    best["images_per_sec_all_runs"] = [o.get("images_per_sec") for o in outs]
    best["peak_rss_mb"] = max((o["peak_rss_mb"] for o in ok), default=None)
    results[key] = best
  one = results.get("ours_1_clone", {}).get("images_per_sec")
  two = results.get("ours_2_clones", {}).get("images_per_sec")
  ker = results.get("keras3", {}).get("images_per_sec")
  if one and ker:
    results["ours_1_vs_keras"] = round(one / ker, 3)
    results["target_1_clone_ge_keras"] = one >= ker
  if one and two:
    results["two_clones_slowdown"] = round(1 - two / one, 3)
    results["target_2_clones_within_10pct"] = two >= 0.9 * one
  if "distributed" in sections:
    results["distributed"] = run_distributed(args.repeats)
  if "variants" in sections:
    results["mobilenet_variants"] = mobilenet_variants(args.steps, args.warmup, args.repeats)
  results["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
