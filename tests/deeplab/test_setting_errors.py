"""Every invalid setting reachable from the command line exits 2 (bad input), never transient."""

import pytest

from deeplab import cli
from deeplab.datasets import build
from deeplab.datasets.converters.base import ConvertOptions
from deeplab.errors import ConfigError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("settings") / "ds")
  build.build_tfrecords(ConvertOptions(format="synthetic", source=None, synthetic_num_train=4,
                                       synthetic_num_val=2, synthetic_image_size=32), out, 0)
  return out


BAD_TRAIN = [
    ["--num_clones=0"],
    ["--num_clones=3", "--train_batch_size=8"],
    ["--train_batch_size=0"],
    ["--num_replicas=2"],
    ["--num_ps_tasks=1"],
    ["--train_crop_size=0,65"],
    ["--train_crop_size=65"],
    ["--train_crop_size=a,b"],
    ["--training_number_of_steps=0"],
    ["--learning_policy=multi_steps"],
    ["--learning_policy=multi_steps", "--boundaries=10", "--boundary_learning_rates=0.1"],
    ["--base_learning_rate=0"],
    ["--top_k_percent_pixels=0"],
    ["--top_k_percent_pixels=1.5"],
    ["--min_scale_factor=0"],
    ["--min_scale_factor=2", "--max_scale_factor=1"],
    ["--log_steps=0"],
    ["--max_to_keep=0"],
    ["--save_interval_secs=-1"],
    ["--output_stride=12"],
    ["--atrous_rates=0"],
    ["--decoder_output_stride=4", "--decoder_output_stride=8"],
    ["--decoder_output_stride=16"],
    ["--multi_grid=1", "--multi_grid=2"],
    ["--depth_multiplier=0"],
    ["--logits_kernel_size=3"],
    ["--image_pooling_crop_size=65"],
    ["--image_pooling_stride=1"],
    ["--label_weights=1", "--label_weights=2"],
    ["--backbone_batch_norm_decay=1.5"],
    ["--image_pyramid=0"],
    ["--min_resize_value=0"],
    ["--quantize_delay_step=0", "--num_clones=2", "--train_batch_size=2"],
    ["--quantize_delay_step=0", "--model_variant=xception_41"],
    ["--drop_path_keep_prob=0"],
    ["--model_variant=nas_hnasnet", "--output_stride=16"],
    ["--model_variant=nas_pnasnet", "--output_stride=4"],
    ["--model_variant=vgg16"],
    ["--optimizer=sgd"],
    ["--no_such_setting=1"],
    ["--train_split=nope"],
    ["unexpected_positional"],
]


@pytest.mark.parametrize("bad", BAD_TRAIN, ids=[" ".join(b) for b in BAD_TRAIN])
def test_invalid_train_setting_exits_2(dataset, tmp_path, bad, capsys):
  code = cli.run_command("train", [f"--dataset_dir={dataset}",
                                   f"--train_logdir={tmp_path / 'train'}", *bad])
  assert code == 2, capsys.readouterr()
  assert not (tmp_path / "train").exists()  # refused before any work


BAD_OTHER = [
    ("evaluate", ["--eval_batch_size=0"]),
    ("evaluate", ["--eval_scales=0"]),
    ("evaluate", ["--eval_crop_size=65"]),
    ("evaluate", ["--colormap_type=rainbow"]),
    ("evaluate", ["--quantize_delay_step=1", "--model_variant=resnet_v1_50"]),
    ("vis", ["--vis_crop_size=1,2,3"]),
    ("vis", ["--quantize_delay_step=1", "--model_variant=resnet_v1_50"]),
    ("export", ["--num_check_images=0"]),
    ("export", ["--inference_scales=-1"]),
    ("build-tfrecords", ["--format=jpeg"]),
    ("build-tfrecords", ["--format=folder", "--split_lists=train"]),
    ("build-tfrecords", ["--format=synthetic", "--on_bad_example=ignore"]),
]


@pytest.mark.parametrize("command,bad", BAD_OTHER, ids=[f"{c} {' '.join(b)}" for c, b in BAD_OTHER])
def test_invalid_setting_of_other_commands_exits_2(dataset, tmp_path, command, bad):
  paths = {"evaluate": [f"--dataset_dir={dataset}", f"--checkpoint_dir={tmp_path}",
                        f"--eval_logdir={tmp_path / 'eval'}"],
           "vis": [f"--dataset_dir={dataset}", f"--checkpoint_dir={tmp_path}",
                   f"--vis_logdir={tmp_path / 'vis'}"],
           "export": [f"--checkpoint_dir={tmp_path}", f"--export_path={tmp_path / 'exp'}"],
           "build-tfrecords": [f"--output_dir={tmp_path / 'out'}", f"--source={tmp_path}"]}
  assert cli.run_command(command, [*paths[command], *bad]) == 2


def test_quantization_aware_training_refusals_name_the_setting_and_the_fix():
  """The original's one-clone restriction, and the variants whose convs are quantized."""
  from deeplab.config import ModelConfig, TrainConfig
  qat = ModelConfig(quantize_delay_step=0)
  assert qat.problems() == []
  assert ModelConfig(quantize_delay_step=-1, model_variant="xception_41").problems() == []
  assert TrainConfig(model=qat, num_clones=1, train_batch_size=2).problems() == []
  [clones] = TrainConfig(model=qat, num_clones=2, train_batch_size=2).problems()
  assert "num_clones 2" in clones and "--num_clones=1" in clones
  assert TrainConfig(model=ModelConfig(), num_clones=2, train_batch_size=2).problems() == []
  [variant] = ModelConfig(quantize_delay_step=5, model_variant="xception_41").problems()
  assert "supports model_variant mobilenet_v2, not xception_41" in variant
  [dpc] = ModelConfig(quantize_delay_step=5, dense_prediction_cell_json="dpc.json").problems()
  assert "dense_prediction_cell_json" in dpc


def test_library_settings_errors_are_bad_input_not_transient():
  """Settings the configuration's validation might miss still exit 2 from deep inside."""
  from deeplab.training import learning_rate, losses
  from deeplab.compat import tf

  cases = [
      lambda: learning_rate.get_model_learning_rate("exp", 0.1, 10, 0.1, 100, 0.9, 0, 0.1),
      lambda: losses.get_label_weight_mask(tf.zeros([4], tf.int32), 255, 3, label_weights=[1, 2]),
  ]
  for case in cases:
    with pytest.raises(ConfigError):
      case()
    assert cli.guarded(case) == 2
