"""Each export format against the frozen graph at 513x513: size, agreement, mIoU, CPU latency.

Prints ONE JSON object: per format (frozen graph first) the file size in MB, the fraction of
pixels equal to the frozen graph's on the check split, its mIoU there (as export_result.json
records them) and its single-image latency at 513x513 (median of --runs after a warm-up, in
this process: TensorFlow session for the frozen graph, LiteRT for TFLite, onnxruntime for
ONNX).

The model is mobilenet_v2 (depth 1.0, the default head, 21 classes) with random weights whose
batch norm is calibrated on the images (tests/deeplab/_eval_kit.make_run): size and latency do
not depend on the weights; agreement and the quantized mIoU drop do, so they are the figures of
a random model (near-ties everywhere: a pessimistic case for quantization).

Usage: .venv/bin/python benchmarks/bench_export_formats.py [--images 6] [--runs 10]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from deeplab import export  # noqa: E402
from deeplab.exporting import formats as fm  # noqa: E402
from deeplab.exporting import graph as eg  # noqa: E402
from tests.deeplab import _eval_kit as kit  # noqa: E402

SIZE = (513, 513)
FULL_MODEL = dict(depth_multiplier=1.0, aspp_convs_filters=256, decoder_filters=256)


def _median_ms(fn, image, runs):
  fn(image)  # warm-up (allocation, first-call setup)
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn(image)
    times.append(1000 * (time.perf_counter() - start))
  return round(statistics.median(times), 1)


def _frozen_runner(path):
  from deeplab.compat import tf
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(eg.read_frozen_graph(path), name="")
  sess = tf.Session(graph=graph)
  feed = graph.get_tensor_by_name(eg.INPUT_NAME + ":0")
  fetch = graph.get_tensor_by_name(eg.PREDICTIONS_NAME + ":0")
  return lambda image: sess.run(fetch, {feed: image[None]})[0]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--images", type=int, default=6)
  parser.add_argument("--runs", type=int, default=10)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    sizes = [SIZE] * args.images
    data = kit.write_dataset(os.path.join(tmp, "data"), "val", num_classes=21, sizes=sizes)
    kit.write_dataset(os.path.join(tmp, "train"), "train", num_classes=21,
                      sizes=[(500, 375)] * args.images)
    for name in os.listdir(os.path.join(tmp, "train")):  # the calibration split beside val
      if name.endswith(".tfrecord"):
        os.rename(os.path.join(tmp, "train", name), os.path.join(data, name))
    ckpt = kit.make_run(os.path.join(tmp, "run"), num_classes=21, crop=SIZE,
                        sizes=((257, 257),), **FULL_MODEL)
    out = os.path.join(tmp, "export")
    start = time.perf_counter()
    result = export.export(ckpt, out, dataset_dir=data, formats=fm.FORMATS,
                           device=export.DeviceSettings(max_quantized_miou_drop=1.0))
    export_secs = time.perf_counter() - start
    scored = result["device_formats"]
    files = {f["path"]: f["bytes"] for f in result["files"]}
    image = kit.make_example(0, *SIZE, 21)[0]
    rows = {"frozen": {
        "file": eg.FROZEN_GRAPH, "mb": round(files[eg.FROZEN_GRAPH] / 1e6, 2),
        "agreement": 1.0, "miou": scored["frozen"]["miou"],
        "latency_ms_513": _median_ms(_frozen_runner(os.path.join(out, eg.FROZEN_GRAPH)),
                                     image, args.runs)}}
    for fmt, row in scored["formats"].items():
      name = fm.DEVICE_FILES[fmt]
      rows[fmt] = {"file": name, "mb": round(files[name] / 1e6, 2),
                   "agreement": round(row["agreement"], 5), "miou": row["miou"],
                   "latency_ms_513": _median_ms(fm.predictor(fmt, os.path.join(out, name),
                                                            kit.TINY_MODEL["model_variant"]),
                                                image, args.runs)}
  print(json.dumps({"model": "mobilenet_v2 depth 1.0, 21 classes, random weights",
                    "check_images": scored["num_images"], "input": list(SIZE),
                    "export_all_formats_secs": round(export_secs, 1),
                    "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()[0],
                    "formats": rows}, indent=1))


if __name__ == "__main__":
  main()
