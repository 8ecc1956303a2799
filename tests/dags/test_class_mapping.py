"""A dataset version with other classes is refused for the champion comparison and the warm
start, naming the difference, unless a class_mapping says how the names correspond."""

import pytest

from deeplab.datasets.class_mapping import difference, parse_mapping
from deeplab_pipeline.gate import champion_eval_skip

OLD = ["background", "cat", "dog", "bird"]


def _skip(old, new, mapping=None):
  return champion_eval_skip({"run_id": "r1", "checkpoint": "ckpt"}, checkpoint_exists=True,
                            champion_num_classes=len(old), dataset_num_classes=len(new),
                            champion_class_names=old, dataset_class_names=new,
                            class_mapping=mapping)


def test_a_removed_class_is_named_and_refused():
  why = _skip(OLD, ["background", "cat", "bird"])
  assert "removed 'dog'" in why and "recorded mIoU only" in why


def test_renamed_added_and_moved_classes_are_named():
  assert "removed 'cat'; added 'kitten'" in difference(OLD, ["background", "kitten", "dog", "bird"])
  assert "added 'fish'" in difference(OLD, OLD + ["fish"])
  assert "moved 'dog' (2 -> 3), 'bird' (3 -> 2)" in difference(
      OLD, ["background", "cat", "bird", "dog"])


def test_a_mapping_makes_renamed_classes_comparable():
  new = ["background", "kitten", "dog", "bird"]
  assert _skip(OLD, new, {"cat": "kitten"}) == ""
  assert _skip(OLD, OLD) == ""
  assert "removed 'dog'" in _skip(OLD, ["background", "kitten", "bird"], {"cat": "kitten"})


def test_mapping_must_be_names():
  assert parse_mapping('{"cat": "kitten"}') == {"cat": "kitten"}
  with pytest.raises(ValueError, match="old class name -> new class name"):
    parse_mapping({"cat": 3})


def test_warm_start_from_a_champion_with_other_classes_is_refused(dag, tmp_path):
  import copy
  import os

  from deeplab.datasets import build
  from deeplab.datasets.converted import is_converted
  from deeplab.datasets.converters.base import ConvertOptions
  from deeplab.datasets.fingerprint import compute_fingerprint
  from deeplab_pipeline import resolve as r
  from tests.deeplab.datasets.test_build_trees import make_folder

  root = str(tmp_path)
  src = make_folder(os.path.join(root, "raw", "pets"))  # classes bg, cat, dog
  old_dir = os.path.join(root, "datasets", "pets", "old")
  build.build_tfrecords(ConvertOptions(format="folder", source=src,
                                       class_names=("bg", "cat", "bird")), old_dir, 0)
  fp = compute_fingerprint("folder", src, {})
  build.build_tfrecords(ConvertOptions(format="folder", source=src),
                        os.path.join(root, "datasets", "pets", fp), 0)
  champion = {"run_id": "r0", "checkpoint": os.path.join(root, "runs", "r0", "model.ckpt-1"),
              "dataset_dir": old_dir}

  def plan(mapping):
    params = copy.deepcopy(dag.params)
    for k, v in {"dataset_name": "pets", "dataset_format": "folder", "source_uri": "raw/pets",
                 "init_from": "champion", "class_mapping": mapping}.items():
      params[k] = v
    return r.resolve(params.validate(), run_id="manual__1", run_type="manual",
                     storage_root=root, load_champion=lambda uri: champion,
                     fingerprint_fn=compute_fingerprint, converted_fn=is_converted)

  with pytest.raises(r.ConfError, match=r"init_from champion refused: .*removed 'bird'; "
                                        r"added 'dog'"):
    plan({})
  assert plan({"bird": "dog"})["class_mapping"] == {"bird": "dog"}
