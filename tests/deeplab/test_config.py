"""deeplab.config: validation messages, JSON round trip, and no TensorFlow import."""

import subprocess
import sys

import pytest

from deeplab import config as C


def test_defaults_are_valid_and_match_the_original_flags():
  cfg = C.TrainConfig().validate()
  # The original train.py / common.py defaults.
  assert cfg.train_batch_size == 8 and cfg.num_clones == 1
  assert cfg.train_crop_size == (513, 513)
  assert cfg.base_learning_rate == 0.0001 and cfg.learning_policy == "poly"
  assert cfg.model.model_variant == "mobilenet_v2" and cfg.model.output_stride == 16


def test_round_trip_through_json_keeps_every_field():
  cfg = C.TrainConfig(
      model=C.ModelConfig(model_variant="xception_65", num_classes=5, atrous_rates="6,12,18",
                          decoder_output_stride=[4], output_stride=16),
      num_clones=2, train_batch_size=4, train_crop_size="65,65", boundaries=[10, 20],
      boundary_learning_rates=[0.1, 0.01, 0.001])
  back = C.load_train_config(C.dumps(cfg))
  assert back == cfg
  assert back.model.atrous_rates == (6, 12, 18)
  assert back.clone_batch_size == 2


@pytest.mark.parametrize("overrides, fragment", [
    (dict(num_clones=0), "num_clones must be an integer >= 1"),
    (dict(num_clones=3, train_batch_size=8), "does not divide evenly over num_clones 3"),
    (dict(train_crop_size="0,65"), "train_crop_size must be a pair of positive integers"),
    (dict(train_crop_size="65"), "train_crop_size must be a pair"),
    (dict(learning_policy="exp"), "learning_policy must be one of"),
    (dict(learning_policy="multi_steps", boundaries=[5]), "multi_steps needs boundaries"),
    (dict(top_k_percent_pixels=0), "top_k_percent_pixels"),
    (dict(model=C.ModelConfig(model_variant="resnet_v1_1000")), "model_variant 'resnet_v1_1000'"),
    (dict(model=C.ModelConfig(decoder_output_stride=[4, 8])), "sorted in descending order"),
    (dict(model=C.ModelConfig(num_classes=3, label_weights=[1, 2])), "one weight per class"),
])
def test_bad_values_are_rejected_with_a_message_naming_them(overrides, fragment):
  with pytest.raises(C.ConfigError, match=fragment):
    C.TrainConfig(**overrides).validate()


def test_all_problems_are_reported_at_once():
  probs = C.TrainConfig(num_clones=3, train_crop_size="0,0", optimizer="sgd").problems()
  assert len(probs) == 3


def test_unknown_keys_in_a_config_file_are_named():
  with pytest.raises(C.ConfigError, match=r"unknown training setting\(s\) \['num_gpus'\]"):
    C.load_train_config('{"num_gpus": 2}')


def test_corrupt_config_json_names_the_file():
  with pytest.raises(C.ConfigError, match="runs/x/config.json is not valid JSON"):
    C.load_train_config("{", source="runs/x/config.json")


@pytest.mark.parametrize("name", ["a/b", "..", "x;rm -rf", "", "$(id)", "a..b", "-flag"])
def test_unsafe_names_are_rejected(name):
  with pytest.raises(C.ConfigError, match="not a safe name"):
    C.check_name(name, "dataset name")


def test_mean_pixel_matches_the_original():
  assert C.mean_pixel("resnet_v1_50") == (123.15, 115.90, 103.06)
  assert C.mean_pixel("mobilenet_v2") == (127.5, 127.5, 127.5)
  # Deliberately unlike the original (127.5): resnet_v1_18 subtracts the mean, so pad with it.
  assert C.mean_pixel("resnet_v1_18") == (123.15, 115.90, 103.06)
  assert C.default_atrous_rates("xception_65", 8) == (12, 24, 36)
  assert C.default_atrous_rates("mobilenet_v2", 16) is None


def test_multi_grid_length_follows_the_last_block():
  assert C.ModelConfig(model_variant="resnet_v1_18", multi_grid=(1, 2)).problems() == []
  assert "needs 2 values" in " ".join(
      C.ModelConfig(model_variant="resnet_v1_18_beta", multi_grid=(1, 2, 4)).problems())
  assert "needs 3 values" in " ".join(
      C.ModelConfig(model_variant="resnet_v1_50", multi_grid=(1, 2)).problems())


def test_config_module_does_not_import_tensorflow():
  code = "import sys, deeplab.config, deeplab.errors; sys.exit('tensorflow' in sys.modules)"
  assert subprocess.run([sys.executable, "-c", code]).returncode == 0
