"""The original DeepLab command lines shown in the README parse unchanged."""

import pathlib
import re
import shlex

import pytest

from deeplab import cli_flags

README = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands():
  text = README.replace("\\\n", " ")
  return [shlex.split(line.strip()) for line in text.splitlines()
          if re.match(r"\s*python -m deeplab [a-z-]+ --", line)]


def test_the_readme_shows_every_command():
  assert {c[3] for c in _commands()} == {"build-tfrecords", "train", "evaluate", "vis", "export"}


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: a[3])
def test_readme_command_line_parses(argv):
  command, flags = argv[3], argv[4:]
  parsed, rest = cli_flags.parse(command, [f"deeplab {command}", *flags])
  assert rest == [f"deeplab {command}"]
  for flag in flags:
    if flag.startswith("--"):
      assert flag[2:].split("=")[0] in parsed.given
