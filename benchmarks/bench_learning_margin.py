"""How far above its threshold a learned-behaviour test lands, across seeds and numerics.

A test that asserts what a short training run learns (test_train_e2e: mIoU >= MIN_MIOU after
STEPS steps) must pass on any machine, so its margin is measured here rather than hoped for:
the same recipe, for each seed, with TensorFlow's oneDNN optimisations on and off, and with one
intra-op thread. Prints ONE JSON object: the mIoU of every run, the smallest, and the margin
over the test's threshold.

Usage: .venv/bin/python benchmarks/bench_learning_margin.py [--seeds 1 2 3] [--steps 500]
(each run is about 2 minutes on 2 CPU cores).
"""

import argparse
import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks._cli import run_deeplab  # noqa: E402
from tests.deeplab.test_train_e2e import MIN_MIOU, STEPS, TRAIN_FLAGS  # noqa: E402

NUMERICS = {
    "onednn_on": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "one_thread": {"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"},
}


def _deeplab(env, *args):
  run_deeplab(*args, env=env)


def _run(data, seed, steps, numerics, root):
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=REPO, **NUMERICS[numerics])
  flags = [f for f in TRAIN_FLAGS if not f.startswith(("--seed=", "--training_number_of_steps="))]
  logdir = os.path.join(root, f"train-{numerics}-{seed}")
  _deeplab(env, "train", f"--dataset_dir={data}", f"--train_logdir={logdir}", *flags,
           f"--seed={seed}", f"--training_number_of_steps={steps}")
  result = os.path.join(root, f"eval-{numerics}-{seed}.json")
  _deeplab(env, "evaluate", f"--dataset_dir={data}", f"--checkpoint_dir={logdir}",
           f"--eval_logdir={logdir}/eval", "--eval_batch_size=10", f"--result_json={result}")
  with open(result) as f:
    miou = json.load(f)["miou"]
  print(f"  {numerics} seed {seed}: mIoU {miou:.4f}", file=sys.stderr, flush=True)
  return miou


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
  parser.add_argument("--steps", type=int, default=STEPS)
  parser.add_argument("--numerics", nargs="+", default=list(NUMERICS), choices=list(NUMERICS))
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as root:
    data = os.path.join(root, "data")
    _deeplab(dict(os.environ, PYTHONPATH=REPO), "build-tfrecords", "--format=synthetic",
             f"--source={root}/src", f"--output_dir={data}")
    runs = {n: {str(s): round(_run(data, s, args.steps, n, root), 4) for s in args.seeds}
            for n in args.numerics}
  lowest = min(m for by_seed in runs.values() for m in by_seed.values())
  print(json.dumps({"test": "tests/deeplab/test_train_e2e.py", "steps": args.steps,
                    "threshold": MIN_MIOU, "miou": runs, "lowest": lowest,
                    "margin": round(lowest - MIN_MIOU, 4)}))


if __name__ == "__main__":
  main()
