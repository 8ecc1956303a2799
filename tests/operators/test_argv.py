import pytest

from operators.argv import deeplab_argv, flag_args


def test_flag_args_formats_values_and_drops_none():
  assert flag_args({"b": True, "a": [65, 65], "c": None, "d": 0.5, "e": False}) == [
      "--a=65,65", "--b=true", "--d=0.5", "--e=false"]


def test_values_stay_one_argument_each():
  # No shell: a value with spaces or ';' is one argv element, passed verbatim.
  assert deeplab_argv("train", {"train_logdir": "/x y; rm -rf /"}) == [
      "train", "--train_logdir=/x y; rm -rf /"]


@pytest.mark.parametrize("bad", ["a-b", "a b", "a;b", ""])
def test_flag_names_are_checked(bad):
  with pytest.raises(ValueError):
    flag_args({bad: 1})


def test_unknown_command():
  with pytest.raises(ValueError, match="unknown deeplab command"):
    deeplab_argv("rm", {})


def test_multi_flags_repeat_and_list_flags_join():
  assert flag_args({"atrous_rates": [6, 12, 18], "train_crop_size": [65, 65],
                    "decoder_output_stride": [4]}) == [
      "--atrous_rates=6", "--atrous_rates=12", "--atrous_rates=18",
      "--decoder_output_stride=4", "--train_crop_size=65,65"]
