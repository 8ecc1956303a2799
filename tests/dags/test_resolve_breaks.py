"""resolve_config with the real fingerprint and real folders: skip on unchanged data only.

The dataset folder is datasets/<name>/<fingerprint>/ where the fingerprint hashes the source
files and the converter options; the conversion is skipped only when that exact folder's
manifest.json exists with every shard it lists whole, and a scheduled run skips training only
when the champion was trained on that same fingerprint. Each test would pass with a constant
fingerprint or a check that answers for any folder, so they use neither.
"""

import copy
import os

import numpy as np
from PIL import Image

from deeplab import storage
from deeplab.datasets import build
from deeplab.datasets.converted import is_converted
from deeplab.datasets.converters.base import ConvertOptions
from deeplab.datasets.fingerprint import compute_fingerprint
from deeplab_pipeline import resolve as r
from tests.deeplab.datasets.test_build_trees import make_folder

NAME = "pets"


def _plan(dag, root, options=None, *, converted_fn=is_converted, run_type="manual",
          champion=None):
  params = copy.deepcopy(dag.params)
  for k, v in {"dataset_name": NAME, "dataset_format": "folder", "source_uri": "raw/pets",
               "converter_options": options or {}}.items():
    params[k] = v
  return r.resolve(params.validate(), run_id="scheduled__2026-11-26T02:00:00+00:00",
                   run_type=run_type, storage_root=root, load_champion=lambda uri: champion,
                   fingerprint_fn=compute_fingerprint, converted_fn=converted_fn)


def _source(root) -> str:
  return make_folder(os.path.join(root, "raw", "pets"))


def _convert(plan) -> dict:
  """build-tfrecords as the DAG runs it: the plan's format, source, options and folder."""
  opts = ConvertOptions(format=plan["build_format"], source=plan["build_source"],
                        **plan["build_flags"])
  return build.build_tfrecords(opts, plan["dataset_dir"], 0)


def test_converter_options_change_the_dataset_folder(dag, tmp_path):
  root = str(tmp_path)
  src = _source(root)
  default = _plan(dag, root)
  sharded = _plan(dag, root, {"num_shards": 2})
  assert sharded["fingerprint"] != default["fingerprint"], (
      "converter_options do not change the dataset fingerprint: a conversion with other "
      "options would reuse the old folder")
  assert sharded["fingerprint"] == compute_fingerprint("folder", src, {"num_shards": 2})
  assert sharded["dataset_dir"] == os.path.join(root, "datasets", NAME, sharded["fingerprint"])
  # The folder resolve picks is the fingerprint the conversion itself writes in its manifest.
  result = _convert(sharded)
  assert result["fingerprint"] == sharded["fingerprint"]
  assert storage.read_json(result["manifest"])["fingerprint"] == sharded["fingerprint"]


def test_skip_check_asks_for_this_fingerprint_folder_only(dag, tmp_path):
  root = str(tmp_path)
  src = _source(root)
  fp = compute_fingerprint("folder", src, {"num_shards": 2})
  mine = os.path.join(root, "datasets", NAME, fp)
  others = [os.path.join(root, "datasets", NAME, compute_fingerprint("folder", src, {})),
            os.path.join(root, "datasets", NAME),  # the same source with other options
            os.path.join(root, "datasets", "other", fp)]

  def only(converted):
    asked = []

    def check(folder):
      asked.append(folder)
      return folder in converted
    return check, asked

  check, asked = only({mine})
  plan = _plan(dag, root, {"num_shards": 2}, converted_fn=check)
  assert asked == [mine], asked
  assert fp in plan["build_skip"] and plan["dataset_dir"] in plan["build_skip"]
  check, asked = only(set(others))
  plan = _plan(dag, root, {"num_shards": 2}, converted_fn=check)
  assert plan["build_skip"] == "", f"conversion skipped on another folder's conversion: {asked}"


def test_a_shard_damaged_after_publishing_is_converted_again(dag, tmp_path):
  root = str(tmp_path)
  _source(root)
  plan = _plan(dag, root)
  manifest = storage.read_json(_convert(plan)["manifest"])
  assert "already converted" in _plan(dag, root)["build_skip"]
  shard = next(iter(manifest["splits"].values()))["shards"][0]["name"]
  path = os.path.join(plan["dataset_dir"], shard)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)  # e.g. a copy cut off, a lifecycle rule, a person
  again = _plan(dag, root)
  assert again["build_skip"] == "", "a damaged dataset would be trusted and training would fail"
  _convert(again)
  assert "already converted" in _plan(dag, root)["build_skip"]


def test_unchanged_data_skips_changed_data_converts_and_trains(dag, tmp_path):
  root = str(tmp_path)
  src = _source(root)
  first = _plan(dag, root)
  assert first["build_skip"] == ""  # nothing converted yet
  _convert(first)
  again = _plan(dag, root)
  assert again["dataset_dir"] == first["dataset_dir"] and "already converted" in again[
      "build_skip"]
  champion = {"run_id": "r0", "dataset_fingerprint": again["fingerprint"],
              "config_hash": again["config_hash"], "miou": 0.5}
  assert _plan(dag, root, run_type="scheduled", champion=champion)["train_skip"]
  # One mask changes by one pixel value: new fingerprint, so convert and train again.
  mask = os.path.join(src, "masks", "img0.png")
  pixels = np.asarray(Image.open(mask)).copy()
  pixels[0, 0] = (pixels[0, 0] + 1) % 3
  Image.fromarray(pixels).save(mask)
  changed = _plan(dag, root, run_type="scheduled", champion=champion)
  assert changed["fingerprint"] != first["fingerprint"]
  assert changed["build_skip"] == "" and changed["train_skip"] == ""
