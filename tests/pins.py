"""The `name==version` pins of requirements.txt, for tests that keep other files in step."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def requirement_pins() -> dict:
  """{lower-case name: version} of every `name==version` line of requirements.txt."""
  pins = {}
  for line in (ROOT / "requirements.txt").read_text().splitlines():
    m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
    if m:
      pins[m.group(1).lower()] = m.group(2)
  return pins


def dockerfile_pins(text: str) -> dict:
  """{lower-case name: version} of every `name==version` a Dockerfile installs."""
  return {n.lower(): v for n, v in re.findall(r"\s([A-Za-z0-9_.-]+)==([0-9][^\s\\\"]*)", text)}
