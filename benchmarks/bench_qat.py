"""int8 TFLite mIoU with and without quantization-aware training, on one trained model.

Trains mobilenet_v2 on synthetic shapes (the learning test's recipe, one clone), then fine-tunes
that float checkpoint twice for the same steps, same data, same seed: once in float, once with
--quantize_delay_step=0 (fake-quant ops from the first step). Each is exported with
--formats=frozen,tflite_int8 and scored by the export's self-check on every val image:
- float fine-tune -> int8 by post-training calibration (--num_calibration_images of train);
- QAT fine-tune -> int8 from the learned ranges (no calibration).
Prints ONE JSON object: per arm the frozen graph's mIoU, the int8 file's mIoU, its drop and
pixel agreement with the frozen graph, and the file size; also for the float base model itself
(calibrated int8), to show how far the fine-tunes moved it.

Usage: .venv/bin/python benchmarks/bench_qat.py [--base_steps 500] [--tune_steps 200]
(about 8 minutes on 2 CPU cores).
"""

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks._cli import run_deeplab  # noqa: E402
from tests.deeplab.test_train_e2e import TRAIN_FLAGS  # noqa: E402

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)


def _flags(steps, lr):
  keep = [f for f in TRAIN_FLAGS if not f.startswith(
      ("--num_clones=", "--training_number_of_steps=", "--base_learning_rate="))]
  return [*keep, "--num_clones=1", f"--training_number_of_steps={steps}",
          f"--base_learning_rate={lr}"]


def _export(data, logdir, out):
  run_deeplab("export", f"--checkpoint_dir={logdir}", f"--export_path={out}",
              f"--dataset_dir={data}", "--formats=frozen,tflite_int8",
              "--max_quantized_miou_drop=1", "--num_check_images=1", env=ENV)
  with open(os.path.join(out, "export_result.json")) as f:
    result = json.load(f)
  scored = result["device_formats"]
  row = scored["formats"]["tflite_int8"]
  size = next(f["bytes"] for f in result["files"] if f["path"] == "deeplab_int8.tflite")
  return {"frozen_miou": round(scored["frozen"]["miou"], 6), "int8_miou": round(row["miou"], 6),
          "int8_miou_drop": round(row["miou_drop"], 6),
          "int8_agreement": round(row["agreement"], 4), "int8_mb": round(size / 1e6, 2),
          "int8_ranges": scored["int8_ranges"], "images": scored["num_images"]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--base_steps", type=int, default=500)
  parser.add_argument("--tune_steps", type=int, default=200)
  parser.add_argument("--tune_learning_rate", type=float, default=0.01)
  args = parser.parse_args()
  start = time.time()
  with tempfile.TemporaryDirectory() as root:
    data = os.path.join(root, "data")
    run_deeplab("build-tfrecords", "--format=synthetic", f"--source={root}/src",
                f"--output_dir={data}", env=ENV)
    base = os.path.join(root, "base")
    run_deeplab("train", f"--dataset_dir={data}", f"--train_logdir={base}",
                *_flags(args.base_steps, 0.05), env=ENV)
    # The base itself, calibrated: how far the fine-tunes moved the float model.
    arms = {"base_calibrated_int8": _export(data, base, os.path.join(root, "base-export"))}
    for arm, extra in (("float_then_calibrated_int8", []),
                       ("qat_int8", ["--quantize_delay_step=0"])):
      logdir = os.path.join(root, arm)
      t0 = time.time()
      run_deeplab("train", f"--dataset_dir={data}", f"--train_logdir={logdir}",
                  f"--tf_initial_checkpoint={base}/model.ckpt-{args.base_steps}",
                  *_flags(args.tune_steps, args.tune_learning_rate), *extra, env=ENV)
      train_secs = time.time() - t0
      arms[arm] = {**_export(data, logdir, os.path.join(root, arm + "-export")),
                   "fine_tune_secs": round(train_secs, 1)}
      print(f"  {arm}: {arms[arm]}", file=sys.stderr, flush=True)
  print(json.dumps({
      "model": "mobilenet_v2 depth 1.0, synthetic shapes, 65x65 crop, one clone",
      "base_steps": args.base_steps, "fine_tune_steps": args.tune_steps,
      "fine_tune_learning_rate": args.tune_learning_rate, "arms": arms,
      "int8_miou_gain_of_qat": round(arms["qat_int8"]["int8_miou"]
                                     - arms["float_then_calibrated_int8"]["int8_miou"], 4),
      "total_secs": round(time.time() - start, 1), "cpu_count": os.cpu_count(),
      "load_avg": os.getloadavg()[0]}, indent=1))


if __name__ == "__main__":
  main()
