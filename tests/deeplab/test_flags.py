"""Flags come from the config dataclasses: one declaration per setting, original names kept."""

import dataclasses
import importlib
import json
import pathlib
import subprocess
import sys

import pytest
from absl import flags

from deeplab import cli_flags
from deeplab.config.commands import COMMAND_SETTINGS, MULTI_FLAGS, command_fields
from deeplab.contract import COMMANDS

ORIGINAL = json.loads((pathlib.Path(__file__).parents[1] / "testdata" /
                       "original_flags.json").read_text())
# Flags added on purpose since the snapshot; everything else must equal it.
# The head options of the original's common.py added with issue 24, on every model command.
_MOBILENET_V3_HEAD = {"aspp_with_squeeze_and_excitation", "decoder_use_sum_merge",
                      "decoder_output_is_logits", "image_se_uses_qsigmoid",
                      "dense_prediction_cell_json", "nas_stem_output_num_conv_filters",
                      "nas_use_classification_head", "nas_remove_os32_stride"}
ADDED = {"train": {"config_json", "job_name", "ps_hosts", "worker_hosts"} | _MOBILENET_V3_HEAD,
         # The device formats of issue 20 (docs/export.md).
         "export": {"eval_metrics_json", "inference_max_size", "formats",
                    "max_quantized_miou_drop", "num_score_images", "calibration_split",
                    "num_calibration_images"} | _MOBILENET_V3_HEAD,
         "evaluate": {"inference_max_size"} | _MOBILENET_V3_HEAD,
         "vis": {"inference_max_size"} | _MOBILENET_V3_HEAD,
         "build-tfrecords": {"annotations", "ignore_classes"},
         # A command the original does not have (issue 23): every flag is new.
         "deploy": {"export_path", "serving_base_path", "model_name", "push_id",
                    "keep_versions", "protect_versions", "checkpoint_path", "config_json",
                    "dataset_dir", "check_split", "num_check_images", "result_json"}}
_KIND = {"string": "string", "integer": "int", "float": "float", "boolean": "bool",
         "enum": "string enum", "list": "comma separated list of strings",
         "multi_integer": "multi_int", "multi_float": "multi_float", "multi_string": "multi_string"}


def _defined(command):
  fv = cli_flags.flag_values(command)
  return {name: fv[name] for name in fv if name != cli_flags.VERBOSITY_FLAG}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_original_flag_keeps_its_name_kind_and_default(command):
  defined = _defined(command)
  original = ORIGINAL.get(command, {})
  assert set(defined) - ADDED.get(command, set()) == set(original)
  for name, want in original.items():
    flag = defined[name]
    kind = ("multi_" if isinstance(flag, flags.MultiFlag) else "") + flag.parser.flag_type()
    default = list(flag.default) if isinstance(flag.default, tuple) else flag.default
    assert (kind, default) == (want["kind"], want["default"]), name


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_flag_default_is_its_dataclass_field_default(command):
  defined = _defined(command)
  fields = command_fields(command)
  assert set(defined) == set(fields)
  for name, f in fields.items():
    flag = defined[name]
    assert _KIND[f.metadata["kind"]] in flag.parser.flag_type() or isinstance(
        flag, flags.MultiFlag), name
    parsed = cli_flags.ParsedFlags(command, {n: defined[n].value for n in fields},
                                   frozenset()).values[name]
    value = f.default
    if f.metadata["kind"] == "list" and value is not None:
      value = [str(v) for v in value]
    elif isinstance(value, tuple):
      value = list(value)
    assert parsed == value, name
    assert f.metadata["help"] and f.metadata["help"] in flag.help, name


def test_multi_flags_are_exactly_the_repeated_flags_defined():
  multi = {name for command in COMMANDS for name, flag in _defined(command).items()
           if isinstance(flag, flags.MultiFlag)}
  assert MULTI_FLAGS == multi
  from operators.argv import flag_args
  assert flag_args({"atrous_rates": [6, 12]}) == ["--atrous_rates=6", "--atrous_rates=12"]
  assert flag_args({"train_crop_size": [65, 65]}) == ["--train_crop_size=65,65"]


def test_importing_every_command_module_leaves_every_default_intact():
  code = (
      "import importlib, json, sys\n"
      "from deeplab.contract import COMMANDS\n"
      "for m in COMMANDS.values(): importlib.import_module(m)\n"
      "from deeplab import cli_flags\n"
      "out = {c: {n: (list(f.default) if isinstance(f.default, tuple) else f.default)\n"
      "           for n, f in ((n, cli_flags.flag_values(c)[n]) for n in cli_flags.flag_values(c))\n"
      "           if n != 'verbosity'} for c in COMMANDS}\n"
      "print(json.dumps(out))\n")
  res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=pathlib.Path(__file__).parents[2])
  assert res.returncode == 0, res.stderr
  after = json.loads(res.stdout.strip().splitlines()[-1])
  for command, original in ORIGINAL.items():
    for name, want in original.items():
      assert after[command][name] == want["default"], (command, name)
  assert after["vis"]["colormap_type"] == "pascal" and after["evaluate"]["colormap_type"] is None
  assert after["build-tfrecords"]["seed"] == 0 and after["train"]["seed"] is None


def test_parsed_flags_build_the_settings_and_know_what_was_given():
  parsed, _ = cli_flags.parse("train", ["prog", "--atrous_rates=6", "--atrous_rates=12",
                                        "--train_crop_size=321,321", "--num_clones=2"])
  from deeplab.config import ModelConfig, TrainConfig
  cfg = parsed.settings(TrainConfig, model=parsed.settings(ModelConfig))
  assert cfg.model.atrous_rates == (6, 12) and cfg.train_crop_size == (321, 321)
  assert cfg.num_clones == 2 and cfg.train_batch_size == 8
  assert parsed.given == {"atrous_rates", "train_crop_size", "num_clones"}


def test_command_modules_define_no_flags_at_import():
  before = set(flags.FLAGS)
  for module in COMMANDS.values():
    importlib.import_module(module)
  assert set(flags.FLAGS) == before


def test_every_field_that_is_a_flag_has_help_and_a_known_kind():
  for command in COMMAND_SETTINGS:
    for f in command_fields(command).values():
      assert f.metadata["help"].strip(), f.name
      assert f.metadata["kind"] in _KIND, f.name
      if f.metadata["kind"] == "enum":
        assert f.default is None or f.default in f.metadata["choices"], f.name
  assert all(dataclasses.is_dataclass(c) for cs in COMMAND_SETTINGS.values() for c in cs)
