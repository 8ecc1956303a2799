"""A path setting outside the storage root is refused however it arrives.

The rule is written once (resolve.check_paths, over every field declared with path=True); these
tests walk the same declarations, so a new path setting is covered without touching them.
"""

import copy

import pytest

from deeplab import config as dlconfig
from deeplab.config import fields
from deeplab.datasets.converters.base import ConvertOptions
from deeplab_pipeline import resolve as r

OUTSIDE = ["/etc/secret/model.ckpt", "gs://someone-else/model.ckpt"]
TRAIN_PATHS = [f.name for cls in (dlconfig.ModelConfig, dlconfig.TrainConfig)
               for f in fields.path_fields(cls)]
CONVERT_PATHS = [f.name for f in fields.path_fields(ConvertOptions)]


def _resolve(dag, root, overrides):
  params = copy.deepcopy(dag.params)
  for k, v in overrides.items():
    params[k] = v
  return r.resolve(params.validate(), run_id="manual__1", run_type="manual", storage_root=root,
                   load_champion=lambda uri: None,
                   fingerprint_fn=lambda fmt, src, opts: "f" * 16, converted_fn=lambda folder: False)


def _value(name, path):
  return [f"train={path}"] if name == "split_lists" else path


def test_the_path_settings_are_the_ones_a_user_can_point_anywhere():
  assert "tf_initial_checkpoint" in TRAIN_PATHS
  assert {"source", "classes_json", "split_lists"} <= set(CONVERT_PATHS)


@pytest.mark.parametrize("path", OUTSIDE)
@pytest.mark.parametrize("name", TRAIN_PATHS)
def test_train_path_setting_outside_the_root_is_refused_in_extra_train_flags(dag, tmp_path,
                                                                             name, path):
  with pytest.raises(r.ConfError) as e:
    _resolve(dag, str(tmp_path), {"extra_train_flags": {name: path}})
  message = str(e.value)
  assert "outside the storage root" in message or "set by the pipeline" in message


@pytest.mark.parametrize("path", OUTSIDE)
def test_initial_checkpoint_outside_the_root_is_refused_as_a_param(dag, tmp_path, path):
  with pytest.raises(r.ConfError, match="outside the storage root"):
    _resolve(dag, str(tmp_path), {"init_from": "model_zoo", "tf_initial_checkpoint": path})


@pytest.mark.parametrize("path", OUTSIDE)
@pytest.mark.parametrize("name", [n for n in CONVERT_PATHS if n != "source"])
def test_converter_path_outside_the_root_is_refused(dag, tmp_path, name, path):
  with pytest.raises(r.ConfError, match="outside the storage root"):
    _resolve(dag, str(tmp_path), {"dataset_format": "folder", "source_uri": "raw/x",
                                  "converter_options": {name: _value(name, path)}})


@pytest.mark.parametrize("path", OUTSIDE)
def test_source_outside_the_root_is_refused(dag, tmp_path, path):
  with pytest.raises(r.ConfError, match="outside the storage root"):
    _resolve(dag, str(tmp_path), {"dataset_format": "folder", "source_uri": path})


def test_paths_inside_the_root_are_made_absolute_for_the_job(dag, tmp_path):
  plan = _resolve(dag, str(tmp_path), {
      "extra_train_flags": {"tf_initial_checkpoint": "zoo/model.ckpt"},
      "dataset_format": "folder", "source_uri": "raw/x",
      "converter_options": {"classes_json": "raw/classes.json",
                            "split_lists": ["train=raw/train.txt"]}})
  assert plan["train_config"]["tf_initial_checkpoint"] == f"{tmp_path}/zoo/model.ckpt"
  assert plan["build_flags"]["classes_json"] == f"{tmp_path}/raw/classes.json"
  assert plan["build_flags"]["split_lists"] == [f"train={tmp_path}/raw/train.txt"]
