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
